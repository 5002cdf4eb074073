"""Mutex and RwLock from one process: API, bad input, corrupt and foreign headers."""

from __future__ import annotations

import gc
import os
import pickle
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import memspace
import pytest

pytestmark = pytest.mark.timeout(60)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_mutex_basics(shm_name: str) -> None:
    m = memspace.Mutex.create(shm_name)
    assert m.name == shm_name
    assert m.path is None
    with m as g:
        assert g.held
        assert not g.owner_died
        with pytest.raises(memspace.LockError):
            m.acquire(timeout=0)
    g2 = m.acquire()
    m.release()
    with pytest.raises(memspace.LockError):
        m.release()
    with pytest.raises(memspace.LockError):
        g2.release()  # already released through the mutex
    with m(timeout=0.5) as g3:
        assert "mutex" in repr(g3)
    with pytest.raises(memspace.LockError):
        g3.release()
    with pytest.raises(FileExistsError):
        memspace.Mutex.create(shm_name)
    other = memspace.Mutex.open(shm_name)
    with m():
        errors: list[BaseException] = []

        def contender() -> None:
            try:
                other.acquire(timeout=0)
            except BaseException as e:
                errors.append(e)
            try:
                other.acquire(timeout=0.05)
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=contender)
        t.start()
        t.join()
        assert [type(e) for e in errors] == [TimeoutError, TimeoutError]


def test_rwlock_basics(shm_name: str) -> None:
    lock = memspace.RwLock.create(shm_name, mode=0o640)
    info = next(s for s in memspace.segments() if s.name == shm_name)
    assert info.kind == "rwlock"
    assert info.mode == 0o640
    with lock.read() as r:
        assert lock.reader_count == 1
        assert not r.owner_died
        with pytest.raises(memspace.LockError):
            lock.read()
        with pytest.raises(memspace.LockError):
            lock.write()
    with lock.write(timeout=0) as w:
        assert lock.write_locked
        assert not w.owner_died
    assert not lock.write_locked
    assert lock.reader_count == 0


def test_pickle_reopens(shm_name: str) -> None:
    m = memspace.Mutex.create(shm_name)
    m2 = pickle.loads(pickle.dumps(m))
    assert isinstance(m2, memspace.Mutex)
    assert m2.name == shm_name
    memspace.Mutex.remove(shm_name)
    n2 = shm_name + "-rw"
    lock = memspace.RwLock.create(n2)
    try:
        assert pickle.loads(pickle.dumps(lock)).name == n2
    finally:
        memspace.RwLock.remove(n2)


def test_file_backed_lock_persists(tmp_path: Path) -> None:
    p = tmp_path / "lock.mem"
    m = memspace.Mutex.create(path=p)
    assert m.path == p
    del m
    m = memspace.Mutex.open(path=p)
    with m(timeout=1) as g:
        assert not g.owner_died
    memspace.Mutex.remove(path=p)
    assert not p.exists()


@pytest.mark.parametrize("cls", [memspace.Mutex, memspace.RwLock])
def test_bad_input(cls: type[memspace.Mutex] | type[memspace.RwLock], shm_name: str) -> None:
    for bad in ["", "noslash", "/a/b", "/"]:
        with pytest.raises(ValueError, match="name"):
            cls.create(bad)
    with pytest.raises(TypeError):
        cls.create()
    with pytest.raises(TypeError):
        cls.create(shm_name, path="/tmp/x")
    with pytest.raises(ValueError, match="mode"):
        cls.create(shm_name, mode=-1)
    with pytest.raises(ValueError, match="mode"):
        cls.create(shm_name, mode=0o10000)
    with pytest.raises(FileNotFoundError):
        cls.open(shm_name)
    with pytest.raises(FileNotFoundError):
        cls.remove(shm_name)
    lock = cls.create(shm_name)
    acquire = lock.acquire if isinstance(lock, memspace.Mutex) else lock.write
    for t in (-1, -0.5, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            acquire(timeout=t)
    with pytest.raises(TypeError):
        acquire(timeout="1")  # type: ignore[arg-type]
    with acquire(timeout=float("inf")):
        pass


def test_wrong_kind_is_refused(make_name: Callable[[str], str]) -> None:
    a, b, c = make_name("m"), make_name("rw"), make_name("v")
    memspace.Mutex.create(a)
    memspace.RwLock.create(b)
    memspace.View.create(c, 64)
    with pytest.raises(memspace.LayoutError, match="holds a mutex, not a rwlock"):
        memspace.RwLock.open(a)
    with pytest.raises(memspace.LayoutError, match="holds a rwlock, not a mutex"):
        memspace.Mutex.open(b)
    with pytest.raises(memspace.LayoutError, match="holds a view"):
        memspace.Mutex.open(c)


def _raw_with(name: str, data: bytes, size: int = 4096) -> None:
    shm = memspace.SharedMemory.create(name, size)
    shm.write(0, data)
    shm.close()


def test_foreign_and_short_segments_are_refused(make_name: Callable[[str], str]) -> None:
    foreign, short, zeros = make_name("f"), make_name("s"), make_name("z")
    _raw_with(foreign, os.urandom(4096))
    _raw_with(short, b"MEMSPACE", size=64)
    memspace.SharedMemory.create(zeros, 4096).close()
    with pytest.raises(memspace.LayoutError, match="not a memspace"):
        memspace.Mutex.open(foreign)
    with pytest.raises(memspace.LayoutError, match="too small"):
        memspace.RwLock.open(short)
    # All zeros looks like a segment whose creator has not finished: refused after a
    # bounded wait, never hung, and told apart from a creator that died mid-initialisation
    # (`rm --stale` does not remove raw segments: the message names `memspace rm NAME`).
    with pytest.raises(memspace.LayoutError, match=f"no memspace header.*`memspace rm {zeros}`"):
        memspace.Mutex.open(zeros)
    kinds = {s.name: s.kind for s in memspace.segments()}
    assert kinds[foreign] == "raw"


def _corrupt(name: str, offset: int, data: bytes, *, reseal: bool = False) -> None:
    shm = memspace.SharedMemory.open(name)
    shm.write(offset, data)
    if reseal:
        header = shm.read(0, 112)
        shm.write(112, struct.pack("=Q", fnv1a64(header)))
    shm.close()


@pytest.mark.parametrize(
    ("offset", "data", "reseal", "match"),
    [
        (0, b"X", False, "not a memspace"),
        (8, struct.pack("=H", 3), False, "layout version 3.0"),
        (10, struct.pack("=H", 9), False, "checksum"),
        (8, struct.pack("=H", 3), True, "layout version 3.0"),
        # Layout 1 (glibc's pthread mutexes in the lock areas) is refused by this build.
        (8, struct.pack("=H", 1), True, "layout version 1.0"),
        (12, struct.pack("=I", 0x04030201), True, "other byte order"),
        (16, struct.pack("=I", 77), True, "unknown kind 77"),
        (24, struct.pack("=Q", 1 << 40), True, "bytes, the segment has"),
        (40, struct.pack("=I", 0), True, "attachment slots"),
        (40, struct.pack("=I", 100000), True, "attachment slots"),
        (48, struct.pack("=Q", 2**64 - 64), True, "does not fit"),
        (56, struct.pack("=Q", 2**63), True, "does not fit"),
        (96, b"\x01", False, "checksum"),
        (120, struct.pack("=I", 7), False, "state word"),
        (120, struct.pack("=I", 2), False, "POISONED"),
    ],
)
def test_corrupt_header_is_refused(
    shm_name: str, offset: int, data: bytes, reseal: bool, match: str
) -> None:
    memspace.RwLock.create(shm_name)
    _corrupt(shm_name, offset, data, reseal=reseal)
    before = memspace.SharedMemory.open(shm_name).read()
    with pytest.raises((memspace.LayoutError, memspace.CorruptSegmentError), match=match):
        memspace.RwLock.open(shm_name)
    assert memspace.SharedMemory.open(shm_name).read() == before


def test_corrupt_mutex_bytes_are_refused_without_crash(shm_name: str) -> None:
    m = memspace.Mutex.create(shm_name)
    raw = memspace.SharedMemory.open(shm_name)
    # The mutex area starts after the header and the attachment table (64 slots); its word
    # is at offset 0: slot + 1 in bits 0..12, the slot's generation above, bit 31 waiters.
    lock_off = 128 + 64 + 32 * 64
    for word in (0x8000_0000, 0x0000_F000, 1000):  # no slot, no slot, slot 999 of 64
        raw.write(lock_off, struct.pack("=I", word))
        with pytest.raises(memspace.CorruptSegmentError, match="slot"):
            m.acquire(timeout=0.1)
        with pytest.raises(memspace.CorruptSegmentError, match="slot"):
            m.acquire(timeout=0)
    raw.write(lock_off, struct.pack("=I", 0x8000_0000))
    with pytest.raises(memspace.CorruptSegmentError, match="slot"):
        memspace.Mutex.open(shm_name)  # a word that names no slot at all is refused at open
    # A slot of the table whose holder is gone (generation 77 was never claimed): taken over.
    raw.write(lock_off, struct.pack("=I", 6 | 77 << 12))
    with m(timeout=1) as g:
        assert g.owner_died
    with m(timeout=0) as g:
        assert not g.owner_died
    raw.write(lock_off + 72, b"\0\0\0\0")  # our magic
    with pytest.raises(memspace.CorruptSegmentError, match="magic"):
        memspace.Mutex.open(shm_name)
    raw.write(lock_off + 72, b"RMTX")  # layout 1's magic (a glibc mutex)
    with pytest.raises(memspace.CorruptSegmentError, match="layout 1"):
        memspace.Mutex.open(shm_name)
    raw.close()


def test_random_garbage_in_lock_area_never_crashes(shm_name: str) -> None:
    lock = memspace.RwLock.create(shm_name)
    raw = memspace.SharedMemory.open(shm_name)
    lock_off = 128 + 64 + 32 * 64
    # Garbage in the rwlock words (not the mutex): waits end at their timeout at worst.
    raw.write(lock_off + 128, os.urandom(64 + 4 * 64))
    for op in (lock.read, lock.write):
        try:
            with op(timeout=0.1):
                pass
        except (TimeoutError, memspace.CorruptSegmentError):
            pass
    raw.close()


def test_thread_exit_keeps_the_mutex_held_until_the_handle_goes(shm_name: str) -> None:
    """A hold belongs to the handle (its attachment slot), not to the thread: a thread that
    exits holding the mutex leaves it held; when the handle goes, the next holder is told."""
    m = memspace.Mutex.create(shm_name)
    m2 = memspace.Mutex.open(shm_name)
    t = threading.Thread(target=m2.acquire)  # (Thread.run drops its target when done)
    t.start()
    t.join()
    with pytest.raises(TimeoutError):
        m.acquire(timeout=0.05)
    with pytest.raises(TimeoutError):
        m2.acquire(timeout=0.05)  # another thread of the same handle waits too
    with pytest.raises(memspace.LockError):
        m2.release()  # and cannot release what the dead thread held
    del m2
    gc.collect()
    with m(timeout=1) as g:
        assert g.owner_died
