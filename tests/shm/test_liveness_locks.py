"""Liveness locks that a read-only opener cannot take or fake (issue #11, finding 6).

Another user who can only *read* a segment (mode 0644 or 0640) can open its file read-only and
take shared OFD locks on any byte, even on the whole file and beyond. Those locks must neither
keep anyone from attaching or claiming a role, nor make a dead process's slot look alive. The
attacker here is this very process through a read-only file description of its own (OFD locks
belong to the description, so it conflicts like another process would); tests/hostile/ does
the same as another user."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import memspace
import pytest

from tests.helpers import linux_only

pytestmark = [linux_only, pytest.mark.timeout(90)]

ctx = mp.get_context("fork")


def read_lock_everything(path: Path, start: int = 0) -> int:
    """Open `path` read-only and take a shared OFD lock on every byte (`start` to infinity)."""
    fd = os.open(path, os.O_RDONLY)
    flock = struct.pack("@hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, start, 0, 0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
    return fd


@pytest.fixture
def attacker() -> Iterator[list[int]]:
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def _file(name: str) -> Path:
    return Path("/dev/shm") / name.lstrip("/")


def _hold_read(name: str, ready: Any) -> None:
    lock = memspace.RwLock.open(name)
    lock.read()
    ready.set()
    time.sleep(3600)


def _hold_producer(name: str, ready: Any) -> None:
    # Kept in a variable: a handle dropped at once would give the role back before the kill.
    tx = memspace.Ring.open(name, role="producer")
    ready.set()
    time.sleep(3600)
    tx.close()  # never reached


def _start_and_check(target: Any, name: str, check: Any) -> None:
    """Runs `check()` while `target` holds what it holds, then kills it."""
    ready = ctx.Event()
    p = ctx.Process(target=target, args=(name, ready), daemon=True)
    p.start()
    try:
        assert ready.wait(30)
        check()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)


def _start_and_kill(target: Any, name: str) -> None:
    ready = ctx.Event()
    p = ctx.Process(target=target, args=(name, ready), daemon=True)
    p.start()
    try:
        assert ready.wait(30)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("kind", ["Mutex", "RwLock", "View", "Queue", "Ring", "Broadcast"])
def test_a_reader_cannot_keep_anyone_from_attaching(
    kind: str, shm_name: str, attacker: list[int]
) -> None:
    cls = getattr(memspace, kind)
    args = (4096,) if kind in ("View", "Queue", "Ring", "Broadcast") else ()
    cls.create(shm_name, *args, mode=0o644)
    attacker.append(read_lock_everything(_file(shm_name)))
    handles = [cls.open(shm_name) for _ in range(3)]  # each attaches: takes a slot
    assert len(handles) == 3


def test_a_reader_cannot_make_a_dead_reader_look_alive(shm_name: str, attacker: list[int]) -> None:
    lock = memspace.RwLock.create(shm_name, mode=0o644)
    _start_and_kill(_hold_read, shm_name)
    attacker.append(read_lock_everything(_file(shm_name)))
    # The dead reader's share is recognised as dead and released: a writer gets in.
    with lock.write(timeout=10) as g:
        assert g.owner_died


def test_a_reader_cannot_take_or_keep_a_ring_role(shm_name: str, attacker: list[int]) -> None:
    memspace.Ring.create(shm_name, 4096, mode=0o644)
    attacker.append(read_lock_everything(_file(shm_name)))
    rx = memspace.Ring.open(shm_name, role="consumer")  # not blocked by the reader's lock
    _start_and_kill(_hold_producer, shm_name)
    tx = memspace.Ring.open(shm_name, role="producer")  # the dead producer's role is free
    tx.put(b"hello")
    assert rx.get(timeout=5) == b"hello"


def _hold_publisher(name: str, ready: Any) -> None:
    pub = memspace.Broadcast.open(name, role="publisher")
    ready.set()
    time.sleep(3600)
    pub.close()  # never reached: keeps `pub` alive until the kill


def _hold_subscription(name: str, ready: Any) -> None:
    sub = memspace.Broadcast.open(name)  # subscribes, and never reads
    ready.set()
    time.sleep(3600)
    sub.close()  # never reached: keeps `sub` alive until the kill


def test_a_reader_cannot_take_or_keep_a_broadcast_role_or_subscriber(
    shm_name: str, attacker: list[int]
) -> None:
    memspace.Broadcast.create(shm_name, 4096, mode=0o644)
    attacker.append(read_lock_everything(_file(shm_name)))
    sub = memspace.Broadcast.open(shm_name)  # attaching is not blocked by the reader's lock
    with pytest.raises(memspace.RoleTakenError):  # (the fixture is sound: a live one holds it)
        _start_and_check(_hold_publisher, shm_name, lambda: sub.put(b"x"))
    _start_and_kill(_hold_publisher, shm_name)
    pub = memspace.Broadcast.open(shm_name, role="publisher")  # the dead publisher's role
    assert pub.inspect()["publisher_alive"] is True
    # A subscriber killed without reading anything: in block mode it would hold the publisher
    # back forever if the reader's lock made it look alive.
    _start_and_kill(_hold_subscription, shm_name)
    info = pub.inspect()
    assert info["dead_subscribers"] == 1
    assert [s["pid"] for s in info["subscribers"]] == [os.getpid()]
    for i in range(200):  # 200 records of 48 bytes: twice round the 4096-byte ring
        pub.put(i.to_bytes(4, "little") * 8, timeout=10)
        assert sub.get(timeout=10) == i.to_bytes(4, "little") * 8


def test_a_reader_cannot_make_a_stale_segment_look_in_use(
    shm_name: str, attacker: list[int]
) -> None:
    lock = memspace.Mutex.create(shm_name, mode=0o644)
    del lock  # detached: nobody is attached any more
    attacker.append(read_lock_everything(_file(shm_name)))
    assert memspace._memspace._staleness(shm_name) is True


def test_liveness_locks_are_on_a_lock_file_only_writers_can_open(shm_name: str) -> None:
    memspace.Queue.create(shm_name, 4096, mode=0o644)
    segment = _file(shm_name)
    lock_file = segment.with_name(segment.name + ".memspace-lock")
    st = lock_file.lstat()
    assert st.st_uid == segment.lstat().st_uid
    assert st.st_mode & 0o7777 == 0o600  # rw exactly for the classes that may write the segment
    memspace.Queue.remove(shm_name)
    assert not lock_file.exists()
    assert not segment.exists()


@pytest.mark.parametrize(
    ("mode", "lock_mode"),
    [(0o600, 0o600), (0o640, 0o600), (0o660, 0o660), (0o664, 0o660), (0o646, 0o606)],
)
def test_lock_file_mode_follows_the_write_bits(mode: int, lock_mode: int, tmp_path: Path) -> None:
    path = tmp_path / "q"
    memspace.Mutex.create(path=path, mode=mode)
    lock_file = tmp_path / "q.memspace-lock"
    assert lock_file.lstat().st_mode & 0o7777 == lock_mode
    memspace.Mutex.remove(path=path)
    assert not lock_file.exists()
    assert not path.exists()


def test_lock_files_are_not_listed(shm_name: str) -> None:
    memspace.Queue.create(shm_name, 4096)
    names = [s.name for s in memspace.segments()]
    assert shm_name in names
    assert not [n for n in names if n.endswith(".memspace-lock")]


def test_read_locks_on_the_lock_file_do_not_fake_liveness(
    shm_name: str, attacker: list[int]
) -> None:
    # Defence in depth: liveness asks for write locks only (F_OFD_GETLK with F_RDLCK), so even
    # a shared lock on the lock file itself (which only a writer could take) never makes a
    # dead slot look alive.
    lock = memspace.RwLock.create(shm_name)
    _start_and_kill(_hold_read, shm_name)
    seg = _file(shm_name)
    # Every byte after our own slot's (slot 0, at 128 + 64): the dead reader's slot included.
    lock_file = seg.with_name(seg.name + ".memspace-lock")
    attacker.append(read_lock_everything(lock_file, start=128 + 64 + 1))
    with lock.write(timeout=10) as g:
        assert g.owner_died
