"""The error messages found unclear while porting (issue #13 §4): each says what is wrong and
what to do, with the builtin exception a Python user expects, before memory is touched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import memspace
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "open_",
    [
        memspace.Ring.open,
        memspace.Queue.open,
        memspace.Mutex.open,
        memspace.View.open,
        memspace.Broadcast.open,
    ],
)
def test_a_zero_filled_raw_segment_is_named_raw_and_rm_is_the_advice(
    shm_name: str, open_: Callable[[str], object]
) -> None:
    # Before: "still being initialised after 500 ms (... `memspace rm --stale` removes such
    # segments)", and `rm --stale` then refused it (it never removes raw segments).
    memspace.SharedMemory.create(shm_name, 4096).close()
    with pytest.raises(memspace.LayoutError) as e:
        open_(shm_name)
    msg = str(e.value)
    assert "no memspace header" in msg
    assert "raw segment" in msg
    assert f"`memspace rm {shm_name}`" in msg
    assert "--stale" not in msg
    run_cli("rm", shm_name)  # the advice works
    with pytest.raises(FileNotFoundError):
        memspace.SharedMemory.open(shm_name)


def test_a_zero_filled_file_names_rm_with_path(tmp_path: Path) -> None:
    p = tmp_path / "blank"
    p.write_bytes(bytes(4096))
    with pytest.raises(memspace.LayoutError, match=f"memspace rm --path {p}"):
        memspace.Ring.open(path=p)


@pytest.mark.parametrize("cls", [memspace.Ring, memspace.Queue, memspace.Broadcast])
def test_a_name_that_is_a_path_says_pass_path(cls: type) -> None:
    # mmap-ipc's examples name rings "/tmp/ring".
    with pytest.raises(ValueError, match=r'looks like a file path.*pass path="/tmp/ring"'):
        cls.create("/tmp/ring", 4096)
    with pytest.raises(ValueError, match="pass path="):
        cls.open("/tmp/ring")
    for other in (memspace.SharedMemory.open, memspace.Mutex.open, memspace.View.open):
        with pytest.raises(ValueError, match="pass path="):
            other("/tmp/ring")
    with pytest.raises(ValueError, match="pass path="):
        memspace.Record.define("R", a="i8").open("/a/b")


def test_create_in_a_missing_directory_names_the_directory(tmp_path: Path) -> None:
    # Before: 'segment at path "/nodir/x" does not exist'.
    missing = tmp_path / "nodir"
    for create in (
        lambda: memspace.SharedMemory.create(path=missing / "x", size=10),
        lambda: memspace.Ring.create(path=missing / "x", capacity=4096),
        lambda: memspace.Mutex.create(path=missing / "x"),
    ):
        with pytest.raises(FileNotFoundError, match=f'directory "{missing}" does not exist'):
            create()
    assert not missing.exists()


def test_os_errors_name_the_segment(tmp_path: Path) -> None:
    # Before: "open failed for at path ...".
    with pytest.raises(OSError, match=f'failed for segment at path "{tmp_path}"'):
        memspace.SharedMemory.open(path=tmp_path)  # a directory


def test_64_bit_ranges_are_named(shm_name: str) -> None:
    # Before: "Python int too large to convert to C long" / "can't convert negative int to
    # unsigned".
    with memspace.SharedMemory.create(shm_name, 64) as shm:
        with pytest.raises(OverflowError, match=r"signed 64-bit.*write_uint\(\)"):
            shm.write_int(0, 2**63)
        with pytest.raises(OverflowError, match="signed 64-bit"):
            shm.write_int(0, -(2**63) - 1)
        with pytest.raises(OverflowError, match=r"unsigned 64-bit.*write_int\(\)"):
            shm.write_uint(0, -1)
        with pytest.raises(OverflowError, match="unsigned 64-bit"):
            shm.write_uint(0, 2**64)
        with pytest.raises(TypeError, match="must be an int, not float"):
            shm.write_int(0, 1.5)  # type: ignore[arg-type]
        assert shm.read(0, 8) == bytes(8)  # nothing was written
        shm.write_int(0, -(2**63))
        shm.write_uint(8, 2**64 - 1)
        assert (shm.read_int(0), shm.read_uint(8)) == (-(2**63), 2**64 - 1)


def test_negative_filesystem_limits_are_value_errors() -> None:
    # Before: OverflowError "can't convert negative int to unsigned".
    for kw in ("max_quota", "max_nodes", "chunk_overhead_override", "promotion_hard_limit"):
        with pytest.raises(ValueError, match=f"{kw} must be >= 0, not -1"):
            memspace.MemoryFileSystem(**{kw: -1})


def test_a_parent_that_is_a_file_is_named() -> None:
    # Before: "no such file or directory: '/f'" for open("/f/g", "wb").
    mfs = memspace.MemoryFileSystem()
    with mfs.open("/f", "wb") as f:
        f.write(b"x")
    for mode in ("wb", "ab", "xb"):
        with pytest.raises(FileNotFoundError, match="'/f' is a file, not a directory"):
            mfs.open("/f/g", mode)
        with pytest.raises(FileNotFoundError, match="parent directory '/d' does not exist"):
            mfs.open("/d/g", mode)
    with pytest.raises(FileNotFoundError, match="no such file"):
        mfs.open("/f/g", "rb")


def test_a_role_held_in_this_process_says_so(shm_name: str) -> None:
    # Before: "held by a live process" (this one).
    with memspace.Ring.create(shm_name, 4096) as ring, memspace.Ring.open(shm_name) as tx:
        tx.put(b"x")
        with pytest.raises(memspace.RoleTakenError, match="another handle in this process"):
            ring.put(b"y")
        tx.close()
        ring.put(b"y")  # the role is free once that handle is closed


def test_a_broadcast_publisher_held_in_this_process_says_so(shm_name: str) -> None:
    with (
        memspace.Broadcast.create(shm_name, 4096) as b,
        memspace.Broadcast.open(shm_name, role="publisher") as pub,
    ):
        with pytest.raises(
            memspace.RoleTakenError,
            match=f'the publisher role of "{shm_name}" is held by another handle in this process',
        ):
            b.put(b"y")
        pub.close()
        b.put(b"y")  # the role is free once that handle is closed


def test_a_role_held_by_another_process_says_so(shm_name: str) -> None:
    from tests.helpers import run_child

    with memspace.Ring.create(shm_name, 4096), memspace.Ring.open(shm_name, role="producer"):
        out = run_child(
            """
            import sys, memspace
            try:
                memspace.Ring.open(sys.argv[1], role="producer")
            except memspace.RoleTakenError as e:
                print(e)
            """,
            shm_name,
        )
        assert "held by another live process" in out.stdout


def test_type_tags_read_as_english(shm_name: str) -> None:
    # Before: "expected a i64 value, found str".
    with memspace.View.create(shm_name, 64) as v:
        v.write("text", 0)
        with pytest.raises(TypeError, match="expected a value of type i64, found one of type str"):
            v.read(int, 0)
        with pytest.raises(OverflowError, match="300 does not fit in u8"):
            v.write(300, 0, tag="u8")
    Small = memspace.Record.define("Small", b="u8")
    with Small.create(shm_name + "r") as s:
        try:
            with pytest.raises(OverflowError, match="256 does not fit in u8"):
                s.b = 256
        finally:
            s.unlink()
