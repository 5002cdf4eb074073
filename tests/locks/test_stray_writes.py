"""Stray writes into a held lock (issue #11, finding 4): memory other processes can write must
never steer the holder's own writes.

A child process holds a lock (a `Mutex`, the write lock of an `RwLock`, a `View` or a `Record`,
or a queue's producer lock); this process writes 8 random bytes over the lock's area through a
raw `SharedMemory` handle of the same segment; then the holder releases. The holder must not die
of a signal (it exits 0, having released the lock or caught a clean memspace exception), and a
later locker gets the lock or a `CorruptSegmentError`, never a crash, never a hang past its
timeout. With glibc's robust mutex the release wrote through the robust-list links kept inside
the shared mutex, and the holder died of SIGSEGV or SIGABRT.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import signal
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import memspace
import pytest

from tests.helpers import linux_only

pytestmark = [pytest.mark.timeout(120), linux_only]

ctx = mp.get_context("fork")

AREA = 128  # bytes of a mutex area
KINDS = ["mutex", "rwlock", "view", "record"]
# Clean outcomes of the holder's release after its lock was scribbled over.
CLEAN = ("released", "CorruptSegmentError", "LockError")

Point = memspace.Record.define("StrayPoint", x="i64", y="i64")


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    """Children started by a test; killed and reaped whatever happens."""
    started: list[Any] = []
    yield started
    for p in started:
        if p.is_alive():
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
        p.join(5)


def _create(kind: str, name: str) -> Any:
    if kind == "mutex":
        return memspace.Mutex.create(name)
    if kind == "rwlock":
        return memspace.RwLock.create(name)
    if kind == "view":
        return memspace.View.create(name, 256)
    return Point.create(name)


def _open(kind: str, name: str) -> Any:
    if kind == "mutex":
        return memspace.Mutex.open(name)
    if kind == "rwlock":
        return memspace.RwLock.open(name)
    if kind == "view":
        return memspace.View.open(name)
    return Point.open(name)


def _write_lock(kind: str, obj: Any, timeout: float | None = None) -> memspace.LockGuard:
    if kind == "mutex":
        g: memspace.LockGuard = obj.acquire(timeout=timeout)
    elif kind == "rwlock":
        g = obj.write(timeout=timeout)
    elif kind == "view":
        g = obj.write_lock(timeout=timeout)
    else:
        g = obj.locked(timeout=timeout)
    return g


def mutex_area(name: str, extra: int = 0) -> int:
    """Offset of the (first) mutex area of the structured segment `name`: its lock area, from
    the header's `lock_off` field, plus `extra`."""
    raw = memspace.SharedMemory.open(name)
    try:
        (lock_off,) = struct.unpack("=Q", raw.read(48, 8))
    finally:
        raw.close()
    return int(lock_off) + extra


def scribble(name: str, offset: int, data: bytes) -> None:
    raw = memspace.SharedMemory.open(name)
    try:
        raw.write(offset, data)
    finally:
        raw.close()


def _hold_then_release(kind: str, name: str, ready: Any, go: Any, out: Any) -> None:
    obj = _open(kind, name)
    g = _write_lock(kind, obj)
    ready.set()
    go.wait(30)
    try:
        g.release()
        out.put("released")
    except memspace.MemspaceError as e:
        out.put(type(e).__name__)


def _later_locker_is_clean(kind: str, obj: Any) -> str:
    """A later lock attempt: the lock (possibly with owner_died) or CorruptSegmentError."""
    t0 = time.monotonic()
    try:
        with _write_lock(kind, obj, timeout=1.0):
            outcome = "locked"
    except memspace.CorruptSegmentError:
        outcome = "corrupt"
    assert time.monotonic() - t0 < 1.5
    return outcome


@pytest.mark.parametrize("kind", KINDS)
def test_stray_write_into_held_lock_never_kills_the_holder(
    kind: str, make_name: Callable[[str], str], procs: list[Any]
) -> None:
    rng = random.Random(0x5EED + KINDS.index(kind))
    for offset in range(0, AREA, 8):
        name = make_name(kind)
        obj = _create(kind, name)
        ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
        p = ctx.Process(target=_hold_then_release, args=(kind, name, ready, go, out), daemon=True)
        p.start()
        procs.append(p)
        assert ready.wait(10)
        scribble(name, mutex_area(name, offset), rng.randbytes(8))
        go.set()
        p.join(10)
        assert p.exitcode == 0, f"{kind}: the holder died with {p.exitcode} (offset {offset})"
        assert out.get(timeout=5) in CLEAN
        _later_locker_is_clean(kind, obj)
        out.close()
        del obj


def _lock_loop(kind: str, name: str, ready: Any, stop: Any, out: Any) -> None:
    obj = _open(kind, name)
    ready.release()
    counts = {"locked": 0, "corrupt": 0, "timeout": 0, "release-refused": 0}
    while not stop.is_set():
        try:
            g = _write_lock(kind, obj, timeout=0.2)
        except memspace.CorruptSegmentError:
            counts["corrupt"] += 1
            time.sleep(0.001)
            continue
        except TimeoutError:
            counts["timeout"] += 1
            continue
        counts["locked"] += 1
        time.sleep(random.random() * 0.0005)
        try:
            g.release()
        except (memspace.CorruptSegmentError, memspace.LockError):
            counts["release-refused"] += 1
    out.put(counts)


@pytest.mark.parametrize("kind", ["mutex", "rwlock"])
def test_random_live_corruption_kills_no_worker(
    kind: str, make_name: Callable[[str], str], procs: list[Any]
) -> None:
    """Workers lock and unlock while the lock area is overwritten with random bytes again and
    again; no worker dies of a signal. (The lock is re-created now and then, so that the run
    keeps exercising held locks rather than one that stays corrupt.)"""
    rng = random.Random(0xC0FFEE + len(kind))
    workers, rounds = 4, 40
    died: list[int] = []
    for _ in range(4):
        name = make_name(kind)
        _create(kind, name)
        base = mutex_area(name)
        ready, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        ps = [
            ctx.Process(target=_lock_loop, args=(kind, name, ready, stop, out), daemon=True)
            for _ in range(workers)
        ]
        for p in ps:
            p.start()
            procs.append(p)
        for _ in ps:
            assert ready.acquire(timeout=10)
        time.sleep(0.02)
        for _ in range(rounds // 4):
            time.sleep(rng.random() * 0.01)
            scribble(name, base + rng.randrange(0, AREA - 8 + 1, 8), rng.randbytes(8))
        stop.set()
        for p in ps:
            p.join(15)
            if p.exitcode != 0:
                died.append(p.exitcode if p.exitcode is not None else 999)
        reports = [out.get(timeout=5) for _ in range(workers - len(died))]
        assert sum(r["locked"] for r in reports) > 0, reports
        out.close()
    assert not died, f"workers died: exit codes {died}"


# --- the queue's producer lock --------------------------------------------------------------

P_LOCK = 512  # the P-lock's offset in a queue's lock area (mpmc/segment.rs)


def _put_get_loop(name: str, ready: Any, out: Any) -> None:
    q = memspace.Queue.open(name)
    ready.set()
    outcome = "ok"
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            q.put(b"x" * 16, timeout=5)
            q.get(timeout=5)
    except memspace.CorruptSegmentError:
        outcome = "CorruptSegmentError"
    except memspace.LockError:
        outcome = "LockError"
    out.put(outcome)


def stop_while_word_set(pid: int, name: str, offset: int, tries: int = 5000) -> bool:
    """SIGSTOP `pid` at a moment when the u32 at `offset` of segment `name` is non-zero (the
    lock there is held), retrying with SIGCONT in between. True once it is stopped so."""
    raw = memspace.SharedMemory.open(name)
    try:
        for _ in range(tries):
            os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pid)
            if struct.unpack("=I", raw.read(offset, 4))[0] != 0:
                return True
            os.kill(pid, signal.SIGCONT)
            time.sleep(random.random() * 0.0003)
    finally:
        raw.close()
    return False


def _wait_stopped(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.0002)
    raise AssertionError(f"process {pid} did not stop")


def test_stray_write_into_held_queue_producer_lock(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    rng = random.Random(0xBEEF)
    landed = 0
    for offset in range(0, AREA, 8):
        name = make_name("q")
        q = memspace.Queue.create(name, 1 << 16)
        ready, out = ctx.Event(), ctx.Queue()
        p = ctx.Process(target=_put_get_loop, args=(name, ready, out), daemon=True)
        p.start()
        procs.append(p)
        assert ready.wait(10)
        assert p.pid is not None
        word = mutex_area(name, P_LOCK)
        if stop_while_word_set(p.pid, name, word):
            landed += 1
            scribble(name, word + offset, rng.randbytes(8))
        os.kill(p.pid, signal.SIGCONT)
        time.sleep(0.05)  # the holder releases, and goes on for a while
        p.terminate()
        p.join(10)
        # SIGTERM is how the test ends it; anything else is a crash (SIGSEGV, SIGABRT) or an
        # exception other than a clean memspace one.
        assert p.exitcode in (-signal.SIGTERM, 0), f"exit {p.exitcode} at offset {offset}"
        if p.exitcode == 0:
            assert out.get(timeout=5) in ("CorruptSegmentError", "LockError")
        with contextlib.suppress(memspace.CorruptSegmentError):
            q.put(b"after", timeout=1)
        q.close()
        out.close()
    assert landed >= AREA // 8 // 2, f"the lock was caught held only {landed} times"
