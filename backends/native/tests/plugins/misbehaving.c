/*
 * A plugin that breaks the contract in one way per role (its first spawn argument; the second
 * is the parent's pid): each must end at most its own process, with an error that names what
 * went wrong.
 *   bad_status    step returns 42, which is no SPINDLE_STEP_* code
 *   no_upgrade    step returns SPINDLE_STEP_UPGRADE without calling upgrade
 *   silent_error  step returns SPINDLE_STEP_EXIT_ERROR without calling set_error
 *   init_fails    init refuses to start (set_error, then SPINDLE_E_INVALID)
 *   bad_sends     sends malformed payloads and topics, reports the codes, exits normally
 */
#include <stdlib.h>
#include <string.h>

#include "spindle.h"
#include "spindle_msgpack.h"

typedef struct state {
    char role[16];
    uint64_t parent;
} state;

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static int32_t init(const spindle_host *h, spindle_cx *cx, const uint8_t *args, size_t len,
                    void **out) {
    spindle_mp_reader r;
    spindle_mp_token t;
    state *s = calloc(1, sizeof *s);
    if (!s) return SPINDLE_E_UNAVAILABLE;
    spindle_mp_reader_init(&r, args, len);
    if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_ARRAY && t.n == 2 &&
        spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_STR && t.len < sizeof s->role) {
        memcpy(s->role, t.bytes, t.len);
        if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_INT) s->parent = (uint64_t)t.i;
    }
    if (strcmp(s->role, "init_fails") == 0) {
        free(s);
        h->set_error(cx, SPINDLE_E_INVALID, S("refused to start"));
        return SPINDLE_E_INVALID;
    }
    *out = s;
    return SPINDLE_OK;
}

static int32_t step(void *p, const spindle_host *h, spindle_cx *cx) {
    state *s = p;
    if (strcmp(s->role, "bad_status") == 0) return 42;
    if (strcmp(s->role, "no_upgrade") == 0) return SPINDLE_STEP_UPGRADE;
    if (strcmp(s->role, "silent_error") == 0) return SPINDLE_STEP_EXIT_ERROR;
    if (strcmp(s->role, "bad_sends") == 0) {
        static const uint8_t never_used[] = {0xc1};        /* no MessagePack type */
        static const uint8_t truncated[] = {0x92, 0x01};   /* an array of two with one item */
        static const uint8_t trailing[] = {0x01, 0x02};    /* two values where one belongs */
        static const uint8_t nil[] = {0xc0};
        int32_t codes[5];
        spindle_mp_buf b;
        codes[0] = h->send(cx, s->parent, S("bad"), never_used, sizeof never_used);
        codes[1] = h->send(cx, s->parent, S("bad"), truncated, sizeof truncated);
        codes[2] = h->send(cx, s->parent, S("bad"), trailing, sizeof trailing);
        codes[3] = h->send(cx, s->parent, (const uint8_t *)"", 0, nil, sizeof nil);
        codes[4] = h->send(cx, s->parent, S("@reserved"), nil, sizeof nil);
        spindle_mp_buf_init(&b);
        spindle_mp_array(&b, 5);
        for (int i = 0; i < 5; i++) spindle_mp_int(&b, codes[i]);
        h->send(cx, s->parent, S("codes"), b.data, b.len);
        spindle_mp_buf_free(&b);
        return SPINDLE_STEP_EXIT_OK;
    }
    return SPINDLE_STEP_EXIT_OK;
}

static void drop(void *p) { free(p); }

static const spindle_plugin TABLE = {SPINDLE_ABI_VERSION, sizeof(spindle_plugin), init, step, drop};

const spindle_plugin *spindle_plugin_entry(void) { return &TABLE; }
