/*
 * devstash.h: the devstash guest SDK for C, in one header.
 *
 * A C program built for wasm32-wasip1 (WASI preview 1) and run under `devstash run` can store
 * the results of its slow calls: the first run computes them, later runs read them back from
 * `.devstash_cache`. `devstash record` and `devstash replay` record and replay such a program
 * like any other.
 *
 *     #include "devstash.h"
 *
 *     static int64_t slow_square(int32_t x) { sleep(2); return (int64_t)x * x; }
 *     DEVSTASH_STASHED(int64_t, slow_square, int32_t, "v1")   // defines slow_square_stashed
 *
 *     int main(void) { printf("%lld\n", (long long)slow_square_stashed(12)); }
 *
 * Build (Debian/Ubuntu: `apt-get install clang lld wasi-libc libclang-rt-dev-wasm32`):
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -O2 -I guest-sdk/c -o app.wasm app.c
 *
 * (clang 14's name for the target; newer clangs also accept `wasm32-wasip1`, with a sysroot
 * that has that directory, such as wasi-sdk's.)
 *
 * Three layers, each usable on its own:
 *
 *  1. The raw imports of the wasm module "devstash" (`devstash_raw_*`), exactly as
 *     protocol/src/lib.rs of devstash describes them (ABI version 2).
 *  2. Helpers over them: a site (`devstash_site`, declared with DEVSTASH_SITE), registered on
 *     first use with a postcard-encoded SiteDesc; `devstash_get`, `devstash_take` (into a
 *     malloc'd buffer), `devstash_take_into`, `devstash_put`, `devstash_forget`,
 *     `devstash_begin`, `devstash_end`, `devstash_log`, `devstash_secret_hash`; and
 *     `devstash_args`, a canonical encoding for argument lists.
 *  3. Memoization: `devstash_memoize` (bytes in, malloc'd bytes out), `devstash_memoize_into`
 *     (a fixed-size value), and the DEVSTASH_STASHED / DEVSTASH_STASHED_BYTES macros that
 *     define a memoized wrapper of a function.
 *
 * What decides a stored value's key: the site's identity ("<module>::<name>", where the module
 * is the source file's name unless DEVSTASH_MODULE is defined), its version string, its types
 * string, and the argument bytes. C code cannot be fingerprinted by the compiler as Rust code
 * is, so **change a site's version string whenever its code changes** (or define
 * DEVSTASH_FINGERPRINT for the whole file, e.g. to a hash of the source, see below). The
 * argument bytes must be canonical: equal arguments give equal bytes, different arguments
 * different bytes. Never key on a struct with padding or pointers; build the bytes with
 * `devstash_args` instead.
 *
 * Output printed inside a computed call: the helpers flush stdio before each lookup and when
 * a call ends, so that a recording keeps it with the call and a replay prints it in its place.
 * And before its first lookup the SDK sets stdout's buffering itself, as libc would on the
 * first write (line-buffered on a terminal, fully buffered otherwise): libc's terminal check
 * (a WASI call) must not happen inside a computed call, which a replay never runs. Define
 * DEVSTASH_KEEP_STDOUT_BUFFERING if the program sets stdout's buffering itself with setvbuf
 * (which skips that check too), or DEVSTASH_NO_STDIO to leave stdio alone (then flush
 * yourself, and print something before the first memoized call).
 *
 * Built for anything other than wasm32 (a native test build), every site runs uncached: the
 * helpers call the function and store nothing.
 *
 * Not thread-safe (wasm32-wasip1 programs have one thread). Header-only: every function is
 * `static inline`, so include it from as many files as needed. Needs C99.
 */
#ifndef DEVSTASH_H
#define DEVSTASH_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifndef DEVSTASH_NO_STDIO
#include <stdio.h>
#if defined(__wasm32__) && !defined(DEVSTASH_KEEP_STDOUT_BUFFERING)
#include <unistd.h>
#endif
#endif

#if defined(__wasm__) && !defined(__wasm32__)
#error "devstash.h: only wasm32 (wasm32-wasip1) is supported: the devstash ABI uses 32-bit pointers"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Protocol constants                                                                          */
/* ------------------------------------------------------------------------------------------ */

/** The devstash ABI version this header speaks (protocol/src/lib.rs, ABI_VERSION). */
#define DEVSTASH_ABI_VERSION 2

/**
 * Status codes. The first six are the runner's (`Status` in protocol/src/lib.rs); the others
 * are this SDK's own and never come from the runner.
 */
enum devstash_status {
    /** The call's value is stored; its length was written at the out slot. */
    DEVSTASH_HIT = 0,
    /** Nothing usable is stored; a ticket was written at the out slot: compute, then put. */
    DEVSTASH_MISS = 1,
    /** A handle or ticket the runner does not know. */
    DEVSTASH_UNKNOWN_HANDLE = -1,
    /** The value could not be stored (disk full, read-only cache); the run goes on. */
    DEVSTASH_STORE_FAILED = -2,
    /** A take with nothing pending or with the wrong length. */
    DEVSTASH_NOTHING_PENDING = -3,
    /** The stored value failed verification as it was read: ask again with devstash_refresh. */
    DEVSTASH_CORRUPT = -4,

    /** SDK: the site runs uncached (the runner refused it, or this is not a wasm32 build). */
    DEVSTASH_DISABLED = -100,
    /** SDK: a value does not fit the buffer given, or memory for it could not be allocated. */
    DEVSTASH_TOO_LARGE = -101,
    /** SDK: a NULL pointer with a non-zero length, or a NULL site. */
    DEVSTASH_BAD_ARGUMENT = -102
};

/** Flags of stash_get: treat a stored value as missing and hand out a ticket instead. */
#define DEVSTASH_GET_REFRESH 1

/** Severity of a log line (`LogLevel` in protocol/src/lib.rs). */
enum devstash_log_level {
    DEVSTASH_LOG_TRACE = 0,
    DEVSTASH_LOG_DEBUG = 1,
    DEVSTASH_LOG_INFO = 2,
    DEVSTASH_LOG_WARN = 3,
    DEVSTASH_LOG_ERROR = 4
};

/** How a site was marked (`SiteKind`): at a call, or on a function definition. */
typedef enum devstash_site_kind { DEVSTASH_KIND_CALL = 0, DEVSTASH_KIND_FN = 1 } devstash_site_kind;

/** Largest site descriptor the runner accepts (it traps the guest beyond this). */
#define DEVSTASH_MAX_SITE_DESC (64u * 1024u)

/* ------------------------------------------------------------------------------------------ */
/* Layer 1: the raw imports                                                                    */
/* ------------------------------------------------------------------------------------------ */

#if defined(__wasm32__)
#define DEVSTASH__IMPORT(name) __attribute__((import_module("devstash"), import_name(name)))

/** `site_register(desc_ptr, desc_len) -> handle (>= 0) or status`. desc: postcard SiteDesc. */
DEVSTASH__IMPORT("site_register")
int32_t devstash_raw_site_register(const void *desc, size_t desc_len);
/** `stash_get(site, args_ptr, args_len, flags, out_ptr) -> status`; out: length or ticket. */
DEVSTASH__IMPORT("stash_get")
int32_t devstash_raw_stash_get(int32_t site, const void *args, size_t args_len, int32_t flags,
                               uint64_t *out);
/** `stash_take(dst_ptr, dst_len) -> status`; dst_len must equal the reported length. */
DEVSTASH__IMPORT("stash_take")
int32_t devstash_raw_stash_take(void *dst, size_t dst_len);
/** `stash_read(offset, dst_ptr, dst_len) -> status`: part of the pending value, front to back. */
DEVSTASH__IMPORT("stash_read")
int32_t devstash_raw_stash_read(uint64_t offset, void *dst, size_t dst_len);
/** `stash_put(ticket, val_ptr, val_len, preview_ptr, preview_len) -> status`. */
DEVSTASH__IMPORT("stash_put")
int32_t devstash_raw_stash_put(int64_t ticket, const void *val, size_t val_len,
                               const void *preview, size_t preview_len);
/** `stash_forget(ticket) -> status`: the call finished without a value to store. */
DEVSTASH__IMPORT("stash_forget")
int32_t devstash_raw_stash_forget(int64_t ticket);
/** `stash_begin(ticket) -> status`: the missed call starts now (its compute time counts). */
DEVSTASH__IMPORT("stash_begin")
int32_t devstash_raw_stash_begin(int64_t ticket);
/** `stash_end(ticket) -> status`: the missed call has returned. */
DEVSTASH__IMPORT("stash_end")
int32_t devstash_raw_stash_end(int64_t ticket);
/** `secret_hash(ptr, len, out_ptr) -> status`: 32 bytes of keyed hash at out. */
DEVSTASH__IMPORT("secret_hash")
int32_t devstash_raw_secret_hash(const void *data, size_t len, uint8_t *out32);
/** `log(level, msg_ptr, msg_len) -> status`. */
DEVSTASH__IMPORT("log")
int32_t devstash_raw_log(int32_t level, const void *msg, size_t msg_len);
/**
 * `http_request(req_ptr, req_len, out_ptr) -> status`: req is a postcard HttpRequest; on
 * DEVSTASH_HIT the length of a postcard HttpResult is at out, fetch it with stash_take. (This
 * header has no helper for it yet.)
 */
DEVSTASH__IMPORT("http_request")
int32_t devstash_raw_http_request(const void *req, size_t req_len, uint64_t *out);

#undef DEVSTASH__IMPORT
#else /* not wasm32: no runner to talk to, every site runs uncached */

static inline int32_t devstash_raw_site_register(const void *desc, size_t desc_len) {
    (void)desc, (void)desc_len;
    return DEVSTASH_DISABLED;
}
static inline int32_t devstash_raw_stash_get(int32_t site, const void *args, size_t args_len,
                                             int32_t flags, uint64_t *out) {
    (void)site, (void)args, (void)args_len, (void)flags, (void)out;
    return DEVSTASH_DISABLED;
}
static inline int32_t devstash_raw_stash_take(void *dst, size_t dst_len) {
    (void)dst, (void)dst_len;
    return DEVSTASH_NOTHING_PENDING;
}
static inline int32_t devstash_raw_stash_read(uint64_t offset, void *dst, size_t dst_len) {
    (void)offset, (void)dst, (void)dst_len;
    return DEVSTASH_NOTHING_PENDING;
}
static inline int32_t devstash_raw_stash_put(int64_t ticket, const void *val, size_t val_len,
                                             const void *preview, size_t preview_len) {
    (void)ticket, (void)val, (void)val_len, (void)preview, (void)preview_len;
    return DEVSTASH_UNKNOWN_HANDLE;
}
static inline int32_t devstash_raw_stash_forget(int64_t ticket) {
    (void)ticket;
    return DEVSTASH_UNKNOWN_HANDLE;
}
static inline int32_t devstash_raw_stash_begin(int64_t ticket) {
    (void)ticket;
    return DEVSTASH_UNKNOWN_HANDLE;
}
static inline int32_t devstash_raw_stash_end(int64_t ticket) {
    (void)ticket;
    return DEVSTASH_UNKNOWN_HANDLE;
}
static inline int32_t devstash_raw_secret_hash(const void *data, size_t len, uint8_t *out32) {
    (void)data, (void)len, (void)out32;
    return DEVSTASH_DISABLED;
}
static inline int32_t devstash_raw_log(int32_t level, const void *msg, size_t msg_len) {
    (void)level, (void)msg, (void)msg_len;
    return 0;
}
static inline int32_t devstash_raw_http_request(const void *req, size_t req_len, uint64_t *out) {
    (void)req, (void)req_len, (void)out;
    return DEVSTASH_DISABLED;
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Layer 2: sites and helpers                                                                  */
/* ------------------------------------------------------------------------------------------ */

/**
 * A marked site: what the runner is told about it (a SiteDesc), and its handle once
 * registered. Declare one with DEVSTASH_SITE (or fill the fields yourself, leaving the `state_`
 * and `handle_` fields zero) and keep it for the whole run: it registers itself on first use.
 * NULL strings count as empty.
 */
typedef struct devstash_site {
    /** Module of the marker, e.g. "slow.c" (shown by `devstash inspect`). */
    const char *module_path;
    /** The site's identity, e.g. "slow.c::slow_square": names its entries, part of every key. */
    const char *callee;
    /** Source file of the marker. */
    const char *file;
    /** Source line of the marker. */
    uint32_t line;
    /** Non-zero if entries expire after ttl_secs seconds; zero keeps them until cleared. */
    int has_ttl;
    /** Time to live in seconds (when has_ttl). */
    uint64_t ttl_secs;
    /** The code's fingerprint: change it when the code changes. Part of every key. */
    const char *fingerprint;
    /** Type of the stored value, for people (`devstash inspect`). */
    const char *value_type;
    /** How the site was marked. */
    devstash_site_kind kind;
    /** Everything else that decides the value (argument and value types). Part of every key. */
    const char *types;
    /** SDK state: 0 not registered yet, 1 registered (handle_ valid), -1 runs uncached. */
    int32_t state_;
    /** SDK state: the runner's handle. */
    int32_t handle_;
} devstash_site;

/** Flushes stdio, so that output printed so far is not attributed to the next call. */
static inline void devstash__flush(void) {
#ifndef DEVSTASH_NO_STDIO
    fflush(NULL);
#endif
}

/**
 * Before the first lookup: fixes stdout's buffering mode the way wasi-libc picks it on the first
 * write (which asks the host whether stdout is a terminal, fd_fdstat_get). Were that first
 * write inside a computed call, the recording would keep the question with the call, a replay
 * (which never runs the call) would ask it later, and diverge. wasi-libc's setvbuf with a NULL
 * buffer only sets the mode, also after output.
 */
static inline void devstash__stdio_setup(void) {
#if defined(__wasm32__) && !defined(DEVSTASH_NO_STDIO) && !defined(DEVSTASH_KEEP_STDOUT_BUFFERING)
    static int done = 0;
    if (!done) {
        done = 1;
        setvbuf(stdout, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
    }
#endif
}

/**
 * Writes a log line through the runner's logger, on stderr as "guest: ..." (info and above by
 * default; debug lines with `devstash -vv`, trace lines with `-vvv`).
 */
static inline int32_t devstash_log(enum devstash_log_level level, const char *msg) {
    if (msg == NULL) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    return devstash_raw_log((int32_t)level, msg, strlen(msg));
}

/** Logs "<callee> (<file>:<line>): <what>" at warning level. */
static inline void devstash__warn(const devstash_site *site, const char *what) {
    char line[11];
    char digits[10];
    size_t nd = 0, nl = 0;
    uint32_t l = site->line;
    do {
        digits[nd++] = (char)('0' + l % 10u);
        l /= 10u;
    } while (l != 0);
    while (nd > 0) {
        line[nl++] = digits[--nd];
    }
    line[nl] = '\0';
    const char *parts[7] = {site->callee ? site->callee : "", " (", site->file ? site->file : "",
                            ":", line, "): ", what};
    size_t len = 1;
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(parts[i]);
        if (n > SIZE_MAX - len) {
            devstash_log(DEVSTASH_LOG_WARN, what);
            return;
        }
        len += n;
    }
    char *msg = (char *)malloc(len);
    if (msg == NULL) {
        devstash_log(DEVSTASH_LOG_WARN, what);
        return;
    }
    size_t at = 0;
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(parts[i]);
        memcpy(msg + at, parts[i], n);
        at += n;
    }
    msg[at] = '\0';
    devstash_log(DEVSTASH_LOG_WARN, msg);
    free(msg);
}

/* postcard encoding of the SiteDesc (https://postcard.jamesmunns.com/wire-format): a struct is
 * its fields in order; u32/u64/usize are LEB128 varints; a string is its length (varint) and
 * its bytes; an Option a 0/1 tag and the value; a unit enum variant its index (varint). The
 * encoder counts what it cannot write, so a first pass with no buffer measures the output. */
typedef struct devstash__enc {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;
} devstash__enc;

static inline void devstash__enc_byte(devstash__enc *e, uint8_t b) {
    if (e->len < e->cap) {
        e->buf[e->len] = b;
    }
    if (e->len == SIZE_MAX) {
        e->overflow = 1;
    } else {
        e->len++;
    }
}

static inline void devstash__enc_varint(devstash__enc *e, uint64_t v) {
    while (v >= 0x80u) {
        devstash__enc_byte(e, (uint8_t)(v | 0x80u));
        v >>= 7;
    }
    devstash__enc_byte(e, (uint8_t)v);
}

static inline void devstash__enc_str(devstash__enc *e, const char *s) {
    size_t n = s ? strlen(s) : 0;
    devstash__enc_varint(e, (uint64_t)n);
    if (n == 0) {
        return;
    }
    if (e->len <= e->cap && n <= e->cap - e->len) {
        memcpy(e->buf + e->len, s, n);
    }
    if (n > SIZE_MAX - e->len) {
        e->overflow = 1;
        e->len = SIZE_MAX;
    } else {
        e->len += n;
    }
}

static inline void devstash__enc_site(devstash__enc *e, const devstash_site *s) {
    devstash__enc_varint(e, DEVSTASH_ABI_VERSION);
    devstash__enc_str(e, s->module_path);
    devstash__enc_str(e, s->callee);
    devstash__enc_str(e, s->file);
    devstash__enc_varint(e, s->line);
    if (s->has_ttl) {
        devstash__enc_byte(e, 1);
        devstash__enc_varint(e, s->ttl_secs);
    } else {
        devstash__enc_byte(e, 0);
    }
    devstash__enc_str(e, s->fingerprint);
    devstash__enc_str(e, s->value_type);
    devstash__enc_varint(e, s->kind == DEVSTASH_KIND_FN ? 1u : 0u);
    devstash__enc_str(e, s->types);
}

/**
 * Registers a site with the runner, once: later calls return the same handle. Returns the
 * handle (>= 0), or DEVSTASH_DISABLED when the site runs uncached (the descriptor is too
 * large, memory ran out, the runner refused it, or this is not a wasm32 build).
 */
static inline int32_t devstash_site_register(devstash_site *site) {
    if (site == NULL) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    if (site->state_ == 1) {
        return site->handle_;
    }
    if (site->state_ != 0) {
        return DEVSTASH_DISABLED;
    }
    site->state_ = -1;
    devstash__stdio_setup();
    devstash__enc measure = {NULL, 0, 0, 0};
    devstash__enc_site(&measure, site);
    if (measure.overflow || measure.len > DEVSTASH_MAX_SITE_DESC) {
        devstash__warn(site, "its site descriptor is larger than 64 KiB; the call runs uncached");
        return DEVSTASH_DISABLED;
    }
    uint8_t *buf = (uint8_t *)malloc(measure.len);
    if (buf == NULL) {
        return DEVSTASH_DISABLED;
    }
    devstash__enc e = {buf, measure.len, 0, 0};
    devstash__enc_site(&e, site);
    int32_t handle = devstash_raw_site_register(buf, e.len);
    free(buf);
    if (handle < 0) {
#if defined(__wasm32__)
        devstash__warn(site, "the runner refused the site; the call runs uncached");
#endif
        return DEVSTASH_DISABLED;
    }
    site->handle_ = handle;
    site->state_ = 1;
    return handle;
}

static inline int32_t devstash__get(devstash_site *site, const void *args, size_t args_len,
                                    int32_t flags, uint64_t *out) {
    uint64_t scratch = 0;
    if (out == NULL) {
        out = &scratch;
    }
    *out = 0;
    if (args == NULL && args_len != 0) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    int32_t handle = devstash_site_register(site);
    if (handle < 0) {
        return handle;
    }
    devstash__flush();
    return devstash_raw_stash_get(handle, args, args_len, flags, out);
}

/**
 * Looks up a call of `site` with the canonical argument bytes `args[0..args_len)` (registering
 * the site first if needed). Returns:
 *  - DEVSTASH_HIT: the value is pending, `*out` is its length in bytes: fetch it with
 *    devstash_take / devstash_take_into (or devstash_read) before the next lookup;
 *  - DEVSTASH_MISS: `*out` is a ticket: compute the value, then devstash_put (or
 *    devstash_forget) it; devstash_begin / devstash_end around the computation are optional;
 *  - anything negative: run the call uncached (DEVSTASH_DISABLED, DEVSTASH_BAD_ARGUMENT, ...).
 * Flushes stdio first (see the top of this file).
 */
static inline int32_t devstash_get(devstash_site *site, const void *args, size_t args_len,
                                   uint64_t *out) {
    return devstash__get(site, args, args_len, 0, out);
}

/**
 * Like devstash_get, but a stored value is treated as missing: use it when a value that was
 * found could not be used (DEVSTASH_CORRUPT from a take, too large, no longer valid). Returns
 * DEVSTASH_MISS with a ticket in `*out`, or a negative status.
 */
static inline int32_t devstash_refresh(devstash_site *site, const void *args, size_t args_len,
                                       uint64_t *out) {
    return devstash__get(site, args, args_len, DEVSTASH_GET_REFRESH, out);
}

/**
 * Copies the pending value of `len` bytes (the length devstash_get reported) into `dst`, which
 * holds `cap` bytes. Returns DEVSTASH_HIT; DEVSTASH_TOO_LARGE (nothing copied, the value is
 * still pending) if `len > cap`; DEVSTASH_CORRUPT (throw away what was copied and call
 * devstash_refresh) or another status from the runner.
 */
static inline int32_t devstash_take_into(uint64_t len, void *dst, size_t cap) {
    if (len > (uint64_t)cap) {
        return DEVSTASH_TOO_LARGE;
    }
    if (dst == NULL && len != 0) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    return devstash_raw_stash_take(dst, (size_t)len);
}

/**
 * Copies the pending value of `len` bytes (the length devstash_get reported) into a new
 * buffer from malloc, with a NUL byte after the value (so text values are C strings). On
 * DEVSTASH_HIT, `*out` is the buffer: free it. Otherwise `*out` is NULL and the status is
 * DEVSTASH_TOO_LARGE (no memory for it; the value is still pending: call devstash_refresh to
 * compute it instead), DEVSTASH_CORRUPT (call devstash_refresh) or another runner status.
 */
static inline int32_t devstash_take(uint64_t len, void **out) {
    if (out == NULL) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    *out = NULL;
    if (len >= (uint64_t)SIZE_MAX) {
        return DEVSTASH_TOO_LARGE;
    }
    char *buf = (char *)malloc((size_t)len + 1);
    if (buf == NULL) {
        return DEVSTASH_TOO_LARGE;
    }
    int32_t status = devstash_raw_stash_take(buf, (size_t)len);
    if (status != DEVSTASH_HIT) {
        free(buf);
        return status;
    }
    buf[len] = '\0';
    *out = buf;
    return DEVSTASH_HIT;
}

/**
 * Copies bytes `offset .. offset + len` of the pending value into `dst` (read a large value
 * in parts, front to back). The value stays pending until the next lookup. Returns
 * DEVSTASH_HIT, or DEVSTASH_CORRUPT when the read that reaches the last byte finds it damaged.
 */
static inline int32_t devstash_read(uint64_t offset, void *dst, size_t len) {
    if (dst == NULL && len != 0) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    return devstash_raw_stash_read(offset, dst, len);
}

/**
 * Stores `val[0..len)` as the value of the missed call with `ticket`. `preview` is optional
 * text describing the arguments (NULL for none; the runner keeps its first 256 bytes), shown
 * by `devstash inspect`. Returns DEVSTASH_HIT (0) when stored, DEVSTASH_STORE_FAILED when the
 * store could not take it (the run goes on), or another status. Flushes stdio first.
 */
static inline int32_t devstash_put(int64_t ticket, const void *val, size_t len,
                                   const char *preview) {
    if (val == NULL && len != 0) {
        devstash_raw_stash_forget(ticket);
        return DEVSTASH_BAD_ARGUMENT;
    }
    devstash__flush();
    size_t plen = preview ? strlen(preview) : 0;
    return devstash_raw_stash_put(ticket, val, len, preview, plen);
}

/** The missed call with `ticket` ended without a value to store (it failed). Flushes stdio. */
static inline int32_t devstash_forget(int64_t ticket) {
    devstash__flush();
    return devstash_raw_stash_forget(ticket);
}

/** The missed call with `ticket` starts now: its recorded compute time counts from here. */
static inline int32_t devstash_begin(int64_t ticket) {
    devstash__flush();
    return devstash_raw_stash_begin(ticket);
}

/** The missed call with `ticket` has returned: its compute time ends here. Flushes stdio. */
static inline int32_t devstash_end(int64_t ticket) {
    devstash__flush();
    return devstash_raw_stash_end(ticket);
}

/**
 * Writes to `out32` (32 bytes) a keyed hash of `data[0..len)` under a key of the runner's user
 * that no guest can read: put it in a key in place of a secret (an API key), so that the secret
 * reaches no entry, tape or report. Returns 0, or a negative status (not under devstash).
 */
static inline int32_t devstash_secret_hash(const void *data, size_t len, uint8_t out32[32]) {
    if ((data == NULL && len != 0) || out32 == NULL) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    return devstash_raw_secret_hash(data, len, out32);
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical argument bytes                                                                    */
/* ------------------------------------------------------------------------------------------ */

/**
 * A growable buffer of canonical argument bytes. Integers are written little endian at a fixed
 * width, doubles as their IEEE-754 bits, byte strings and text with a u64 length before them
 * (so ("ab", "c") and ("a", "bc") differ). Start with `devstash_args a = DEVSTASH_ARGS_INIT;`,
 * append, pass `a.data, a.len` to a lookup, then devstash_args_free. An allocation failure
 * (or a NULL string) sets `failed`: check it before a lookup, and run the call uncached if set.
 */
typedef struct devstash_args {
    uint8_t *data;
    size_t len;
    size_t cap;
    int failed;
} devstash_args;

/** An empty argument buffer. */
#define DEVSTASH_ARGS_INIT {NULL, 0, 0, 0}

/** Frees the buffer and empties it. */
static inline void devstash_args_free(devstash_args *a) {
    free(a->data);
    a->data = NULL;
    a->len = a->cap = 0;
    a->failed = 0;
}

/** Appends raw bytes (no length): use the typed appenders unless the width is fixed. */
static inline void devstash_args_raw(devstash_args *a, const void *p, size_t n) {
    if (a->failed || n == 0) {
        return;
    }
    if (p == NULL || n > SIZE_MAX - a->len) {
        a->failed = 1;
        return;
    }
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 32;
        while (cap < a->len + n) {
            if (cap > SIZE_MAX / 2) {
                cap = a->len + n;
                break;
            }
            cap *= 2;
        }
        uint8_t *grown = (uint8_t *)realloc(a->data, cap);
        if (grown == NULL) {
            a->failed = 1;
            return;
        }
        a->data = grown;
        a->cap = cap;
    }
    memcpy(a->data + a->len, p, n);
    a->len += n;
}

/** Appends a u64, 8 bytes little endian. */
static inline void devstash_args_u64(devstash_args *a, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    devstash_args_raw(a, b, 8);
}

/** Appends an i64, 8 bytes little endian (two's complement). */
static inline void devstash_args_i64(devstash_args *a, int64_t v) {
    devstash_args_u64(a, (uint64_t)v);
}

/** Appends a double as its 8 IEEE-754 bytes (so 0.0 and -0.0 differ, as they may in results). */
static inline void devstash_args_f64(devstash_args *a, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    devstash_args_u64(a, bits);
}

/** Appends a byte string: its length (u64) then its bytes. */
static inline void devstash_args_bytes(devstash_args *a, const void *p, size_t n) {
    if (p == NULL && n != 0) {
        a->failed = 1;
        return;
    }
    devstash_args_u64(a, (uint64_t)n);
    devstash_args_raw(a, p, n);
}

/** Appends a C string (its length, then its bytes); NULL fails the buffer. */
static inline void devstash_args_str(devstash_args *a, const char *s) {
    if (s == NULL) {
        a->failed = 1;
        return;
    }
    devstash_args_bytes(a, s, strlen(s));
}

/* ------------------------------------------------------------------------------------------ */
/* Layer 3: memoization                                                                        */
/* ------------------------------------------------------------------------------------------ */

/**
 * Computes a value from argument bytes: returns a buffer from malloc with the value and sets
 * `*out_len` to its length, or returns NULL when the call failed (nothing is stored). An empty
 * value is a non-NULL buffer (e.g. malloc(1)) with `*out_len = 0`.
 */
typedef void *(*devstash_compute_fn)(const void *args, size_t args_len, size_t *out_len,
                                     void *ctx);

/**
 * Computes a fixed-size value from argument bytes into `dst` (`dst_len` bytes). Returns 0 on
 * success (the value is stored), anything else on failure (nothing is stored).
 */
typedef int (*devstash_compute_into_fn)(const void *args, size_t args_len, void *dst,
                                        size_t dst_len, void *ctx);

/** `value` (of `len` bytes, from malloc) with a NUL byte after it; NULL if there is no memory. */
static inline void *devstash__terminated(void *value, size_t len, size_t *out_len) {
    if (value == NULL) {
        return NULL;
    }
    void *terminated = len < SIZE_MAX ? realloc(value, len + 1) : NULL;
    if (terminated == NULL) {
        free(value);
        return NULL;
    }
    ((char *)terminated)[len] = '\0';
    *out_len = len;
    return terminated;
}

/**
 * Memoizes a function of bytes returning bytes. Looks up the call of `site` with `args`; on a
 * hit returns the stored value; on a miss runs `compute(args, args_len, &len, ctx)` and stores
 * what it returns (with `preview`, optional text describing the arguments); when the site runs
 * uncached it just calls `compute`. A stored value that cannot be used (damaged, too large for
 * memory) is recomputed, with a warning. Returns a buffer from malloc (free it) holding
 * `*out_len` bytes and a NUL byte after them, or NULL if `compute` failed (or is NULL, or
 * memory for the NUL byte ran out).
 */
static inline void *devstash_memoize(devstash_site *site, const void *args, size_t args_len,
                                     const char *preview, devstash_compute_fn compute, void *ctx,
                                     size_t *out_len) {
    size_t scratch = 0;
    if (out_len == NULL) {
        out_len = &scratch;
    }
    *out_len = 0;
    if (compute == NULL) {
        return NULL;
    }
    uint64_t n = 0;
    int32_t status = devstash_get(site, args, args_len, &n);
    if (status == DEVSTASH_HIT) {
        void *value = NULL;
        int32_t taken = devstash_take(n, &value);
        if (taken == DEVSTASH_HIT) {
            *out_len = (size_t)n;
            return value;
        }
        if (taken == DEVSTASH_TOO_LARGE) {
            devstash__warn(site, "its stored value is larger than this program's memory can hold; "
                                 "recomputing");
        }
        status = devstash_refresh(site, args, args_len, &n);
    }
    size_t len = 0;
    void *value;
    if (status != DEVSTASH_MISS) {
        value = compute(args, args_len, &len, ctx);
    } else {
        int64_t ticket = (int64_t)n;
        devstash_begin(ticket);
        value = compute(args, args_len, &len, ctx);
        devstash_end(ticket);
        if (value == NULL) {
            devstash_forget(ticket);
            return NULL;
        }
        devstash_put(ticket, value, len, preview);
    }
    return devstash__terminated(value, len, out_len);
}

/**
 * Memoizes a function whose value has a fixed size: like devstash_memoize, but the value is
 * read straight into `dst` (`dst_len` bytes, no allocation). A stored value of another length
 * is recomputed. Returns 0 when `dst` holds the value (stored, or computed), else what
 * `compute` returned (or DEVSTASH_BAD_ARGUMENT for a NULL `dst` or `compute`).
 */
static inline int devstash_memoize_into(devstash_site *site, const void *args, size_t args_len,
                                        const char *preview, devstash_compute_into_fn compute,
                                        void *ctx, void *dst, size_t dst_len) {
    if ((dst == NULL && dst_len != 0) || compute == NULL) {
        return DEVSTASH_BAD_ARGUMENT;
    }
    uint64_t n = 0;
    int32_t status = devstash_get(site, args, args_len, &n);
    if (status == DEVSTASH_HIT) {
        if (n == (uint64_t)dst_len && devstash_take_into(n, dst, dst_len) == DEVSTASH_HIT) {
            return 0;
        }
        if (n != (uint64_t)dst_len) {
            devstash__warn(site, "its stored value has another size than the value type; "
                                 "recomputing");
        }
        status = devstash_refresh(site, args, args_len, &n);
    }
    if (status != DEVSTASH_MISS) {
        return compute(args, args_len, dst, dst_len, ctx);
    }
    int64_t ticket = (int64_t)n;
    devstash_begin(ticket);
    int failed = compute(args, args_len, dst, dst_len, ctx);
    devstash_end(ticket);
    if (failed) {
        devstash_forget(ticket);
    } else {
        devstash_put(ticket, dst, dst_len, preview);
    }
    return failed;
}

/* ------------------------------------------------------------------------------------------ */
/* Declaring sites                                                                             */
/* ------------------------------------------------------------------------------------------ */

/**
 * The module part of site identities declared after this point: by default the source file's
 * name (`__FILE_NAME__`, e.g. "slow.c"). Define it (to a string literal) before including this
 * header to name the module yourself; site identities must be unique in a program.
 */
#ifndef DEVSTASH_MODULE
#ifdef __FILE_NAME__
#define DEVSTASH_MODULE __FILE_NAME__
#else
#define DEVSTASH_MODULE __FILE__
#endif
#endif

/**
 * Optional: a string literal folded into the fingerprint of every site declared after this
 * point, e.g. a hash of the source file passed by the build
 * (`-DDEVSTASH_FINGERPRINT="\"$(sha256sum app.c | cut -c1-16)\""`), so that any edit of the
 * file invalidates its entries without bumping versions by hand.
 */
#ifdef DEVSTASH_FINGERPRINT
#define DEVSTASH__FP(version) version "+" DEVSTASH_FINGERPRINT
#else
#define DEVSTASH__FP(version) version
#endif

/** The key material every site of this SDK carries, before its own types. */
#define DEVSTASH__TYPES_PREFIX "c-sdk=1\n"

#define DEVSTASH__STR2(x) #x
#define DEVSTASH__STR(x) DEVSTASH__STR2(x)

/* The site's record in the module's `devstash.sites` custom section (one JSON line), so that
 * `devstash inspect app.wasm` lists it without running the module. File-scope assembly, since
 * clang 14's wasm assembler has no .pushsection; so sites are declared at file scope. */
#if defined(__wasm32__) && !defined(DEVSTASH_NO_SITE_RECORDS)
#define DEVSTASH__RECORD(name, kind, ttl, fp)                                                      \
    __asm__(".section .custom_section.devstash.sites,\"\",@\n"                                     \
            ".ascii \"{\\\"abi\\\":" DEVSTASH__STR(DEVSTASH_ABI_VERSION) ","                       \
            "\\\"module\\\":\\\"" DEVSTASH_MODULE "\\\",\\\"callee\\\":\\\"" #name "\\\","          \
            "\\\"file\\\":\\\"" __FILE__ "\\\",\\\"line\\\":" DEVSTASH__STR(__LINE__) ","           \
            "\\\"ttl\\\":" ttl ",\\\"kind\\\":\\\"" kind "\\\","                                    \
            "\\\"fingerprint\\\":\\\"" fp "\\\"}\\n\"\n"                                            \
            ".text\n");
#else
#define DEVSTASH__RECORD(name, kind, ttl, fp)
#endif

#define DEVSTASH__SITE(var, name, version, has_ttl, ttl_secs, kind, value_type, types)           \
    static devstash_site var = {DEVSTASH_MODULE,                                                   \
                                DEVSTASH_MODULE "::" #name,                                        \
                                __FILE__,                                                          \
                                __LINE__,                                                          \
                                has_ttl,                                                           \
                                ttl_secs,                                                          \
                                DEVSTASH__FP(version),                                             \
                                value_type,                                                        \
                                kind,                                                              \
                                DEVSTASH__TYPES_PREFIX types,                                      \
                                0,                                                                 \
                                0}

/**
 * Declares `static devstash_site var` for calls of `name` (an identifier: the site is
 * "<DEVSTASH_MODULE>::name") whose arguments and value are bytes. `version` is a string
 * literal, e.g. "v1": change it when the code behind the site changes. At file scope.
 */
#define DEVSTASH_SITE(var, name, version)                                                          \
    DEVSTASH__RECORD(name, "call", "null", DEVSTASH__FP(version))                                  \
    DEVSTASH__SITE(var, name, version, 0, 0, DEVSTASH_KIND_CALL, "bytes",                          \
                   "args=bytes\nvalue=bytes")

/**
 * Like DEVSTASH_SITE, with entries that expire `ttl_secs` seconds after they were stored
 * (`ttl_secs` an integer literal, e.g. 3600).
 */
#define DEVSTASH_SITE_TTL(var, name, version, ttl_secs)                                            \
    DEVSTASH__RECORD(name, "call", "\\\"" #ttl_secs "s\\\"", DEVSTASH__FP(version))                \
    DEVSTASH__SITE(var, name, version, 1, (uint64_t)(ttl_secs), DEVSTASH_KIND_CALL, "bytes",       \
                   "args=bytes\nvalue=bytes")

/**
 * Defines `static void *fn_stashed(const void *args, size_t args_len, size_t *out_len)`, the
 * memoized form of `void *fn(const void *args, size_t args_len, size_t *out_len)`, a function
 * of bytes returning a buffer from malloc (NULL on failure: nothing is stored). The wrapper
 * returns a buffer from malloc too (free it), NUL-terminated after `*out_len` bytes.
 * `version` as for DEVSTASH_SITE. At file scope, after `fn`.
 */
#define DEVSTASH_STASHED_BYTES(fn, version)                                                        \
    DEVSTASH__RECORD(fn, "fn", "null", DEVSTASH__FP(version))                                      \
    DEVSTASH__SITE(fn##__devstash_site, fn, version, 0, 0, DEVSTASH_KIND_FN, "bytes",              \
                   "args=bytes\nvalue=bytes");                                                     \
    static void *fn##__devstash_compute(const void *args, size_t args_len, size_t *out_len,       \
                                        void *ctx) {                                               \
        (void)ctx;                                                                                 \
        return fn(args, args_len, out_len);                                                        \
    }                                                                                              \
    static void *fn##_stashed(const void *args, size_t args_len, size_t *out_len) {               \
        return devstash_memoize(&fn##__devstash_site, args, args_len, NULL,                        \
                                fn##__devstash_compute, NULL, out_len);                            \
    }

/* The arguments preview of DEVSTASH_STASHED: "(12)" for a number (C11 _Generic and stdio),
 * none for anything else. */
#if !defined(DEVSTASH_NO_STDIO) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
static inline const char *devstash__preview_i(char *buf, size_t n, long long v) {
    snprintf(buf, n, "(%lld)", v);
    return buf;
}
static inline const char *devstash__preview_u(char *buf, size_t n, unsigned long long v) {
    snprintf(buf, n, "(%llu)", v);
    return buf;
}
static inline const char *devstash__preview_f(char *buf, size_t n, double v) {
    snprintf(buf, n, "(%.17g)", v);
    return buf;
}
static inline const char *devstash__preview_none(char *buf, size_t n, ...) {
    (void)buf, (void)n;
    return NULL;
}
#define DEVSTASH__PREVIEW(buf, arg)                                                                \
    _Generic((arg),                                                                                \
        char: devstash__preview_i,                                                                 \
        signed char: devstash__preview_i,                                                          \
        short: devstash__preview_i,                                                                \
        int: devstash__preview_i,                                                                  \
        long: devstash__preview_i,                                                                 \
        long long: devstash__preview_i,                                                            \
        _Bool: devstash__preview_u,                                                                \
        unsigned char: devstash__preview_u,                                                        \
        unsigned short: devstash__preview_u,                                                       \
        unsigned int: devstash__preview_u,                                                         \
        unsigned long: devstash__preview_u,                                                        \
        unsigned long long: devstash__preview_u,                                                   \
        float: devstash__preview_f,                                                                \
        double: devstash__preview_f,                                                               \
        default: devstash__preview_none)(buf, sizeof buf, arg)
#else
#define DEVSTASH__PREVIEW(buf, arg) ((void)(buf), (const char *)NULL)
#endif

/**
 * Defines `static ret_t fn_stashed(arg_t arg)`, the memoized form of `ret_t fn(arg_t arg)`.
 * The argument's bytes are the key and the value's bytes are stored, so both types must be
 * plain data, without const: integers, floating point, or structs of them without padding;
 * never pointers. The type names are part of the key, and an integer or floating-point
 * argument is previewed, e.g. "(12)", for `devstash inspect`. `version` as for DEVSTASH_SITE.
 * At file scope, after `fn`.
 */
#define DEVSTASH_STASHED(ret_t, fn, arg_t, version)                                                \
    DEVSTASH__RECORD(fn, "fn", "null", DEVSTASH__FP(version))                                      \
    DEVSTASH__SITE(fn##__devstash_site, fn, version, 0, 0, DEVSTASH_KIND_FN, #ret_t,               \
                   "args=" #arg_t "\nvalue=" #ret_t);                                              \
    static int fn##__devstash_compute(const void *args, size_t args_len, void *dst,               \
                                      size_t dst_len, void *ctx) {                                 \
        arg_t arg;                                                                                 \
        ret_t value;                                                                               \
        (void)ctx;                                                                                 \
        if (args_len != sizeof arg || dst_len != sizeof value) {                                   \
            return -1;                                                                             \
        }                                                                                          \
        memcpy(&arg, args, sizeof arg);                                                            \
        value = fn(arg);                                                                           \
        memcpy(dst, &value, sizeof value);                                                         \
        return 0;                                                                                  \
    }                                                                                              \
    static ret_t fn##_stashed(arg_t arg) {                                                         \
        ret_t value;                                                                               \
        char preview[48];                                                                          \
        memset(&value, 0, sizeof value);                                                           \
        devstash_memoize_into(&fn##__devstash_site, &arg, sizeof arg,                              \
                              DEVSTASH__PREVIEW(preview, arg), fn##__devstash_compute, NULL,       \
                              &value, sizeof value);                                               \
        return value;                                                                              \
    }

#ifdef __cplusplus
}
#endif

#endif /* DEVSTASH_H */
