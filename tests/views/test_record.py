"""memspace.Record: define, create/open, atomic fields, locking, dtype, bad input."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import memspace
import pytest

pytestmark = pytest.mark.timeout(60)

Foo = memspace.Record.define("Foo", bar="i32", baz="i32")
Mixed = memspace.Record.define(
    "Mixed", flag="bool", small="i8", mid="u16", big="u64", x="f32", y="float", n="int"
)


def test_create_open_fields(shm_name: str) -> None:
    f = Foo.create(shm_name, bar=42, baz=98)
    g = Foo.open(shm_name)
    assert (g.bar, g.baz) == (42, 98)
    g.bar = 31337
    assert f.bar == 31337
    with f.locked() as lk:
        assert not lk.owner_died
        f.bar, f.baz = 1, 2
    assert g.asdict() == {"bar": 1, "baz": 2}
    assert repr(g) == "Foo(bar=1, baz=2)"
    assert g.name == shm_name
    kinds = {s.name: s.kind for s in memspace.segments()}
    assert kinds[shm_name] == "record"


def test_every_field_type_and_ranges(shm_name: str) -> None:
    m = Mixed.create(shm_name)
    m.flag = True
    m.small = -128
    m.mid = 65535
    m.big = 2**64 - 1
    m.x = 0.5
    m.y = 1e300
    m.n = -(2**63)
    assert m.asdict() == {
        "flag": True,
        "small": -128,
        "mid": 65535,
        "big": 2**64 - 1,
        "x": 0.5,
        "y": 1e300,
        "n": -(2**63),
    }
    for field, bad in [("small", 128), ("mid", -1), ("big", 2**64), ("n", 2**63), ("x", 1e39)]:
        with pytest.raises(OverflowError):
            setattr(m, field, bad)
    with pytest.raises(TypeError):
        m.flag = 1
    with pytest.raises(TypeError):
        m.n = 1.5
    with pytest.raises(TypeError):
        m.y = "1"
    with pytest.raises(AttributeError):
        m.nope = 1  # type: ignore[attr-defined]


def test_dtype_matches_layout(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    dt = Mixed.dtype
    assert dt.names == ("flag", "small", "mid", "big", "x", "y", "n")
    assert dt.fields["big"][1] == 8
    assert dt.itemsize == 40
    m = Mixed.create(shm_name, mid=7, y=2.5)
    raw = memspace.SharedMemory.open(shm_name)
    arr = np.frombuffer(raw.buf, dtype=dt, count=1, offset=raw.size - 64)
    assert arr["mid"][0] == 7
    assert arr["y"][0] == 2.5
    del arr
    raw.close()
    assert m.mid == 7


def test_other_definition_is_refused(shm_name: str) -> None:
    Foo.create(shm_name)
    Other = memspace.Record.define("Foo", bar="i64", baz="i32")
    with pytest.raises(memspace.LayoutError, match="another definition"):
        Other.open(shm_name)
    with pytest.raises(memspace.LayoutError):
        memspace.View.open(shm_name)


def test_bad_definitions() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        memspace.Record.define("Empty")
    with pytest.raises(ValueError, match="unknown type"):
        memspace.Record.define("Bad", x="i128")
    with pytest.raises(ValueError, match="cannot be a field name"):
        memspace.Record.define("Bad", _x="i32")
    with pytest.raises(ValueError, match="cannot be a field name"):
        memspace.Record.define("Bad", locked="i32")
    with pytest.raises(ValueError, match="identifier"):
        memspace.Record.define("not a name", x="i32")
    with pytest.raises(TypeError):
        memspace.Record.define("Bad", x=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="define"):
        memspace.Record.create("/x")


def test_create_with_unknown_or_bad_values(shm_name: str) -> None:
    with pytest.raises(TypeError, match="no field"):
        Foo.create(shm_name, nope=1)
    with pytest.raises(OverflowError):
        Foo.create(shm_name, bar=2**40)
    # The failed create left nothing behind.
    with pytest.raises(FileNotFoundError):
        Foo.open(shm_name)


def _child_sets(name: str) -> None:
    f = Foo.open(name)
    with f.locked():
        f.bar = 7
        f.baz = 8


def test_seen_by_other_processes_and_file_backed(shm_name: str, tmp_path: Path) -> None:
    f = Foo.create(shm_name)
    p = mp.get_context("spawn").Process(target=_child_sets, args=(shm_name,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert (f.bar, f.baz) == (7, 8)
    path = tmp_path / "foo.rec"
    r = Foo.create(path=path, bar=5)
    del r
    assert Foo.open(path=path).bar == 5
    Foo.remove(path=path)


# --- the blog's Foo: size, as_bytes/from_bytes, O_CREAT, the offset for C, close ----------


def test_size_and_bytes_are_the_c_struct(shm_name: str) -> None:
    import ctypes

    class CFoo(ctypes.Structure):
        _fields_ = [("bar", ctypes.c_int32), ("baz", ctypes.c_int32)]

    class CMixed(ctypes.Structure):
        _fields_ = [
            ("flag", ctypes.c_bool),
            ("small", ctypes.c_int8),
            ("mid", ctypes.c_uint16),
            ("big", ctypes.c_uint64),
            ("x", ctypes.c_float),
            ("y", ctypes.c_double),
            ("n", ctypes.c_int64),
        ]

    assert Foo.size == ctypes.sizeof(CFoo) == 8
    assert Mixed.size == ctypes.sizeof(CMixed) == Mixed.dtype.itemsize
    with Foo.create(shm_name, bar=42, baz=98) as f:
        assert len(f) == Foo.size
        data = f.as_bytes()
        assert data == bytes(CFoo(42, 98))
        g = Foo.from_bytes(data)
        assert (g.bar, g.baz) == (42, 98)
        assert g.name is None
        assert g.path is None
        g.bar = -1  # a private copy: the shared record does not change
        assert f.bar == 42
        assert g.as_bytes() == bytes(CFoo(-1, 98))
        mixed = Mixed.from_bytes(bytes(CMixed(True, -3)))
        assert (mixed.flag, mixed.small) == (True, -3)
        assert CMixed.from_buffer_copy(mixed.as_bytes()).small == -3


def test_from_bytes_checks_like_a_shared_record() -> None:
    with pytest.raises(ValueError, match="exactly 8 bytes, not 7"):
        Foo.from_bytes(b"1234567")
    with pytest.raises(TypeError, match="bytes-like"):
        Foo.from_bytes("12345678")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="define"):
        memspace.Record.from_bytes(b"")
    m = Mixed.from_bytes(bytes(Mixed.size))
    for field, bad, exc in [
        ("small", 128, OverflowError),
        ("mid", -1, OverflowError),
        ("big", 2**64, OverflowError),
        ("x", 1e39, OverflowError),
        ("flag", 1, TypeError),
        ("n", 1.5, TypeError),
        ("y", "1", TypeError),
    ]:
        with pytest.raises(exc):
            setattr(m, field, bad)
    assert m.asdict() == {"flag": False, "small": 0, "mid": 0, "big": 0, "x": 0.0, "y": 0.0, "n": 0}
    with m.locked() as g:  # nothing to lock in local memory
        assert not g.owner_died
    with pytest.raises(ValueError, match="not in a segment"):
        m.offset  # noqa: B018
    with pytest.raises(ValueError, match="not in a segment"):
        m.unlink()
    assert not m.closed
    m.close()


def test_memoryview_and_bytearray_are_accepted(shm_name: str) -> None:
    raw = bytearray(bytes(Foo.size))
    raw[0] = 5
    assert Foo.from_bytes(raw).bar == 5
    assert Foo.from_bytes(memoryview(bytes(raw))).bar == 5


def test_bytes_over_a_queue(shm_name: str) -> None:
    with Foo.create(shm_name, bar=1, baz=2) as f, memspace.Queue.create(shm_name + "q", 4096) as q:
        try:
            q.put(f.as_bytes())
            assert Foo.from_bytes(q.get()).asdict() == {"bar": 1, "baz": 2}
        finally:
            q.unlink()


def test_open_or_create(shm_name: str) -> None:
    with Foo.open_or_create(shm_name, bar=1) as a:  # creates: the values apply
        assert (a.bar, a.baz) == (1, 0)
        a.baz = 9
        with Foo.open_or_create(shm_name, bar=2) as b:  # opens: the values are ignored
            assert (b.bar, b.baz) == (1, 9)
    with pytest.raises(FileExistsError):
        Foo.create(shm_name)
    with pytest.raises(OverflowError):
        Foo.open_or_create(shm_name + "-new", bar=2**40)  # checked before anything is made
    with pytest.raises(FileNotFoundError):
        Foo.open(shm_name + "-new")
    Other = memspace.Record.define("Other", bar="i64")
    with pytest.raises(memspace.LayoutError):
        Other.open_or_create(shm_name)


def _open_or_create_and_add(name: str, n: int) -> None:
    f = Foo.open_or_create(name)
    for _ in range(n):
        with f.locked():
            f.bar += 1
    f.close()


def test_open_or_create_races_create_exactly_one(shm_name: str) -> None:
    ctx = mp.get_context("spawn")
    ps = [ctx.Process(target=_open_or_create_and_add, args=(shm_name, 50)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    with Foo.open(shm_name) as f:
        assert f.bar == 200  # nobody re-created (zeroed) it under another


def test_offset_is_where_c_finds_the_fields(shm_name: str) -> None:
    with Foo.create(shm_name, bar=31337, baz=-2) as f:
        shm = memspace.SharedMemory.open(shm_name)
        try:
            raw = shm.read(f.offset, Foo.size)
            assert raw == f.as_bytes()
            import numpy as np

            rec = np.frombuffer(shm.buf, dtype=Foo.dtype, count=1, offset=f.offset)
            assert (int(rec["bar"][0]), int(rec["baz"][0])) == (31337, -2)
            del rec
        finally:
            shm.close()
        assert f.offset % 8 == 0


def test_close_with_and_unlink(shm_name: str) -> None:
    f = Foo.create(shm_name, bar=3)
    g = Foo.open(shm_name)
    g.close()
    assert g.closed
    assert not f.closed
    with pytest.raises(ValueError, match="closed Record"):
        g.bar  # noqa: B018
    with pytest.raises(ValueError, match="closed Record"):
        g.as_bytes()
    assert "closed" in repr(g)
    with f:
        f.unlink()
        assert f.bar == 3  # still mapped until closed
    assert f.closed
    with pytest.raises(FileNotFoundError):
        Foo.open(shm_name)


def test_field_names_that_are_record_attributes_are_refused() -> None:
    for name in ("size", "close", "as_bytes", "offset", "unlink", "closed"):
        with pytest.raises(ValueError, match="cannot be a field name"):
            memspace.Record.define("Bad", **{name: "i32"})
