/*
 * spindle.h — the stable C ABI between Spindle and plugin processes (ABI version 1).
 *
 * A plugin is a shared library (native backend) or a Wasm module (Wasm backend) that runs
 * Spindle processes. This header is the contract; `spindle-abi` (Rust) mirrors it one to one.
 *
 * THE ENTRY POINT
 *   The library exports one function, `spindle_plugin_entry`, returning a pointer to a static
 *   `spindle_plugin` table: the ABI version it was built against, the table's size, and the
 *   functions init, step and drop. The host refuses a library without the symbol, or whose
 *   `abi_version` differs from its own, with an error naming the file and both versions.
 *
 * A PROCESS IS A STATE MACHINE
 *   init(host, cx, args)  once, before the first step: decode the spawn arguments (a MessagePack
 *                         array) and allocate the instance's state.
 *   step(state, host, cx) run until the process must wait, then return a SPINDLE_STEP_* code:
 *                         wait for any / all outstanding operations, yield, exit ok / error,
 *                         or upgrade. Called again when the wait is over.
 *   drop(state)           free the state (once; not after a failed init).
 *   Non-blocking operations (send, spawn, link, register …) act at once. Blocking ones
 *   (receive, events, timer, exec) are *started* and return a tag at once; their completions
 *   are taken in a later step with next_completion / take_completion. A process may have any
 *   number outstanding and wait for any or all of them.
 *
 * THREADS
 *   step may run on a different thread each time, never on two threads at once for one
 *   instance; different instances run in parallel. Host functions may be called only during
 *   the init or step call that received the `cx`, with that `cx` (from any thread, while that
 *   call has not returned). A plugin must not let anything unwind out of init, step or drop.
 *
 * DATA AND OWNERSHIP
 *   - Plain C types only: `const uint8_t *` + `size_t` byte strings (never NUL-terminated
 *     unless said), `uint64_t` pids and tags, `int32_t` status codes.
 *   - Structured values (payloads, spawn arguments, results, reasons) are MessagePack: nil,
 *     bool, int (signed 64-bit), float (written as float 64), str (UTF-8), bin, array, map.
 *     Extension types and integers above INT64_MAX are rejected with SPINDLE_E_INVALID. An
 *     empty byte string stands for nil (or "no arguments") wherever a value is optional.
 *   - The host copies everything it receives before the call returns: the guest may free or
 *     reuse its buffers at once. The guest frees what it allocates; the host never frees guest
 *     memory and the guest never frees host memory.
 *   - Data the host hands out (completion fields, last_error, pid_text) is borrowed: valid until
 *     the next call of the same function on the same cx, or the end of the step. Copy what you
 *     keep.
 *   - Pid 0 means "none", or "myself" where a function says so. Pids are never reused.
 *
 * ERRORS
 *   Host functions return SPINDLE_OK (0), SPINDLE_NONE (1, "nothing yet", not an error), or a
 *   negative SPINDLE_E_* kind; `last_error` then gives a message naming the thing.
 *
 * GROWTH RULE
 *   Within a major ABI version, tables and structs only grow at the end; nothing is removed,
 *   reordered or re-typed, and constants keep their values. Every table starts with
 *   `abi_version` and `size`: a host reads only the plugin fields that fit in the plugin's
 *   `size`, and a guest checks `host->size` before calling a function added after version 1.
 *   `spindle_completion` carries the guest's `size` the same way. An incompatible change gets
 *   a new SPINDLE_ABI_VERSION.
 */
#ifndef SPINDLE_H
#define SPINDLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPINDLE_ABI_VERSION 1
#define SPINDLE_PLUGIN_SYMBOL "spindle_plugin_entry"

/* Status codes of host functions and of init. */
#define SPINDLE_OK 0
#define SPINDLE_NONE 1 /* next_completion / take_completion: nothing has completed (yet) */
#define SPINDLE_E_NOT_FOUND (-1)
#define SPINDLE_E_ALREADY_EXISTS (-2)
#define SPINDLE_E_INVALID (-3)
#define SPINDLE_E_PERMISSION_DENIED (-4)
#define SPINDLE_E_UNAVAILABLE (-5)
#define SPINDLE_E_INTERNAL (-6)
#define SPINDLE_E_CANCELED (-7)
#define SPINDLE_E_TIMEOUT (-8)
#define SPINDLE_E_RATE_LIMITED (-9)
#define SPINDLE_E_UNKNOWN (-10)

/* What step returns. */
#define SPINDLE_STEP_WAIT_ANY 1   /* wake me when any outstanding operation completes */
#define SPINDLE_STEP_WAIT_ALL 2   /* wake me when every outstanding operation has completed */
#define SPINDLE_STEP_YIELD 3      /* my slice is spent: step me again after the others */
#define SPINDLE_STEP_EXIT_OK 4    /* done, with the value given to set_result (nil if none) */
#define SPINDLE_STEP_EXIT_ERROR 5 /* failed, with the error given to set_error */
#define SPINDLE_STEP_UPGRADE 6    /* continue as what was given to upgrade; pid, mailbox kept */

/* spindle_completion.kind */
#define SPINDLE_COMPLETION_MESSAGE 1 /* from, topic, value (the payload) */
#define SPINDLE_COMPLETION_EVENT 2   /* event, from, value or error (result / CANCEL reason) */
#define SPINDLE_COMPLETION_TIMER 3
#define SPINDLE_COMPLETION_EXIT 4   /* an exec'd process ended: value, or error */
#define SPINDLE_COMPLETION_FAILED 5 /* the operation could not be carried out: error */

/* spindle_completion.event */
#define SPINDLE_EVENT_EXIT 1
#define SPINDLE_EVENT_LINK_DOWN 2
#define SPINDLE_EVENT_CANCEL 3
#define SPINDLE_EVENT_OUTDATED 4

/* spawn's ties */
#define SPINDLE_TIE_LINK 1u
#define SPINDLE_TIE_MONITOR 2u

/* set_option's options */
#define SPINDLE_OPTION_TRAP_LINKS 1u
#define SPINDLE_OPTION_UPGRADABLE 2u

/* log levels */
#define SPINDLE_LOG_ERROR 1
#define SPINDLE_LOG_WARN 2
#define SPINDLE_LOG_INFO 3
#define SPINDLE_LOG_DEBUG 4

/* The step context: opaque; valid only during the init or step call that received it. */
typedef struct spindle_cx spindle_cx;

/* A finished operation. Set `size = sizeof(spindle_completion)` before passing it to
 * next_completion / take_completion; the host writes only fields that fit. The pointers are
 * borrowed (see DATA AND OWNERSHIP). */
typedef struct spindle_completion {
    uint32_t size;
    int32_t kind;   /* SPINDLE_COMPLETION_* */
    uint64_t tag;   /* the operation's tag */
    uint64_t from;  /* message: the sender; event: the process it is about */
    int32_t event;  /* SPINDLE_EVENT_*, or 0 */
    int32_t error;  /* 0, or the SPINDLE_E_* of a failed result */
    const uint8_t *topic; /* message: its topic (UTF-8) */
    size_t topic_len;
    const uint8_t *value; /* MessagePack: payload, successful result, CANCEL reason; may be empty */
    size_t value_len;
    const uint8_t *error_message; /* when error != 0 (UTF-8) */
    size_t error_message_len;
} spindle_completion;

/* The host functions. Byte strings are copied before the call returns. Unless said otherwise a
 * function returns SPINDLE_OK or a SPINDLE_E_* code (message: last_error). */
typedef struct spindle_host {
    uint32_t abi_version; /* the host's SPINDLE_ABI_VERSION */
    uint32_t size;        /* sizeof(spindle_host) as the host knows it */

    /* My pid. */
    uint64_t (*pid)(spindle_cx *cx);
    /* Send `payload` (MessagePack; empty: nil) under `topic` to pid `to`; a dead pid is not an
     * error. */
    int32_t (*send)(spindle_cx *cx, uint64_t to, const uint8_t *topic, size_t topic_len,
                    const uint8_t *payload, size_t payload_len);
    /* Like send, to a registered name or a pid in text form ("{host|0x…}"). */
    int32_t (*send_to)(spindle_cx *cx, const uint8_t *dest, size_t dest_len, const uint8_t *topic,
                       size_t topic_len, const uint8_t *payload, size_t payload_len);
    /* Start entry `entry` ("namespace:name") on host `host` (empty: mine) with `args` (a
     * MessagePack array; empty: none), tied by `ties` (SPINDLE_TIE_* bits). */
    int32_t (*spawn)(spindle_cx *cx, const uint8_t *entry, size_t entry_len, const uint8_t *host,
                     size_t host_len, const uint8_t *args, size_t args_len, uint32_t ties,
                     uint64_t *pid);
    int32_t (*link)(spindle_cx *cx, uint64_t pid);
    int32_t (*unlink)(spindle_cx *cx, uint64_t pid);
    /* I receive an EXIT event when `pid` ends (at once, with a NOT_FOUND error, if it is dead). */
    int32_t (*monitor)(spindle_cx *cx, uint64_t pid);
    int32_t (*unmonitor)(spindle_cx *cx, uint64_t pid);
    /* SPINDLE_OPTION_* on (on != 0) or off. */
    int32_t (*set_option)(spindle_cx *cx, uint32_t option, int32_t on);
    /* Register `name` for `pid` (0: me); released when that process ends. */
    int32_t (*register_name)(spindle_cx *cx, const uint8_t *name, size_t name_len, uint64_t pid);
    int32_t (*unregister_name)(spindle_cx *cx, const uint8_t *name, size_t name_len);
    /* The pid registered as `name`; SPINDLE_E_NOT_FOUND if none. */
    int32_t (*lookup)(spindle_cx *cx, const uint8_t *name, size_t name_len, uint64_t *pid);
    /* Ask `pid` to stop (it receives a CANCEL event) with `reason` (MessagePack; empty: none). */
    int32_t (*cancel)(spindle_cx *cx, uint64_t pid, const uint8_t *reason, size_t reason_len);
    /* Stop `pid` hard; its monitors see a CANCELED error. */
    int32_t (*terminate)(spindle_cx *cx, uint64_t pid);
    /* Route messages of `topic` to their own queue, received with receive(topic). */
    int32_t (*listen)(spindle_cx *cx, const uint8_t *topic, size_t topic_len);
    int32_t (*unlisten)(spindle_cx *cx, const uint8_t *topic, size_t topic_len);

    /* Blocking operations: each starts at once and puts its tag in *tag. */
    /* The next message of `topic` (empty: the inbox — every topic nobody listens to). */
    int32_t (*receive)(spindle_cx *cx, const uint8_t *topic, size_t topic_len, uint64_t *tag);
    /* The next event (EXIT, LINK_DOWN, CANCEL, OUTDATED). */
    int32_t (*events)(spindle_cx *cx, uint64_t *tag);
    /* Completes after `nanos` nanoseconds. */
    int32_t (*timer)(spindle_cx *cx, uint64_t nanos, uint64_t *tag);
    /* Spawns like spawn (no ties) and completes with the process's result. The process is
     * stopped (CANCELED) if the operation is dropped, or the caller ends or upgrades, first. */
    int32_t (*exec)(spindle_cx *cx, const uint8_t *entry, size_t entry_len, const uint8_t *host,
                    size_t host_len, const uint8_t *args, size_t args_len, uint64_t *tag);
    /* The oldest completion not yet taken; SPINDLE_NONE if none. */
    int32_t (*next_completion)(spindle_cx *cx, spindle_completion *out);
    /* The completion of `tag`; SPINDLE_NONE if it has not completed. */
    int32_t (*take_completion)(spindle_cx *cx, uint64_t tag, spindle_completion *out);
    /* Abandon `tag`; a message or event it already received goes back to its queue. */
    int32_t (*drop_op)(spindle_cx *cx, uint64_t tag);

    /* Ending: what a later SPINDLE_STEP_EXIT_OK / _EXIT_ERROR / _UPGRADE (or a failed init)
     * ends with. */
    int32_t (*set_result)(spindle_cx *cx, const uint8_t *value, size_t value_len);
    int32_t (*set_error)(spindle_cx *cx, int32_t code, const uint8_t *message, size_t message_len);
    /* Continue as entry `entry` (empty: my current entry, reloaded) with `args` (MessagePack
     * array; empty: none). */
    int32_t (*upgrade)(spindle_cx *cx, const uint8_t *entry, size_t entry_len, const uint8_t *args,
                       size_t args_len);

    /* The message of the last failed call on this cx (borrowed); SPINDLE_NONE if none. */
    int32_t (*last_error)(spindle_cx *cx, const uint8_t **message, size_t *len);
    /* Write `message` to the runtime's log at `level` (SPINDLE_LOG_*), naming my pid. */
    int32_t (*log)(spindle_cx *cx, int32_t level, const uint8_t *message, size_t message_len);
    /* The text form of `pid` ("{host|0x0000002a}", as Lua processes see pids; borrowed). */
    int32_t (*pid_text)(spindle_cx *cx, uint64_t pid, const uint8_t **text, size_t *len);

    /* Appended after version 1's first table: check that `size` covers it before calling. */

    /* Like `receive`, but a message already waiting is taken at once: it is written to *out
     * (borrowed, as from take_completion), *tag is 0 and the call returns SPINDLE_OK. If none
     * waits, the receive is started, its tag in *tag, and the call returns SPINDLE_NONE. One
     * call instead of receive + take_completion for the common case. */
    int32_t (*receive_now)(spindle_cx *cx, const uint8_t *topic, size_t topic_len, uint64_t *tag,
                           spindle_completion *out);
    /* How many of my operations are outstanding: started, not dropped, and not completed yet
     * (what SPINDLE_STEP_WAIT_ALL waits for). Check host->size covers it before calling. */
    uint64_t (*outstanding)(spindle_cx *cx);
} spindle_host;

/* What spindle_plugin_entry() returns; static lifetime. */
typedef struct spindle_plugin {
    uint32_t abi_version; /* SPINDLE_ABI_VERSION the plugin was built against */
    uint32_t size;        /* sizeof(spindle_plugin) as the plugin knows it */
    /* Decode `args` (MessagePack array of the spawn arguments), set *state. Returns SPINDLE_OK,
     * or a SPINDLE_E_* code after set_error: the process then ends with that error. */
    int32_t (*init)(const spindle_host *host, spindle_cx *cx, const uint8_t *args,
                    size_t args_len, void **state);
    /* Run until the process must wait; returns a SPINDLE_STEP_* code. */
    int32_t (*step)(void *state, const spindle_host *host, spindle_cx *cx);
    /* Free the state. No host function may be called from here. */
    void (*drop)(void *state);
} spindle_plugin;

/* The one exported symbol: const spindle_plugin *spindle_plugin_entry(void); */
typedef const spindle_plugin *(*spindle_plugin_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SPINDLE_H */
