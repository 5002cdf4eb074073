"""memspace.Queue against the peers: 1P/1C and 2P/2C messages per second, and numpy objects.

What is measured: throughput between processes, side by side in one run, REPS repetitions each
(median and min..max, no warm-up); every repetition spawns its processes afresh and creates its
channel anew. N messages of one size per repetition (COUNTS: 200,000 at 64 B, 100,000 at 1 KiB,
20,000 at 64 KiB, 1,000 at 1 MiB; a hundredth with MEMSPACE_BENCH_QUICK=1). Transports are
those of benchmarks/channels.py; batched ones move lists of up to 256 messages per call (at most
a quarter of the channel's bytes, so two producers' batches fit at once). Every received
message's length is checked. Ratios are to faster_fifo put/get in the same table.

1P/1C (mode "1x1"): bench_ring's two-process driver. The consumer starts its clock when it is
released and stops it when it has received the N messages; figure = N / that time. The SPSC
memspace.Ring appears in these tables only, as a reference row.

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
MEMSPACE_BENCH_QUICK=1 (a smoke run: tiny counts, one repetition; its figures mean nothing).

Run: python benchmarks/run.py queue   (or python benchmarks/bench_queue.py)
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from _harness import Result, measure, table
from bench_ring import QUICK, REPS, SIZES, STALL_SECONDS, batch_for, send_all, throughput
from channels import (
    QUEUES,
    Endpoint,
    FasterFifo,
    FasterFifoBatched,
    MemspaceQueue,
    MemspaceRing,
    MpQueue,
    PosixMq,
    Transport,
)

# The transports several producers and several consumers may share.
MPMC: list[type[Transport]] = [*QUEUES, FasterFifo, FasterFifoBatched, MpQueue, PosixMq]
END = b""  # an end marker: every measured size is > 0, so its length tells it apart
DEFAULT_MODES = "1x1,2x2,numpy"
# Messages per repetition. From 1P/1C figures on an idle machine: faster-fifo (the reference) and
# multiprocessing.Queue take 0.2-1 s each up to 64 KiB; at 1 MiB they are 16x apart (faster-fifo
# about 0.12 s, multiprocessing.Queue about 2 s). A size not listed takes the count of the next
# smaller listed one. 2P/2C moves the same total.
COUNTS = {64: 200_000, 1024: 100_000, 64 << 10: 20_000, 1 << 20: 1_000}
ARRAYS_PER_REP = 500  # 1 MB numpy arrays: multiprocessing.Queue about 1-2 s


def count_for(size: int) -> int:
    n = COUNTS[max([s for s in COUNTS if s <= size], default=min(COUNTS))]
    return max(n // 100, 10) if QUICK else n


class EndpointFailed(RuntimeError):
    """A process of a measurement died, or the counts did not add up."""


def _now() -> float:
    """CLOCK_MONOTONIC is one clock for the whole machine: stamps from different processes
    can be compared."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def _label(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size >> 10} KiB" if size < 1 << 20 else "1 MiB"


# --- numpy objects ---------------------------------------------------------------------------

ARRAY_LEN = 125_000  # float64: 1,000,000 bytes
ARRAYS = 4


class _ObjectEnd(Endpoint):
    def __init__(self, name: str) -> None:
        import memspace

        self.q = memspace.Queue.open(name)
        self.send = self.q.put_object  # type: ignore[method-assign,assignment]
        self.recv = self.q.get_object  # type: ignore[method-assign]

    def close(self) -> None:
        self.q.close()


class QueueObjects(MemspaceQueue):
    label = "memspace.Queue put_object/get_object"

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _ObjectEnd(handle)

    consumer = producer


class MpQueueObjects(MpQueue):
    label = "multiprocessing.Queue put/get (pickle)"


def _arrays() -> list[Any]:
    import numpy as np

    return [np.random.default_rng(k).random(ARRAY_LEN) for k in range(ARRAYS)]


# --- processes -------------------------------------------------------------------------------


def _find(name: str) -> type[Transport]:
    for t in [*MPMC, QueueObjects, MpQueueObjects]:
        if t.__name__ == name:
            return t
    raise KeyError(name)


_PROCS: list[mp.process.BaseProcess] = []


def _start(
    t: type[Transport], targets: list[tuple[Callable[..., None], tuple[object, ...]]]
) -> list[Connection]:
    """One fresh process per target, with a control pipe each; returns the pipes once every
    process has opened its endpoint and said so."""
    ctx = mp.get_context("spawn")
    pipes = []
    for target, args in targets:
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=target, args=(t.__name__, *args, theirs))
        p.start()
        _PROCS.append(p)
        pipes.append(mine)
    for c in pipes:
        if not c.poll(120):
            raise TimeoutError(f"{t.label}: an endpoint did not start")
        try:
            assert c.recv() == "ready"
        except EOFError:
            raise EndpointFailed(f"{t.label}: an endpoint failed to start") from None
    return pipes


def _wait(t: type[Transport], c: Connection, deadline: float) -> Any:
    """The next report on `c`; fails early if one of the processes died."""
    while not c.poll(min(1.0, max(0.0, deadline - _now()))):
        if _now() >= deadline:
            raise TimeoutError(f"{t.label}: stalled")
        dead = [p.exitcode for p in _PROCS if p.exitcode not in (None, 0)]
        if dead:
            raise EndpointFailed(f"{t.label}: a process exited with code {dead[0]}")
    try:
        return c.recv()
    except EOFError:  # the process died before it reported (its traceback is on stderr)
        raise EndpointFailed(f"{t.label}: a process died") from None


def _reap(kill: bool = False) -> None:
    """Joins the processes of a measurement; `kill` ends them first (it failed: the others
    would wait forever)."""
    for p in _PROCS:
        if kill and p.is_alive():
            p.kill()
    for p in _PROCS:
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    _PROCS.clear()


def _producer(
    name: str, handle: object, size: int, n: int, consumers: int, ctl: Connection
) -> None:
    t = _find(name)
    ep = t.producer(handle)
    data = os.urandom(size)
    ctl.send("ready")
    ctl.recv()
    send_all(t, ep, data, n, batch_for(size))
    if t.batched:
        ep.send_many([END] * consumers)
    else:
        for _ in range(consumers):
            ep.send(END)
    ctl.recv()  # stay alive until the consumers are done (queues flush from threads)
    ep.close()


def _consumer(name: str, handle: object, size: int, producers: int, ctl: Connection) -> None:
    t = _find(name)
    ep = t.consumer(handle)
    ctl.send("ready")
    ctl.recv()
    got = ends = 0
    if t.batched:
        per = batch_for(size)
        recv_many = ep.recv_many
        while ends < producers:
            batch = recv_many(per)
            got += len(batch)
            for m in batch:
                if len(m) != size:
                    if len(m) != len(END):
                        raise AssertionError(f"wrong length {len(m)}")
                    ends += 1
                    got -= 1
    else:
        recv = ep.recv
        received = 0
        for received in itertools.count(1):  # noqa: B007 (read after the loop)
            k = len(recv())
            if k != size:
                if k != len(END):
                    raise AssertionError(f"wrong length {k}")
                ends += 1
                if ends == producers:
                    break
        got = received - ends
    end = _now()
    if ends > producers:  # a batch took markers meant for another consumer: hand them back
        back = t.producer(handle)
        back.send_many([END] * (ends - producers))
        back.close()
    ctl.send((got, end))
    ep.close()


def throughput_mpmc(t: type[Transport], size: int, producers: int, consumers: int) -> float:
    """Messages per second through one channel shared by `producers` producer processes and
    `consumers` consumer processes, from their common release until the last consumer is done."""
    each = count_for(size) // producers
    handle = t.setup()
    try:
        pipes = _start(
            t,
            [(_consumer, (handle, size, producers))] * consumers
            + [(_producer, (handle, size, each, consumers))] * producers,
        )
        start = _now()
        for c in pipes:
            c.send("go")
        deadline = start + STALL_SECONDS
        reports: list[tuple[int, float]] = [_wait(t, c, deadline) for c in pipes[:consumers]]
        for c in pipes[consumers:]:
            c.send("done")
    except BaseException:
        _reap(kill=True)
        raise
    finally:
        _reap()
        t.teardown(handle)
    total = sum(got for got, _ in reports)
    if total != each * producers:
        raise EndpointFailed(f"{t.label}: received {total} of {each * producers} messages")
    return total / (max(end for _, end in reports) - start)


def _object_producer(name: str, handle: object, n: int, ctl: Connection) -> None:
    t = _find(name)
    ep = t.producer(handle)
    arrays = _arrays()
    ctl.send("ready")
    ctl.recv()
    send = ep.send
    for i in range(n):
        send(arrays[i % ARRAYS])
    ctl.recv()
    ep.close()


def _object_consumer(name: str, handle: object, n: int, ctl: Connection) -> None:
    import numpy as np

    t = _find(name)
    ep = t.consumer(handle)
    expect = [(float(a[0]), float(a[-1])) for a in _arrays()]  # each array's first and last
    ctl.send("ready")
    ctl.recv()
    t0 = _now()
    recv = ep.recv
    for i in range(n):
        a: Any = recv()
        first, last = expect[i % ARRAYS]
        if a.shape != (ARRAY_LEN,) or a.dtype != np.float64 or a[0] != first or a[-1] != last:
            raise AssertionError(f"array {i} arrived wrong")
    ctl.send(_now() - t0)
    ep.close()


def throughput_objects(t: type[Transport]) -> float:
    """1 MB numpy arrays per second, one producer process to one consumer process."""
    n = max(ARRAYS_PER_REP // 100, 5) if QUICK else ARRAYS_PER_REP
    handle = t.setup()
    try:
        cons, prod = _start(t, [(_object_consumer, (handle, n)), (_object_producer, (handle, n))])
        cons.send("go")
        prod.send("go")
        elapsed: float = _wait(t, cons, _now() + STALL_SECONDS)
        prod.send("done")
    except BaseException:
        _reap(kill=True)
        raise
    finally:
        _reap()
        t.teardown(handle)
    return n / elapsed


# --- tables ----------------------------------------------------------------------------------


def _measure(
    label: str, fn: Callable[[], float], rows: list[Result], failed: list[str], what: str
) -> None:
    print(f"  {what}", file=sys.stderr, flush=True)
    try:
        rows.append(measure(label, fn, REPS, warmup=0))
    except (TimeoutError, EndpointFailed, OSError, EOFError) as e:  # said under the table
        print(f"  {what}: {e}", file=sys.stderr, flush=True)
        failed.append(str(e) if str(e).startswith(label) else f"{label}: {e}")


def _section(
    title: str,
    unit: str,
    rows: list[Result],
    ref_label: str,
    ref_name: str,
    notes: list[tuple[str, list[str]]],
) -> str:
    ref = next((r for r in rows if r.label == ref_label), None)
    out = table(title, unit, rows, ref, ref_name)
    for head, items in notes:
        if items:
            out += f"\n\n{head}: " + "; ".join(items) + "."
    return out


def _mode(mode: str) -> tuple[int, int]:
    """Producers and consumers of a mode: "2x2" -> (2, 2)."""
    p, _, c = mode.partition("x")
    if not (p.isdigit() and c.isdigit() and int(p) > 0 and int(c) > 0):
        raise SystemExit(f"MEMSPACE_BENCH_MODES: {mode!r} is not PxC (e.g. 2x2) nor numpy")
    return int(p), int(c)


def messages(mode: str, size: int) -> str:
    producers, consumers = _mode(mode)
    one_to_one = (producers, consumers) == (1, 1)
    rows: list[Result] = []
    skipped: list[str] = []
    failed: list[str] = []
    transports: list[type[Transport]] = [*MPMC, MemspaceRing] if one_to_one else MPMC
    for t in transports:
        if t.max_size is not None and size > t.max_size:
            why = f" ({t.max_size_reason})" if t.max_size_reason else ""
            skipped.append(f"{t.label} carries at most {t.max_size} B{why}")
            continue
        fn: Callable[[], float]
        if one_to_one:
            fn = functools.partial(throughput, t, size, count_for(size))
        else:
            fn = functools.partial(throughput_mpmc, t, size, producers, consumers)
        _measure(t.label, fn, rows, failed, f"{mode} {t.label} {size} B")
    return _section(
        f"{_label(size)} messages, {producers}P/{consumers}C",
        "msg/s",
        rows,
        FasterFifo.label,
        "faster-fifo",
        [("Skipped", skipped), ("Failed or stalled (no row)", failed)],
    )


def objects() -> str:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "Numpy objects: skipped (numpy is not installed)."
    rows: list[Result] = []
    failed: list[str] = []
    for t in [QueueObjects, MpQueueObjects]:
        fn = functools.partial(throughput_objects, t)
        _measure(t.label, fn, rows, failed, f"numpy {t.label}")
    return _section(
        "1 MB numpy float64 arrays, 1P/1C",
        "arrays/s",
        rows,
        MpQueueObjects.label,
        "multiprocessing.Queue",
        [("Failed or stalled (no row)", failed)],
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
            print(sections[-1] + "\n", flush=True)
            continue
        for size in sizes:
            sections.append(messages(mode, size))
            print(sections[-1] + "\n", flush=True)
    return "\n\n".join(sections)


if __name__ == "__main__":
    main()
