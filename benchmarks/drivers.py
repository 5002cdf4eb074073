"""Processes, clocks and floors for the channel benchmarks (bench_ring, bench_queue,
bench_broadcast, bench_aio).

Every measuring process is spawned afresh for every repetition, opens its end, compiles its
loop (benchmarks/loops.py, the same template for every transport), says it is ready and waits
to be released; so no transport's state lingers into the next measurement and no compile or
open time is measured. What a figure is clocked from is said by each function here.

The floors run in this process: the same receive loop with a statement that is no transport at
all, so that a row can be read as a multiple of what the interpreter itself costs.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import loops
from _harness import QUICK, Result, measure
from channels import RING_BYTES, End, Transport, find

# A measurement that takes this long has wedged (a healthy one takes a few seconds).
STALL_SECONDS = 60
END = b""  # an end marker: every measured size is > 0, so its length tells it apart
BATCH = 256


class EndpointFailed(RuntimeError):
    """A process of a measurement died, or the counts did not add up."""


def now() -> float:
    """CLOCK_MONOTONIC is one clock for the whole machine: stamps from different processes
    can be compared."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def batch_for(size: int) -> int:
    """Messages per batch: 256, but never more than a quarter of the channel's bytes (a batch
    that cannot fit wedges faster-fifo's put_many and serialises every transport)."""
    return max(1, min(BATCH, RING_BYTES // 4 // (size + 64)))


def size_label(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size >> 10} KiB" if size < 1 << 20 else "1 MiB"


# --- processes -----------------------------------------------------------------------------

_PROCS: list[mp.process.BaseProcess] = []


def _start(
    t: type[Transport], targets: list[tuple[Callable[..., None], tuple[Any, ...]]]
) -> list[Connection]:
    """One fresh process per target, with a control pipe each; returns the pipes once every
    process has opened its end and said so."""
    ctx = mp.get_context("spawn")
    pipes = []
    for target, args in targets:
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=target, args=(t.__name__, *args, theirs))
        p.start()
        _PROCS.append(p)
        pipes.append(mine)
    deadline = now() + 120
    for c in pipes:
        if _wait(t, c, deadline) != "ready":
            raise EndpointFailed(f"{t.label}: an endpoint failed to start")
    return pipes


def _wait(t: type[Transport], c: Connection, deadline: float) -> Any:
    """The next report on `c`; fails early if one of the processes died."""
    while not c.poll(min(1.0, max(0.0, deadline - now()))):
        if now() >= deadline:
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


def _run(
    t: type[Transport],
    handles: list[Any],
    targets: list[tuple[Callable[..., None], tuple[Any, ...]]],
    reporters: int,
) -> tuple[float, list[Any]]:
    """Starts the targets, releases them all at once and collects one report from each of
    the first `reporters`; then tells the others they may go. Returns the release stamp and
    the reports. Tears the handles down whatever happens."""
    try:
        pipes = _start(t, targets)
        start = now()
        for c in pipes:
            c.send("go")
        deadline = start + STALL_SECONDS
        reports = [_wait(t, c, deadline) for c in pipes[:reporters]]
        for c in pipes[reporters:]:
            c.send("done")
    except BaseException:
        _reap(kill=True)
        raise
    finally:
        _reap()
        for h in handles:
            t.teardown(h)
    return start, reports


# --- what the measuring processes run ------------------------------------------------------


def _producer(
    name: str, handle: Any, size: int, n: int, per: int, markers: int, ctl: Connection
) -> None:
    t = find(name)
    end = t.producer(handle)
    m = os.urandom(size)
    if t.batched:
        send_many = loops.batch_sender(t, end)
        ctl.send("ready")
        ctl.recv()
        send_many(n, m, size, per)
        if markers:
            send_many(markers, END, 0, markers)
    else:
        send = loops.sender(t, end)
        ctl.send("ready")
        ctl.recv()
        send(n, m, size)
        if markers:
            send(markers, END, 0)
    ctl.recv()  # stay alive until the consumers have everything (some flush from threads)
    end.close()


def _consumer(name: str, handle: Any, size: int, n: int, per: int, ctl: Connection) -> None:
    """Receives n messages; reports (its release, its last message) on CLOCK_MONOTONIC."""
    t = find(name)
    end = t.consumer(handle)
    if t.batched:
        recv_many = loops.batch_receiver(t, end)
        ctl.send("ready")
        ctl.recv()
        t0 = now()
        recv_many(n, size, per)
    else:
        recv = loops.receiver(t, end)
        ctl.send("ready")
        ctl.recv()
        t0 = now()
        recv(n, size)
    ctl.send((t0, now()))
    end.close()


def _mpmc_consumer(
    name: str, handle: Any, size: int, producers: int, per: int, ctl: Connection
) -> None:
    """Counts messages until it has seen `producers` end markers; reports (count, when)."""
    t = find(name)
    end = t.consumer(handle)
    if t.batched:
        count_many = loops.batch_end_counter(t, end)
        ctl.send("ready")
        ctl.recv()
        got, ends = count_many(size, producers, per)
    else:
        count = loops.end_counter(t, end)
        ctl.send("ready")
        ctl.recv()
        got, ends = count(size, producers)
    stamp = now()
    if ends > producers:  # a list took markers meant for another consumer: hand them back
        back = t.producer(handle)
        loops.batch_sender(t, back)(ends - producers, END, 0, ends - producers)
        back.close()
    ctl.send((got, stamp))
    end.close()


def _ping(name: str, h_out: Any, h_in: Any, n: int, ctl: Connection) -> None:
    t = find(name)
    out, back = t.producer(h_out), t.consumer(h_in)
    ping = loops.pinger(t, out, back)
    m = os.urandom(64)
    ctl.send("ready")
    ctl.recv()
    times: list[int] = []
    ping(n, m, 64, time.perf_counter_ns, times)
    ctl.send([x / 1000 for x in times])
    out.close()
    back.close()


def _echo(name: str, h_in: Any, h_out: Any, n: int, ctl: Connection) -> None:
    t = find(name)
    back, out = t.consumer(h_in), t.producer(h_out)
    echo = loops.echoer(t, back, out)
    m = os.urandom(64)
    ctl.send("ready")
    ctl.recv()
    echo(n, m, 64)
    ctl.recv()
    back.close()
    out.close()


ARRAY_LEN = 125_000  # float64: 1,000,000 bytes
ARRAYS = 4


def arrays() -> list[Any]:
    import numpy as np

    return [np.random.default_rng(k).random(ARRAY_LEN) for k in range(ARRAYS)]


def _object_producer(name: str, handle: Any, n: int, ctl: Connection) -> None:
    t = find(name)
    end = t.producer(handle)
    send = loops.object_sender(t, end)
    objs = arrays()
    ctl.send("ready")
    ctl.recv()
    send(n, objs)
    ctl.recv()
    end.close()


def _object_consumer(name: str, handle: Any, n: int, ctl: Connection) -> None:
    import numpy as np

    t = find(name)
    end = t.consumer(handle)
    recv = loops.object_receiver(t, end)
    objs = arrays()
    firsts, lasts = [float(a[0]) for a in objs], [float(a[-1]) for a in objs]
    ctl.send("ready")
    ctl.recv()
    t0 = now()
    recv(n, (ARRAY_LEN,), np.dtype(np.float64), firsts, lasts)
    ctl.send((t0, now()))
    end.close()


def _aio_consumer(name: str, handle: Any, size: int, n: int, ctl: Connection) -> None:
    t = find(name)

    async def main() -> tuple[float, float]:
        end = t.consumer(handle)  # inside the running loop: it may need the loop
        recv = loops.receiver(t, end)
        ctl.send("ready")
        ctl.recv()  # blocks the loop, but nothing runs on it yet
        t0 = now()
        await recv(n, size)
        stamps = (t0, now())
        end.close()
        return stamps

    ctl.send(asyncio.run(main()))


# --- measurements (parent side) ------------------------------------------------------------


def throughput(t: type[Transport], size: int, n: int) -> float:
    """Messages per second, one producer process to one consumer process: n messages, from
    the consumer's release to its last message."""
    h = t.setup(size)
    per = batch_for(size)
    _, [(t0, t1)] = _run(
        t,
        [h],
        [(_consumer, (h, size, n, per)), (_producer, (h, size, n, per, 0))],
        reporters=1,
    )
    return n / (t1 - t0)


def throughput_mpmc(t: type[Transport], size: int, n: int, producers: int, consumers: int) -> float:
    """Messages per second through one channel shared by `producers` producer processes and
    `consumers` consumer processes, from their common release until the last consumer is
    done. Each producer sends n // producers messages, then one end marker per consumer."""
    each = n // producers
    per = batch_for(size)
    h = t.setup(size, consumers)
    start, reports = _run(
        t,
        [h],
        [(_mpmc_consumer, (h, size, producers, per))] * consumers
        + [(_producer, (h, size, each, per, consumers))] * producers,
        reporters=consumers,
    )
    total = sum(got for got, _ in reports)
    if total != each * producers:
        raise EndpointFailed(f"{t.label}: received {total} of {each * producers} messages")
    return total / (max(stamp for _, stamp in reports) - start)


def broadcast(t: type[Transport], size: int, n: int, subscribers: int) -> float:
    """Messages per second that each subscriber receives: one publisher process sends n
    messages, every one of `subscribers` processes receives all n; from the common release
    until the last subscriber has its last message."""
    h = t.setup(size, subscribers)
    start, reports = _run(
        t,
        [h],
        [(_consumer, (h, size, n, 1))] * subscribers + [(_producer, (h, size, n, 1, 0))],
        reporters=subscribers,
    )
    return n / (max(t1 for _, t1 in reports) - start)


def ping_pong(t: type[Transport], n: int) -> list[float]:
    """64 B round-trip times in microseconds (the warm-up tenth dropped) through two channels,
    one each way."""
    there, back = t.setup(64), t.setup(64)
    _, [out] = _run(
        t,
        [there, back],
        [(_ping, (there, back, n)), (_echo, (there, back, n))],
        reporters=1,
    )
    times: list[float] = out
    return times[n // 10 :]


def objects(t: type[Transport], n: int) -> float:
    """1 MB numpy arrays per second, one producer process to one consumer process, clocked as
    `throughput`."""
    h = t.setup(1 << 20)
    _, [(t0, t1)] = _run(
        t, [h], [(_object_consumer, (h, n)), (_object_producer, (h, n))], reporters=1
    )
    return n / (t1 - t0)


def aio_throughput(t: type[Transport], size: int, n: int) -> float:
    """Messages per second into a consumer that awaits each one in an asyncio loop; the
    producer process sends with the transport's synchronous SEND. Clocked as `throughput`."""
    h = t.setup(size)
    _, [(t0, t1)] = _run(
        t, [h], [(_aio_consumer, (h, size, n)), (_producer, (h, size, n, 1, 0))], reporters=1
    )
    return n / (t1 - t0)


# --- floors: the same receive loop, no transport --------------------------------------------


class FloorLoop(Transport):
    label = "floor: the loop alone (`k = len(x)`, compare)"
    RECV = "k = len(x)"

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"x": os.urandom(handle)})


class FloorGetter(Transport):
    label = "floor: + a no-op PyO3 getter (memspace `ring.capacity`)"
    RECV = """
ring.capacity
k = len(x)
"""

    @staticmethod
    def consumer(handle: Any) -> End:
        import memspace

        name = f"/ms-bench-floor-{os.getpid()}-{os.urandom(3).hex()}"
        ring = memspace.Ring.create(name, 4096)

        def close() -> None:
            ring.close()
            memspace.Ring.remove(name)

        return End({"ring": ring, "x": os.urandom(handle)}, close=close)


class FloorMethod(Transport):
    label = "floor: + a no-op PyO3 method call (membridge `ring.capacity()`)"
    RECV = """
capacity()
k = len(x)
"""

    @staticmethod
    def available() -> bool:
        from channels import Membridge

        return Membridge.available()

    @staticmethod
    def consumer(handle: Any) -> End:
        import membridge

        name = f"/mb-bench-floor-{os.getpid()}-{os.urandom(3).hex()}"
        shm = membridge.SharedMemory.create(name, 4096 + 24)
        ring = shm.spsc()
        return End(
            {"capacity": ring.capacity, "x": os.urandom(handle)},
            close=lambda: membridge.SharedMemory.remove(name),
            keep=[shm, ring],
        )


class FloorSlice(Transport):
    """The cheapest new bytes of the message size from Python: a slice of a longer bytes (one
    allocation and one memcpy, no buffer protocol)."""

    label = "floor: a new bytes of the message size (`k = len(x[:size])`)"
    RECV = "k = len(x[:size])"

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"x": os.urandom(handle + 1)})


class FloorBytes(Transport):
    """The same through the buffer protocol, as `bytes(view)` of a received memoryview."""

    label = "floor: a new bytes from a memoryview (`k = len(bytes(v))`)"
    RECV = "k = len(bytes(v))"

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"v": memoryview(bytearray(os.urandom(handle)))})


class LimitCopy(Transport):
    label = "limit: copy into a buffer in-process (`w[:] = x`)"
    RECV = """
w[:] = x
k = len(x)
"""

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"w": memoryview(bytearray(handle)), "x": os.urandom(handle)})


FLOORS: list[type[Transport]] = [
    FloorLoop,
    FloorGetter,
    FloorMethod,
    FloorSlice,
    FloorBytes,
    LimitCopy,
]


def _floor_rate(t: type[Transport], size: int, n: int) -> float:
    end = t.consumer(size)
    try:
        recv = loops.receiver(t, end)
        t0 = time.perf_counter()
        recv(n, size)
        return n / (time.perf_counter() - t0)
    finally:
        end.close()


def floors(size: int, n: int, reps: int) -> list[Result]:
    """The floor rows of one message size, measured here and now."""
    return [
        measure(f.label, lambda f=f: _floor_rate(f, size, n), reps) for f in FLOORS if f.available()
    ]


def floor_refs(rows: list[Result]) -> list[tuple[str, Result]]:
    """The floors a table divides every row's cost by: one native call (membridge's no-op
    method where it is installed, else memspace's getter) and a new bytes of the size (the
    slice)."""
    by = {r.label: r for r in rows}
    call = by.get(FloorMethod.label) or by.get(FloorGetter.label)
    out = [("call floor", call)] if call else []
    if FloorSlice.label in by:
        out.append(("bytes floor", by[FloorSlice.label]))
    return out


def quick_count(n: int, least: int = 10) -> int:
    """A smoke run's count: a hundredth."""
    return max(n // 100, least) if QUICK else n
