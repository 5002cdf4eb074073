"""Multi-process crash tests: holders killed with SIGKILL, stopped with SIGSTOP, interrupted.

Children are forked (fast, and exercises the fork-aware attachment re-claim) and open the
locks by name themselves unless a test is about inherited handles. Every child is killed and
reaped by the test; every segment is removed by the fixtures.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import memspace
import pytest

pytestmark = pytest.mark.timeout(90)

ctx = mp.get_context("fork")


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


def start(procs: list[Any], target: Callable[..., None], *args: object) -> Any:
    p = ctx.Process(target=target, args=args, daemon=True)
    p.start()
    procs.append(p)
    return p


def kill(p: Any) -> float:
    """SIGKILL `p`, reap it, and return the time of the kill."""
    t = time.monotonic()
    os.kill(p.pid, signal.SIGKILL)
    p.join(5)
    assert p.exitcode == -signal.SIGKILL
    return t


# --- children -----------------------------------------------------------------------------


def _mutex_two_step_updater(mutex_name: str, data_name: str) -> None:
    m = memspace.Mutex.open(mutex_name)
    shm = memspace.SharedMemory.open(data_name)
    while True:
        with m():
            a = shm.read_int(0)
            shm.write_int(0, a + 1)  # step one
            time.sleep(random.random() * 0.002)
            shm.write_int(8, a + 1)  # step two: a == b again


def _hold_mutex(name: str, ready: Any) -> None:
    m = memspace.Mutex.open(name)
    m.acquire()
    ready.set()
    time.sleep(3600)


def _hold_read(name: str, ready: Any) -> None:
    lock = memspace.RwLock.open(name)
    g = lock.read()
    ready.set()
    time.sleep(3600)
    g.release()


def _hold_write(name: str, ready: Any) -> None:
    lock = memspace.RwLock.open(name)
    g = lock.write()
    ready.set()
    time.sleep(3600)
    g.release()


def _inherited_read(lock: memspace.RwLock, ready: Any) -> None:
    g = lock.read()
    ready.set()
    time.sleep(3600)
    g.release()


def _reader_loop(name: str, stop: Any, ready: Any) -> None:
    lock = memspace.RwLock.open(name)
    ready.set()
    while not stop.is_set():
        with lock.read():
            time.sleep(0.004)


# --- tests --------------------------------------------------------------------------------


def test_killed_mutex_holder_is_replaced_and_invariant_repaired(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    mname, dname = make_name("m"), make_name("d")
    m = memspace.Mutex.create(mname)
    shm = memspace.SharedMemory.create(dname, 16)
    rounds, died = 25, 0
    for _ in range(rounds):
        p = start(procs, _mutex_two_step_updater, mname, dname)
        time.sleep(0.02 + random.random() * 0.03)
        killed_at = kill(p)
        with m(timeout=1) as g:
            assert time.monotonic() - killed_at < 0.1
            a, b = shm.read_int(0), shm.read_int(8)
            if g.owner_died:
                died += 1
                shm.write_int(8, a)  # repair: finish the dead holder's update
            else:
                assert a == b
        assert shm.read_int(0) == shm.read_int(8)
    assert died >= rounds // 2, f"only {died} of {rounds} kills landed inside the lock"
    shm.close()


def test_blocked_waiter_gets_mutex_when_holder_is_killed(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("m")
    m = memspace.Mutex.create(name)
    for _ in range(5):
        ready = ctx.Event()
        p = start(procs, _hold_mutex, name, ready)
        assert ready.wait(10)
        result: list[tuple[float, bool]] = []

        def waiter(result: list[tuple[float, bool]] = result) -> None:
            with m.acquire(timeout=10) as g:
                result.append((time.monotonic(), g.owner_died))

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.03)
        assert not result
        killed_at = kill(p)
        t.join(10)
        assert result
        assert result[0][0] - killed_at < 0.1
        assert result[0][1]


def test_killed_reader_lets_waiting_writer_in(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("rw")
    lock = memspace.RwLock.create(name)
    for _ in range(5):
        ready = ctx.Event()
        p = start(procs, _hold_read, name, ready)
        assert ready.wait(10)
        with pytest.raises(TimeoutError):
            lock.write(timeout=0.05)
        assert lock.reader_count == 1
        got: list[float] = []
        died: list[bool] = []

        def writer(got: list[float] = got, died: list[bool] = died) -> None:
            with lock.write(timeout=10) as g:
                got.append(time.monotonic())
                died.append(g.owner_died)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.03)
        killed_at = kill(p)
        t.join(10)
        assert got
        assert got[0] - killed_at < 0.1
        assert died == [True]
        assert lock.reader_count == 0


def test_killed_writer_lets_waiting_readers_in(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("rw")
    lock = memspace.RwLock.create(name)
    for _ in range(5):
        ready = ctx.Event()
        p = start(procs, _hold_write, name, ready)
        assert ready.wait(10)
        assert lock.write_locked
        with pytest.raises(TimeoutError):
            lock.read(timeout=0.05)
        got: list[float] = []
        died: list[bool] = []

        def reader(got: list[float] = got, died: list[bool] = died) -> None:
            with lock.read(timeout=10) as g:
                got.append(time.monotonic())
                died.append(g.owner_died)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.03)
        killed_at = kill(p)
        for t in threads:
            t.join(10)
        assert len(got) == 2
        assert max(got) - killed_at < 0.1
        assert any(died), "no reader was told that the writer died"
        # And a writer can get in afterwards.
        with lock.write(timeout=1):
            pass


def test_forked_child_with_inherited_handle_gets_its_own_slot(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("rw")
    lock = memspace.RwLock.create(name)
    ready = ctx.Event()
    p = start(procs, _inherited_read, lock, ready)
    assert ready.wait(10)
    with pytest.raises(TimeoutError):
        lock.write(timeout=0.05)
    kill(p)
    t0 = time.monotonic()
    with lock.write(timeout=5) as g:
        assert g.owner_died
    assert time.monotonic() - t0 < 0.5


def _child_tries_parents_mutex(m: memspace.Mutex, out: Any) -> None:
    outcomes = []
    try:
        m.acquire(timeout=0.1)
        outcomes.append("acquired")
    except TimeoutError:
        outcomes.append("timeout")
    except memspace.LockError:
        outcomes.append("deadlock")
    try:
        m.release()
        outcomes.append("released")
    except memspace.LockError:
        outcomes.append("not held")
    out.put(outcomes)


def test_forked_child_does_not_own_the_parents_mutex(procs: list[Any], shm_name: str) -> None:
    m = memspace.Mutex.create(shm_name)
    with m(timeout=1):
        out = ctx.Queue()
        p = start(procs, _child_tries_parents_mutex, m, out)
        # The child waits for the parent like anyone else, and cannot release its hold.
        assert out.get(timeout=10) == ["timeout", "not held"]
        p.join(10)
        assert p.exitcode == 0
        with pytest.raises(memspace.LockError):
            m.acquire(timeout=0)  # still ours
    with m(timeout=0) as g:
        assert not g.owner_died


def test_stopped_holder_is_not_dead(make_name: Callable[[str], str], procs: list[Any]) -> None:
    mname, rname = make_name("m"), make_name("rw")
    m = memspace.Mutex.create(mname)
    lock = memspace.RwLock.create(rname)
    r1, r2 = ctx.Event(), ctx.Event()
    pm = start(procs, _hold_mutex, mname, r1)
    pr = start(procs, _hold_read, rname, r2)
    assert r1.wait(10)
    assert r2.wait(10)
    os.kill(pm.pid, signal.SIGSTOP)
    os.kill(pr.pid, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            m.acquire(timeout=0.3)
        with pytest.raises(TimeoutError):
            lock.write(timeout=0.3)
        assert lock.reader_count == 1
    finally:
        os.kill(pm.pid, signal.SIGCONT)
        os.kill(pr.pid, signal.SIGCONT)
    kill(pm)
    kill(pr)
    with m(timeout=1) as g:
        assert g.owner_died
    with lock.write(timeout=1) as g:
        assert g.owner_died


def test_writer_is_not_starved_by_readers(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("rw")
    lock = memspace.RwLock.create(name)
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(3)]
    for r in readies:
        start(procs, _reader_loop, name, stop, r)
    for r in readies:
        assert r.wait(10)
    time.sleep(0.1)  # readers overlap back to back now
    try:
        for _ in range(10):
            with lock.write(timeout=5):
                pass
            time.sleep(0.01)
    finally:
        stop.set()
    for p in procs:
        p.join(5)
        assert p.exitcode == 0


def test_ctrl_c_interrupts_a_wait_quickly(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    mname, rname = make_name("m"), make_name("rw")
    m = memspace.Mutex.create(mname)
    lock = memspace.RwLock.create(rname)
    r1, r2 = ctx.Event(), ctx.Event()
    start(procs, _hold_mutex, mname, r1)
    start(procs, _hold_write, rname, r2)
    assert r1.wait(10)
    assert r2.wait(10)
    for wait in (lambda: m.acquire(), lambda: lock.read(), lambda: lock.write()):
        sent: list[float] = []

        def interrupt(sent: list[float] = sent) -> None:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        timer = threading.Timer(0.15, interrupt)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            wait()
        assert sent
        assert time.monotonic() - sent[0] < 0.2
        timer.join()


def test_gil_is_released_while_waiting(make_name: Callable[[str], str], procs: list[Any]) -> None:
    name = make_name("m")
    m = memspace.Mutex.create(name)
    ready = ctx.Event()
    start(procs, _hold_mutex, name, ready)
    assert ready.wait(10)
    count = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    with pytest.raises(TimeoutError):
        m.acquire(timeout=0.3)
    stop.set()
    t.join()
    assert count > 1000


def _view_writer(name: str, stop: Any) -> None:
    v = memspace.View.open(name)
    i = 0
    while not stop.is_set():
        i += 1
        v.write_mixed([i, float(i), str(i) * 8, [i, i, i]], 0)


def _view_reader(name: str, stop: Any, out: Any) -> None:
    v = memspace.View.open(name)
    reads = torn = 0
    deadline = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            a, f, s, rest = v.read_mixed([("int", 1), ("float", 1), ("str", 1), ("int", 3)], 0)
        except TypeError:
            continue  # nothing written yet
        reads += 1
        if not (f == float(a) and s == str(a) * 8 and rest == [a, a, a]):
            torn += 1
    out.put((reads, torn))


def test_view_has_no_torn_reads(make_name: Callable[[str], str], procs: list[Any]) -> None:
    name = make_name("view")
    memspace.View.create(name, 4096)
    stop = ctx.Event()
    out = ctx.Queue()
    start(procs, _view_writer, name, stop)
    for _ in range(2):
        start(procs, _view_reader, name, stop, out)
    time.sleep(1.5)
    stop.set()
    results = [out.get(timeout=10) for _ in range(2)]
    for p in procs:
        p.join(10)
    assert all(reads > 0 for reads, _ in results), results
    assert sum(torn for _, torn in results) == 0, results


def test_rm_stale_removes_only_unattached_structured_segments(
    make_name: Callable[[str], str], procs: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from memspace import cli

    dead, alive, raw = make_name("dead"), make_name("alive"), make_name("raw")

    def create_and_exit(n: str) -> None:
        memspace.Mutex.create(n)

    p = start(procs, create_and_exit, dead)
    p.join(10)
    keep = memspace.RwLock.create(alive)
    memspace.SharedMemory.create(raw, 64).close()
    kinds = {s.name: s.kind for s in memspace.segments()}
    assert (kinds[dead], kinds[alive], kinds[raw]) == ("mutex", "rwlock", "raw")
    assert cli.main(["rm", "--stale", dead, alive, raw]) == 0
    names = {s.name for s in memspace.segments()}
    assert dead not in names
    assert alive in names
    assert raw in names
    out = capsys.readouterr().out
    assert "removed " + dead in out
    assert "in use" in out
    del keep
    assert cli.main(["rm", "--stale", "--dry-run", alive]) == 0
    assert "would remove" in capsys.readouterr().out


def test_stale_header_bytes_never_written_by_open(make_name: Callable[[str], str]) -> None:
    name = make_name("m")
    memspace.Mutex.create(name)
    raw = memspace.SharedMemory.open(name)
    before = raw.read(0, 128)
    with pytest.raises(memspace.LayoutError):
        memspace.RwLock.open(name)
    assert raw.read(0, 128) == before
    # header fields: magic, version, endianness marker, kind
    magic, major, minor, endian, kind = struct.unpack_from("=8sHHII", before)
    assert (magic, major, minor, endian, kind) == (b"MEMSPACE", 2, 0, 0x01020304, 1)
    raw.close()


def _hold_read_until(name: str, ready: Any, release: Any) -> None:
    lock = memspace.RwLock.open(name)
    g = lock.read()
    ready.set()
    release.wait(30)
    g.release()


def _write_forever(name: str) -> None:
    lock = memspace.RwLock.open(name)
    lock.write()  # blocks draining the reader; killed while waiting
    time.sleep(3600)


def test_writer_killed_while_draining_is_reported_to_the_next_writer(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("rw")
    lock = memspace.RwLock.create(name)
    ready, release = ctx.Event(), ctx.Event()
    start(procs, _hold_read_until, name, ready, release)
    assert ready.wait(10)
    w = start(procs, _write_forever, name)
    deadline = time.monotonic() + 10
    while not lock.write_locked:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    kill(w)  # dies holding the writer mutex, with readers still inside
    result: list[bool] = []

    def writer() -> None:
        with lock.write(timeout=10) as g:
            result.append(g.owner_died)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.1)  # the first (try) attempt found the reader and gave up
    release.set()
    t.join(15)
    assert result == [True]


def _group_writer(name: str, stop: Any) -> None:
    v = memspace.View.open(name)
    i = 0
    while not stop.is_set():
        i += 1
        with v.write_lock():
            v.write(i, 0)
            v.write(i, 9)


def _group_reader(name: str, stop: Any, out: Any) -> None:
    v = memspace.View.open(name)
    reads = torn = 0
    deadline = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            a, b = v.read_mixed([("int", 2)], 0)[0]
        except TypeError:
            continue  # nothing written yet
        reads += 1
        torn += a != b
    out.put((reads, torn))


def test_write_lock_group_is_seen_all_at_once(
    make_name: Callable[[str], str], procs: list[Any]
) -> None:
    name = make_name("view")
    memspace.View.create(name, 256)
    stop = ctx.Event()
    out = ctx.Queue()
    start(procs, _group_writer, name, stop)
    for _ in range(2):
        start(procs, _group_reader, name, stop, out)
    time.sleep(1.0)
    stop.set()
    results = [out.get(timeout=10) for _ in range(2)]
    for p in procs:
        p.join(10)
    assert all(reads > 0 for reads, _ in results), results
    assert sum(torn for _, torn in results) == 0, results
