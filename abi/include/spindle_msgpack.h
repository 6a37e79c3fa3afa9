/*
 * spindle_msgpack.h — header-only MessagePack for C plugin processes: what C guests need to
 * read and write Spindle values (payloads, spawn arguments, results). See spindle.h for the
 * value model: nil, bool, int (int64), float (always written as float 64), str, bin, array,
 * map.
 *
 *   spindle_mp_buf b;  spindle_mp_buf_init(&b);
 *   spindle_mp_map(&b, 1); spindle_mp_cstr(&b, "n"); spindle_mp_int(&b, 42);
 *   host->send(cx, to, (const uint8_t *)"reply", 5, b.data, b.len);
 *   spindle_mp_buf_free(&b);
 *
 *   spindle_mp_reader r;  spindle_mp_reader_init(&r, c.value, c.value_len);
 *   spindle_mp_token t;
 *   while (spindle_mp_next(&r, &t) == 0) { ... t.type, t.i, t.f, t.bytes/t.len, t.n ... }
 *
 * The buffer grows with malloc/realloc and is freed by its owner (the guest): the host copies
 * what it is given. A failed allocation sets `failed` and stops writing.
 */
#ifndef SPINDLE_MSGPACK_H
#define SPINDLE_MSGPACK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- writing ---- */

typedef struct spindle_mp_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int failed;
} spindle_mp_buf;

static inline void spindle_mp_buf_init(spindle_mp_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

static inline void spindle_mp_buf_free(spindle_mp_buf *b) {
    free(b->data);
    spindle_mp_buf_init(b);
}

/* Makes room for `n` more bytes and returns where they go (NULL once `failed`). */
static inline uint8_t *spindle_mp_reserve(spindle_mp_buf *b, size_t n) {
    if (b->failed) return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = (uint8_t *)realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return NULL;
        }
        b->data = d;
        b->cap = cap;
    }
    uint8_t *at = b->data + b->len;
    b->len += n;
    return at;
}

static inline void spindle_mp_put(spindle_mp_buf *b, const void *bytes, size_t n) {
    if (n == 0) return;
    uint8_t *at = spindle_mp_reserve(b, n);
    if (at) memcpy(at, bytes, n);
}

/* A marker and `width` (1, 2, 4 or 8) big-endian bytes of `v`, written straight into the
 * buffer: the compiler merges the byte stores of each width into one (bytes first gathered on
 * the stack and copied from there would be read back wider than they were written, a stall). */
static inline void spindle_mp_put_be(spindle_mp_buf *b, uint8_t marker, uint64_t v, int width) {
    uint8_t *p = spindle_mp_reserve(b, (size_t)width + 1);
    if (!p) return;
    p[0] = marker;
    switch (width) {
    case 1:
        p[1] = (uint8_t)v;
        break;
    case 2:
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)v;
        break;
    case 4:
        p[1] = (uint8_t)(v >> 24);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 8);
        p[4] = (uint8_t)v;
        break;
    default:
        for (int i = 0; i < 8; i++) p[1 + i] = (uint8_t)(v >> (8 * (7 - i)));
        break;
    }
}

static inline void spindle_mp_nil(spindle_mp_buf *b) {
    uint8_t m = 0xc0;
    spindle_mp_put(b, &m, 1);
}

static inline void spindle_mp_bool(spindle_mp_buf *b, int v) {
    uint8_t m = v ? 0xc3 : 0xc2;
    spindle_mp_put(b, &m, 1);
}

static inline void spindle_mp_int(spindle_mp_buf *b, int64_t v) {
    if (v >= 0 && v <= 0x7f) {
        uint8_t m = (uint8_t)v;
        spindle_mp_put(b, &m, 1);
    } else if (v < 0 && v >= -32) {
        uint8_t m = (uint8_t)(int8_t)v;
        spindle_mp_put(b, &m, 1);
    } else if (v > 0) {
        if (v <= 0xff) spindle_mp_put_be(b, 0xcc, (uint64_t)v, 1);
        else if (v <= 0xffff) spindle_mp_put_be(b, 0xcd, (uint64_t)v, 2);
        else if (v <= 0xffffffffLL) spindle_mp_put_be(b, 0xce, (uint64_t)v, 4);
        else spindle_mp_put_be(b, 0xcf, (uint64_t)v, 8);
    } else {
        if (v >= -0x80) spindle_mp_put_be(b, 0xd0, (uint64_t)v & 0xff, 1);
        else if (v >= -0x8000) spindle_mp_put_be(b, 0xd1, (uint64_t)v & 0xffff, 2);
        else if (v >= -0x80000000LL) spindle_mp_put_be(b, 0xd2, (uint64_t)v & 0xffffffffu, 4);
        else spindle_mp_put_be(b, 0xd3, (uint64_t)v, 8);
    }
}

static inline void spindle_mp_float(spindle_mp_buf *b, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    spindle_mp_put_be(b, 0xcb, bits, 8);
}

static inline void spindle_mp_head(spindle_mp_buf *b, size_t n, int fix, uint8_t m8, uint8_t m16,
                                   uint8_t m32) {
    if (fix >= 0 && n <= 31) {
        uint8_t m = (uint8_t)(fix | (int)n);
        spindle_mp_put(b, &m, 1);
    } else if (n <= 0xff) spindle_mp_put_be(b, m8, n, 1);
    else if (n <= 0xffff) spindle_mp_put_be(b, m16, n, 2);
    else spindle_mp_put_be(b, m32, n, 4);
}

/* A UTF-8 string of `n` bytes. */
static inline void spindle_mp_str(spindle_mp_buf *b, const char *s, size_t n) {
    spindle_mp_head(b, n, 0xa0, 0xd9, 0xda, 0xdb);
    spindle_mp_put(b, s, n);
}

static inline void spindle_mp_cstr(spindle_mp_buf *b, const char *s) {
    spindle_mp_str(b, s, strlen(s));
}

/* A byte string. */
static inline void spindle_mp_bin(spindle_mp_buf *b, const uint8_t *s, size_t n) {
    spindle_mp_head(b, n, -1, 0xc4, 0xc5, 0xc6);
    spindle_mp_put(b, s, n);
}

/* An array of `n` values follows. */
static inline void spindle_mp_array(spindle_mp_buf *b, uint32_t n) {
    if (n <= 15) {
        uint8_t m = (uint8_t)(0x90 | n);
        spindle_mp_put(b, &m, 1);
    } else if (n <= 0xffff) spindle_mp_put_be(b, 0xdc, n, 2);
    else spindle_mp_put_be(b, 0xdd, n, 4);
}

/* A map of `n` key/value pairs follows. */
static inline void spindle_mp_map(spindle_mp_buf *b, uint32_t n) {
    if (n <= 15) {
        uint8_t m = (uint8_t)(0x80 | n);
        spindle_mp_put(b, &m, 1);
    } else if (n <= 0xffff) spindle_mp_put_be(b, 0xde, n, 2);
    else spindle_mp_put_be(b, 0xdf, n, 4);
}

/* ---- reading ---- */

typedef enum spindle_mp_type {
    SPINDLE_MP_NIL,
    SPINDLE_MP_BOOL,
    SPINDLE_MP_INT,
    SPINDLE_MP_FLOAT,
    SPINDLE_MP_STR,
    SPINDLE_MP_BIN,
    SPINDLE_MP_ARRAY, /* `n` values follow */
    SPINDLE_MP_MAP    /* `n` key/value pairs follow */
} spindle_mp_type;

typedef struct spindle_mp_token {
    spindle_mp_type type;
    int b;                /* BOOL */
    int64_t i;            /* INT */
    double f;             /* FLOAT */
    const uint8_t *bytes; /* STR, BIN: borrowed from the input */
    size_t len;
    uint32_t n; /* ARRAY, MAP */
} spindle_mp_token;

typedef struct spindle_mp_reader {
    const uint8_t *p;
    const uint8_t *end;
} spindle_mp_reader;

static inline void spindle_mp_reader_init(spindle_mp_reader *r, const uint8_t *data, size_t len) {
    r->p = data;
    r->end = data + len;
}

/* The next `n` (1, 2, 4 or 8) bytes as a big-endian unsigned integer; each width is read
 * whole rather than byte by byte in a loop. */
static inline int spindle_mp_take(spindle_mp_reader *r, size_t n, uint64_t *out) {
    const uint8_t *p = r->p;
    if ((size_t)(r->end - p) < n) return -1;
    uint64_t hi, lo;
    switch (n) {
    case 1: *out = p[0]; break;
    case 2: *out = (uint64_t)p[0] << 8 | p[1]; break;
    case 4: *out = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3]; break;
    default:
        hi = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        lo = (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 | (uint64_t)p[6] << 8 | p[7];
        *out = hi << 32 | lo;
        break;
    }
    r->p = p + n;
    return 0;
}

static inline int spindle_mp_bytes(spindle_mp_reader *r, size_t n, spindle_mp_token *t) {
    if ((size_t)(r->end - r->p) < n) return -1;
    t->bytes = r->p;
    t->len = n;
    r->p += n;
    return 0;
}

/* Reads the next token; 0 on success, -1 at the end of the input or on malformed input
 * (including integers above INT64_MAX and extension types, which Spindle does not use). */
static inline int spindle_mp_next(spindle_mp_reader *r, spindle_mp_token *t) {
    uint64_t v;
    if (r->p >= r->end) return -1;
    uint8_t m = *r->p++;
    memset(t, 0, sizeof *t);
    if (m <= 0x7f) { t->type = SPINDLE_MP_INT; t->i = m; return 0; }
    if (m >= 0xe0) { t->type = SPINDLE_MP_INT; t->i = (int8_t)m; return 0; }
    if ((m & 0xf0) == 0x80) { t->type = SPINDLE_MP_MAP; t->n = m & 0x0f; return 0; }
    if ((m & 0xf0) == 0x90) { t->type = SPINDLE_MP_ARRAY; t->n = m & 0x0f; return 0; }
    if ((m & 0xe0) == 0xa0) { t->type = SPINDLE_MP_STR; return spindle_mp_bytes(r, m & 0x1f, t); }
    switch (m) {
    case 0xc0: t->type = SPINDLE_MP_NIL; return 0;
    case 0xc2: case 0xc3: t->type = SPINDLE_MP_BOOL; t->b = m == 0xc3; return 0;
    case 0xc4: case 0xc5: case 0xc6:
        t->type = SPINDLE_MP_BIN;
        if (spindle_mp_take(r, (size_t)1 << (m - 0xc4), &v)) return -1;
        return spindle_mp_bytes(r, (size_t)v, t);
    case 0xd9: case 0xda: case 0xdb:
        t->type = SPINDLE_MP_STR;
        if (spindle_mp_take(r, (size_t)1 << (m - 0xd9), &v)) return -1;
        return spindle_mp_bytes(r, (size_t)v, t);
    case 0xca: {
        uint32_t bits; float f;
        if (spindle_mp_take(r, 4, &v)) return -1;
        bits = (uint32_t)v;
        memcpy(&f, &bits, sizeof f);
        t->type = SPINDLE_MP_FLOAT; t->f = f; return 0;
    }
    case 0xcb:
        if (spindle_mp_take(r, 8, &v)) return -1;
        memcpy(&t->f, &v, sizeof t->f);
        t->type = SPINDLE_MP_FLOAT; return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (spindle_mp_take(r, (size_t)1 << (m - 0xcc), &v)) return -1;
        if (v > (uint64_t)INT64_MAX) return -1;
        t->type = SPINDLE_MP_INT; t->i = (int64_t)v; return 0;
    case 0xd0:
        if (spindle_mp_take(r, 1, &v)) return -1;
        t->type = SPINDLE_MP_INT; t->i = (int8_t)(uint8_t)v; return 0;
    case 0xd1:
        if (spindle_mp_take(r, 2, &v)) return -1;
        t->type = SPINDLE_MP_INT; t->i = (int16_t)(uint16_t)v; return 0;
    case 0xd2:
        if (spindle_mp_take(r, 4, &v)) return -1;
        t->type = SPINDLE_MP_INT; t->i = (int32_t)(uint32_t)v; return 0;
    case 0xd3:
        if (spindle_mp_take(r, 8, &v)) return -1;
        t->type = SPINDLE_MP_INT; t->i = (int64_t)v; return 0;
    case 0xdc: case 0xdd:
        if (spindle_mp_take(r, m == 0xdc ? 2 : 4, &v)) return -1;
        t->type = SPINDLE_MP_ARRAY; t->n = (uint32_t)v; return 0;
    case 0xde: case 0xdf:
        if (spindle_mp_take(r, m == 0xde ? 2 : 4, &v)) return -1;
        t->type = SPINDLE_MP_MAP; t->n = (uint32_t)v; return 0;
    default:
        return -1;
    }
}

/* Copies one whole value from `r` to `b` token by token (decoded and re-encoded); 0 on
 * success. `depth` bounds nesting (pass e.g. 128). */
static inline int spindle_mp_copy(spindle_mp_reader *r, spindle_mp_buf *b, int depth) {
    spindle_mp_token t;
    if (depth <= 0 || spindle_mp_next(r, &t)) return -1;
    switch (t.type) {
    case SPINDLE_MP_NIL: spindle_mp_nil(b); return 0;
    case SPINDLE_MP_BOOL: spindle_mp_bool(b, t.b); return 0;
    case SPINDLE_MP_INT: spindle_mp_int(b, t.i); return 0;
    case SPINDLE_MP_FLOAT: spindle_mp_float(b, t.f); return 0;
    case SPINDLE_MP_STR: spindle_mp_str(b, (const char *)t.bytes, t.len); return 0;
    case SPINDLE_MP_BIN: spindle_mp_bin(b, t.bytes, t.len); return 0;
    case SPINDLE_MP_ARRAY:
        spindle_mp_array(b, t.n);
        for (uint32_t i = 0; i < t.n; i++)
            if (spindle_mp_copy(r, b, depth - 1)) return -1;
        return 0;
    case SPINDLE_MP_MAP:
        spindle_mp_map(b, t.n);
        for (uint32_t i = 0; i < 2 * t.n; i++)
            if (spindle_mp_copy(r, b, depth - 1)) return -1;
        return 0;
    }
    return -1;
}

/* Skips one whole value; 0 on success. */
static inline int spindle_mp_skip(spindle_mp_reader *r) {
    spindle_mp_token t;
    uint64_t left = 1;
    while (left > 0) {
        if (spindle_mp_next(r, &t)) return -1;
        left--;
        if (t.type == SPINDLE_MP_ARRAY) left += t.n;
        if (t.type == SPINDLE_MP_MAP) left += 2 * (uint64_t)t.n;
    }
    return 0;
}

/* In a map at `r` (just after its MAP token with `n` pairs), finds string key `key` and leaves
 * `r` at its value; 0 if found. */
static inline int spindle_mp_find(spindle_mp_reader *r, uint32_t n, const char *key) {
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < n; i++) {
        spindle_mp_reader at = *r;
        spindle_mp_token k;
        if (spindle_mp_next(r, &k)) return -1;
        if (k.type == SPINDLE_MP_STR && k.len == klen && memcmp(k.bytes, key, klen) == 0) return 0;
        *r = at;
        if (spindle_mp_skip(r) || spindle_mp_skip(r)) return -1;
    }
    return -1;
}

#ifdef __cplusplus
}
#endif

#endif /* SPINDLE_MSGPACK_H */
