/*
 * A plugin that makes the host calls the example services do not, one role per behaviour (its
 * spawn arguments: [role, parent, x], x an entry id or a pid for the roles that need one). Each
 * role reports what the calls returned to its parent under the topic "report", as a
 * MessagePack array of integers, and texts under their own topics; tests/all/calls.rs says
 * what each one must be. "init_fails" refuses to start; "counts" reports how many instances
 * init made and drop freed.
 */
#include <stdlib.h>
#include <string.h>

#include "spindle.h"
#include "spindle_msgpack.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1
#define MAX_REPORT 16

/* Instances made and dropped so far, for the "counts" role. */
static int inits, drops;

typedef struct state {
    char role[24];
    uint64_t parent;
    char entry[64]; /* x as text */
    uint64_t x;     /* x as a pid */
    int phase;
    uint64_t tags[2];
    uint64_t child;
    int64_t report[MAX_REPORT];
    int n;
} state;

static void note(state *s, int64_t v) {
    if (s->n < MAX_REPORT) s->report[s->n++] = v;
}

static void send_report(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_mp_buf b;
    spindle_mp_buf_init(&b);
    spindle_mp_array(&b, (size_t)s->n);
    for (int i = 0; i < s->n; i++) spindle_mp_int(&b, s->report[i]);
    h->send(cx, s->parent, S("report"), b.data, b.len);
    spindle_mp_buf_free(&b);
}

static void send_text(state *s, const spindle_host *h, spindle_cx *cx, const char *topic,
                      const uint8_t *text, size_t len) {
    spindle_mp_buf b;
    spindle_mp_buf_init(&b);
    spindle_mp_str(&b, (const char *)text, len);
    h->send(cx, s->parent, (const uint8_t *)topic, strlen(topic), b.data, b.len);
    spindle_mp_buf_free(&b);
}

static void init_completion(spindle_completion *c) {
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
}

/* The integer a completion's value holds, or -1000 if it holds none. */
static int64_t int_value(const spindle_completion *c) {
    spindle_mp_reader r;
    spindle_mp_token t;
    spindle_mp_reader_init(&r, c->value, c->value_len);
    if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_INT) return t.i;
    return -1000;
}

static int32_t send_int(const spindle_host *h, spindle_cx *cx, uint64_t to, const char *topic,
                        int64_t v) {
    spindle_mp_buf b;
    int32_t rc;
    spindle_mp_buf_init(&b);
    spindle_mp_int(&b, v);
    rc = h->send(cx, to, (const uint8_t *)topic, strlen(topic), b.data, b.len);
    spindle_mp_buf_free(&b);
    return rc;
}

/* Spawns this plugin's entry (x) in role `role`, the parent passed on. */
static int32_t spawn_role(state *s, const spindle_host *h, spindle_cx *cx, const char *role,
                          uint32_t ties, uint64_t *pid) {
    spindle_mp_buf b;
    int32_t rc;
    spindle_mp_buf_init(&b);
    spindle_mp_array(&b, 2);
    spindle_mp_cstr(&b, role);
    spindle_mp_int(&b, (int64_t)s->parent);
    rc = h->spawn(cx, (const uint8_t *)s->entry, strlen(s->entry), NULL, 0, b.data, b.len, ties,
                  pid);
    spindle_mp_buf_free(&b);
    return rc;
}

static int32_t init(const spindle_host *h, spindle_cx *cx, const uint8_t *args, size_t len,
                    void **out) {
    spindle_mp_reader r;
    spindle_mp_token t;
    uint32_t n;
    state *s = calloc(1, sizeof *s);
    if (!s) return SPINDLE_E_UNAVAILABLE;
    spindle_mp_reader_init(&r, args, len);
    if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_ARRAY && t.n >= 2) {
        n = t.n;
        if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_STR && t.len < sizeof s->role)
            memcpy(s->role, t.bytes, t.len);
        if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_INT) s->parent = (uint64_t)t.i;
        if (n > 2 && spindle_mp_next(&r, &t) == 0) {
            if (t.type == SPINDLE_MP_STR && t.len < sizeof s->entry) memcpy(s->entry, t.bytes, t.len);
            if (t.type == SPINDLE_MP_INT) s->x = (uint64_t)t.i;
        }
    }
    if (strcmp(s->role, "init_fails") == 0) {
        free(s);
        h->set_error(cx, SPINDLE_E_INVALID, S("refused to start"));
        return SPINDLE_E_INVALID;
    }
    inits++;
    *out = s;
    return SPINDLE_OK;
}

#define IS(name) (strcmp(s->role, name) == 0)

/* Names, sends by name and by pid text, pid_text, last_error. */
static int32_t names(state *s, const spindle_host *h, spindle_cx *cx) {
    const uint8_t *text, *err;
    size_t text_len, err_len;
    uint64_t p = 0;
    spindle_completion c;
    uint64_t tag;
    int self_msgs = 0;
    char pid_copy[64] = {0};

    note(s, h->last_error(cx, &err, &err_len)); /* nothing failed yet: NONE */
    note(s, h->register_name(cx, S("calls-a"), 0));
    note(s, h->register_name(cx, S("calls-a"), 0)); /* taken */
    note(s, h->lookup(cx, S("calls-a"), &p));
    note(s, p == h->pid(cx));
    note(s, h->lookup(cx, S("calls-none"), &p));
    note(s, h->last_error(cx, &err, &err_len));
    send_text(s, h, cx, "last_error", err, err_len);
    note(s, h->send_to(cx, S("calls-a"), S("self"), NULL, 0));
    note(s, h->pid_text(cx, h->pid(cx), &text, &text_len));
    if (text_len < sizeof pid_copy) memcpy(pid_copy, text, text_len);
    send_text(s, h, cx, "pid_text", (const uint8_t *)pid_copy, strlen(pid_copy));
    note(s, h->send_to(cx, (const uint8_t *)pid_copy, strlen(pid_copy), S("self"), NULL, 0));
    note(s, h->send_to(cx, S("calls-none"), S("self"), NULL, 0));
    note(s, h->unregister_name(cx, S("calls-a")));
    note(s, h->lookup(cx, S("calls-a"), &p));
    note(s, h->pid_text(cx, 0, &text, &text_len));
    init_completion(&c);
    while (h->receive_now(cx, NULL, 0, &tag, &c) == SPINDLE_OK) {
        if (c.topic_len == 4 && memcmp(c.topic, "self", 4) == 0) self_msgs++;
        init_completion(&c);
    }
    note(s, self_msgs);
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* Once the events receive (tags[0]) has completed: its kind, whether it is about the child,
 * and its error, as the report; else waits on. */
static int32_t report_child_event(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    init_completion(&c);
    if (h->take_completion(cx, s->tags[0], &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
    note(s, c.event);
    note(s, c.from == s->child);
    note(s, c.error);
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* With trap_links, a linked child's failure is a LINK_DOWN event, and this one goes on. */
static int32_t trap(state *s, const spindle_host *h, spindle_cx *cx) {
    if (s->phase == 0) {
        s->phase = 1;
        note(s, h->set_option(cx, SPINDLE_OPTION_TRAP_LINKS, 1));
        note(s, h->set_option(cx, 99, 1));
        note(s, spawn_role(s, h, cx, "fail", SPINDLE_TIE_LINK, &s->child));
        h->events(cx, &s->tags[0]);
        return SPINDLE_STEP_WAIT_ANY;
    }
    return report_child_event(s, h, cx);
}

/* Links and monitors undone: a child's failure reaches this one in no way; a monitor of the
 * dead child then reports its EXIT at once, with NOT_FOUND. */
static int32_t unlinks(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    if (s->phase == 0) {
        s->phase = 1;
        note(s, spawn_role(s, h, cx, "die_on_message", 0, &s->child));
        note(s, h->link(cx, s->child));
        note(s, h->unlink(cx, s->child));
        note(s, h->monitor(cx, s->child));
        note(s, h->unmonitor(cx, s->child));
        note(s, send_int(h, cx, s->child, "die", 1));
        h->events(cx, &s->tags[0]);
        h->timer(cx, 50 * 1000 * 1000, &s->tags[1]);
        return SPINDLE_STEP_WAIT_ANY;
    }
    if (s->phase == 1) {
        init_completion(&c);
        if (h->take_completion(cx, s->tags[1], &c) != SPINDLE_OK) {
            /* Something came before the timer: it can only be an event. */
            note(s, -100);
            send_report(s, h, cx);
            return SPINDLE_STEP_EXIT_OK;
        }
        s->phase = 2;
        note(s, h->monitor(cx, s->child));
        return SPINDLE_STEP_WAIT_ANY;
    }
    return report_child_event(s, h, cx);
}

/* A listened topic has its own queue; unlistened, its messages are the inbox's again. */
static int32_t topics(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    uint64_t tag, me = h->pid(cx);
    note(s, h->listen(cx, S("special")));
    send_int(h, cx, me, "ordinary", 1);
    send_int(h, cx, me, "special", 2);
    init_completion(&c);
    note(s, h->receive_now(cx, S("special"), &tag, &c));
    note(s, int_value(&c));
    init_completion(&c);
    note(s, h->receive_now(cx, NULL, 0, &tag, &c));
    note(s, int_value(&c));
    note(s, c.topic_len == 8 && memcmp(c.topic, "ordinary", 8) == 0);
    note(s, h->unlisten(cx, S("special")));
    send_int(h, cx, me, "special", 3);
    init_completion(&c);
    note(s, h->receive_now(cx, NULL, 0, &tag, &c));
    note(s, int_value(&c));
    note(s, c.topic_len == 7 && memcmp(c.topic, "special", 7) == 0);
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* Wait-all wakes once both timers are done; next_completion hands them out oldest first. */
static int32_t next(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    if (s->phase == 0) {
        s->phase = 1;
        h->timer(cx, 30 * 1000 * 1000, &s->tags[0]);
        h->timer(cx, 1000 * 1000, &s->tags[1]);
        note(s, (int64_t)h->outstanding(cx));
        return SPINDLE_STEP_WAIT_ALL;
    }
    note(s, (int64_t)h->outstanding(cx));
    init_completion(&c);
    note(s, h->next_completion(cx, &c));
    note(s, c.tag == s->tags[1] && c.kind == SPINDLE_COMPLETION_TIMER);
    init_completion(&c);
    note(s, h->next_completion(cx, &c));
    note(s, c.tag == s->tags[0] && c.kind == SPINDLE_COMPLETION_TIMER);
    init_completion(&c);
    note(s, h->next_completion(cx, &c));
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* A dropped receive that had already taken a message puts it back. */
static int32_t drop_requeue(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    uint64_t tag;
    send_int(h, cx, h->pid(cx), "m", 7);
    note(s, h->receive(cx, NULL, 0, &tag));
    note(s, h->drop_op(cx, tag));
    init_completion(&c);
    note(s, h->receive_now(cx, NULL, 0, &tag, &c));
    note(s, int_value(&c));
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* exec of a process that fails, and of entries that cannot be started. */
static int32_t exec_fail(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    spindle_mp_buf b;
    uint64_t tag;
    if (s->phase == 0) {
        s->phase = 1;
        spindle_mp_buf_init(&b);
        spindle_mp_array(&b, 2);
        spindle_mp_cstr(&b, "fail");
        spindle_mp_int(&b, (int64_t)s->parent);
        note(s, h->exec(cx, (const uint8_t *)s->entry, strlen(s->entry), NULL, 0, b.data, b.len,
                        &s->tags[0]));
        spindle_mp_buf_free(&b);
        note(s, h->exec(cx, S("calls:nope"), NULL, 0, NULL, 0, &s->tags[1]));
        note(s, h->exec(cx, S("no-colon"), NULL, 0, NULL, 0, &tag));
        return SPINDLE_STEP_WAIT_ALL;
    }
    init_completion(&c);
    note(s, h->take_completion(cx, s->tags[0], &c));
    note(s, c.kind);
    note(s, c.error);
    send_text(s, h, cx, "exec_error", c.error_message, c.error_message_len);
    init_completion(&c);
    note(s, h->take_completion(cx, s->tags[1], &c));
    note(s, c.kind);
    note(s, c.error);
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* A bad completion pointer is refused before anything is taken: nothing is lost. */
static int32_t bad_out(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c, small;
    uint64_t tag, me = h->pid(cx);
    send_int(h, cx, me, "keep", 5);
    note(s, h->receive(cx, NULL, 0, &tag));
    note(s, h->take_completion(cx, tag, NULL));
    init_completion(&small);
    small.size = 8;
    note(s, h->take_completion(cx, tag, &small));
    init_completion(&c);
    note(s, h->take_completion(cx, tag, &c));
    note(s, int_value(&c));
    send_int(h, cx, me, "keep", 6);
    note(s, h->receive(cx, NULL, 0, &tag));
    note(s, h->next_completion(cx, NULL));
    init_completion(&c);
    note(s, h->next_completion(cx, &c));
    note(s, int_value(&c));
    note(s, h->receive_now(cx, NULL, 0, NULL, &c));
    send_report(s, h, cx);
    return SPINDLE_STEP_EXIT_OK;
}

/* A CANCEL arrives as an event with its sender and reason. */
static int32_t cancel_me(state *s, const spindle_host *h, spindle_cx *cx) {
    spindle_completion c;
    spindle_mp_reader r;
    spindle_mp_token t;
    if (s->phase == 0) {
        s->phase = 1;
        h->events(cx, &s->tags[0]);
        send_int(h, cx, s->parent, "waiting", 0);
        return SPINDLE_STEP_WAIT_ANY;
    }
    init_completion(&c);
    if (h->take_completion(cx, s->tags[0], &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
    spindle_mp_reader_init(&r, c.value, c.value_len);
    if (spindle_mp_next(&r, &t) == 0 && t.type == SPINDLE_MP_STR)
        send_text(s, h, cx, "reason", t.bytes, t.len);
    /* Under a topic of its own: the role that cancels reports at the same time. */
    spindle_mp_buf b;
    spindle_mp_buf_init(&b);
    spindle_mp_array(&b, 2);
    spindle_mp_int(&b, c.event);
    spindle_mp_int(&b, (int64_t)c.from);
    h->send(cx, s->parent, S("cancelled"), b.data, b.len);
    spindle_mp_buf_free(&b);
    return SPINDLE_STEP_EXIT_OK;
}

static int32_t step(void *p, const spindle_host *h, spindle_cx *cx) {
    state *s = p;
    spindle_completion c;
    uint64_t tag;
    if (IS("names")) return names(s, h, cx);
    if (IS("trap")) return trap(s, h, cx);
    if (IS("unlinks")) return unlinks(s, h, cx);
    if (IS("topics")) return topics(s, h, cx);
    if (IS("next")) return next(s, h, cx);
    if (IS("drop_requeue")) return drop_requeue(s, h, cx);
    if (IS("exec_fail")) return exec_fail(s, h, cx);
    if (IS("bad_out")) return bad_out(s, h, cx);
    if (IS("cancel_me")) return cancel_me(s, h, cx);
    if (IS("fail")) {
        h->set_error(cx, SPINDLE_E_TIMEOUT, S("told to fail"));
        return SPINDLE_STEP_EXIT_ERROR;
    }
    if (IS("die_on_message")) {
        init_completion(&c);
        if (h->receive_now(cx, NULL, 0, &tag, &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
        h->set_error(cx, SPINDLE_E_TIMEOUT, S("told to die"));
        return SPINDLE_STEP_EXIT_ERROR;
    }
    if (IS("wait")) {
        /* Waits for a message that never comes (stopped from outside). */
        if (s->phase == 0) {
            s->phase = 1;
            h->receive(cx, NULL, 0, &s->tags[0]);
        }
        return SPINDLE_STEP_WAIT_ANY;
    }
    if (IS("yield")) {
        /* Yields three times with nothing outstanding, then ends with the number of steps. */
        spindle_mp_buf b;
        if (++s->phase < 4) return SPINDLE_STEP_YIELD;
        spindle_mp_buf_init(&b);
        spindle_mp_int(&b, s->phase);
        h->set_result(cx, b.data, b.len);
        spindle_mp_buf_free(&b);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("log")) {
        note(s, h->log(cx, SPINDLE_LOG_INFO, S("hello from calls")));
        note(s, h->log(cx, 99, S("no such level")));
        send_report(s, h, cx);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("stop")) {
        /* Cancels x with a reason, or terminates it when the parent says so. */
        spindle_mp_buf b;
        spindle_mp_buf_init(&b);
        spindle_mp_cstr(&b, "bye");
        note(s, h->cancel(cx, s->x, b.data, b.len));
        spindle_mp_buf_free(&b);
        send_report(s, h, cx);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("kill")) {
        note(s, h->terminate(cx, s->x));
        send_report(s, h, cx);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("outdated")) {
        /* Upgradable (when x is 1): registered as "outdated-<x>" once it waits for events;
         * ends with the kind of the first event it gets. */
        if (s->phase == 0) {
            char name[32];
            s->phase = 1;
            if (s->x == 1) h->set_option(cx, SPINDLE_OPTION_UPGRADABLE, 1);
            h->events(cx, &s->tags[0]);
            memcpy(name, "outdated-", 9);
            name[9] = (char)('0' + (int)s->x);
            h->register_name(cx, (const uint8_t *)name, 10, 0);
            return SPINDLE_STEP_WAIT_ANY;
        }
        init_completion(&c);
        if (h->take_completion(cx, s->tags[0], &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
        {
            spindle_mp_buf b;
            spindle_mp_buf_init(&b);
            spindle_mp_int(&b, c.event);
            h->set_result(cx, b.data, b.len);
            spindle_mp_buf_free(&b);
        }
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("spawn_null")) {
        /* A spawn with no place for the pid fails and starts nothing: a linked child that
         * fails at once would otherwise take this process down before the timer. */
        if (s->phase == 0) {
            s->phase = 1;
            note(s, spawn_role(s, h, cx, "fail", SPINDLE_TIE_LINK, NULL));
            h->timer(cx, 50 * 1000 * 1000, &s->tags[0]);
            return SPINDLE_STEP_WAIT_ANY;
        }
        init_completion(&c);
        if (h->take_completion(cx, s->tags[0], &c) != SPINDLE_OK) return SPINDLE_STEP_WAIT_ANY;
        send_report(s, h, cx);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("sends")) {
        /* Pid 0 names no process; a dead pid (x) swallows the message. */
        note(s, send_int(h, cx, 0, "t", 1));
        note(s, send_int(h, cx, s->x, "t", 1));
        send_report(s, h, cx);
        return SPINDLE_STEP_EXIT_OK;
    }
    if (IS("counts")) {
        note(s, inits);
        note(s, drops);
        send_report(s, h, cx);
        return SPINDLE_STEP_EXIT_OK;
    }
    h->set_error(cx, SPINDLE_E_INVALID, S("unknown role"));
    return SPINDLE_STEP_EXIT_ERROR;
}

static void drop(void *p) {
    drops++;
    free(p);
}

static const spindle_plugin TABLE = {SPINDLE_ABI_VERSION, sizeof(spindle_plugin), init, step, drop};

const spindle_plugin *spindle_plugin_entry(void) { return &TABLE; }
