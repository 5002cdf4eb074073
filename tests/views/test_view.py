"""memspace.View: tagged values, cursor, bounds, bad input, across processes."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import memspace
import pytest

pytestmark = pytest.mark.timeout(60)


def test_roundtrip_every_type(shm_name: str) -> None:
    v = memspace.View.create(shm_name, 512)
    assert v.size == 512
    assert v.tell() == 0
    values = [
        (True, None),
        (-(2**63), None),
        (2.5, None),
        ("héllo ✓", None),
        (b"\x00\xff", None),
        (bytearray(b"ba"), None),
        (memoryview(b"mv"), None),
        (-(2**31), "i32"),
        (255, "u8"),
        (2**32 - 1, "u32"),
        (2**64 - 1, "u64"),
        (0.5, "f32"),
        (3, "f64"),
    ]
    for value, tag in values:
        v.write(value, tag=tag)
    end = v.tell()
    v.seek()
    tags = ["bool", int, "float", str, bytes, "bytes", "bytes", "i32", "u8", "u32", "u64"]
    tags += ["f32", "f64"]
    got = [v.read(t) for t in tags]
    assert got == [
        True,
        -(2**63),
        2.5,
        "héllo ✓",
        b"\x00\xff",
        b"ba",
        b"mv",
        -(2**31),
        255,
        2**32 - 1,
        2**64 - 1,
        0.5,
        3.0,
    ]
    assert v.tell() == end
    # Explicit offsets do not move the cursor.
    assert v.read("bool", 0) is True
    assert v.tell() == end


def test_wrong_tag_overflow_and_bounds(shm_name: str) -> None:
    v = memspace.View.create(shm_name, 32)
    v.write(7)
    with pytest.raises(TypeError, match="expected a value of type f64, found one of type i64"):
        v.read(float, 0)
    with pytest.raises(TypeError, match="zeroed"):
        v.read(int, 9)
    with pytest.raises(OverflowError):
        v.write(2**63)
    with pytest.raises(OverflowError):
        v.write(-1, tag="u64")
    with pytest.raises(OverflowError):
        v.write(256, tag="u8")
    with pytest.raises(OverflowError):
        v.write(1e300, tag="f32")
    with pytest.raises(IndexError):
        v.write("x" * 40)
    with pytest.raises(IndexError):
        v.write(1, 30)
    with pytest.raises(IndexError):
        v.read(int, 1000)
    with pytest.raises(ValueError, match="offset"):
        v.write(1, -1)
    with pytest.raises(ValueError, match="unknown tag"):
        v.read("i128")
    with pytest.raises(TypeError):
        v.read(list)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        v.write(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        v.write("s", tag="i32")
    with pytest.raises(TypeError):
        v.write(1.5, tag="i64")
    with pytest.raises(ValueError, match="position"):
        v.seek(33)
    with pytest.raises(ValueError, match="position"):
        v.seek(-1)
    # A failed write changed nothing.
    assert v.read(int, 0) == 7


def test_mixed_and_zero(shm_name: str) -> None:
    v = memspace.View.create(shm_name, 1024)
    v.write_mixed([["Normal", "DDoS", "DoS"], [0.92, 0.87, 0.95], [True, False, True], 42])
    v.seek()
    labels, scores, flags, n = v.read_mixed([("str", 3), ("float", 3), ("bool", 3), ("int", 1)])
    assert labels == ["Normal", "DDoS", "DoS"]
    assert scores == [0.92, 0.87, 0.95]
    assert flags == [True, False, True]
    assert n == 42
    assert v.read_mixed([("int", 0)], 0) == [[]]
    with pytest.raises(ValueError, match="count"):
        v.read_mixed([("int", -1)], 0)
    with pytest.raises(TypeError):
        v.read_mixed([("int",)], 0)
    with pytest.raises(TypeError):
        v.write_mixed(5)  # type: ignore[arg-type]
    v.zero()
    assert v.read_bytes(0, 16) == bytes(16)
    with pytest.raises(TypeError):
        v.read("str", 0)


def test_corrupt_string_length_never_reads_outside(shm_name: str) -> None:
    v = memspace.View.create(shm_name, 64)
    v.write(b"abc", 0)
    raw = memspace.SharedMemory.open(shm_name)
    data_off = raw.size - 64
    raw.write(data_off + 1, b"\xff\xff\xff\x7f")
    with pytest.raises(IndexError):
        v.read(bytes, 0)
    raw.write(data_off, b"\x04\x02\x00\x00\x00\xff\xfe")
    with pytest.raises(ValueError, match="UTF-8"):
        v.read(str, 0)
    raw.close()


def test_bad_create(shm_name: str) -> None:
    with pytest.raises(TypeError):
        memspace.View.create(shm_name)
    for size in (0, -1):
        with pytest.raises(ValueError, match="size"):
            memspace.View.create(shm_name, size)
    with pytest.raises(TypeError):
        memspace.View.create(shm_name, "10")  # type: ignore[arg-type]


def _child_reads(name: str, q: mp.Queue[object]) -> None:
    v = memspace.View.open(name)
    q.put(v.read_mixed([("str", 1), ("int", 1)], 0))


def test_across_processes_and_file_backed(shm_name: str, tmp_path: Path) -> None:
    v = memspace.View.create(shm_name, 128)
    v.write_mixed(["from parent", 99], 0)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child_reads, args=(shm_name, q))
    p.start()
    assert q.get(timeout=30) == ["from parent", 99]
    p.join(10)
    path = tmp_path / "view.mem"
    fv = memspace.View.create(path=path, size=64)
    fv.write("persisted", 0)
    del fv
    assert memspace.View.open(path=path).read(str, 0) == "persisted"


def test_write_lock_groups_updates_and_read_lock_groups_reads(shm_name: str) -> None:
    v = memspace.View.create(shm_name, 64)
    with v.write_lock(timeout=1):
        v.write(1, 0)
        v.write(2, 9)
        assert v.read(int, 0) == 1
    with v.read_lock(timeout=1):
        assert v.read_mixed([("int", 1)], 0) == [1]
        assert v.read(int, 9) == 2
        with pytest.raises(memspace.LockError):
            v.write(3, 0)  # a write inside one's own read hold would deadlock
    assert v.read(int, 0) == 1


def test_pickle_reopens(shm_name: str) -> None:
    import pickle

    v = memspace.View.create(shm_name, 32)
    v.write(11, 0)
    v2 = pickle.loads(pickle.dumps(v))
    assert isinstance(v2, memspace.View)
    assert v2.read(int, 0) == 11


def test_read_all_read_range_and_lock_state(shm_name: str) -> None:
    # membridge's MappedView: read_all(), read_range(offset, length), reader_count(),
    # is_write_locked().
    with memspace.View.create(shm_name, 16) as v:
        v.write(b"abcd", 0)  # tagged: 1 tag byte, u32 length, then the bytes
        raw = v.read_all()
        assert len(raw) == v.size == len(v) == 16
        assert raw[5:9] == b"abcd" == v.read_bytes(5, 4)
        assert not v.write_locked
        assert v.reader_count == 0
        with v.read_lock():
            assert v.reader_count == 1
            assert not v.write_locked
            assert v.read_all() == raw  # a reader may read under its own read lock
        with v.write_lock():
            assert v.write_locked
            assert v.reader_count == 0
        assert not v.write_locked
        for bad in (lambda: v.read_bytes(-1, 2), lambda: v.read_bytes(0, -1)):
            with pytest.raises(ValueError, match=">= 0"):
                bad()
        with pytest.raises(IndexError):
            v.read_bytes(10, 7)
        with pytest.raises(ValueError, match="timeout"):
            v.read_all(timeout=-1)


def test_closed_view_refuses_and_keeps_its_name(shm_name: str) -> None:
    v = memspace.View.create(shm_name, 64)
    v.close()
    for op in (v.read_all, lambda: v.write(1), lambda: v.write_locked, lambda: v.read_lock()):
        with pytest.raises(ValueError, match="closed View"):
            op()
    assert (v.name, v.size, v.closed) == (shm_name, 64, True)
    assert "closed" in repr(v)
