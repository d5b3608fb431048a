"""The same workloads for the Python devstash 0.1.1 and joblib.Memory, timed in-process.

usage: workloads.py calls N | big BYTES | nparray ITEMS | quick | joblib N
Prints one line of key=value pairs.
"""
import sys
import time

mode = sys.argv[1]
arg = int(sys.argv[2]) if len(sys.argv) > 2 else 0

if mode == "joblib":
    from joblib import Memory

    memory = Memory("./.joblib_cache", verbose=0)

    @memory.cache
    def g(x):
        return x * 2

    t = time.perf_counter()
    total = sum(g(i) for i in range(arg))
    dt = time.perf_counter() - t
    print(f"calls={arg} sum={total} per_call_ns={dt / arg * 1e9:.0f}")
    sys.exit(0)

import devstash  # noqa: E402

devstash.activate()


def f(x):
    return x * 2


def make(n):
    return bytes(range(256)) * (n // 256)


def make_array(n):
    import numpy

    return numpy.arange(n, dtype=numpy.float64)


def slow_function(x):
    print("Running slow_function...")
    time.sleep(2)
    return x * 2


if mode == "calls":
    t = time.perf_counter()
    total = 0
    for i in range(arg):
        total += f(i)  # @devstash
    dt = time.perf_counter() - t
    print(f"calls={arg} sum={total} per_call_ns={dt / arg * 1e9:.0f}")
elif mode == "big":
    t = time.perf_counter()
    b = make(arg)  # @devstash
    dt = time.perf_counter() - t
    print(f"bytes={len(b)} secs={dt:.6f}")
elif mode == "nparray":
    t = time.perf_counter()
    a = make_array(arg)  # @devstash
    dt = time.perf_counter() - t
    print(f"bytes={a.nbytes} secs={dt:.6f}")
elif mode == "quick":
    val = slow_function(10)  # @devstash
    print(val)
else:
    sys.exit(f"unknown mode {mode}")
