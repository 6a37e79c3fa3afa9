/*
 * A native plugin process in C: a small service that answers requests, waits on several
 * operations at once (two timers and a receive: wait-any; two timers: wait-all), and can
 * upgrade itself into another entry. Same protocol as examples/native-rust and native-go.
 *
 * Build: bash scripts/build-native-examples.sh  (→ target/native-examples/libservice_c.so)
 */
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "spindle.h"
#include "spindle_msgpack.h"

enum phase { IDLE, RACE, ALL, DONE, RING };

typedef struct service {
    enum phase phase;
    uint64_t recv;      /* the inbox receive, 0 if none started */
    uint64_t tags[3];   /* RACE: timer a, timer b, receive; ALL: timer a, timer b */
    int done[2];        /* ALL: which timers have completed */
    uint64_t requester; /* who asked for the RACE / ALL */
    struct timespec t0;
    int64_t handled;
    uint64_t announce_to; /* after an upgrade: who to tell, at the first step */
    uint64_t parent, next; /* the benchmark roles: "done" and "ring" */
} service;

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static int64_t now_ms_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* An integer field of a map payload (0 if absent). */
static int64_t field(const spindle_completion *c, const char *key) {
    spindle_mp_reader r;
    spindle_mp_token t;
    spindle_mp_reader_init(&r, c->value, c->value_len);
    if (spindle_mp_next(&r, &t) || t.type != SPINDLE_MP_MAP) return 0;
    if (spindle_mp_find(&r, t.n, key) || spindle_mp_next(&r, &t) || t.type != SPINDLE_MP_INT) return 0;
    return t.i;
}

static int fail(const spindle_host *h, spindle_cx *cx, const char *msg) {
    h->set_error(cx, SPINDLE_E_UNKNOWN, (const uint8_t *)msg, strlen(msg));
    return SPINDLE_STEP_EXIT_ERROR;
}

static int32_t init(const spindle_host *h, spindle_cx *cx, const uint8_t *args, size_t len,
                    void **state) {
    /* malloc and a zeroed struct rather than calloc: glibc's calloc bypasses the per-thread
     * cache that malloc and free use, so every calloc takes the arena's lock and its free,
     * once that cache is full, goes back the slow way too. */
    service *s = malloc(sizeof *s);
    spindle_mp_reader r;
    spindle_mp_token t;
    if (!s) {
        h->set_error(cx, SPINDLE_E_UNAVAILABLE, S("out of memory"));
        return SPINDLE_E_UNAVAILABLE;
    }
    *s = (service){0};
    /* Arguments after an upgrade: [handled, requester]; of the benchmark harness's roles
     * (bench/src/native.rs): ["done" or "ring", parent]. */
    spindle_mp_reader_init(&r, args, len);
    if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_ARRAY && t.n >= 2) {
        spindle_mp_token a, b;
        if (spindle_mp_next(&r, &a) == 0 && spindle_mp_next(&r, &b) == 0 && b.type == SPINDLE_MP_INT) {
            if (a.type == SPINDLE_MP_INT) {
                s->handled = a.i;
                s->announce_to = (uint64_t)b.i;
            } else if (a.type == SPINDLE_MP_STR) {
                s->phase = a.len == 4 && memcmp(a.bytes, "done", 4) == 0 ? DONE : RING;
                s->parent = (uint64_t)b.i;
            }
        }
    }
    *state = s;
    return SPINDLE_OK;
}

/* Handles one request; returns a SPINDLE_STEP_* code to end the step, or 0 to go on. */
static int handle(service *s, const spindle_host *h, spindle_cx *cx, const spindle_completion *c) {
    const char *topic = (const char *)c->topic;
    size_t n = c->topic_len;
    spindle_mp_buf b;
    spindle_mp_buf_init(&b);
    s->handled++;
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(topic, lit, n) == 0)
    if (IS("echo")) {
        /* Decoded and re-encoded by the helper: values round-trip exactly. */
        spindle_mp_reader r;
        spindle_mp_reader_init(&r, c->value, c->value_len);
        if (c->value_len == 0) spindle_mp_nil(&b);
        else if (spindle_mp_copy(&r, &b, 128)) return fail(h, cx, "echo: malformed payload");
        h->send(cx, c->from, S("echo"), b.data, b.len);
    } else if (IS("race") || IS("all")) {
        int64_t a = field(c, "a"), bms = field(c, "b");
        s->requester = c->from;
        clock_gettime(CLOCK_MONOTONIC, &s->t0);
        h->timer(cx, (uint64_t)a * 1000000u, &s->tags[0]);
        h->timer(cx, (uint64_t)bms * 1000000u, &s->tags[1]);
        if (IS("race")) {
            h->receive(cx, NULL, 0, &s->tags[2]);
            s->phase = RACE;
        } else {
            s->done[0] = s->done[1] = 0;
            s->phase = ALL;
        }
    } else if (IS("monitor") || IS("link")) {
        spindle_mp_reader r;
        spindle_mp_token t;
        spindle_mp_reader_init(&r, c->value, c->value_len);
        if (spindle_mp_next(&r, &t) || t.type != SPINDLE_MP_INT) return fail(h, cx, "expected a pid");
        if (IS("link")) {
            if (h->link(cx, (uint64_t)t.i) != SPINDLE_OK) return fail(h, cx, "link failed");
            h->send(cx, c->from, S("linked"), NULL, 0);
        } else {
            h->monitor(cx, (uint64_t)t.i);
            h->send(cx, c->from, S("monitoring"), NULL, 0);
            s->requester = c->from;
            /* The EXIT event is awaited in the IDLE loop below, beside the inbox. */
            h->events(cx, &s->tags[2]);
        }
    } else if (IS("upgrade")) {
        spindle_mp_reader r;
        spindle_mp_token t;
        spindle_mp_reader_init(&r, c->value, c->value_len);
        spindle_mp_array(&b, 2);
        spindle_mp_int(&b, s->handled);
        spindle_mp_int(&b, (int64_t)c->from);
        if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_STR)
            h->upgrade(cx, t.bytes, t.len, b.data, b.len);
        else
            h->upgrade(cx, NULL, 0, b.data, b.len);
        spindle_mp_buf_free(&b);
        return SPINDLE_STEP_UPGRADE;
    } else if (IS("fail")) {
        spindle_mp_buf_free(&b);
        return fail(h, cx, "asked to fail");
    } else if (IS("stop")) {
        spindle_mp_int(&b, s->handled);
        h->set_result(cx, b.data, b.len);
        spindle_mp_buf_free(&b);
        return SPINDLE_STEP_EXIT_OK;
    } else {
        h->log(cx, SPINDLE_LOG_WARN, S("unknown request"));
    }
#undef IS
    spindle_mp_buf_free(&b);
    return 0;
}

/* receive_now came after the first host table: a host that has it says so by its size. */
#define HAS_RECEIVE_NOW(h) \
    ((h)->size >= offsetof(spindle_host, receive_now) + sizeof((h)->receive_now))

/* The ring role: learn the successor, report ready, pass the token on with one hop less. */
static int32_t ring(service *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    for (;;) {
        spindle_mp_reader r;
        spindle_mp_token t;
        uint8_t out[9];
        spindle_mp_buf b = {out, 0, sizeof out, 0}; /* an integer takes at most 9 bytes */
        c.size = sizeof c;
        if (s->recv) {
            if (h->take_completion(cx, s->recv, &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
            s->recv = 0;
        } else if (HAS_RECEIVE_NOW(h)) {
            /* One call: the waiting token, or the receive started (then wait for it). */
            if (h->receive_now(cx, NULL, 0, &s->recv, &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
        } else {
            h->receive(cx, NULL, 0, &s->recv);
            if (h->take_completion(cx, s->recv, &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
            s->recv = 0;
        }
        spindle_mp_reader_init(&r, c.value, c.value_len);
        if (spindle_mp_next(&r, &t) || t.type != SPINDLE_MP_INT) return fail(h, cx, "ring: not an integer");
        if (!s->next) {
            s->next = (uint64_t)t.i;
            h->send(cx, s->parent, S("ready"), NULL, 0);
        } else if (t.i == 0) {
            h->send(cx, s->parent, S("ring_done"), NULL, 0);
        } else {
            spindle_mp_int(&b, t.i - 1);
            h->send(cx, s->next, S("token"), b.data, b.len);
        }
    }
}

static int32_t step(void *state, const spindle_host *h, spindle_cx *cx) {
    service *s = state;
    spindle_completion c;
    spindle_mp_buf b;
    if (s->phase == DONE) {
        h->send(cx, s->parent, S("done"), NULL, 0);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (s->phase == RING) return ring(s, h, cx);
    if (s->announce_to) {
        spindle_mp_buf_init(&b);
        spindle_mp_map(&b, 3);
        spindle_mp_cstr(&b, "handled");
        spindle_mp_int(&b, s->handled);
        spindle_mp_cstr(&b, "pid");
        spindle_mp_int(&b, (int64_t)h->pid(cx));
        spindle_mp_cstr(&b, "lang");
        spindle_mp_cstr(&b, "c");
        h->send(cx, s->announce_to, S("upgraded"), b.data, b.len);
        spindle_mp_buf_free(&b);
        s->announce_to = 0;
    }
    for (;;) {
        c.size = sizeof c;
        switch (s->phase) {
        case IDLE: {
            int r;
            /* A monitor's EXIT event, if one is awaited. */
            if (s->tags[2] && h->take_completion(cx, s->tags[2], &c) == SPINDLE_OK) {
                spindle_mp_buf_init(&b);
                spindle_mp_array(&b, 2);
                spindle_mp_int(&b, (int64_t)c.from);
                spindle_mp_array(&b, 2);
                if (c.error) {
                    spindle_mp_cstr(&b, "error");
                    spindle_mp_str(&b, (const char *)c.error_message, c.error_message_len);
                } else {
                    spindle_mp_reader rd;
                    spindle_mp_cstr(&b, "ok");
                    spindle_mp_reader_init(&rd, c.value, c.value_len);
                    if (c.value_len == 0 || spindle_mp_copy(&rd, &b, 128)) spindle_mp_nil(&b);
                }
                h->send(cx, s->requester, S("down"), b.data, b.len);
                spindle_mp_buf_free(&b);
                s->tags[2] = 0;
                c.size = sizeof c;
            }
            if (!s->recv && h->receive(cx, NULL, 0, &s->recv) != SPINDLE_OK)
                return fail(h, cx, "receive failed");
            if (h->take_completion(cx, s->recv, &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
            s->recv = 0;
            if ((r = handle(s, h, cx, &c)) != 0) return r;
            break;
        }
        case RACE: {
            static const char *names[] = {"timer_a", "timer_b"};
            int won = -1;
            for (int i = 0; i < 3 && won < 0; i++)
                if (h->take_completion(cx, s->tags[i], &c) == SPINDLE_OK) won = i;
            if (won < 0) return SPINDLE_STEP_WAIT_ANY;
            for (int i = 0; i < 3; i++)
                if (i != won) h->drop_op(cx, s->tags[i]);
            spindle_mp_buf_init(&b);
            if (won < 2) {
                spindle_mp_cstr(&b, names[won]);
            } else {
                spindle_mp_reader rd;
                spindle_mp_array(&b, 2);
                spindle_mp_cstr(&b, "message");
                spindle_mp_reader_init(&rd, c.value, c.value_len);
                if (c.value_len == 0 || spindle_mp_copy(&rd, &b, 128)) spindle_mp_nil(&b);
            }
            h->send(cx, s->requester, S("race"), b.data, b.len);
            spindle_mp_buf_free(&b);
            memset(s->tags, 0, sizeof s->tags);
            s->phase = IDLE;
            break;
        }
        case ALL:
            for (int i = 0; i < 2; i++)
                if (!s->done[i] && h->take_completion(cx, s->tags[i], &c) == SPINDLE_OK) s->done[i] = 1;
            if (!(s->done[0] && s->done[1])) return SPINDLE_STEP_WAIT_ALL;
            spindle_mp_buf_init(&b);
            spindle_mp_int(&b, now_ms_since(&s->t0));
            h->send(cx, s->requester, S("all"), b.data, b.len);
            spindle_mp_buf_free(&b);
            memset(s->tags, 0, sizeof s->tags);
            s->phase = IDLE;
            break;
        case DONE:
        case RING:
            return fail(h, cx, "unreachable phase");
        }
    }
}

static void drop(void *state) { free(state); }

static const spindle_plugin PLUGIN = {
    SPINDLE_ABI_VERSION, sizeof(spindle_plugin), init, step, drop,
};

const spindle_plugin *spindle_plugin_entry(void) { return &PLUGIN; }
