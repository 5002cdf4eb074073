"""memspace.Queue against the peers, one producer process and one consumer process.

Reuses the two-process driver of bench_ring.py (benchmarks/channels.py transports): the
consumer times the arrival of N messages of one size. Batched transports move lists of 256.
One run, REPS repetitions each: median, min..max, and the ratio to faster-fifo.

Run: python benchmarks/bench_queue.py   (MEMSPACE_BENCH_QUICK=1 for a smoke run)
"""

from __future__ import annotations

import os
import sys

from _harness import Result, measure, table
from bench_ring import REPS, SIZES, throughput
from channels import QUEUES, FasterFifo, FasterFifoBatched, MemspaceRing, MpQueue, PosixMq


def main() -> str:
    sections = []
    only = os.environ.get("MEMSPACE_BENCH_SIZES")
    sizes = [int(x) for x in only.split(",")] if only else SIZES
    for size in sizes:
        rows: list[Result] = []
        for t in [*QUEUES, FasterFifo, FasterFifoBatched, MpQueue, PosixMq, MemspaceRing]:
            if t.max_size is not None and size > t.max_size:
                continue
            print(f"  {t.label} {size} B", file=sys.stderr, flush=True)
            try:
                rows.append(measure(t.label, lambda t=t, s=size: throughput(t, s), REPS, warmup=0))
            except TimeoutError as e:  # a peer that stalls at this size is reported, not fatal
                print(f"  {t.label} {size} B: {e}", file=sys.stderr, flush=True)
        ref = next(r for r in rows if r.label == FasterFifo.label)
        label = f"{size} B" if size < 1024 else f"{size >> 10} KiB" if size < 1 << 20 else "1 MiB"
        sections.append(table(f"{label} messages, 1P/1C", "msg/s", rows, ref, "faster-fifo"))
        print(sections[-1] + "\n", flush=True)
    return "\n\n".join(sections)


if __name__ == "__main__":
    main()
