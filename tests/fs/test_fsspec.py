"""memspace:// against fsspec's contract, with fsspec's memory:// as the reference: the same
tree and the same calls on both must give the same results and the same exceptions (rm,
ls, info, find with maxdepth, glob, walk, du, cat ranges, cp, mv, pipe, open). Then what is
memspace's own: a store is named explicitly, stores never share files, writes are staged
so a quota error mid-write (pandas, pyarrow) leaves no partial file, transactions."""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")

from fsspec.implementations.memory import (  # noqa: E402
    MemoryFileSystem as ReferenceFileSystem,
)
from memspace import MemoryFileSystem, MFSQuotaExceededError  # noqa: E402
from memspace.fs._fsspec import MemspaceFileSystem  # noqa: E402

# --- memory:// as the reference --------------------------------------------------------------

TREE = {
    "a.txt": b"alpha",
    "b.bin": b"\x00\x01\x02\x03\x04\x05\x06\x07",
    "sub/c.txt": b"c",
    "sub/deeper/d.txt": b"dd",
    "sub/deeper/deepest/e.txt": b"eee",
    "other/f.csv": b"x,y\n1,2\n",
}
EMPTY_DIRS = ("empty", "sub/empty2")


class Pair:
    """The same tree in memspace:// and in memory:// (under a unique root, since memory://
    has one process-wide store), with every path given relative to that root."""

    def __init__(self) -> None:
        self.ms = MemspaceFileSystem(mfs=MemoryFileSystem(max_quota=16 << 20))
        self.ref = ReferenceFileSystem()
        self.ref_root = f"/memspace-reference-{uuid.uuid4().hex}"
        for fs, root in ((self.ms, ""), (self.ref, self.ref_root)):
            for rel, data in TREE.items():
                fs.pipe(f"{root}/{rel}", data)
            for rel in EMPTY_DIRS:
                fs.makedirs(f"{root}/{rel}")

    def ms_path(self, rel: str) -> str:
        return "/" + rel.lstrip("/")

    def ref_path(self, rel: str) -> str:
        return self.ref_root + "/" + rel.lstrip("/") if rel.strip("/") else self.ref_root

    def normal(self, value: Any, root: str) -> Any:
        """`value` with the root removed from every path in it (for comparing)."""
        if isinstance(value, str):
            if value == root or value == root + "/":
                return "/"
            return value[len(root) :] if root and value.startswith(root + "/") else value
        if isinstance(value, dict):
            keep = ("name", "size", "type")
            if set(value) >= {"name", "type"}:
                return {k: self.normal(value[k], root) for k in keep if k in value}
            return {self.normal(k, root): self.normal(v, root) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            out = [self.normal(v, root) for v in value]
            return out if isinstance(value, list) else tuple(out)
        return value

    def both(self, call: Callable[[Any, Callable[[str], str]], Any]) -> tuple[Any, Any]:
        results = []
        for fs, to_path, root in (
            (self.ms, self.ms_path, ""),
            (self.ref, self.ref_path, self.ref_root),
        ):
            try:
                results.append(("ok", self.normal(call(fs, to_path), root)))
            except Exception as e:  # the exception's type is what is compared
                results.append(("raises", _kind(e)))
        return results[0], results[1]

    def close(self) -> None:
        if self.ref.exists(self.ref_root):
            self.ref.rm(self.ref_root, recursive=True)


def _kind(e: BaseException) -> str:
    for t in (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError):
        if isinstance(e, t):
            return t.__name__
    if isinstance(e, OSError) and e.errno == errno.ENOTEMPTY:
        return "OSError(ENOTEMPTY)"
    return type(e).__name__


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


def _sorted(x: Any) -> Any:
    return sorted(x) if isinstance(x, list) else x


LS_PATHS = ["", "sub", "sub/deeper", "empty", "a.txt", "missing", "sub/missing/x"]


@pytest.mark.parametrize("rel", LS_PATHS)
@pytest.mark.parametrize("detail", [False, True])
def test_ls_matches_memory(pair: Pair, rel: str, detail: bool) -> None:
    def ls(fs: Any, p: Callable[[str], str]) -> Any:
        out = fs.ls(p(rel), detail=detail)
        return sorted(out, key=lambda e: e["name"] if detail else e)

    ms, ref = pair.both(ls)
    assert ms == ref


@pytest.mark.parametrize("rel", [*LS_PATHS, "sub/deeper/deepest/e.txt"])
def test_info_exists_isdir_isfile_match_memory(pair: Pair, rel: str) -> None:
    for call in (
        lambda fs, p: fs.info(p(rel)),
        lambda fs, p: fs.exists(p(rel)),
        lambda fs, p: fs.isdir(p(rel)),
        lambda fs, p: fs.isfile(p(rel)),
        lambda fs, p: fs.size(p(rel)) if fs.isfile(p(rel)) else fs.info(p(rel))["type"],
    ):
        ms, ref = pair.both(call)
        assert ms == ref


@pytest.mark.parametrize("maxdepth", [None, 1, 2, 3])
@pytest.mark.parametrize("withdirs", [False, True])
@pytest.mark.parametrize("rel", ["", "sub", "a.txt", "missing"])
def test_find_with_maxdepth_matches_memory(
    pair: Pair, maxdepth: int | None, withdirs: bool, rel: str
) -> None:
    ms, ref = pair.both(lambda fs, p: sorted(fs.find(p(rel), maxdepth=maxdepth, withdirs=withdirs)))
    assert ms == ref
    ms, ref = pair.both(
        lambda fs, p: fs.find(p(rel), maxdepth=maxdepth, withdirs=withdirs, detail=True)
    )
    assert ms == ref


def test_find_rejects_maxdepth_below_one(pair: Pair) -> None:
    ms, ref = pair.both(lambda fs, p: fs.find(p(""), maxdepth=0))
    assert ms == ref == ("raises", "ValueError")


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "*.txt",
        "**",
        "**/*.txt",
        "sub/*",
        "sub/**",
        "sub/**/*.txt",
        "s?b/*.txt",
        "[ab].*",
        "*/deeper",
        "missing/*",
        "a.txt",
    ],
)
@pytest.mark.parametrize("maxdepth", [None, 1, 2])
def test_glob_matches_memory(pair: Pair, pattern: str, maxdepth: int | None) -> None:
    ms, ref = pair.both(lambda fs, p: sorted(fs.glob(p(pattern), maxdepth=maxdepth)))
    assert ms == ref


def test_walk_du_and_expand_path_match_memory(pair: Pair) -> None:
    for call in (
        # (the order of directories is the listing order: insertion order in memory://)
        lambda fs, p: sorted((d, sorted(ds), sorted(f)) for d, ds, f in fs.walk(p(""))),
        lambda fs, p: sorted((d, sorted(ds), sorted(f)) for d, ds, f in fs.walk(p(""), maxdepth=2)),
        lambda fs, p: fs.du(p("")),
        lambda fs, p: fs.du(p("sub"), total=False),
        lambda fs, p: sorted(fs.expand_path(p("sub"), recursive=True)),
        lambda fs, p: sorted(fs.expand_path(p("sub"), recursive=True, maxdepth=1)),
        lambda fs, p: fs.expand_path(p("missing")),
    ):
        ms, ref = pair.both(call)
        assert ms == ref


@pytest.mark.parametrize(
    ("start", "end"), [(None, None), (0, 3), (2, None), (None, 3), (-3, None), (-3, -1), (5, 2)]
)
def test_cat_ranges_match_memory(pair: Pair, start: int | None, end: int | None) -> None:
    ms, ref = pair.both(lambda fs, p: fs.cat_file(p("b.bin"), start=start, end=end))
    assert ms == ref
    ms, ref = pair.both(lambda fs, p: fs.cat(p("sub/*.txt")))
    assert ms == ref


@pytest.mark.parametrize(
    ("rel", "recursive", "maxdepth"),
    [
        ("missing", False, None),
        ("missing", True, None),
        ("a.txt", False, None),
        ("empty", False, None),
        ("sub", False, None),
        ("sub", True, None),
        ("sub", True, 1),
        ("sub/*.txt", False, None),
        ("*", False, None),
        ("", True, None),
    ],
)
def test_rm_matches_memory(pair: Pair, rel: str, recursive: bool, maxdepth: int | None) -> None:
    ms, ref = pair.both(lambda fs, p: fs.rm(p(rel), recursive=recursive, maxdepth=maxdepth))
    if (rel, maxdepth) == ("sub", 1):
        # Entries below maxdepth keep "sub/deeper" non-empty. memory:// keeps no record of a
        # directory made implicitly by writing a file into it, and so reports such a
        # directory as missing in rmdir; memspace (like local files) reports it not empty.
        assert ms == ("raises", "OSError(ENOTEMPTY)")
        assert ref == ("raises", "FileNotFoundError")
    else:
        assert ms == ref
    # The root itself is never removed (memory://'s test root is an ordinary directory).
    ms, ref = pair.both(lambda fs, p: sorted(set(fs.find(p(""), withdirs=True)) - {p("")}))
    assert ms == ref


def test_rm_file_and_rmdir_match_memory(pair: Pair) -> None:
    for call in (
        lambda fs, p: fs.rm_file(p("missing")),
        lambda fs, p: fs.rmdir(p("missing")),
        lambda fs, p: fs.rmdir(p("sub")),
        lambda fs, p: fs.rmdir(p("empty")),
        lambda fs, p: fs.rm_file(p("a.txt")),
        lambda fs, p: sorted(fs.find(p(""), withdirs=True)),
    ):
        ms, ref = pair.both(call)
        assert ms == ref


@pytest.mark.parametrize(
    ("src", "dst", "recursive"),
    [
        ("a.txt", "new/dir/a.txt", False),  # parents created
        ("a.txt", "b.bin", False),  # replaces
        ("a.txt", "sub/", False),  # into a directory
        ("sub", "target/", True),  # a tree into a directory that does not exist yet
        ("sub", "target", True),
        ("sub/*.txt", "glob/", False),
        ("sub/deeper", "empty", True),  # into an existing directory
        ("missing", "x", False),
        ("missing", "x", True),
    ],
)
def test_copy_matches_memory(pair: Pair, src: str, dst: str, recursive: bool) -> None:
    def copy(fs: Any, p: Callable[[str], str]) -> Any:
        fs.copy(p(src), p(dst), recursive=recursive)
        return {f: fs.cat_file(f) for f in fs.find(p(""))}

    ms, ref = pair.both(copy)
    assert ms == ref


@pytest.mark.parametrize(
    ("src", "dst", "recursive"),
    [
        ("a.txt", "moved/a.txt", False),
        ("a.txt", "b.bin", False),
        ("a.txt", "sub/", False),
        ("sub", "elsewhere", True),
        ("sub", "other", True),
        ("missing", "x", False),
    ],
)
def test_mv_matches_memory(pair: Pair, src: str, dst: str, recursive: bool) -> None:
    def mv(fs: Any, p: Callable[[str], str]) -> Any:
        fs.mv(p(src), p(dst), recursive=recursive)
        return {f: fs.cat_file(f) for f in fs.find(p(""))}

    ms, ref = pair.both(mv)
    assert ms == ref


def test_pipe_open_touch_and_mkdir_match_memory(pair: Pair) -> None:
    def write(fs: Any, p: Callable[[str], str]) -> Any:
        fs.pipe({p("p/one"): b"1", p("p/two"): b"22"})
        with fs.open(p("o/t.txt"), "w") as f:
            f.write("text ü\n")
        with fs.open(p("o/t.txt"), "a") as f:
            f.write("more\n")
        fs.touch(p("o/touched"))
        fs.mkdir(p("m/n"))
        return {f: fs.cat_file(f) for f in fs.find(p(""))}, sorted(fs.find(p(""), withdirs=True))

    ms, ref = pair.both(write)
    assert ms == ref
    for call in (
        lambda fs, p: fs.open(p("a.txt"), "xb"),
        lambda fs, p: fs.pipe_file(p("a.txt"), b"x", mode="create"),
        lambda fs, p: fs.open(p("missing"), "rb"),
        lambda fs, p: fs.cat_file(p("missing")),
        lambda fs, p: fs.mkdir(p("sub")),
        lambda fs, p: fs.makedirs(p("sub")),
        lambda fs, p: fs.makedirs(p("sub"), exist_ok=True),
    ):
        ms, ref = pair.both(call)
        assert ms == ref


# --- the issue's own cases ------------------------------------------------------------------


def test_recursive_copy_into_a_directory_that_does_not_exist() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    fs.pipe({"/source/subdir/a": b"a", "/source/subdir/deep/b": b"b"})
    fs.cp("/source/subdir", "/target/", recursive=True)
    assert fs.cat("/target/subdir/a") == b"a"
    assert fs.cat("/target/subdir/deep/b") == b"b"
    fs.cp_file("/source/subdir/a", "/new/parents/a")  # cp creates parents, as mv does
    assert fs.cat("/new/parents/a") == b"a"


def test_rm_of_a_missing_path_raises() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    with pytest.raises(FileNotFoundError):
        fs.rm("/missing")
    with pytest.raises(FileNotFoundError):
        fs.rm("/missing", recursive=True)
    with pytest.raises(FileNotFoundError):
        fs.rm_file("/missing")


# --- stores ---------------------------------------------------------------------------------


def test_a_bare_url_names_no_store_and_says_how() -> None:
    with pytest.raises(ValueError, match=r"storage_options=\{'mfs'"):
        fsspec.filesystem("memspace")
    with pytest.raises(ValueError, match="no default"):
        fsspec.open("memspace://x.csv", "wb").open()
    with pytest.raises(ValueError, match="needs a store"):
        MemspaceFileSystem()
    with pytest.raises(TypeError, match="MemoryFileSystem"):
        MemspaceFileSystem(mfs={})


def test_each_store_is_its_own_and_views_are_not_cached_across_stores() -> None:
    a, b = MemoryFileSystem(), MemoryFileSystem()
    fa = fsspec.filesystem("memspace", mfs=a)
    fb = fsspec.filesystem("memspace", mfs=b)
    assert fa.mfs is a
    assert fb.mfs is b
    fa.pipe("memspace://x/y.bin", b"data")
    assert a.export_tree() == {"/x/y.bin": b"data"}
    assert b.export_tree() == {}
    assert not fb.exists("/x/y.bin")
    assert fsspec.filesystem("memspace", mfs=a).cat("/x/y.bin") == b"data"
    with fsspec.open("memspace://x/y.bin", "rb", mfs=a) as f:
        assert f.read() == b"data"


def test_protocol_and_paths() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    assert fsspec.get_filesystem_class("memspace") is MemspaceFileSystem
    for p in ("memspace://a/b", "memspace:///a/b", "/a/b/", "a/b", "//a/b"):
        assert fs._strip_protocol(p) == "/a/b"
    assert fs._strip_protocol("memspace://") == "/"
    assert fs.unstrip_protocol("/a") == "memspace:///a"


# --- staged writes: nothing partial -----------------------------------------------------------


def _write_chunks(fs: MemspaceFileSystem, path: str, mode: str, chunks: int) -> None:
    with fs.open(path, mode) as f:
        for _ in range(chunks):
            f.write(b"x" * 4096)


def test_quota_error_mid_write_leaves_no_file_and_keeps_an_old_one() -> None:
    mfs = MemoryFileSystem(max_quota=64 * 1024)
    fs = MemspaceFileSystem(mfs=mfs)
    with pytest.raises(MFSQuotaExceededError):
        _write_chunks(fs, "/new.bin", "wb", 100)
    assert not fs.exists("/new.bin")
    assert mfs.stats()["used_bytes"] == 0
    fs.pipe("/old.bin", b"old")
    for mode in ("wb", "ab"):
        with pytest.raises(MFSQuotaExceededError):
            _write_chunks(fs, "/old.bin", mode, 100)
        assert fs.cat("/old.bin") == b"old"
    with pytest.raises(MFSQuotaExceededError):
        fs.pipe("/big", b"z" * (128 * 1024))
    assert not fs.exists("/big")


def test_a_file_is_visible_only_once_closed() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    f = fs.open("/d/staged.txt", "wb")
    f.write(b"part 1, ")
    assert not fs.exists("/d/staged.txt")
    f.write(bytearray(b"part 2"))
    assert f.tell() == len(b"part 1, part 2")
    f.close()
    assert fs.cat("/d/staged.txt") == b"part 1, part 2"
    with pytest.raises(ValueError, match="closed"):
        f.write(b"more")

    def failing_block() -> None:
        with fs.open("/d/staged.txt", "wb") as g:
            g.write(b"replacement")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_block()
    assert fs.cat("/d/staged.txt") == b"part 1, part 2"  # a failed block commits nothing


def test_an_earlier_failed_write_poisons_the_file() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem(max_quota=1024))
    f = fs.open("/x", "wb")
    with pytest.raises(MFSQuotaExceededError):
        f.write(b"a" * 2048)
    with pytest.raises(OSError, match="earlier write"):
        f.write(b"b")
    f.close()
    assert not fs.exists("/x")


def test_transactions_commit_at_the_end_or_not_at_all() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    with fs.transaction:
        with fs.open("/t/a", "wb") as f:
            f.write(b"a")
        assert not fs.exists("/t/a")
    assert fs.cat("/t/a") == b"a"
    fs.start_transaction()
    with fs.open("/t/b", "wb") as f:
        f.write(b"b")
    fs.end_transaction()  # commits
    assert fs.cat("/t/b") == b"b"

    def failing_transaction() -> None:
        with fs.transaction:
            with fs.open("/t/c", "wb") as f:
                f.write(b"c")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert not fs.exists("/t/c")


def test_writing_into_a_file_or_a_directory_is_refused() -> None:
    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    fs.pipe("/f", b"x")
    fs.makedirs("/d")
    with pytest.raises(IsADirectoryError):
        fs.open("/d", "wb")
    with pytest.raises(NotADirectoryError):
        fs.open("/f/inside", "wb")
    with pytest.raises(ValueError, match="unsupported file mode"):
        fs.open("/f", "r+b")


# --- pandas and pyarrow -----------------------------------------------------------------------


def test_pandas_csv_quota_error_mid_write_leaves_nothing() -> None:
    pd = pytest.importorskip("pandas")
    mfs = MemoryFileSystem(max_quota=256 * 1024)
    opts = {"mfs": mfs}
    small = pd.DataFrame({"a": range(10)})
    small.to_csv("memspace://out/frame.csv", index=False, storage_options=opts)
    big = pd.DataFrame({"a": range(200_000), "b": ["payload"] * 200_000})
    with pytest.raises(MFSQuotaExceededError):
        big.to_csv("memspace://out/frame.csv", index=False, storage_options=opts)
    pd.testing.assert_frame_equal(
        pd.read_csv("memspace://out/frame.csv", storage_options=opts), small
    )
    with pytest.raises(MFSQuotaExceededError):
        big.to_csv("memspace://out/other.csv", index=False, storage_options=opts)
    assert not mfs.exists("/out/other.csv")


def test_pyarrow_parquet_round_trip_and_quota_error_mid_write() -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import numpy as np

    mfs = MemoryFileSystem(max_quota=1 << 20)
    opts = {"mfs": mfs}
    df = pd.DataFrame({"a": np.arange(1000), "b": [f"s{i}" for i in range(1000)]})
    df.to_parquet("memspace://pq/frame.parquet", storage_options=opts, engine="pyarrow")
    back = pd.read_parquet("memspace://pq/frame.parquet", storage_options=opts)
    pd.testing.assert_frame_equal(back, df)
    used = mfs.stats()["used_bytes"]
    rng = np.random.default_rng(7)
    big = pd.DataFrame({"r": rng.random(400_000)})  # ~3 MB of incompressible doubles
    with pytest.raises(MFSQuotaExceededError):
        big.to_parquet(
            "memspace://pq/big.parquet",
            storage_options=opts,
            engine="pyarrow",
            row_group_size=10_000,
        )
    assert not mfs.exists("/pq/big.parquet")
    with pytest.raises(MFSQuotaExceededError):
        big.to_parquet("memspace://pq/frame.parquet", storage_options=opts, engine="pyarrow")
    pd.testing.assert_frame_equal(
        pd.read_parquet("memspace://pq/frame.parquet", storage_options=opts), df
    )
    assert mfs.stats()["used_bytes"] == used


def test_pyarrow_dataset_through_the_fsspec_handler() -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs = MemspaceFileSystem(mfs=MemoryFileSystem())
    handler = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    table = pa.table({"x": list(range(100)), "y": [str(i) for i in range(100)]})
    pq.write_to_dataset(table, "/ds", filesystem=handler, partition_cols=None)
    assert fs.find("/ds")
    back = pq.read_table("/ds", filesystem=handler)
    assert back.sort_by("x").equals(table)
