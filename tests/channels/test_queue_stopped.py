"""A queue lock held by a stopped process (issue #11, finding 5): every wait honours its
deadline, and `queue.Full` / `queue.Empty` are raised only when they are true.

A child process puts and gets in a loop; the test stops it (SIGSTOP) at a moment when it holds
the queue's producer lock (P-lock) or consumer lock (C-lock), found by reading the lock's word
through a raw `SharedMemory` handle of the segment. Then, with the holder stopped:

- `put(timeout=0.1)` and `get(timeout=0.1)` return within 0.1 s + 50 ms (before the fix: 1.33 s);
- `put_nowait()` and `get_nowait()` raise `memspace.QueueBusy` (a subclass of both
  `queue.Full` and `queue.Empty`) after the 20 ms grace, not a plain `queue.Full` on a queue
  with room or a plain `queue.Empty` on a queue with messages;
- `try_put()` returns False and `try_get()` None (nothing was sent or taken), as quickly.

After SIGCONT the queue works again.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import memspace
import pytest

from tests.helpers import linux_only

pytestmark = [pytest.mark.timeout(120), linux_only]

ctx = mp.get_context("fork")

P_LOCK, C_LOCK = 512, 640  # offsets of the two mutex areas in a queue's lock area
DEADLINE_SLACK = 0.05  # a wait may end this much after its deadline


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for p in started:
        if p.is_alive():
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
        p.join(5)


def _put_get_loop(name: str, ready: Any) -> None:
    q = memspace.Queue.open(name)
    ready.set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        q.put(b"x" * 16, timeout=5)
        q.get(timeout=5)


def _wait_stopped(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.0002)
    raise AssertionError(f"process {pid} did not stop")


def _lock_word_offset(name: str, lock: int) -> int:
    raw = memspace.SharedMemory.open(name)
    try:
        (lock_off,) = struct.unpack("=Q", raw.read(48, 8))
    finally:
        raw.close()
    return int(lock_off) + lock


def stop_holding(p: Any, name: str, lock: int, tries: int = 20000) -> None:
    """Stop `p` at a moment when it holds `lock` (P_LOCK or C_LOCK) of queue `name`."""
    off = _lock_word_offset(name, lock)
    raw = memspace.SharedMemory.open(name)
    try:
        for _ in range(tries):
            os.kill(p.pid, signal.SIGSTOP)
            _wait_stopped(p.pid)
            if struct.unpack("=I", raw.read(off, 4))[0] != 0:
                return
            os.kill(p.pid, signal.SIGCONT)
            time.sleep(random.random() * 0.0003)
    finally:
        raw.close()
    pytest.fail("never caught the child holding the lock")


def timed(f: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, the result or the exception raised)."""
    t0 = time.monotonic()
    try:
        r = f()
    except Exception as e:
        r = e
    return time.monotonic() - t0, r


def _start(name: str, procs: list[Any]) -> Any:
    ready = ctx.Event()
    p = ctx.Process(target=_put_get_loop, args=(name, ready), daemon=True)
    p.start()
    procs.append(p)
    assert ready.wait(10)
    time.sleep(0.01)
    return p


def test_stopped_producer_lock_holder(make_name: Callable[[str], str], procs: list[Any]) -> None:
    name = make_name("q")
    q = memspace.Queue.create(name, 1 << 16)
    p = _start(name, procs)
    for _ in range(3):
        stop_holding(p, name, P_LOCK)
        try:
            assert not q.full()
            elapsed, r = timed(lambda: q.put(b"y", timeout=0.1))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            assert isinstance(r, queue.Full)
            elapsed, r = timed(lambda: q.put_nowait(b"y"))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            elapsed, r = timed(lambda: q.try_put(b"y"))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert r is False
            elapsed, r = timed(lambda: q.put_many([b"y", b"z"], timeout=0.1))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            elapsed, r = timed(lambda: q.put_object(7, timeout=0.1))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            # The consumer side is free: a get is decided (None: nothing committed, since the
            # stopped producer's claim may block the way).
            assert q.try_get() in (None, b"x" * 16, b"after")
        finally:
            os.kill(p.pid, signal.SIGCONT)
        q.put(b"after", timeout=5)
        time.sleep(0.01)


def test_stopped_consumer_lock_holder(make_name: Callable[[str], str], procs: list[Any]) -> None:
    name = make_name("q")
    q = memspace.Queue.create(name, 1 << 16)
    p = _start(name, procs)
    for _ in range(3):
        stop_holding(p, name, C_LOCK)
        try:
            for i in range(3):
                q.put(b"m%d" % i, timeout=1)
            assert not q.empty()
            elapsed, r = timed(lambda: q.get(timeout=0.1))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            assert isinstance(r, queue.Empty)
            elapsed, r = timed(q.get_nowait)
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            elapsed, r = timed(q.try_get)
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert r is None
            elapsed, r = timed(lambda: q.get_many(10, timeout=0.1))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
            elapsed, r = timed(lambda: q.get_object(timeout=0.1))
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)

            def view() -> None:
                with q.get_view(timeout=0.1):
                    pass

            elapsed, r = timed(view)
            assert elapsed < 0.1 + DEADLINE_SLACK, elapsed
            assert isinstance(r, memspace.QueueBusy), repr(r)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        got = {q.get(timeout=5) for _ in range(3)}
        assert got <= {b"m0", b"m1", b"m2", b"x" * 16}
        time.sleep(0.01)


def test_busy_is_full_and_empty_for_old_code() -> None:
    assert issubclass(memspace.QueueBusy, queue.Full)
    assert issubclass(memspace.QueueBusy, queue.Empty)
    assert issubclass(memspace.QueueBusy, memspace.MemspaceError)


@pytest.mark.parametrize("lock", [P_LOCK, C_LOCK])
def test_ctrl_c_interrupts_a_wait_on_a_stopped_holder(
    lock: int, make_name: Callable[[str], str], procs: list[Any]
) -> None:
    """A wait without timeout behind a stopped lock holder still runs the signal handlers
    between its slices: Ctrl-C ends it within a slice or two."""
    name = make_name("q")
    q = memspace.Queue.create(name, 1 << 16)
    p = _start(name, procs)
    stop_holding(p, name, lock)
    try:
        sent: list[float] = []

        def interrupt() -> None:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        if lock == C_LOCK:
            q.put(b"m", timeout=1)  # (the P-lock is free) a message to wait for
        wait = q.get if lock == C_LOCK else lambda: q.put(b"y")
        timer = threading.Timer(0.15, interrupt)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            wait()
        assert sent
        assert time.monotonic() - sent[0] < 0.2
        timer.join()
    finally:
        os.kill(p.pid, signal.SIGCONT)
