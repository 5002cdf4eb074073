"""Why batched receives of large messages can be slow: page faults in the consumer.

P producer processes send N messages of SIZE bytes through one memspace.Queue with
put_many(BATCH); this process receives them with get_many(GET) and drops each batch. Prints
messages per second and the minor page faults this (consumer) process took while receiving.
Run it with and without MALLOC_TRIM_THRESHOLD_=268435456 in the environment to see glibc's
heap trimming (freed heap above 128 KiB by default goes back to the kernel, and the next batch
faults it in again).

Run: python benchmarks/queue_batches.py [--producers 2] [--size 65536] [--batch 31] [--get 31]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import memspace

PRODUCER = """
import sys, os, memspace
name, size, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
q = memspace.Queue.open(name)
data = os.urandom(size)
items = [data] * batch
sent = 0
while sent < n:
    k = min(batch, n - sent)
    q.put_many(items[:k])
    sent += k
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--size", type=int, default=64 << 10)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=31, help="messages per put_many")
    ap.add_argument("--get", type=int, default=31, help="max_count of each get_many")
    a = ap.parse_args()
    name = f"/ms-bench-batches-{os.getpid()}"
    q = memspace.Queue.create(name, 8 << 20)
    try:
        share = a.count // a.producers
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", PRODUCER, name, str(a.size), str(share), str(a.batch)]
            )
            for _ in range(a.producers)
        ]
        total = share * a.producers
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        got = 0
        while got < total:
            got += len(q.get_many(a.get, timeout=60))
        elapsed = time.perf_counter() - t0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
        for p in procs:
            if p.wait(timeout=60) != 0:
                raise SystemExit("a producer failed")
        trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "default")
        print(
            f"{a.producers} producers, {a.size} B, put_many({a.batch}), get_many({a.get}), "
            f"MALLOC_TRIM_THRESHOLD_={trim}: {total / elapsed:.3g} msg/s, "
            f"{faults} page faults in the consumer"
        )
    finally:
        memspace.Queue.remove(name)


if __name__ == "__main__":
    main()
