/*
 * A test guest for the C SDK (tests/c_guest.rs builds it): each mode exercises one part of
 * devstash.h and prints "computed ..." whenever a call really runs.
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -O2 -I guest-sdk/c -o probe.wasm \
 *         guest-sdk/c/tests/probe.c
 *
 *   probe words A B   two strings keyed with devstash_args, memoized with devstash_memoize
 *   probe fail X      a call that fails (returns NULL): never stored
 *   probe big MIB     a MIB-MiB value from DEVSTASH_STASHED_BYTES, checked byte by byte
 *   probe ttl X       a site whose entries live 1 s (DEVSTASH_SITE_TTL)
 *   probe half X      DEVSTASH_STASHED on doubles
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devstash.h"

/* words: "A!B!" from ("A", "B"); the arguments are length-prefixed, so ("ab", "c") and
 * ("a", "bc") are two calls. */
DEVSTASH_SITE(shout_site, shout, "v1");

struct shout_args {
    const char *a;
    const char *b;
};

static void *shout(const void *args, size_t args_len, size_t *out_len, void *ctx) {
    const struct shout_args *w = (const struct shout_args *)ctx;
    (void)args, (void)args_len;
    printf("computed shout(%s, %s)\n", w->a, w->b);
    size_t la = strlen(w->a), lb = strlen(w->b);
    char *out = (char *)malloc(la + lb + 2);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, w->a, la);
    out[la] = '!';
    memcpy(out + la + 1, w->b, lb);
    out[la + lb + 1] = '!';
    *out_len = la + lb + 2;
    return out;
}

static int words(const char *a, const char *b) {
    devstash_args args = DEVSTASH_ARGS_INIT;
    devstash_args_str(&args, a);
    devstash_args_str(&args, b);
    if (args.failed) {
        return 1;
    }
    char preview[256];
    snprintf(preview, sizeof preview, "(\"%s\", \"%s\")", a, b);
    struct shout_args ctx = {a, b};
    size_t len = 0;
    char *value =
        (char *)devstash_memoize(&shout_site, args.data, args.len, preview, shout, &ctx, &len);
    devstash_args_free(&args);
    if (value == NULL) {
        return 1;
    }
    printf("result %s (%zu bytes)\n", value, len);
    free(value);
    return 0;
}

/* fail: the call fails, so nothing is stored and every run computes it. */
DEVSTASH_SITE(fail_site, always_fails, "v1");

static void *always_fails(const void *args, size_t args_len, size_t *out_len, void *ctx) {
    (void)args, (void)args_len, (void)out_len, (void)ctx;
    printf("computed always_fails\n");
    return NULL;
}

/* big: MIB MiB of a pattern of the size, read back and checked. */
static void *blob(const void *args, size_t args_len, size_t *out_len) {
    uint32_t mib;
    if (args_len != sizeof mib) {
        return NULL;
    }
    memcpy(&mib, args, sizeof mib);
    printf("computed blob(%u)\n", (unsigned)mib);
    size_t n = (size_t)mib << 20;
    uint8_t *out = (uint8_t *)malloc(n ? n : 1);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)(i * 31u + mib);
    }
    *out_len = n;
    return out;
}
DEVSTASH_STASHED_BYTES(blob, "v1")

static int big(uint32_t mib) {
    size_t len = 0;
    uint8_t *value = (uint8_t *)blob_stashed(&mib, sizeof mib, &len);
    if (value == NULL || len != ((size_t)mib << 20) || value[len] != 0) {
        printf("blob %u MiB: wrong length\n", (unsigned)mib);
        return 1;
    }
    for (size_t i = 0; i < len; i++) {
        if (value[i] != (uint8_t)(i * 31u + mib)) {
            printf("blob %u MiB: damaged at %zu\n", (unsigned)mib, i);
            return 1;
        }
    }
    printf("blob %u MiB, intact\n", (unsigned)mib);
    free(value);
    return 0;
}

/* ttl: entries of this site expire after a second. */
DEVSTASH_SITE_TTL(brief_site, brief, "v1", 1);

static int brief(int64_t x) {
    uint64_t n = 0;
    int64_t value = 0;
    devstash_args args = DEVSTASH_ARGS_INIT;
    devstash_args_i64(&args, x);
    if (args.failed) {
        return 1;
    }
    int32_t status = devstash_get(&brief_site, args.data, args.len, &n);
    if (status == DEVSTASH_HIT && devstash_take_into(n, &value, sizeof value) == DEVSTASH_HIT) {
        printf("result %lld\n", (long long)value);
    } else {
        /* The low-level path: a miss gives a ticket; anything else runs uncached. */
        if (status == DEVSTASH_HIT) {
            status = devstash_refresh(&brief_site, args.data, args.len, &n);
        }
        printf("computed brief(%lld)\n", (long long)x);
        value = x + 1;
        if (status == DEVSTASH_MISS) {
            devstash_put((int64_t)n, &value, sizeof value, "brief");
        }
        printf("result %lld\n", (long long)value);
    }
    devstash_args_free(&args);
    return 0;
}

/* half: DEVSTASH_STASHED with floating point. */
static double half(double x) {
    printf("computed half(%g)\n", x);
    return x / 2;
}
DEVSTASH_STASHED(double, half, double, "v1")

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "words") == 0 && argc == 4) {
        return words(argv[2], argv[3]);
    }
    if (strcmp(mode, "fail") == 0 && argc == 3) {
        size_t len = 0;
        void *v = devstash_memoize(&fail_site, argv[2], strlen(argv[2]), NULL, always_fails, NULL,
                                   &len);
        printf("%s\n", v == NULL ? "failed" : "stored?");
        free(v);
        return 0;
    }
    if (strcmp(mode, "big") == 0 && argc == 3) {
        return big((uint32_t)strtoul(argv[2], NULL, 10));
    }
    if (strcmp(mode, "ttl") == 0 && argc == 3) {
        return brief(strtoll(argv[2], NULL, 10));
    }
    if (strcmp(mode, "half") == 0 && argc == 3) {
        printf("result %g\n", half_stashed(strtod(argv[2], NULL)));
        return 0;
    }
    fprintf(stderr, "usage: probe words A B | fail X | big MIB | ttl X | half X\n");
    return 2;
}
