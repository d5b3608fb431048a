/*
 * The C quickstart: one slow function, memoized with devstash.h. The first `devstash run`
 * computes it (2 s, and prints "computing..."); every later run returns the stored value at
 * once.
 *
 * Build (Debian/Ubuntu: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32), from the
 * repository root, or with `make c-example`:
 *
 *     clang --target=wasm32-wasi --sysroot=/usr -O2 -I guest-sdk/c -o slow.wasm examples/c/slow.c
 *     devstash run slow.wasm        # computing... 144
 *     devstash run slow.wasm        # 144, at once
 *
 * An argument picks another x: `devstash run slow.wasm 7`.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "devstash.h"

/* The slow function. */
static int64_t slow_square(int32_t x) {
    printf("computing...\n");
    sleep(2);
    return (int64_t)x * x;
}

/* Defines slow_square_stashed(x): slow_square, stored by its argument. Bump "v1" when the code
 * of slow_square changes, so that its old results are not used. */
DEVSTASH_STASHED(int64_t, slow_square, int32_t, "v1")

int main(int argc, char **argv) {
    int32_t x = argc > 1 ? (int32_t)atoi(argv[1]) : 12;
    printf("%" PRId64 "\n", slow_square_stashed(x));
    return 0;
}
