"""Segment bandwidth and numpy transfer between processes, side by side with the peers.

Peers: multiprocessing.shared_memory (same memory, the standard library's face), and for the
two-process transfer also multiprocessing.Queue and multiprocessing.Pipe. The limit row is a
plain numpy copy between two private, prefaulted buffers of the same size (memcpy).

Run: python benchmarks/run.py shm   (or python benchmarks/bench_shm.py)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import memspace
import numpy as np
from _harness import QUICK, Result, measure, rate, table

# `--quick` (MEMSPACE_BENCH_QUICK=1): 32 MiB, 8 frames, one repetition; figures mean nothing.
BIG = (32 if QUICK else 256) << 20  # 256 MiB, the goal size
FRAME = 8 << 20  # two-process transfer: 8 MiB arrays
FRAMES = 8 if QUICK else 64  # 512 MiB per repetition
SLOTS = 4
REPS = 1 if QUICK else 7


def _name(tag: str) -> str:
    return f"/memspace-bench-{tag}-{os.getpid()}"


def _stdlib_shm(size: int) -> shared_memory.SharedMemory:
    return shared_memory.SharedMemory(create=True, size=size)


def bandwidth() -> str:
    src = np.random.default_rng(1).integers(0, 255, BIG, dtype=np.uint8)
    dst = np.empty_like(src)
    dst[:] = 1  # prefault
    rows: list[Result] = []
    limit = measure(
        "memcpy limit: numpy copy, private prefaulted memory",
        rate(BIG, lambda: np.copyto(dst, src)),
        REPS,
    )
    rows.append(limit)

    shm = memspace.SharedMemory.create(_name("bw"), BIG)
    try:
        arr = shm.ndarray(np.uint8, BIG)
        buf = shm.buf
        dst_mv = memoryview(dst)
        src_mv = memoryview(src)
        rows.append(
            measure(
                "memspace write, `ndarray` (numpy copy in)",
                rate(BIG, lambda: np.copyto(arr, src)),
                REPS,
            )
        )
        rows.append(
            measure(
                "memspace read, `ndarray` (numpy copy out)",
                rate(BIG, lambda: np.copyto(dst, arr)),
                REPS,
            )
        )

        def buf_write() -> None:
            buf[:] = src_mv

        def buf_read() -> None:
            dst_mv[:] = buf

        rows.append(
            measure("memspace write, `buf[:] = ...` (memoryview)", rate(BIG, buf_write), REPS)
        )
        rows.append(measure("memspace read, `... = buf` (memoryview)", rate(BIG, buf_read), REPS))
        rows.append(
            measure(
                "memspace `write(0, data)` (GIL released)",
                rate(BIG, lambda: shm.write(0, src)),
                REPS,
            )
        )
        rows.append(measure("memspace `read()` into a new bytes", rate(BIG, shm.read), REPS))
        buf.release()
        dst_mv.release()
        src_mv.release()
    finally:
        shm.close()
        shm.unlink()

    std = _stdlib_shm(BIG)
    try:
        sarr = np.ndarray((BIG,), np.uint8, buffer=std.buf)
        rows.append(
            measure(
                "multiprocessing.shared_memory write, ndarray",
                rate(BIG, lambda: np.copyto(sarr, src)),
                REPS,
            )
        )
        rows.append(
            measure(
                "multiprocessing.shared_memory read, ndarray",
                rate(BIG, lambda: np.copyto(dst, sarr)),
                REPS,
            )
        )
    finally:
        std.close()
        std.unlink()

    def first_touch_memspace() -> float:
        t0 = time.perf_counter()
        s = memspace.SharedMemory.create(_name("ft"), BIG)
        a = s.ndarray(np.uint8, BIG)
        np.copyto(a, src)
        t = time.perf_counter() - t0
        del a
        s.close()
        s.unlink()
        return BIG / t / 1e9

    def first_touch_stdlib() -> float:
        t0 = time.perf_counter()
        s = _stdlib_shm(BIG)
        a = np.ndarray((BIG,), np.uint8, buffer=s.buf)
        np.copyto(a, src)
        t = time.perf_counter() - t0
        del a
        s.close()
        s.unlink()
        return BIG / t / 1e9

    rows.append(measure("memspace create + first write (page faults)", first_touch_memspace, REPS))
    rows.append(
        measure("multiprocessing.shared_memory create + first write", first_touch_stdlib, REPS)
    )
    return table(f"{BIG >> 20} MiB, one process", "GB/s", rows, limit, "memcpy")


# --- two processes ----------------------------------------------------------------------------


def _sample(frame: Any) -> int:
    return int(frame.reshape(-1).view(np.uint64)[::512].sum())


def _slot_producer(kind: str, name: str, free: Connection, full: Connection) -> None:
    src = np.random.default_rng(2).integers(0, 255, FRAME, dtype=np.uint8)
    if kind == "memspace":
        seg: Any = memspace.SharedMemory.open(name)
        views = [seg.ndarray(np.uint8, FRAME, offset=i * FRAME) for i in range(SLOTS)]
    else:
        # Spawned children share the parent's resource tracker, which the parent's unlink()
        # settles; unregistering here would make the tracker complain.
        seg = shared_memory.SharedMemory(name=name)
        views = [
            np.ndarray((FRAME,), np.uint8, buffer=seg.buf, offset=i * FRAME) for i in range(SLOTS)
        ]
    full.send("ready")
    for _ in range(FRAMES):
        slot = free.recv()
        np.copyto(views[slot], src)
        full.send(slot)
    del views
    seg.close()


def _slot_transfer(kind: str) -> float:
    ctx = mp.get_context("spawn")
    free_r, free_w = ctx.Pipe(duplex=False)
    full_r, full_w = ctx.Pipe(duplex=False)
    if kind == "memspace":
        seg: Any = memspace.SharedMemory.create(_name("xfer"), SLOTS * FRAME)
        name = seg.name
        views = [seg.ndarray(np.uint8, FRAME, offset=i * FRAME) for i in range(SLOTS)]
    else:
        seg = _stdlib_shm(SLOTS * FRAME)
        name = seg.name
        views = [
            np.ndarray((FRAME,), np.uint8, buffer=seg.buf, offset=i * FRAME) for i in range(SLOTS)
        ]
    p = ctx.Process(target=_slot_producer, args=(kind, name, free_r, full_w))
    p.start()
    try:
        assert full_r.recv() == "ready"
        t0 = time.perf_counter()
        for s in range(SLOTS):
            free_w.send(s)
        for _ in range(FRAMES):
            slot = full_r.recv()
            _sample(views[slot])
            free_w.send(slot)
        elapsed = time.perf_counter() - t0
        p.join()
    finally:
        del views
        seg.close()
        seg.unlink()
    return FRAMES * FRAME / elapsed / 1e9


def _queue_producer(q: Any, ready: Connection) -> None:
    src = np.random.default_rng(2).integers(0, 255, FRAME, dtype=np.uint8)
    ready.send("ready")
    for _ in range(FRAMES):
        q.put(src)


def _queue_transfer() -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=SLOTS)
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_queue_producer, args=(q, w))
    p.start()
    assert r.recv() == "ready"
    t0 = time.perf_counter()
    for _ in range(FRAMES):
        _sample(q.get())
    elapsed = time.perf_counter() - t0
    p.join()
    q.close()
    q.join_thread()
    return FRAMES * FRAME / elapsed / 1e9


def _pipe_producer(conn: Connection) -> None:
    src = np.random.default_rng(2).integers(0, 255, FRAME, dtype=np.uint8)
    conn.send_bytes(b"ready")
    for _ in range(FRAMES):
        conn.send_bytes(src)


def _pipe_transfer() -> float:
    ctx = mp.get_context("spawn")
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_pipe_producer, args=(w,))
    p.start()
    assert r.recv_bytes() == b"ready"
    t0 = time.perf_counter()
    for _ in range(FRAMES):
        _sample(np.frombuffer(r.recv_bytes(), np.uint8))
    elapsed = time.perf_counter() - t0
    p.join()
    return FRAMES * FRAME / elapsed / 1e9


def transfer() -> str:
    rows = [
        measure(
            "memspace.SharedMemory, 4 slots, read in place",
            lambda: _slot_transfer("memspace"),
            REPS,
        ),
        measure(
            "multiprocessing.shared_memory, same protocol", lambda: _slot_transfer("stdlib"), REPS
        ),
        measure("multiprocessing.Pipe send_bytes/recv_bytes", _pipe_transfer, REPS),
        measure("multiprocessing.Queue (pickle)", _queue_transfer, REPS),
    ]
    return table(
        f"{FRAMES} numpy arrays of {FRAME >> 20} MiB, producer process -> consumer process",
        "GB/s",
        rows,
        rows[-1],
        "multiprocessing.Queue",
    )


def main() -> str:
    return "\n\n".join([bandwidth(), transfer()])


if __name__ == "__main__":
    print(main())
