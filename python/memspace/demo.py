"""``memspace demo``: move data from one process to another, and compare.

1. Frames: a producer process renders video frames straight into slots of one shared-memory
   segment; this process reads each frame in place (a numpy view, no copy) and checks it. Only
   slot numbers travel through a pipe. The same frames are then sent through
   ``multiprocessing.Queue`` (which pickles and copies every frame through a pipe).
2. Ticks: a producer process sends small 64-byte records through a :class:`memspace.Ring`, one
   `put` at a time and in batches (`put_many`/`get_many`); this process checks every sequence
   number. The same records then go through ``multiprocessing.Queue``.
3. Pool: a producer process puts tasks (chunks of bytes) into one :class:`memspace.Queue`, a
   pool of worker processes drains it and puts a checksum of each task into a results queue, and
   this process checks that every task's result arrived exactly once and is right; one message
   at a time, then in batches. The same work then goes through ``multiprocessing.Queue``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import struct
import sys
import time
import zlib
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memspace import Queue, Ring, SharedMemory

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.synchronize import Barrier

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


# Other work using more than this share of the CPUs makes the machine "busy" in the summary.
BUSY_SHARE = 0.15


class _OtherLoad:
    """How much of the machine other work used while the demo ran: the CPU time the whole
    machine spent (``/proc/stat``: user, nice, system, irq, softirq and steal, which is time
    the hypervisor gave to other guests) minus what this process and its finished children
    spent, as a share of all CPUs over the wall time. None where ``/proc/stat`` is missing."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            import resource

            first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
            ticks = [int(x) for x in first[1:9]]
            hz = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, ImportError):
            return None
        busy = (sum(ticks[0:3]) + sum(ticks[5:8])) / hz
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return busy, ours, time.monotonic()

    def share(self) -> float | None:
        """Other work's share of the CPUs since this object was made (0.0 to 1.0)."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy, ours, wall = (b - a for a, b in zip(self.start, end, strict=False))
        if wall <= 0:
            return None
        return min(1.0, max(0.0, (busy - ours) / (wall * (os.cpu_count() or 1))))


def _load_note(share: float | None) -> str:
    """The summary's word on the machine: busy (figures lower than an idle machine's) or idle."""
    cpus = os.cpu_count() or 1
    if share is None:
        return "(how busy the machine was is unknown here: no /proc/stat)"
    used = f"other processes used {share:.0%} of the {cpus} CPUs"
    if share > BUSY_SHARE:
        return (
            f"The machine was busy: {used} while the demo ran, so these figures are lower "
            "than an idle machine gives (the README's come from an idle one)."
        )
    return f"The machine was idle: {used} while the demo ran."


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


CHUNK = 1024  # bytes of data in a task
_TASK = struct.Struct("=Q")  # a task: its number, then CHUNK bytes of data
_RESULT = struct.Struct("=QI")  # a result: the task's number and the CRC-32 of its data
_STOP = b""  # tells a worker to stop; sent after every task


def _chunk(block: bytes, i: int) -> bytes:
    """Task `i`'s data: a slice of `block` that depends on `i`."""
    off = (i * 61) % (len(block) - CHUNK)
    return block[off : off + CHUNK]


def _task(block: bytes, i: int) -> bytes:
    return _TASK.pack(i) + _chunk(block, i)


def _work(task: bytes) -> bytes:
    """What a worker computes for a task."""
    (i,) = _TASK.unpack_from(task)
    return _RESULT.pack(i, zlib.crc32(memoryview(task)[_TASK.size :]))


class _Results:
    """Checks that every task's result arrives exactly once, and is right."""

    def __init__(self, expected: list[int]) -> None:
        self.expected = expected
        self.seen = bytearray(len(expected))
        self.count = 0

    def add(self, result: bytes) -> None:
        i, crc = _RESULT.unpack(result)
        if i >= len(self.expected) or self.seen[i]:
            raise RuntimeError(f"a result for task {i} arrived that was not expected")
        if crc != self.expected[i]:
            raise RuntimeError(f"task {i} came back with a wrong checksum")
        self.seen[i] = 1
        self.count += 1


def _pool_producer(
    name: str, n: int, workers: int, batch: int, block: bytes, gate: Barrier
) -> None:
    tasks = Queue.open(name)
    gate.wait()
    if batch == 1:
        for i in range(n):
            tasks.put(_task(block, i))
    else:
        for start in range(0, n, batch):
            tasks.put_many([_task(block, i) for i in range(start, min(start + batch, n))])
    tasks.put_many([_STOP] * workers)
    tasks.close()


def _pool_worker(tasks_name: str, results_name: str, batch: int, gate: Barrier) -> None:
    tasks, results = Queue.open(tasks_name), Queue.open(results_name)
    gate.wait()
    while True:
        got = [tasks.get()] if batch == 1 else tasks.get_many(batch)
        done = [_work(t) for t in got if t != _STOP]
        if batch == 1 and done:
            results.put(done[0])
        elif done:
            results.put_many(done)
        if len(done) < len(got):
            # Stop messages come after every task: hand back those meant for other workers.
            if len(got) - len(done) > 1:
                tasks.put_many([_STOP] * (len(got) - len(done) - 1))
            break
    tasks.close()
    results.close()


def _finish(procs: list[BaseProcess]) -> None:
    """Waits for the pool's processes to exit on their own, and insists they did so cleanly."""
    for p in procs:
        p.join(30)
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"pool processes failed (exit codes {failed})")


def _stop(procs: list[BaseProcess]) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join()


def _run_pool(n: int, workers: int, batch: int, block: bytes, expected: list[int]) -> float:
    label = "memspace.Queue put/get" if batch == 1 else "memspace.Queue put_many/get_many"
    pid = os.getpid()
    tasks_name, results_name = f"/memspace-demo-tasks-{pid}", f"/memspace-demo-results-{pid}"
    ctx = mp.get_context("spawn")
    gate = ctx.Barrier(workers + 2)  # the workers, the producer and this process start together
    procs: list[BaseProcess] = []
    with contextlib.ExitStack() as cleanup:
        tasks = Queue.create(tasks_name, 1 << 20)
        cleanup.callback(Queue.remove, tasks_name)
        cleanup.callback(tasks.close)
        results = Queue.create(results_name, 1 << 18)
        cleanup.callback(Queue.remove, results_name)
        cleanup.callback(results.close)
        cleanup.callback(_stop, procs)
        for _ in range(workers):
            procs.append(
                ctx.Process(
                    target=_pool_worker, args=(tasks_name, results_name, batch, gate), daemon=True
                )
            )
        procs.append(
            ctx.Process(
                target=_pool_producer,
                args=(tasks_name, n, workers, batch, block, gate),
                daemon=True,
            )
        )
        for p in procs:
            p.start()
        gate.wait(timeout=60)
        progress = _Progress(label, n)
        check = _Results(expected)
        while check.count < n:
            for r in [results.get(timeout=60)] if batch == 1 else results.get_many(256, timeout=60):
                check.add(r)
            if check.count % 4096 < 256:
                progress.update(check.count)
        elapsed = time.perf_counter() - progress.start
        progress.update(n, force=True)
        _finish(procs)
    return n / elapsed


def _mp_pool_producer(tasks: Any, n: int, workers: int, block: bytes, gate: Barrier) -> None:
    gate.wait()
    for i in range(n):
        tasks.put(_task(block, i))
    for _ in range(workers):
        tasks.put(_STOP)


def _mp_pool_worker(tasks: Any, results: Any, gate: Barrier) -> None:
    gate.wait()
    while (task := tasks.get()) != _STOP:
        results.put(_work(task))


def _run_mp_pool(n: int, workers: int, block: bytes, expected: list[int]) -> float:
    ctx = mp.get_context("spawn")
    gate = ctx.Barrier(workers + 2)
    tasks, results = ctx.Queue(maxsize=1024), ctx.Queue(maxsize=8192)
    procs: list[BaseProcess] = [
        ctx.Process(target=_mp_pool_worker, args=(tasks, results, gate), daemon=True)
        for _ in range(workers)
    ]
    procs.append(
        ctx.Process(target=_mp_pool_producer, args=(tasks, n, workers, block, gate), daemon=True)
    )
    try:
        for p in procs:
            p.start()
        gate.wait(timeout=60)
        progress = _Progress("multiprocessing.Queue put/get", n)
        check = _Results(expected)
        while check.count < n:
            check.add(results.get(timeout=60))
            if check.count % 4096 == 0:
                progress.update(check.count)
        elapsed = time.perf_counter() - progress.start
        progress.update(n, force=True)
        _finish(procs)
    finally:
        _stop(procs)
        for q in (tasks, results):
            q.close()
            q.join_thread()
    return n / elapsed


def default_workers() -> int:
    """The pool stage's default: one worker per CPU, at least 2."""
    return max(2, os.cpu_count() or 1)


def run_pool(tasks: int = 400_000, workers: int | None = None, baseline: bool = True) -> None:
    """The worker-pool stage: one queue of tasks drained by a pool of worker processes."""
    workers = workers or default_workers()
    print(
        f"\nPool: {tasks:,} tasks of {CHUNK} bytes from a producer process to {workers} worker "
        "processes through one queue; every result (a CRC-32 of the task) checked, exactly once."
    )
    block = os.urandom(8 * CHUNK)
    expected = [zlib.crc32(_chunk(block, i)) for i in range(tasks)]
    single = _run_pool(max(1, tasks // 4), workers, 1, block, expected)
    batched = _run_pool(tasks, workers, 64, block, expected)
    if not baseline:
        print(
            f"memspace.Queue: {single / 1e3:.0f} k tasks/s one at a time, "
            f"{batched / 1e3:.0f} k tasks/s in batches"
        )
        return
    queued = _run_mp_pool(max(1, tasks // 8), workers, block, expected)
    print(
        f"memspace.Queue fed {workers} workers {single / queued:.1f}x faster than "
        f"multiprocessing.Queue one task at a time and {batched / queued:.1f}x faster in batches "
        f"({single / 1e3:.0f} and {batched / 1e3:.0f} vs {queued / 1e3:.0f} k tasks/s, "
        "measured in this run)."
    )


def run(
    frames: int = 600,
    width: int = 1920,
    height: int = 1080,
    baseline: bool = True,
    ticks: int = 2_000_000,
    tasks: int = 400_000,
    workers: int | None = None,
) -> int:
    """Run the demo; returns a process exit status."""
    try:
        import numpy as np
    except ImportError:
        print("memspace demo needs numpy: pip install 'memspace[demo]'", file=sys.stderr)
        return 1
    if frames < 1 or width < 8 or height < 8 or ticks < 0 or tasks < 0:
        print(
            "memspace demo: frames must be >= 1, width and height >= 8, ticks and tasks >= 0",
            file=sys.stderr,
        )
        return 2
    if workers is not None and workers < 1:
        print("memspace demo: workers must be >= 1", file=sys.stderr)
        return 2
    shape = (height, width, 3)
    frame_bytes = height * width * 3
    print(
        f"memspace demo: {frames} frames of {width}x{height} RGB "
        f"({frame_bytes / 2**20:.1f} MiB each) "
        f"from a producer process to this one; every frame is checked in place "
        f"on arrival (one word of every 4 KiB page)."
    )
    whole_run = _OtherLoad()
    frames_stage = _OtherLoad()
    shm_rate = _run_shm(np, shape, frames)
    if not baseline:
        print(f"memspace.SharedMemory: {shm_rate:.2f} GB/s{_busy_suffix(frames_stage)}")
    else:
        # The baseline is much slower: a quarter of the frames is enough to measure its rate.
        q_rate = _run_queue(np, shape, max(1, frames // 4))
        print(
            f"memspace moved frames {shm_rate / q_rate:.1f}x faster than multiprocessing.Queue "
            f"({shm_rate:.2f} vs {q_rate:.2f} GB/s, measured in this run)"
            f"{_busy_suffix(frames_stage)}."
        )
    if ticks > 0:
        run_ticks(ticks, baseline)
    if tasks > 0:
        run_pool(tasks, workers, baseline)
    print(f"\n{_load_note(whole_run.share())}")
    return 0


def _busy_suffix(stage: _OtherLoad) -> str:
    """`` on a busy machine (...)`` for a stage's summary line, or nothing."""
    share = stage.share()
    if share is None or share <= BUSY_SHARE:
        return ""
    return (
        f" on a busy machine (other processes used {share:.0%} of the {os.cpu_count() or 1} "
        "CPUs meanwhile: expect more on an idle one)"
    )
