"""memspace.Queue against the peers: 1P/1C and 2P/2C messages per second, and numpy objects.

What is measured: throughput between processes, side by side in one run, REPS repetitions each
(median and min..max, no warm-up); every repetition spawns its processes afresh and creates its
channel anew. N messages of one size per repetition (COUNTS: 200,000 at 64 B, 100,000 at 1 KiB,
20,000 at 64 KiB, 1,000 at 1 MiB). Transports are those of benchmarks/channels.py, every one
driven by the same generated loop (the rule is at the top of channels.py); batched ones move
lists of up to 256 messages per call (at most a quarter of the channel's bytes, so two
producers' batches fit at once). Every received message's length is checked. Ratios are to
faster_fifo put/get in the same table; the 1P/1C tables also give each row's cost per message
as a multiple of the floors that benchmarks/bench_ring.py describes (measured here, in the
same run).

1P/1C (mode "1x1"): bench_ring's two-process driver (benchmarks/drivers.py). The consumer
starts its clock when it is released and stops it when it has received the N messages; figure
= N / that time. The SPSC memspace.Ring and pyzmq PUSH/PULL (one producer, one consumer)
appear in these tables only.

PxC (mode "2x2" by default: two producer processes and two consumer processes on one channel):
the parent stamps the start on CLOCK_MONOTONIC (one clock for all processes), then releases all
of them. Each producer sends N/P messages, then one end marker (an empty message) per consumer.
A consumer cannot know its share, so it counts messages until it has seen P markers and reports
its count and the time it saw the last one. A batch that brought it more than P markers (the
other consumers' share) is put back into the channel after its clock has stopped. The parent
checks that the counts add up to N; figure = N / (the latest consumer's end - the start). Only
the multi-producer/multi-consumer transports take part: memspace.Queue and faster-fifo (single
and batched), multiprocessing.Queue, posix_ipc.MessageQueue.

Sizes a transport cannot carry (posix_ipc: the kernel's fs.mqueue.msgsize_max, 8192 B by
default) are listed under the table as skipped; a measurement that stalls (60 s) or whose
process fails is listed under it too, instead of a row.

Numpy objects (mode "numpy"): 1P/1C, 500 arrays of 1 MB float64 (125,000 values; 4 distinct
arrays in turn) through memspace.Queue.put_object/get_object against multiprocessing.Queue's
put/get (pickle). The consumer checks each array's shape, dtype, first and last value; figure
= arrays/s, clocked as in 1P/1C. Ratios are to multiprocessing.Queue.

Environment: MEMSPACE_BENCH_SIZES=64,1024 (bytes; default 64, 1 KiB, 64 KiB and 1 MiB),
MEMSPACE_BENCH_MODES=1x1,2x2,numpy (the default; any PxC such as 1x2 may be listed),
MEMSPACE_BENCH_QUICK=1 or `run.py --quick` (a smoke run: a hundredth of the counts, 64 B and
1 MiB, one repetition; its figures mean nothing).

Run: python benchmarks/run.py queue   (or python benchmarks/bench_queue.py)
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

import drivers
from _harness import QUICK, Result, measure, rate_table, table
from channels import (
    QUEUES,
    FasterFifo,
    FasterFifoBatched,
    MemspaceQueueObjects,
    MemspaceRing,
    MpQueue,
    MpQueueObjects,
    PosixMq,
    Transport,
    ZmqPushPull,
)

# The transports several producers and several consumers may share.
MPMC: list[type[Transport]] = [*QUEUES, FasterFifo, FasterFifoBatched, MpQueue, PosixMq]
DEFAULT_MODES = "1x1,2x2,numpy"
SIZES = [64, 1 << 20] if QUICK else [64, 1024, 64 << 10, 1 << 20]
REPS = 1 if QUICK else 5
# Messages per repetition. From 1P/1C figures on an idle machine: faster-fifo (the reference) and
# multiprocessing.Queue take 0.2-1 s each up to 64 KiB; at 1 MiB they are 16x apart (faster-fifo
# about 0.12 s, multiprocessing.Queue about 2 s). A size not listed takes the count of the next
# smaller listed one. 2P/2C moves the same total.
COUNTS = {64: 200_000, 1024: 100_000, 64 << 10: 20_000, 1 << 20: 1_000}
ARRAYS_PER_REP = 500  # 1 MB numpy arrays: multiprocessing.Queue about 1-2 s


def count_for(size: int) -> int:
    return drivers.quick_count(COUNTS[max([s for s in COUNTS if s <= size], default=min(COUNTS))])


# --- tables ----------------------------------------------------------------------------------


def _measure(
    label: str, fn: Callable[[], float], rows: list[Result], failed: list[str], what: str
) -> None:
    print(f"  {what}", file=sys.stderr, flush=True)
    try:
        rows.append(measure(label, fn, REPS, warmup=0))
    except (TimeoutError, drivers.EndpointFailed, OSError, EOFError) as e:  # said under the table
        print(f"  {what}: {e}", file=sys.stderr, flush=True)
        failed.append(str(e) if str(e).startswith(label) else f"{label}: {e}")


def _notes(notes: list[tuple[str, list[str]]]) -> str:
    return "".join(f"\n\n{head}: " + "; ".join(items) + "." for head, items in notes if items)


def _mode(mode: str) -> tuple[int, int]:
    """Producers and consumers of a mode: "2x2" -> (2, 2)."""
    p, _, c = mode.partition("x")
    if not (p.isdigit() and c.isdigit() and int(p) > 0 and int(c) > 0):
        raise SystemExit(f"MEMSPACE_BENCH_MODES: {mode!r} is not PxC (e.g. 2x2) nor numpy")
    return int(p), int(c)


def messages(mode: str, size: int) -> str:
    producers, consumers = _mode(mode)
    one_to_one = (producers, consumers) == (1, 1)
    n = count_for(size)
    rows: list[Result] = drivers.floors(size, n, REPS) if one_to_one else []
    refs = drivers.floor_refs(rows)
    skipped: list[str] = []
    failed: list[str] = []
    transports = [*MPMC, ZmqPushPull, MemspaceRing] if one_to_one else MPMC
    for t in transports:
        if not t.available():
            skipped.append(f"{t.label} (not installed)")
            continue
        if t.max_size is not None and size > t.max_size:
            why = f" ({t.max_size_reason})" if t.max_size_reason else ""
            skipped.append(f"{t.label} carries at most {t.max_size} B{why}")
            continue
        fn: Callable[[], float]
        if one_to_one:
            fn = functools.partial(drivers.throughput, t, size, n)
        else:
            fn = functools.partial(drivers.throughput_mpmc, t, size, n, producers, consumers)
        _measure(t.label, fn, rows, failed, f"{mode} {t.label} {size} B")
    ref = next((r for r in rows if r.label == FasterFifo.label), None)
    title = f"{drivers.size_label(size)} messages, {producers}P/{consumers}C"
    return rate_table(title, "msg/s", rows, ref, "faster-fifo", refs) + _notes(
        [("Skipped", skipped), ("Failed or stalled (no row)", failed)]
    )


def objects() -> str:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "Numpy objects: skipped (numpy is not installed)."
    n = drivers.quick_count(ARRAYS_PER_REP, least=5)
    rows: list[Result] = []
    failed: list[str] = []
    for t in [MemspaceQueueObjects, MpQueueObjects]:
        fn = functools.partial(drivers.objects, t, n)
        _measure(t.label, fn, rows, failed, f"numpy {t.label}")
    ref = next((r for r in rows if r.label == MpQueueObjects.label), None)
    title = "1 MB numpy float64 arrays, 1P/1C"
    return table(title, "arrays/s", rows, ref, "multiprocessing.Queue") + _notes(
        [("Failed or stalled (no row)", failed)]
    )


def main() -> str:
    only = os.environ.get("MEMSPACE_BENCH_SIZES")
    sizes = [int(x) for x in only.split(",")] if only else SIZES
    modes = os.environ.get("MEMSPACE_BENCH_MODES", DEFAULT_MODES).split(",")
    for mode in modes:
        if mode != "numpy":
            _mode(mode)  # a typo fails now, not after minutes of measuring
    sections = []
    for mode in modes:
        if mode == "numpy":
            sections.append(objects())
            print(sections[-1] + "\n", file=sys.stderr, flush=True)  # progress
            continue
        for size in sizes:
            sections.append(messages(mode, size))
            print(sections[-1] + "\n", file=sys.stderr, flush=True)  # progress
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
