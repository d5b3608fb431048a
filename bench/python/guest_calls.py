"""The per-call cost of a `@devstash.stash` hit inside the Python guest, against the plain call
of the same function in the same guest.

usage: devstash run guest_calls.py N
Prints one line: calls=N sum=… per_call_ns=… plain_ns=…
"""
import sys
import time

import devstash

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000


def plain(i):
    return i


@devstash.stash
def f(i):
    return i


clock = time.perf_counter_ns

t = clock()
total = 0
for i in range(n):
    total += plain(i)
plain_ns = (clock() - t) / n

t = clock()
total = 0
for i in range(n):
    total += f(i)
per_call_ns = (clock() - t) / n

print(f"calls={n} sum={total} per_call_ns={per_call_ns:.0f} plain_ns={plain_ns:.0f}")
