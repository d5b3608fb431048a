"""Restoring a pickled 100 MiB numpy array inside the Python guest.

usage: devstash run guest_big.py MODE
  stash      the call of a `@devstash.stash` function returning it (a hit once stored)
  pretouch   the same call, after the guest's memory has been grown and written over 220 MiB
             (and freed): what the call costs when no page it fills is new
  unpickle   pickle.loads of the same pickle in the guest alone (no devstash), into new memory
             (the array the pickle was made from is kept alive)
Prints one line: bytes=… secs=… (the call, or the loads, timed alone).
"""
import pickle
import sys
import time

import numpy

import devstash

N = 100 * 2**20 // 8  # float64 items: 100 MiB


@devstash.stash
def make(n):
    return numpy.arange(n, dtype=numpy.float64)


mode = sys.argv[1] if len(sys.argv) > 1 else "stash"
if mode in ("stash", "pretouch"):
    if mode == "pretouch":
        scratch = bytearray(b"\x01") * (220 * 2**20)
        del scratch
    t = time.perf_counter()
    a = make(N)
    dt = time.perf_counter() - t
elif mode == "unpickle":
    src = numpy.arange(N, dtype=numpy.float64)
    blob = pickle.dumps(src, protocol=5)  # the protocol the SDK stores values with
    t = time.perf_counter()
    a = pickle.loads(blob)
    dt = time.perf_counter() - t
else:
    sys.exit(f"unknown mode {mode}")
assert a.shape == (N,) and a[-1] == N - 1
print(f"bytes={a.nbytes} secs={dt:.6f}")
