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
