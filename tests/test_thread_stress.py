"""50 threads at once on one filesystem, one ring, one queue and one lock, with exact
accounting (nothing lost, nothing twice, quota back to zero, mutual exclusion held).

These run on every build; `make test-free-threaded` runs them on a free-threaded interpreter
with the GIL off, where the handles' own state is really shared between running threads. On a
GIL build the switch interval is shortened so threads interleave often."""

from __future__ import annotations

import collections
import queue
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from typing import Any

import memspace
import pytest
from memspace import MemoryFileSystem

THREADS = 50
WATCHDOG = 120.0  # seconds for every thread to finish

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.fixture(autouse=True)
def _interleave_often() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def run_threads(n: int, target: Callable[[int, threading.Barrier], None]) -> None:
    """Start `n` threads on `target(index, barrier)` together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            target(i, barrier)
        except BaseException as e:  # reported below, with the thread that raised it
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WATCHDOG)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after {WATCHDOG} s: {stuck}"
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]


def test_gil_state_matches_the_build() -> None:
    if FREE_THREADED:
        assert not sys._is_gil_enabled()  # type: ignore[attr-defined]
    else:
        pytest.skip("a build with the GIL")


def test_filesystem_under_50_threads() -> None:
    mfs = MemoryFileSystem(max_quota=8 << 20)
    rounds = 40
    shared_hits = collections.Counter[str]()
    hits_lock = threading.Lock()

    def worker(i: int, barrier: threading.Barrier) -> None:
        mine = f"/t{i}"
        mfs.mkdir(mine + "/sub")
        barrier.wait()
        for r in range(rounds):
            data = f"{i}:{r}:".encode() * (1 + r % 7)
            with mfs.open(f"{mine}/f{r % 5}", "wb") as f:
                f.write(data)
            with mfs.open(f"{mine}/f{r % 5}", "rb") as f:
                assert f.read() == data
            with mfs.open(f"{mine}/log", "ab") as f:
                f.write(b"%d\n" % r)
            mfs.copy(f"{mine}/f{r % 5}", f"{mine}/sub/c{r}")
            mfs.rename(f"{mine}/sub/c{r}", f"{mine}/sub/r{r}")
            assert mfs._read_bytes(f"{mine}/sub/r{r}") == data
            mfs.remove(f"{mine}/sub/r{r}")
            # Everyone also contends for the same few shared files.
            shared = f"/shared{r % 3}"
            try:
                with mfs.open(shared, "ab", lock_timeout=30) as f:
                    f.write(b"x" * 10)
                with hits_lock:
                    shared_hits[shared] += 1
            except BlockingIOError:  # pragma: no cover - only past the lock timeout
                raise
            mfs.listdir(mine)
            mfs.glob(f"{mine}/*")
            mfs.stats()
        with mfs.open(f"{mine}/log", "rb") as f:
            assert f.read() == b"".join(b"%d\n" % r for r in range(rounds))

    run_threads(THREADS, worker)
    for name, count in shared_hits.items():
        assert mfs.get_size(name) == 10 * count
    assert sum(shared_hits.values()) == THREADS * rounds
    for i in range(THREADS):
        assert mfs.listdir(f"/t{i}/sub") == []
        mfs.rmtree(f"/t{i}")
    for name in shared_hits:
        mfs.remove(name)
    st = mfs.stats()
    assert (st["used_bytes"], st["file_count"], st["dir_count"]) == (0, 0, 1)


def _consume(
    get: Callable[[], list[bytes]], total: int, received: list[bytes], lock: threading.Lock
) -> None:
    """Take messages with `get` (queue.Empty after a short wait) until `total` arrived."""
    while True:
        with lock:
            if len(received) >= total:
                return
        try:
            batch = get()
        except queue.Empty:
            continue
        with lock:
            received.extend(batch)


def _messages(i: int, n: int) -> list[bytes]:
    return [b"%d:%d" % (i, k) for k in range(n)]


def test_ring_handles_shared_by_50_threads(shm_name: str) -> None:
    # One producer handle and one consumer handle, each used by 25 threads at once: the
    # handle serialises them, and every message arrives exactly once.
    ring = memspace.Ring.create(shm_name, 1 << 16)
    tx = memspace.Ring.open(shm_name, role="producer")
    rx = memspace.Ring.open(shm_name, role="consumer")
    producers, per_producer = THREADS // 2, 400
    total = producers * per_producer
    received: list[bytes] = []
    lock = threading.Lock()

    def worker(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        if i < producers:
            msgs = _messages(i, per_producer)
            for k in range(0, per_producer, 8):
                if k % 16:
                    assert tx.put_many(msgs[k : k + 8], timeout=30) == 8
                else:
                    for m in msgs[k : k + 8]:
                        tx.put(m, timeout=30)
        elif i % 2:
            _consume(lambda: [rx.get(timeout=0.05)], total, received, lock)
        else:
            _consume(lambda: rx.get_many(32, timeout=0.05), total, received, lock)

    run_threads(THREADS, worker)
    expected = [m for i in range(producers) for m in _messages(i, per_producer)]
    assert sorted(received) == sorted(expected)  # nothing lost, nothing twice
    assert len(ring) == 0
    for h in (tx, rx, ring):
        h.close()
    memspace.Ring.remove(shm_name)


def test_queue_shared_by_50_threads(shm_name: str) -> None:
    q = memspace.Queue.create(shm_name, 1 << 16)
    other = memspace.Queue.open(shm_name)  # half the threads share a second handle
    producers, per_producer = THREADS // 2, 400
    total = producers * per_producer
    received: list[bytes] = []
    lock = threading.Lock()

    def worker(i: int, barrier: threading.Barrier) -> None:
        h = q if i % 2 else other
        barrier.wait()
        if i < producers:
            msgs = _messages(i, per_producer)
            for k in range(0, per_producer, 8):
                if k % 16:
                    assert h.put_many(msgs[k : k + 8], timeout=30) == 8
                else:
                    for m in msgs[k : k + 8]:
                        h.put(m, timeout=30)
        elif i % 2:
            _consume(lambda: [h.get(timeout=0.05)], total, received, lock)
        else:
            _consume(lambda: h.get_many(32, timeout=0.05), total, received, lock)

    run_threads(THREADS, worker)
    expected = [m for i in range(producers) for m in _messages(i, per_producer)]
    assert sorted(received) == sorted(expected)  # nothing lost, nothing twice
    assert q.qsize() == 0
    q.close()
    other.close()
    memspace.Queue.remove(shm_name)


def test_mutex_shared_by_50_threads(shm_name: str) -> None:
    # A plain Python counter protected only by the memspace mutex: under free-threading an
    # unprotected read-modify-write would lose increments.
    m = memspace.Mutex.create(shm_name)
    second = memspace.Mutex.open(shm_name)  # a second handle of the same lock
    rounds = 200
    state: dict[str, Any] = {"count": 0, "inside": 0, "max_inside": 0}

    def worker(i: int, barrier: threading.Barrier) -> None:
        h = m if i % 2 else second
        barrier.wait()
        for _ in range(rounds):
            with h(timeout=60) as g:
                assert not g.owner_died
                state["inside"] += 1
                state["max_inside"] = max(state["max_inside"], state["inside"])
                value = state["count"]
                state["count"] = value + 1
                state["inside"] -= 1

    run_threads(THREADS, worker)
    assert state["count"] == THREADS * rounds
    assert state["max_inside"] == 1
    memspace.Mutex.remove(shm_name)


def test_closing_a_queue_while_50_threads_use_it(shm_name: str) -> None:
    # close() racing every other method: each call either works or raises ValueError
    # (closed), never anything else, and the process does not crash.
    q = memspace.Queue.create(shm_name, 1 << 14)
    user = memspace.Queue.open(shm_name)
    ok = collections.Counter[str]()
    lock = threading.Lock()

    def worker(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        if i == 0:
            user.close()
            return
        for k in range(200):
            try:
                if k % 2:
                    user.try_put(b"m")
                else:
                    user.try_get()
                user.qsize()
            except ValueError:
                with lock:
                    ok["closed"] += 1
                return
            with lock:
                ok["done"] += 1

    run_threads(THREADS, worker)
    assert user.closed
    with pytest.raises(ValueError, match="closed"):
        user.put(b"x")
    q.clear()
    q.close()
    memspace.Queue.remove(shm_name)
