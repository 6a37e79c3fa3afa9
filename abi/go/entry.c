// The ABI's entry point for Go plugins: a static table whose functions call the exported Go
// functions of process.go.
#include "spindle.h"
#include "_cgo_export.h"

static int32_t go_init(const spindle_host *host, spindle_cx *cx, const uint8_t *args, size_t len,
                       void **state) {
    return spindleGoInit((spindle_host *)host, cx, (uint8_t *)args, len, state);
}

/* The state is a cgo.Handle, an integer: it reaches Go as one, never as a pointer (Go's stack
 * copying rejects pointer-typed values below 4096). */
static int32_t go_step(void *state, const spindle_host *host, spindle_cx *cx) {
    return spindleGoStep((uintptr_t)state, (spindle_host *)host, cx);
}

static void go_drop(void *state) { spindleGoDrop((uintptr_t)state); }

static const spindle_plugin TABLE = {
    SPINDLE_ABI_VERSION, sizeof(spindle_plugin), go_init, go_step, go_drop,
};

const spindle_plugin *spindle_plugin_entry(void) { return &TABLE; }
