"""Drop-in parity with dmemfs 0.4.1: the same public names and signatures, and the same quota
accounting (the same workload is refused at the same byte, with the same requested/available).
Skipped if dmemfs is not installed (it is in the ``test`` extra)."""

from __future__ import annotations

import inspect
from typing import Any

import hypothesis.strategies as st
import memspace
import pytest
from hypothesis import given, settings

dmemfs = pytest.importorskip("dmemfs")

METHODS = [
    "open",
    "mkdir",
    "remove",
    "rmtree",
    "rename",
    "move",
    "copy",
    "copy_tree",
    "listdir",
    "exists",
    "is_dir",
    "is_file",
    "walk",
    "glob",
    "stat",
    "stats",
    "get_size",
    "export_as_bytesio",
    "export_tree",
    "iter_export_tree",
    "import_tree",
]


def _params(fn: Any) -> list[tuple[str, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_public_names_exist() -> None:
    for name in dmemfs.__all__:
        assert hasattr(memspace, name), name


@pytest.mark.parametrize("method", METHODS)
def test_method_signatures_match(method: str) -> None:
    ours = getattr(memspace.MemoryFileSystem, method)
    theirs = getattr(dmemfs.MemoryFileSystem, method)
    assert _params(ours) == _params(theirs)


def test_constructor_signature_matches() -> None:
    assert _params(memspace.MemoryFileSystem.__init__) == _params(dmemfs.MemoryFileSystem.__init__)
    assert _params(memspace.AsyncMemoryFileSystem.__init__) == _params(
        dmemfs.AsyncMemoryFileSystem.__init__
    )


def test_stats_and_stat_keys_match() -> None:
    a, b = memspace.MemoryFileSystem(), dmemfs.MemoryFileSystem()
    for fs in (a, b):
        with fs.open("/f", "wb") as f:
            f.write(b"x")
    assert a.stats() == b.stats()
    assert set(a.stat("/f")) == set(b.stat("/f"))


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 600)),
        st.tuples(st.just("patch"), st.integers(0, 900), st.integers(1, 300)),
        st.tuples(st.just("truncate"), st.integers(0, 900)),
        st.tuples(st.just("prealloc"), st.integers(0, 900)),
    ),
    max_size=25,
)


def _apply(fs: Any, op: tuple[Any, ...], name: str) -> tuple[str, int, int] | None:
    kind = op[0]
    try:
        if kind == "prealloc":
            with fs.open(name, "ab", preallocate=op[1]):
                pass
            return None
        with fs.open(name, "r+b" if fs.exists(name) else "wb") as f:
            if kind == "append":
                f.seek(0, 2)
                f.write(b"a" * op[1])
            elif kind == "patch":
                f.seek(op[1])
                f.write(b"p" * op[2])
            else:
                f.truncate(op[1])
    except Exception as e:
        return (type(e).__name__, getattr(e, "requested", -1), getattr(e, "available", -1))
    return None


@settings(max_examples=150, deadline=None)
@given(ops=ops, quota=st.integers(300, 4000), storage=st.sampled_from(["auto", "random_access"]))
def test_same_workload_hits_the_quota_at_the_same_byte(
    ops: list[tuple[Any, ...]], quota: int, storage: str
) -> None:
    ours = memspace.MemoryFileSystem(max_quota=quota, default_storage=storage)
    theirs = dmemfs.MemoryFileSystem(max_quota=quota, default_storage=storage)
    for op in ops:
        r1 = _apply(ours, op, "/f")
        r2 = _apply(theirs, op, "/f")
        if r2 is not None and r2[0] == "MFSQuotaExceededError" and op[0] == "patch":
            # dmemfs leaks quota when a promotion fails half-way (fixed in memspace): from
            # here on the two are expected to differ.
            assert r1 is not None
            assert r1[0] == r2[0]
            return
        assert r1 == r2, op
        assert ours.stats()["used_bytes"] == theirs.stats()["used_bytes"], op
        assert ours.export_tree() == theirs.export_tree()
