"""MemoryFileSystem: every method, mode and exception of the dmemfs 0.4.1 API, plus the
regressions for the dmemfs bugs that memspace fixes."""

from __future__ import annotations

import contextlib
import io
import threading
import time

import memspace
import pytest
from memspace import (
    MemoryFileHandle,
    MemoryFileSystem,
    MemspaceError,
    MFSNodeLimitExceededError,
    MFSQuotaExceededError,
)

from tests.fs.conftest import FsFactory

KiB = 1024
MiB = 1024 * KiB


def put(mfs: MemoryFileSystem, path: str, data: bytes) -> None:
    with mfs.open(path, "wb") as f:
        f.write(data)


def get(mfs: MemoryFileSystem, path: str) -> bytes:
    with mfs.open(path, "rb") as f:
        data: bytes = f.read()
        return data


def check_accounting(mfs: MemoryFileSystem) -> None:
    st = mfs.stats()
    assert st["used_bytes"] + st["free_bytes"] == st["quota_bytes"]
    assert 0 <= st["used_bytes"] <= st["quota_bytes"]


# --- construction -------------------------------------------------------------------------


def test_defaults_match_dmemfs(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    st = mfs.stats()
    assert st == {
        "used_bytes": 0,
        "quota_bytes": 256 * MiB,
        "free_bytes": 256 * MiB,
        "file_count": 0,
        "dir_count": 1,
        "chunk_count": 0,
        "overhead_per_chunk_estimate": 128,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"default_storage": "fast"}, "default_storage"),
        ({"memory_guard": "always"}, "memory_guard"),
        ({"memory_guard_action": "ignore"}, "memory_guard_action"),
    ],
)
def test_bad_constructor_arguments(
    kwargs: dict[str, str], match: str, fs_factory: FsFactory
) -> None:
    with pytest.raises(ValueError, match=match):
        fs_factory(**kwargs)  # type: ignore[arg-type]


def test_memory_guard_init_warns_or_raises_for_a_huge_quota() -> None:
    huge = 1 << 60
    with pytest.warns(ResourceWarning, match="exceeds available"):
        MemoryFileSystem(max_quota=huge, memory_guard="init")
    with pytest.raises(MemoryError):
        MemoryFileSystem(max_quota=huge, memory_guard="init", memory_guard_action="raise")


def test_memory_guard_per_write_checks_each_write() -> None:
    mfs = MemoryFileSystem(max_quota=1 << 20, memory_guard="per_write", memory_guard_action="raise")
    with mfs.open("/a", "wb") as f:
        assert isinstance(f, io.RawIOBase)
        assert f.write(b"abc") == 3
    assert get(mfs, "/a") == b"abc"
    mfs._guard._available = 2  # pretend the machine is almost out of memory
    mfs._guard._checked_at = time.monotonic() + 3600
    with mfs.open("/b", "wb") as f, pytest.raises(MemoryError):
        f.write(b"abc")


def test_custom_overhead_and_storage_kinds(fs_factory: FsFactory) -> None:
    mfs = fs_factory(chunk_overhead_override=10)
    with mfs.open("/a", "wb") as f:
        f.write(b"12345")
        f.write(b"67")
    assert mfs.stats()["used_bytes"] == 7 + 2 * 10
    assert mfs.stats()["chunk_count"] == 2
    ra = fs_factory(default_storage="random_access")
    put(ra, "/a", b"12345")
    assert ra.stats()["used_bytes"] == 5
    assert ra.stats()["chunk_count"] == 0


def test_exceptions_hierarchy() -> None:
    assert issubclass(MFSQuotaExceededError, OSError)
    assert issubclass(MFSQuotaExceededError, MemspaceError)
    assert issubclass(MFSNodeLimitExceededError, MFSQuotaExceededError)
    e = MFSQuotaExceededError(10, 3)
    assert (e.requested, e.available) == (10, 3)
    n = MFSNodeLimitExceededError(5, 5)
    assert (n.current, n.limit, n.requested, n.available) == (5, 5, 6, 0)
    assert "node limit" in str(n)


# --- open modes and the handle -----------------------------------------------------------


def test_modes(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    with pytest.raises(FileNotFoundError):
        mfs.open("/a", "rb")
    with pytest.raises(FileNotFoundError):
        mfs.open("/a", "r+b")
    with pytest.raises(FileNotFoundError):
        mfs.open("/no/such/dir/a", "wb")
    for bad in ("r", "w", "a", "rb+", "x", "wt", ""):
        with pytest.raises(ValueError, match="Invalid mode"):
            mfs.open("/a", bad)
    with mfs.open("/a", "xb") as f:
        f.write(b"one")
    with pytest.raises(FileExistsError):
        mfs.open("/a", "xb")
    with mfs.open("/a", "ab") as f:
        f.seek(0)
        f.write(b"two")  # append ignores the cursor
        assert f.tell() == 6
    assert get(mfs, "/a") == b"onetwo"
    with mfs.open("/a", "r+b") as f:
        assert f.read(3) == b"one"
        f.write(b"TWO")
    assert get(mfs, "/a") == b"oneTWO"
    with mfs.open("/a", "wb") as f:
        assert mfs.get_size("/a") == 0
    assert get(mfs, "/a") == b""
    mfs.mkdir("/d")
    for mode in ("rb", "wb", "ab", "r+b"):
        with pytest.raises(IsADirectoryError):
            mfs.open("/d", mode)
    with pytest.raises(IsADirectoryError):
        mfs.open("/", "rb")


def test_handle_is_a_raw_io_with_unsupported_operations(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    with mfs.open("/a", "wb") as f:
        assert isinstance(f, io.RawIOBase)
        assert isinstance(f, (MemoryFileHandle, memspace.fs.SharedFileHandle))
        assert (f.readable(), f.writable(), f.seekable()) == (False, True, True)
        assert f.mode == "wb"
        assert f.name == "/a"
        with pytest.raises(io.UnsupportedOperation):
            f.read()
        with pytest.raises(io.UnsupportedOperation):
            f.readinto(bytearray(1))
        with pytest.raises(io.UnsupportedOperation):
            f.fileno()
        f.write(b"x")
        f.flush()
    with mfs.open("/a", "rb") as f:
        assert (f.readable(), f.writable()) == (True, False)
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"y")
        with pytest.raises(io.UnsupportedOperation):
            f.truncate(0)
    assert f.closed
    for call in (f.read, f.tell, f.flush, f.readable, f.writable, f.seekable):
        with pytest.raises(ValueError, match="closed"):
            call()
    f.close()  # idempotent


def test_read_write_seek_truncate(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    with mfs.open("/a", "wb") as f:
        assert f.write(b"hello world") == 11
        assert f.write(bytearray(b"!")) == 1
        assert f.write(memoryview(b"??")[:1]) == 1
        assert f.write(memoryview(b"")) == 0
        assert f.write(memoryview(b"a-b-")[::2]) == 2  # strided views are gathered
        f.seek(-2, 1)
        f.truncate()
        with pytest.raises(TypeError):
            f.write("text")  # type: ignore[arg-type]
        assert f.tell() == 13
        assert f.seek(0) == 0
        assert f.seek(5, 1) == 5
        assert f.seek(-3, 2) == 10
        with pytest.raises(ValueError, match="SEEK_SET"):
            f.seek(-1)
        with pytest.raises(ValueError, match="SEEK_END"):
            f.seek(1, 2)
        with pytest.raises(ValueError, match="negative"):
            f.seek(-100, 1)
        with pytest.raises(ValueError, match="whence"):
            f.seek(0, 3)
        assert f.truncate(5) == 5
        assert f.tell() == 5
        assert f.truncate(8) == 8
        with pytest.raises(ValueError, match=">= 0"):
            f.truncate(-1)
        f.seek(2)
        assert f.truncate() == 2
    assert get(mfs, "/a") == b"he"
    with mfs.open("/a", "r+b") as f:
        f.seek(6)  # past the end: the gap reads as zeros
        f.write(b"Z")
        f.seek(0)
        assert f.read() == b"he\0\0\0\0Z"
        f.seek(1)
        buf = bytearray(4)
        assert f.readinto(buf) == 4
        assert bytes(buf) == b"e\0\0\0"
        assert f.read(0) == b""
        f.seek(100)
        assert f.read() == b""


def test_lines_and_iteration(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    put(mfs, "/l", b"a\nbb\n\nccc")
    with mfs.open("/l") as f:
        assert f.readline() == b"a\n"
        assert f.readline(1) == b"b"
        assert f.readline() == b"b\n"
        assert list(f) == [b"\n", b"ccc"]
    with mfs.open("/l") as f:
        assert f.readlines() == [b"a\n", b"bb\n", b"\n", b"ccc"]
        f.seek(0)
        assert f.readall() == b"a\nbb\n\nccc"
    with mfs.open("/m", "wb") as f:
        f.writelines([b"x\n", bytearray(b"y\n")])
    assert get(mfs, "/m") == b"x\ny\n"
    with mfs.open("/l") as f:
        assert io.BufferedReader(f).read() == b"a\nbb\n\nccc"  # type: ignore[arg-type]


def test_preallocate_reserves_quota_up_front(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=2000)
    with mfs.open("/p", "wb", preallocate=500) as f:
        assert mfs.get_size("/p") == 500
        assert mfs.stats()["used_bytes"] == 500 + 128
        f.write(b"abc")  # promotes to random access: the chunk overhead goes away
        assert mfs.stats()["used_bytes"] == 500
    assert mfs.stat("/p")["size"] == 500
    with pytest.raises(MFSQuotaExceededError):
        mfs.open("/q", "wb", preallocate=2000)
    check_accounting(mfs)
    # As in dmemfs, the promotion needs the file's size free for a moment.
    tight = fs_factory(max_quota=1000)
    with tight.open("/p", "wb", preallocate=500) as f, pytest.raises(MFSQuotaExceededError) as ei:
        f.write(b"abc")
    assert (ei.value.requested, ei.value.available) == (500, 372)


def test_unclosed_handle_warns_and_releases_its_lock(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    h = mfs.open("/a", "wb")
    h.write(b"x")
    with pytest.warns(ResourceWarning, match="not closed"):
        del h  # CPython collects it here (reference count)
    with mfs.open("/a", "wb", lock_timeout=0):
        pass  # the lock was released


def test_failed_write_on_temporary_handle_keeps_its_exception(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=100)
    with pytest.warns(ResourceWarning), pytest.raises(MFSQuotaExceededError):
        mfs.open("/a", "wb").write(b"x" * 200)


# --- directories and tree operations ----------------------------------------------------


def test_mkdir_listdir_exists(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("/a/b/c")
    assert mfs.is_dir("/a/b")
    assert mfs.is_dir("/a/b/c")
    with pytest.raises(FileExistsError):
        mfs.mkdir("/a/b")
    mfs.mkdir("/a/b", exist_ok=True)
    put(mfs, "/a/f", b"")
    with pytest.raises(FileExistsError):
        mfs.mkdir("/a/f", exist_ok=True)
    with pytest.raises(FileExistsError):
        mfs.mkdir("/a/f/x")
    assert sorted(mfs.listdir("/a")) == ["b", "f"]
    with pytest.raises(FileNotFoundError):
        mfs.listdir("/zz")
    with pytest.raises(NotADirectoryError):
        mfs.listdir("/a/f")
    assert mfs.exists("/a/f")
    assert mfs.is_file("/a/f")
    assert not mfs.is_dir("/a/f")
    assert not mfs.exists("/../etc")
    assert not mfs.is_file("/../x")
    assert not mfs.is_dir("/..")
    assert mfs.stats()["dir_count"] == 4


def test_paths_are_normalised_and_traversal_refused(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("a\\b")
    put(mfs, "a//b/./x/../f.txt".replace("x/../", ""), b"1")
    assert get(mfs, "/a/b/f.txt") == b"1"
    assert get(mfs, "/a/b/../b/f.txt") == b"1"
    assert get(mfs, "a/b/f.txt") == b"1"
    for bad in ("/../x", "..", "/a/../../x", "a/b/../../../c"):
        with pytest.raises(ValueError, match="traversal"):
            mfs.open(bad, "wb")
        with pytest.raises(ValueError, match="traversal"):
            mfs.mkdir(bad)
        with pytest.raises(ValueError, match="traversal"):
            mfs.stat(bad)


def test_remove_and_rmtree(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("/d/e")
    put(mfs, "/d/e/f", b"abc")
    with pytest.raises(IsADirectoryError):
        mfs.remove("/d")
    with pytest.raises(FileNotFoundError):
        mfs.remove("/nope")
    with pytest.raises(NotADirectoryError):
        mfs.rmtree("/d/e/f")
    with pytest.raises(FileNotFoundError):
        mfs.rmtree("/nope")
    with pytest.raises(ValueError, match="root"):
        mfs.rmtree("/")
    with mfs.open("/d/e/f"), pytest.raises(BlockingIOError):
        mfs.rmtree("/d")
    with mfs.open("/d/e/f"), pytest.raises(BlockingIOError):
        mfs.remove("/d/e/f")
    mfs.rmtree("/d")
    assert mfs.listdir("/") == []
    assert mfs.stats()["used_bytes"] == 0


def test_rename_and_move(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("/a")
    put(mfs, "/a/f", b"1")
    mfs.rename("/a/f", "/a/g")
    assert get(mfs, "/a/g") == b"1"
    with pytest.raises(FileNotFoundError):
        mfs.rename("/a/g", "/x/y/g")
    mfs.move("/a/g", "/x/y/g")
    assert get(mfs, "/x/y/g") == b"1"
    put(mfs, "/a/h", b"2")
    with pytest.raises(FileExistsError):
        mfs.rename("/a/h", "/x/y/g")
    with pytest.raises(FileNotFoundError):
        mfs.rename("/nope", "/z")
    with pytest.raises(ValueError, match="root"):
        mfs.rename("/", "/r")
    with pytest.raises(ValueError, match="root"):
        mfs.move("/", "/r")
    with mfs.open("/a/h"), pytest.raises(BlockingIOError):
        mfs.rename("/a", "/b")
    mfs.rename("/a", "/b")
    assert get(mfs, "/b/h") == b"2"


def test_rename_or_move_into_own_subtree_is_refused(fs_factory: FsFactory) -> None:
    """dmemfs detaches the directory and loses it; memspace refuses."""
    mfs = fs_factory()
    mfs.mkdir("/a/b")
    put(mfs, "/a/b/f", b"data")
    before = mfs.stats()
    with pytest.raises(ValueError, match="own subtree"):
        mfs.rename("/a", "/a/b/c")
    with pytest.raises(ValueError, match="own subtree"):
        mfs.move("/a", "/a/new/deeper")
    assert mfs.stats() == before
    assert not mfs.exists("/a/new")
    assert get(mfs, "/a/b/f") == b"data"


def test_copy(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1000)
    put(mfs, "/a", b"x" * 300)
    mfs.copy("/a", "/b")
    assert get(mfs, "/b") == b"x" * 300
    assert mfs.stat("/b")["generation"] == 1
    with pytest.raises(FileExistsError):
        mfs.copy("/a", "/b")
    with pytest.raises(FileNotFoundError):
        mfs.copy("/nope", "/c")
    with pytest.raises(FileNotFoundError):
        mfs.copy("/a", "/no/dir/c")
    mfs.mkdir("/d")
    with pytest.raises(IsADirectoryError):
        mfs.copy("/d", "/e")
    before = mfs.stats()
    with pytest.raises(MFSQuotaExceededError):
        mfs.copy("/a", "/c")
    assert not mfs.exists("/c")  # dmemfs leaves an empty /c behind
    assert mfs.stats() == before


def test_copy_tree_is_all_or_nothing(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1800)
    mfs.mkdir("/src/sub")
    put(mfs, "/src/a", b"a" * 200)
    put(mfs, "/src/sub/b", b"b" * 200)
    mfs.copy_tree("/src", "/dst")
    assert mfs.export_tree("/dst") == {"/dst/a": b"a" * 200, "/dst/sub/b": b"b" * 200}
    assert mfs.stat("/dst/a")["generation"] == 0
    before = mfs.stats()
    with pytest.raises(MFSQuotaExceededError):
        mfs.copy_tree("/src", "/dst2")
    assert not mfs.exists("/dst2")
    assert mfs.stats() == before
    with pytest.raises(FileExistsError):
        mfs.copy_tree("/src", "/dst")
    with pytest.raises(NotADirectoryError):
        mfs.copy_tree("/src/a", "/x")
    with pytest.raises(FileNotFoundError):
        mfs.copy_tree("/nope", "/x")
    with pytest.raises(FileNotFoundError):
        mfs.copy_tree("/src", "/no/parent")
    limited = fs_factory(max_nodes=6)
    limited.mkdir("/s/t")
    put(limited, "/s/t/f", b"1")
    with pytest.raises(MFSNodeLimitExceededError):
        limited.copy_tree("/s", "/c")
    assert not limited.exists("/c")


def test_copy_tree_into_its_own_subtree_copies_the_snapshot(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("/s")
    put(mfs, "/s/f", b"1")
    mfs.copy_tree("/s", "/s/inner")
    assert sorted(mfs.export_tree("/s")) == ["/s/f", "/s/inner/f"]


def test_stat_and_get_size(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    t0 = time.time()
    put(mfs, "/f", b"12345")
    st = mfs.stat("/f")
    assert st["size"] == 5
    assert not st["is_dir"]
    assert st["generation"] == 1
    assert t0 - 1 <= st["created_at"] <= st["modified_at"] <= time.time() + 1
    mfs.mkdir("/d")
    assert mfs.stat("/d")["is_dir"]
    assert mfs.stat("/d")["size"] == 0
    assert mfs.stat("/")["is_dir"]
    assert set(st) == {"size", "created_at", "modified_at", "generation", "is_dir"}
    with pytest.raises(FileNotFoundError):
        mfs.stat("/nope")
    assert mfs.get_size("/f") == 5
    with pytest.raises(IsADirectoryError):
        mfs.get_size("/d")
    with pytest.raises(FileNotFoundError):
        mfs.get_size("/nope")


def test_walk(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("/a/b")
    mfs.mkdir("/a/c")
    put(mfs, "/a/f", b"")
    put(mfs, "/a/b/g", b"")
    assert list(mfs.walk()) == [
        ("/", ["a"], []),
        ("/a", ["b", "c"], ["f"]),
        ("/a/b", [], ["g"]),
        ("/a/c", [], []),
    ]
    assert list(mfs.walk("/a/b")) == [("/a/b", [], ["g"])]
    with pytest.raises(FileNotFoundError):
        list(mfs.walk("/nope"))
    with pytest.raises(NotADirectoryError):
        list(mfs.walk("/a/f"))


@pytest.fixture
def globfs() -> MemoryFileSystem:
    mfs = MemoryFileSystem()
    for d in ("/src/pkg/sub", "/docs"):
        mfs.mkdir(d)
    for p in (
        "/readme.txt",
        "/src/a.py",
        "/src/b.py",
        "/src/c.txt",
        "/src/pkg/x.py",
        "/src/pkg/sub/y.py",
        "/src/pkg/sub/z.txt",
        "/docs/a1.md",
        "/docs/a2.md",
        "/docs/b1.md",
    ):
        put(mfs, p, b"")
    return mfs


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/src/*.py", ["/src/a.py", "/src/b.py"]),
        ("/src/?.py", ["/src/a.py", "/src/b.py"]),
        ("/src/[ab].py", ["/src/a.py", "/src/b.py"]),
        ("/src/[!a].py", ["/src/b.py"]),
        ("/docs/a[0-9].md", ["/docs/a1.md", "/docs/a2.md"]),
        ("/docs/?1.md", ["/docs/a1.md", "/docs/b1.md"]),
        ("/src/**/*.py", ["/src/a.py", "/src/b.py", "/src/pkg/sub/y.py", "/src/pkg/x.py"]),
        (
            "/**/*.txt",
            ["/readme.txt", "/src/c.txt", "/src/pkg/sub/z.txt"],
        ),
        (
            "/src/pkg/**",
            ["/src/pkg/sub", "/src/pkg/sub/y.py", "/src/pkg/sub/z.txt", "/src/pkg/x.py"],
        ),
        ("/*", ["/docs", "/readme.txt", "/src"]),
        ("src/*.txt", ["/src/c.txt"]),
        ("/nothing/*", []),
        ("/src/**/sub", ["/src/pkg/sub"]),
    ],
)
def test_glob_patterns(globfs: MemoryFileSystem, pattern: str, expected: list[str]) -> None:
    assert globfs.glob(pattern) == expected


def test_glob_double_star_returns_each_match_once_sorted(globfs: MemoryFileSystem) -> None:
    """dmemfs returns ``/**/*.txt`` matches once per ``**`` expansion, unsorted duplicates."""
    for pattern in ("/**/*.txt", "/**/**/*.py", "/src/**/**/*"):
        res = globfs.glob(pattern)
        assert res == sorted(set(res))
        assert len(res) > 0


# --- quota --------------------------------------------------------------------------------


def test_quota_exact_boundary(fs_factory: FsFactory) -> None:
    quota = 10_000
    mfs = fs_factory(max_quota=quota)
    with mfs.open("/a", "wb") as f:
        f.write(b"a" * (quota - 128))  # data + one chunk overhead == quota exactly
        assert mfs.stats()["free_bytes"] == 0
        with pytest.raises(MFSQuotaExceededError) as ei:
            f.write(b"b")
        assert (ei.value.requested, ei.value.available) == (1 + 128, 0)
    assert get(mfs, "/a") == b"a" * (quota - 128)  # nothing partially written
    mfs.remove("/a")
    # One byte over, on an empty filesystem: refused, nothing created but the empty file.
    with mfs.open("/b", "wb") as f, pytest.raises(MFSQuotaExceededError) as ei:
        f.write(b"x" * (quota - 127))
    assert ei.value.available == quota
    assert mfs.get_size("/b") == 0
    assert mfs.stats()["used_bytes"] == 0


def test_quota_used_plus_free_at_every_step(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=5000)
    with mfs.open("/a", "wb") as f:
        for i in range(100):
            with contextlib.suppress(MFSQuotaExceededError):
                f.write(b"z" * (i * 7))
            check_accounting(mfs)
        f.truncate(1000)  # merges the chunks into one
        check_accounting(mfs)
        assert mfs.stats()["used_bytes"] == 1000 + 128
        f.seek(3)
        f.write(b"promote")  # first random write promotes: overheads vanish
        check_accounting(mfs)
        assert mfs.stats()["used_bytes"] == 1000
        f.truncate(10)
        check_accounting(mfs)
    mfs.remove("/a")
    assert mfs.stats()["used_bytes"] == 0


def test_sequential_storage_refuses_random_writes_and_hard_limit(fs_factory: FsFactory) -> None:
    seq = fs_factory(default_storage="sequential")
    with seq.open("/a", "wb") as f:
        f.write(b"abc")
        f.seek(0)
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")
    limited = fs_factory(promotion_hard_limit=2)
    with limited.open("/a", "wb") as f:
        f.write(b"abc")
        f.seek(0)
        with pytest.raises(io.UnsupportedOperation, match="hard limit"):
            f.write(b"x")
    assert get(limited, "/a") == b"abc"


def test_node_limit(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_nodes=3)  # root + 2
    mfs.mkdir("/a")
    put(mfs, "/a/f", b"")
    with pytest.raises(MFSNodeLimitExceededError) as ei:
        put(mfs, "/a/g", b"")
    assert isinstance(ei.value, MFSQuotaExceededError)
    assert (ei.value.current, ei.value.limit) == (3, 3)
    with pytest.raises(MFSNodeLimitExceededError):
        mfs.mkdir("/b")


def test_nested_mkdir_hitting_max_nodes_leaves_nothing_behind(fs_factory: FsFactory) -> None:
    """dmemfs creates the first directories, then fails, leaving them."""
    mfs = fs_factory(max_nodes=4)
    with pytest.raises(MFSNodeLimitExceededError):
        mfs.mkdir("/a/b/c/d")
    assert mfs.listdir("/") == []
    assert mfs.stats()["dir_count"] == 1
    with pytest.raises(MFSNodeLimitExceededError):
        mfs.import_tree({"/p/q/r/s": b"1"})
    assert mfs.listdir("/") == []


def test_used_returns_to_zero_after_any_mix(fs_factory: FsFactory) -> None:
    """dmemfs drifts after copy_tree of multi-chunk files and after failed promotions."""
    mfs = fs_factory(max_quota=100_000)
    mfs.mkdir("/d")
    with mfs.open("/d/a", "wb") as f:
        for _ in range(5):
            f.write(b"chunk")
    mfs.copy_tree("/d", "/e")
    mfs.copy("/d/a", "/d/b")
    mfs.import_tree({"/d/c": b"ccc", "/d/a": b"replaced", "/f/g": b""})
    with mfs.open("/d/b", "r+b") as f:
        f.seek(2)
        f.write(b"XY")
        f.truncate(100)
        f.truncate(1)
    small = fs_factory(max_quota=400)
    with small.open("/s", "wb") as f:
        f.write(b"s" * 100)
        f.seek(0)
        # The promotion's copy fits, the growth does not (dmemfs then under-counts by the
        # chunk overhead it already gave back).
        with pytest.raises(MFSQuotaExceededError) as ei:
            f.write(b"t" * 350)
    assert (ei.value.requested, ei.value.available) == (250, 200)  # as dmemfs reports it
    assert small.stats()["used_bytes"] == 100 + 128
    assert small.export_tree() == {"/s": b"s" * 100}
    small.remove("/s")
    assert small.stats()["used_bytes"] == 0
    for top in ("/d", "/e", "/f"):
        mfs.rmtree(top)
    assert mfs.stats()["used_bytes"] == 0
    assert mfs.stats()["file_count"] == 0


# --- import / export ----------------------------------------------------------------------


def test_import_and_export_tree(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.import_tree({"/a/b/c.bin": b"1", "x.bin": bytearray(b"22"), "/a/d": b""})
    assert mfs.export_tree() == {"/a/b/c.bin": b"1", "/a/d": b"", "/x.bin": b"22"}
    assert mfs.export_tree("/a/b") == {"/a/b/c.bin": b"1"}
    assert mfs.export_tree("/nope") == {}
    assert mfs.stat("/a/d")["generation"] == 0
    assert mfs.export_tree(only_dirty=True) == {}
    with mfs.open("/a/d", "ab") as f:
        f.write(b"!")
    assert mfs.export_tree(only_dirty=True) == {"/a/d": b"!"}
    assert list(mfs.iter_export_tree("/a")) == [("/a/b/c.bin", b"1"), ("/a/d", b"!")]
    bio = mfs.export_as_bytesio("/x.bin")
    assert isinstance(bio, io.BytesIO)
    assert bio.read() == b"22"
    with pytest.raises(ValueError, match="max_size"):
        mfs.export_as_bytesio("/x.bin", max_size=1)
    with pytest.raises(FileNotFoundError):
        mfs.export_as_bytesio("/nope")
    with pytest.raises(IsADirectoryError):
        mfs.export_as_bytesio("/a")
    mfs.import_tree({})


def test_import_tree_is_all_or_nothing(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1000)
    put(mfs, "/keep", b"k" * 100)
    mfs.mkdir("/dir")
    before = (mfs.stats(), mfs.export_tree())
    with pytest.raises(MFSQuotaExceededError):
        mfs.import_tree({"/new/a": b"a", "/keep": b"K", "/new/b": b"b" * 900})
    assert (mfs.stats(), mfs.export_tree()) == before
    assert not mfs.exists("/new")
    with pytest.raises(IsADirectoryError):
        mfs.import_tree({"/x": b"1", "/dir": b"2"})
    with pytest.raises(FileExistsError):
        mfs.import_tree({"/y": b"1", "/keep/under": b"2"})
    with pytest.raises(ValueError, match="traversal"):
        mfs.import_tree({"/z": b"1", "/../up": b"2"})
    with mfs.open("/keep"), pytest.raises(BlockingIOError):
        mfs.import_tree({"/w": b"1", "/keep": b"2"})
    assert (mfs.stats(), mfs.export_tree()) == before
    # Replacing frees exactly what the old file held.
    mfs.import_tree({"/keep": b"new"})
    assert mfs.stats()["used_bytes"] == 3 + 128


def test_export_as_bytesio_while_another_thread_holds_the_file(fs_factory: FsFactory) -> None:
    """dmemfs blocks forever here (it waits for the read lock while holding its global lock)."""
    mfs = fs_factory()
    put(mfs, "/f", b"committed")
    holding = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with mfs.open("/f", "r+b"):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    holding.wait(10)
    try:
        assert mfs.export_as_bytesio("/f").read() == b"committed"
        assert mfs.export_tree() == {"/f": b"committed"}
        assert mfs.stat("/f")["size"] == 9
    finally:
        release.set()
        t.join(10)
    # The same thread holding the file open can export it too.
    with mfs.open("/f", "wb") as f:
        f.write(b"new")
        # In one process the write shows at once; a shared filesystem shows what is committed
        # (here the truncation `wb` did at open) until the handle is flushed or closed.
        shown = b"new" if isinstance(mfs, MemoryFileSystem) else b""
        assert mfs.export_as_bytesio("/f").read() == shown


def test_repr_and_module_exports(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    assert type(mfs).__name__ in repr(mfs)
    for name in (
        "MemoryFileSystem",
        "MemoryFileHandle",
        "MFSQuotaExceededError",
        "MFSNodeLimitExceededError",
        "MFSStats",
        "MFSStatResult",
        "MFSTextHandle",
        "AsyncMemoryFileSystem",
        "AsyncMemoryFileHandle",
        "ArchiveAdapter",
        "expand_archive",
        "expand_archive_streaming",
    ):
        assert name in memspace.__all__
        assert hasattr(memspace.fs, name)


def test_large_bytes_appends_are_kept_not_copied_and_released() -> None:
    import sys

    mfs = MemoryFileSystem()
    big = bytes(range(256)) * 512  # 128 KiB
    base = sys.getrefcount(big)
    with mfs.open("/a", "wb") as f:
        f.write(big)
        f.write(b"tail")
        f.write(big)
    assert sys.getrefcount(big) == base + 2  # kept by the file (as dmemfs keeps references)
    assert mfs.stats()["used_bytes"] == 2 * len(big) + 4 + 3 * 128
    assert get(mfs, "/a") == big + b"tail" + big
    with mfs.open("/a", "r+b") as f:
        f.seek(1)
        f.write(b"X")  # promotion copies the pieces into one buffer
    assert sys.getrefcount(big) == base
    assert get(mfs, "/a") == big[:1] + b"X" + big[2:] + b"tail" + big
    with mfs.open("/b", "ab") as g:
        g.write(big)
    del g  # a closed handle still refers to its file, as in dmemfs
    mfs.remove("/b")
    assert sys.getrefcount(big) == base
    mfs.remove("/a")
    assert mfs.stats()["used_bytes"] == 0
