"""``memspace demo``: move data from one process to another, and compare.

1. Frames: a producer process renders video frames straight into slots of one shared-memory
   segment; this process reads each frame in place (a numpy view, no copy) and checks it. Only
   slot numbers travel through a pipe. The same frames are then sent through
   ``multiprocessing.Queue`` (which pickles and copies every frame through a pipe).
2. Ticks: a producer process sends small 64-byte records through a :class:`memspace.Ring`, one
   `put` at a time and in batches (`put_many`/`get_many`); this process checks every sequence
   number. The same records then go through ``multiprocessing.Queue``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from memspace import Ring, SharedMemory

__all__ = ["run"]

SLOTS = 4
SOURCES = 8
_SAMPLE = 512  # verify one uint64 in every 512 (one per 4 KiB page, so every page is touched)


def _sources(np: Any, shape: tuple[int, int, int], seed: int) -> list[Any]:
    """A few distinct frames the producer cycles through (a moving gradient plus noise)."""
    rng = np.random.default_rng(seed)
    h, w, _ = shape
    ys, xs = np.mgrid[0:h, 0:w]
    frames = []
    for k in range(SOURCES):
        base = ((xs + ys + 37 * k) % 256).astype(np.uint8)
        frame = np.stack([base, base[::-1], np.roll(base, 97 * k, axis=1)], axis=-1)
        frame ^= rng.integers(0, 8, size=shape, dtype=np.uint8)
        frames.append(np.ascontiguousarray(frame))
    return frames


def _checksum(np: Any, frame: Any) -> int:
    return int(frame.reshape(-1).view(np.uint64)[::_SAMPLE].sum())


def _shm_producer(
    name: str, shape: tuple[int, int, int], frames: int, free: Connection, full: Connection
) -> None:
    import numpy as np

    sources = _sources(np, shape, seed=frames)
    full.send([_checksum(np, s) for s in sources])
    with SharedMemory.open(name) as shm:
        frame_bytes = int(np.prod(shape))
        slots = [shm.ndarray(np.uint8, shape, offset=i * frame_bytes) for i in range(SLOTS)]
        for i in range(frames):
            slot = free.recv()
            np.copyto(slots[slot], sources[i % SOURCES])  # render into shared memory
            full.send((slot, i))
        del slots


def _queue_producer(q: Any, shape: tuple[int, int, int], frames: int, ready: Connection) -> None:
    import numpy as np

    sources = _sources(np, shape, seed=frames)
    ready.send([_checksum(np, s) for s in sources])
    for i in range(frames):
        q.put((i, sources[i % SOURCES]))


class _Progress:
    """A one-line progress bar on stderr (plain final line when not a terminal).

    Shows GB/s when given the bytes per item, items per second otherwise.
    """

    def __init__(self, label: str, total: int, frame_bytes: int = 0) -> None:
        self.label, self.total, self.frame_bytes = label, total, frame_bytes
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and (not self.tty or now - self.last < 0.05):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        if self.frame_bytes:
            shown = f"{done * self.frame_bytes / elapsed / 1e9:6.2f} GB/s"
        else:
            shown = f"{done / elapsed / 1e6:6.2f} M msg/s"
        width = 30
        fill = int(width * done / self.total)
        bar = "█" * fill + "·" * (width - fill)
        end = "\n" if force else ""
        prefix = "\r" if self.tty else ""
        sys.stderr.write(f"{prefix}  {self.label:<40} [{bar}] {done:>8}/{self.total}  {shown}{end}")
        sys.stderr.flush()


def _run_shm(np: Any, shape: tuple[int, int, int], frames: int) -> float:
    frame_bytes = int(np.prod(shape))
    name = f"/memspace-demo-{os.getpid()}"
    ctx = mp.get_context("spawn")
    free_recv, free_send = ctx.Pipe(duplex=False)
    full_recv, full_send = ctx.Pipe(duplex=False)
    with SharedMemory.create(name, SLOTS * frame_bytes, auto_unlink=True) as shm:
        producer = ctx.Process(
            target=_shm_producer, args=(name, shape, frames, free_recv, full_send), daemon=True
        )
        producer.start()
        try:
            sums = full_recv.recv()  # the producer is ready
            views = [shm.ndarray(np.uint8, shape, offset=i * frame_bytes) for i in range(SLOTS)]
            progress = _Progress("memspace.SharedMemory (zero-copy)", frames, frame_bytes)
            for slot in range(SLOTS):
                free_send.send(slot)
            for done in range(1, frames + 1):
                slot, i = full_recv.recv()
                if _checksum(np, views[slot]) != sums[i % SOURCES]:  # read in place
                    raise RuntimeError(f"frame {i} arrived corrupted")
                free_send.send(slot)
                progress.update(done)
            elapsed = time.perf_counter() - progress.start
            progress.update(frames, force=True)
            del views
            producer.join(30)
        finally:
            if producer.is_alive():
                producer.terminate()
                producer.join()
    return frames * frame_bytes / elapsed / 1e9


def _run_queue(np: Any, shape: tuple[int, int, int], frames: int) -> float:
    frame_bytes = int(np.prod(shape))
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=SLOTS)
    ready_recv, ready_send = ctx.Pipe(duplex=False)
    producer = ctx.Process(target=_queue_producer, args=(q, shape, frames, ready_send), daemon=True)
    producer.start()
    try:
        sums = ready_recv.recv()
        progress = _Progress("multiprocessing.Queue (pickled copies)", frames, frame_bytes)
        for done in range(1, frames + 1):
            i, frame = q.get(timeout=60)
            if _checksum(np, frame) != sums[i % SOURCES]:
                raise RuntimeError(f"frame {i} arrived corrupted")
            progress.update(done)
        elapsed = time.perf_counter() - progress.start
        progress.update(frames, force=True)
        producer.join(30)
    finally:
        if producer.is_alive():
            producer.terminate()
            producer.join()
        q.close()
        q.join_thread()
    return frames * frame_bytes / elapsed / 1e9


_TICK = struct.Struct("=Qdd40x")  # sequence number, price, size: 64 bytes


def _tick(i: int) -> bytes:
    return _TICK.pack(i, 100.0 + (i % 1000) / 100, float(i % 7))


def _ring_producer(name: str, n: int, batch: int) -> None:
    ring = Ring.open(name, role="producer")
    if batch == 1:
        put = ring.put
        for i in range(n):
            put(_tick(i))
    else:
        for start in range(0, n, batch):
            ring.put_many([_tick(i) for i in range(start, min(start + batch, n))])
    ring.close()


def _run_ring(n: int, batch: int) -> float:
    label = "memspace.Ring put/get" if batch == 1 else "memspace.Ring put_many/get_many"
    name = f"/memspace-demo-ring-{os.getpid()}"
    ctx = mp.get_context("spawn")
    ring = Ring.create(name, 1 << 20)
    try:
        # Open the consumer side first; the producer starts sending as soon as it runs.
        rx = Ring.open(name, role="consumer")
        producer = ctx.Process(target=_ring_producer, args=(name, n, batch), daemon=True)
        producer.start()
        first = rx.get(timeout=60)  # the clock starts at the first message
        progress = _Progress(label, n)
        expected = 1
        if _TICK.unpack(first)[0] != 0:
            raise RuntimeError("tick 0 arrived out of order")
        while expected < n:
            for m in rx.get_many(4096, timeout=60) if batch > 1 else [rx.get(timeout=60)]:
                if _TICK.unpack_from(m)[0] != expected:
                    raise RuntimeError(f"tick {expected} arrived out of order")
                expected += 1
            if expected % 16384 < 4096:
                progress.update(expected)
        elapsed = time.perf_counter() - progress.start
        progress.update(n, force=True)
        producer.join(30)
        rx.close()
    finally:
        ring.close()
        Ring.remove(name)
    return n / elapsed


def _queue_tick_producer(q: Any, n: int) -> None:
    for i in range(n):
        q.put(_tick(i))


def _run_queue_ticks(n: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=10000)
    producer = ctx.Process(target=_queue_tick_producer, args=(q, n), daemon=True)
    producer.start()
    try:
        q.get(timeout=60)
        progress = _Progress("multiprocessing.Queue put/get", n)
        for done in range(1, n):
            if _TICK.unpack_from(q.get(timeout=60))[0] != done:
                raise RuntimeError(f"tick {done} arrived out of order")
            if done % 16384 == 0:
                progress.update(done)
        elapsed = time.perf_counter() - progress.start
        progress.update(n, force=True)
        producer.join(30)
    finally:
        if producer.is_alive():
            producer.terminate()
            producer.join()
        q.close()
        q.join_thread()
    return n / elapsed


def run_ticks(ticks: int = 2_000_000, baseline: bool = True) -> None:
    """The ring stage: small records between two processes."""
    print(
        f"\nTicks: {ticks:,} records of 64 bytes from a producer process, "
        "every one checked in order."
    )
    single = _run_ring(ticks // 4, 1)
    batched = _run_ring(ticks, 256)
    if not baseline:
        print(
            f"memspace.Ring: {single / 1e6:.2f} M msg/s single, {batched / 1e6:.2f} M msg/s batched"
        )
        return
    queued = _run_queue_ticks(max(1, ticks // 20))
    print(
        f"memspace.Ring moved ticks {single / queued:.1f}x faster than multiprocessing.Queue one "
        f"at a time and {batched / queued:.1f}x faster in batches ({single / 1e6:.2f} and "
        f"{batched / 1e6:.2f} vs {queued / 1e6:.2f} M msg/s, measured in this run)."
    )


def run(
    frames: int = 600,
    width: int = 1920,
    height: int = 1080,
    baseline: bool = True,
    ticks: int = 2_000_000,
) -> int:
    """Run the demo; returns a process exit status."""
    try:
        import numpy as np
    except ImportError:
        print("memspace demo needs numpy: pip install 'memspace[demo]'", file=sys.stderr)
        return 1
    if frames < 1 or width < 8 or height < 8 or ticks < 0:
        print(
            "memspace demo: frames must be >= 1, width and height >= 8, ticks >= 0",
            file=sys.stderr,
        )
        return 2
    shape = (height, width, 3)
    frame_bytes = height * width * 3
    print(
        f"memspace demo: {frames} frames of {width}x{height} RGB "
        f"({frame_bytes / 2**20:.1f} MiB each) "
        f"from a producer process to this one; every frame is checked in place "
        f"on arrival (one word of every 4 KiB page)."
    )
    shm_rate = _run_shm(np, shape, frames)
    if not baseline:
        print(f"memspace.SharedMemory: {shm_rate:.2f} GB/s")
    else:
        # The baseline is much slower: a quarter of the frames is enough to measure its rate.
        q_rate = _run_queue(np, shape, max(1, frames // 4))
        print(
            f"memspace moved frames {shm_rate / q_rate:.1f}x faster than multiprocessing.Queue "
            f"({shm_rate:.2f} vs {q_rate:.2f} GB/s, measured in this run)."
        )
    if ticks > 0:
        run_ticks(ticks, baseline)
    return 0
