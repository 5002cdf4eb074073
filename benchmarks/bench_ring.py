"""One producer process, one consumer process: messages per second and 64 B round trips.

Every transport is driven the same way (benchmarks/channels.py): both ends run in freshly
spawned processes; the consumer times the arrival of N messages of one size from the moment
both are released, and checks each length. Batched transports move lists of up to 256
messages per call (at most a quarter of the channel's bytes). The ping-pong table times 64 B
round trips through two channels (one each way). The limit row is a plain in-process copy of
the same bytes (memcpy through Python, one call per message).

Run: python benchmarks/run.py ring
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection

from _harness import Result, measure, table
from channels import PEERS, QUEUES, RINGS, Endpoint, Transport

# MEMSPACE_BENCH_QUICK=1 shrinks every count (a smoke run that checks the drivers work).
QUICK = os.environ.get("MEMSPACE_BENCH_QUICK") == "1"
SIZES = [64, 1024, 64 << 10, 1 << 20]
BATCH = 256
REPS = 1 if QUICK else 5
ROUND_TRIPS = 200 if QUICK else 20_000
# A measurement that takes this long has wedged (a healthy one takes a few seconds).
STALL_SECONDS = 60


def batch_for(size: int) -> int:
    """Messages per batch: 256, but never more than a quarter of the channel's bytes (a batch
    that cannot fit wedges faster-fifo's put_many and serialises every transport)."""
    from channels import RING_BYTES

    return max(1, min(BATCH, RING_BYTES // 4 // (size + 64)))


def count_for(size: int) -> int:
    """Messages per repetition: about 0.1-1 s for the slower peers."""
    n = {64: 200_000, 1024: 100_000, 64 << 10: 8_000, 1 << 20: 500}[size]
    return max(n // 100, 5) if QUICK else n


def transports() -> list[type[Transport]]:
    return [*RINGS, *PEERS]


def _find(name: str) -> type[Transport]:
    for t in [*transports(), *QUEUES]:
        if t.__name__ == name:
            return t
    raise KeyError(name)


def send_all(t: type[Transport], ep: Endpoint, data: bytes, n: int, per: int) -> None:
    """Sends `data` n times: in batches of `per` for a batched transport, else one by one."""
    if t.batched:
        batch = [data] * per
        sent = 0
        while sent < n:
            k = min(per, n - sent)
            ep.send_many(batch if k == per else batch[:k])
            sent += k
    else:
        send = ep.send
        for _ in range(n):
            send(data)


def _producer(name: str, handle: object, size: int, n: int, ctl: Connection) -> None:
    t = _find(name)
    ep = t.producer(handle)
    data = os.urandom(size)
    ctl.send("ready")
    ctl.recv()
    send_all(t, ep, data, n, batch_for(size))
    ctl.recv()  # stay alive until the consumer has everything (queues flush from threads)
    ep.close()


def _consumer(name: str, handle: object, size: int, n: int, ctl: Connection) -> None:
    t = _find(name)
    ep = t.consumer(handle)
    ctl.send("ready")
    ctl.recv()
    t0 = time.perf_counter()
    got = 0
    if t.batched:
        per = batch_for(size)
        while got < n:
            for m in ep.recv_many(min(per, n - got)):
                if len(m) != size:
                    raise AssertionError("wrong length")
                got += 1
    else:
        recv = ep.recv
        for _ in range(n):
            if len(recv()) != size:
                raise AssertionError("wrong length")
    ctl.send(time.perf_counter() - t0)
    ep.close()


def _two_processes(
    t: type[Transport], targets: list[tuple[object, tuple[object, ...]]]
) -> list[Connection]:
    """Starts one process per target with a control pipe each; returns the pipes once every
    process has said it is ready. Both ends run in fresh processes, so no transport's state
    lingers into the next measurement."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for target, args in targets:
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=target, args=(t.__name__, *args, theirs))
        p.start()
        pipes.append(mine)
        procs.append(p)
    for c in pipes:
        if not c.poll(120):
            raise TimeoutError(f"{t.label}: an endpoint did not start")
        assert c.recv() == "ready"
    _PROCS.extend(procs)
    return pipes


_PROCS: list[mp.process.BaseProcess] = []


def _reap() -> None:
    for p in _PROCS:
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    _PROCS.clear()


def throughput(t: type[Transport], size: int, n: int | None = None) -> float:
    """Messages per second, `n` messages (default: count_for(size))."""
    n = count_for(size) if n is None else n
    handle = t.setup()
    try:
        cons, prod = _two_processes(
            t, [(_consumer, (handle, size, n)), (_producer, (handle, size, n))]
        )
        cons.send("go")
        prod.send("go")
        if not cons.poll(STALL_SECONDS):
            raise TimeoutError(f"{t.label}: {size} B stalled")
        elapsed: float = cons.recv()
        prod.send("done")
    finally:
        _reap()
        t.teardown(handle)
    return n / elapsed


def _echo(name: str, h_in: object, h_out: object, n: int, ctl: Connection) -> None:
    t = _find(name)
    ep_in, ep_out = t.consumer(h_in), t.producer(h_out)
    ctl.send("ready")
    for _ in range(n):
        ep_out.send(ep_in.recv())
    ctl.recv()
    ep_in.close()
    ep_out.close()


def _ping(name: str, h_out: object, h_in: object, n: int, ctl: Connection) -> None:
    t = _find(name)
    ep_out, ep_in = t.producer(h_out), t.consumer(h_in)
    ctl.send("ready")
    ctl.recv()
    msg = os.urandom(64)
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        ep_out.send(msg)
        ep_in.recv()
        out.append((clock() - t0) / 1000)
    ctl.send(out)
    ep_out.close()
    ep_in.close()


def ping_pong(t: type[Transport]) -> list[float]:
    """Round-trip times in microseconds."""
    h_there, h_back = t.setup(), t.setup()
    try:
        ping, echo = _two_processes(
            t, [(_ping, (h_there, h_back, ROUND_TRIPS)), (_echo, (h_there, h_back, ROUND_TRIPS))]
        )
        ping.send("go")
        if not ping.poll(STALL_SECONDS):
            raise TimeoutError(f"{t.label}: ping-pong stalled")
        out: list[float] = ping.recv()
        echo.send("done")
    finally:
        _reap()
        t.teardown(h_there)
        t.teardown(h_back)
    return out[ROUND_TRIPS // 10 :]  # drop the warm-up tenth


def _limit(size: int) -> float:
    n = count_for(size)
    src = os.urandom(size)
    buf = bytearray(size)
    view = memoryview(buf)
    t0 = time.perf_counter()
    for _ in range(n):
        view[:] = src
    return n / (time.perf_counter() - t0)


def main() -> str:
    sections = []
    stalled: list[str] = []
    for size in SIZES:
        rows: list[Result] = [
            measure(
                "limit: in-process copy, one Python call per message",
                lambda s=size: _limit(s),
                REPS,
            )
        ]
        for t in transports():
            if t.max_size is not None and size > t.max_size:
                continue
            print(f"  {t.label} {size} B", file=sys.stderr, flush=True)
            try:
                rows.append(measure(t.label, lambda t=t, s=size: throughput(t, s), REPS, warmup=0))
            except TimeoutError as e:  # a peer that wedges is reported, not waited for forever
                stalled.append(f"{t.label} at {size} B: {e}")
        ref = next((r for r in rows if r.label.startswith("membridge")), None)
        label = f"{size} B" if size < 1024 else f"{size >> 10} KiB" if size < 1 << 20 else "1 MiB"
        sections.append(table(f"{label} messages", "msg/s", rows, ref, "membridge"))

    lat_lines = ["| 64 B round trip | median us | p99 us | min us |", "|---|---:|---:|---:|"]
    for t in transports():
        if t.zero_copy or t.batched:
            continue  # a round trip is one message each way: single put/get only
        print(f"  ping-pong {t.label}", file=sys.stderr, flush=True)
        try:
            rt = sorted(ping_pong(t))
        except TimeoutError as e:
            stalled.append(f"{t.label} ping-pong: {e}")
            continue
        p99 = rt[int(len(rt) * 0.99)]
        lat_lines.append(f"| {t.label} | {statistics.median(rt):.1f} | {p99:.1f} | {rt[0]:.1f} |")
    sections.append("\n".join(lat_lines))
    if stalled:
        sections.append("Stalled (no row): " + "; ".join(stalled))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
