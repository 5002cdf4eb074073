"""memspace.SharedMemory: behaviour, bad input, and real second processes."""

from __future__ import annotations

import errno
import gc
import os
import pickle
import stat
import sys
import threading
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import memspace
import pytest
from memspace import SharedMemory

from tests.helpers import leftover_segments, linux_only, run_child, unique_name

SHM_DIR = Path("/dev/shm")


# --- basics -----------------------------------------------------------------------------------


def test_create_is_zeroed_and_sized(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 4096) as shm:
        assert shm.size == 4096
        assert len(shm) == 4096
        assert shm.name == shm_name
        assert shm.path is None
        assert shm.read() == bytes(4096)
        assert not shm.closed
    assert shm.closed


def test_read_write_roundtrip(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 64) as shm:
        assert shm.write(10, b"hello") == 5
        assert shm.read(10, 5) == b"hello"
        assert shm.read(60) == bytes(4)  # n defaults to the end
        shm.write(0, bytearray(b"ab"))
        shm.write(2, memoryview(b"cd"))
        assert shm.read(0, 4) == b"abcd"
        assert bytes(shm.buf[10:15]) == b"hello"
        shm.buf[20:23] = b"xyz"
        assert shm.read(20, 3) == b"xyz"


def test_write_from_overlapping_view_of_itself(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 1 << 20) as shm:
        shm.write(0, bytes(range(256)) * 4096)
        view = shm.buf
        shm.write(1, view[0:1000])  # overlapping source and destination: memmove semantics
        assert shm.read(1, 1000) == (bytes(range(256)) * 4)[:1000]
        view.release()


def test_large_copies_release_the_gil(shm_name: str) -> None:
    size = 32 << 20
    data = os.urandom(size)
    with SharedMemory.create(shm_name, size) as shm:
        assert shm.write(0, data) == size
        assert shm.read() == data


def test_typed_scalars(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 64) as shm:
        shm.write_int(0, -(2**63))
        assert shm.read_int(0) == -(2**63)
        shm.write_uint(8, 2**64 - 1)
        assert shm.read_uint(8) == 2**64 - 1
        shm.write_float(16, 3.5)
        assert shm.read_float(16) == 3.5
        shm.write_float(24, 7)  # an int is accepted as a float
        assert shm.read_float(24) == 7.0
        shm.write_int(33, 12345)  # unaligned access works too
        assert shm.read_int(33) == 12345
        assert shm.read(0, 8) == (-(2**63)).to_bytes(8, sys.byteorder, signed=True)


def test_repr_and_properties(shm_name: str, seg_path: Path) -> None:
    with SharedMemory.create(shm_name, 10) as a:
        assert repr(a) == f'SharedMemory(name="{shm_name}", size=10)'
    assert repr(a).endswith(", closed)")
    with SharedMemory.create(path=seg_path, size=10) as b:
        assert b.name is None
        assert b.path == seg_path
        assert "path=" in repr(b)


# --- processes --------------------------------------------------------------------------------


def test_second_process_sees_and_writes(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 1024) as shm:
        shm.write(0, b"from parent")
        out = run_child(
            """
            import sys, memspace
            with memspace.SharedMemory.open(sys.argv[1]) as s:
                print(s.read(0, 11).decode(), s.size)
                s.write(100, b"from child")
                s.write_int(200, -42)
            """,
            shm_name,
        )
        assert out.stdout.split() == ["from", "parent", "1024"]
        assert shm.read(100, 10) == b"from child"
        assert shm.read_int(200) == -42


def test_file_backed_survives_every_process(seg_path: Path) -> None:
    run_child(
        """
        import sys, memspace
        shm = memspace.SharedMemory.create(path=sys.argv[1], size=4096)
        shm.write(0, b"persisted")
        shm.write_float(16, 2.5)
        """,
        str(seg_path),
    )
    out = run_child(
        """
        import sys, memspace
        shm = memspace.SharedMemory.open(path=sys.argv[1])
        print(shm.read(0, 9).decode(), shm.read_float(16), shm.size)
        """,
        str(seg_path),
    )
    assert out.stdout.split() == ["persisted", "2.5", "4096"]
    SharedMemory.remove(path=seg_path)
    assert not seg_path.exists()
    with pytest.raises(FileNotFoundError):
        SharedMemory.open(path=seg_path)


def test_named_segment_outlives_its_creator_and_remove_is_seen_everywhere(shm_name: str) -> None:
    proc = run_child(
        """
        import sys, memspace
        memspace.SharedMemory.create(sys.argv[1], 100).write(0, b"still here")
        """,
        shm_name,
    )
    # No resource-tracker warning, no unlink at exit.
    assert proc.stderr == ""
    with SharedMemory.open(shm_name) as shm:
        assert shm.read(0, 10) == b"still here"
    SharedMemory.remove(shm_name)
    run_child(
        """
        import sys, memspace
        try:
            memspace.SharedMemory.open(sys.argv[1])
        except FileNotFoundError:
            pass
        else:
            raise SystemExit("opened a removed segment")
        """,
        shm_name,
    )


def test_multiprocessing_shared_memory_opens_the_same_bytes(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 333) as shm:
        shm.write(0, b"interop")
        other = shared_memory.SharedMemory(name=shm_name.lstrip("/"))
        # Python's resource tracker would unlink the segment when this process exits.
        resource_tracker.unregister(other._name, "shared_memory")  # type: ignore[attr-defined]
        try:
            assert bytes(other.buf[:7]) == b"interop"
            other.buf[10:12] = b"ok"
            assert shm.read(10, 2) == b"ok"
            assert other.size >= 333  # the stdlib may round up to a page
        finally:
            other.close()


def test_pickled_handle_reopens_in_a_spawned_child(shm_name: str) -> None:
    import multiprocessing as mp

    with SharedMemory.create(shm_name, 64) as shm:
        clone = pickle.loads(pickle.dumps(shm))
        assert clone.name == shm_name
        assert clone.size == 64
        clone.close()
        ctx = mp.get_context("spawn")
        p = ctx.Process(target=_child_writes, args=(shm,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert shm.read(0, 5) == b"spawn"


def _child_writes(shm: SharedMemory) -> None:
    shm.write(0, b"spawn")


# --- numpy ------------------------------------------------------------------------------------


def test_ndarray_is_zero_copy_across_processes(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    with SharedMemory.create(shm_name, 8 * 100 + 16) as shm:
        a = shm.ndarray(np.float64, (10, 10), offset=16)
        assert a.shape == (10, 10)
        assert a.dtype == np.float64
        a[:] = np.arange(100).reshape(10, 10)
        assert shm.read_float(16 + 8 * 99) == 99.0
        b = shm.ndarray("u1", 16)
        b[3] = 7
        assert shm.read(3, 1) == b"\x07"
        run_child(
            """
            import sys, numpy as np, memspace
            s = memspace.SharedMemory.open(sys.argv[1])
            a = s.ndarray(np.float64, (10, 10), offset=16)
            assert a[9, 9] == 99.0, a
            a *= 2
            """,
            shm_name,
        )
        assert a[9, 9] == 198.0
        del a, b


def test_ndarray_bounds_and_types(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    with SharedMemory.create(shm_name, 64) as shm:
        assert shm.ndarray(np.uint8, 64).nbytes == 64
        assert shm.ndarray(np.int64, (0,)).size == 0
        with pytest.raises(ValueError, match="does not fit"):
            shm.ndarray(np.uint8, 65)
        with pytest.raises(ValueError, match="does not fit"):
            shm.ndarray(np.float64, (2, 4), offset=1)
        with pytest.raises(ValueError, match=">= 0"):
            shm.ndarray(np.uint8, -1)
        with pytest.raises(ValueError, match=">= 0"):
            shm.ndarray(np.uint8, 1, offset=-1)
        with pytest.raises(TypeError):
            shm.ndarray(np.uint8, "big")
        with pytest.raises(TypeError):
            shm.ndarray("not a dtype", 4)


def test_close_with_live_array_keeps_memory_valid(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    shm = SharedMemory.create(shm_name, 4096)
    arr = shm.ndarray(np.uint8, 4096)
    view = shm.buf
    shm.close()
    # The exports keep the mapping alive: no segfault, no stale memory.
    arr[:] = 5
    assert view[4095] == 5
    with pytest.raises(ValueError, match="closed"):
        shm.read(0, 1)
    view.release()
    del arr
    gc.collect()


# --- lifetime ---------------------------------------------------------------------------------


def test_context_manager_never_unlinks(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 8):
        pass
    SharedMemory.open(shm_name).close()


def test_auto_unlink_on_close_and_on_collection(shm_name: str) -> None:
    SharedMemory.create(shm_name, 8, auto_unlink=True).close()
    with pytest.raises(FileNotFoundError):
        SharedMemory.open(shm_name)
    other = unique_name("gc")
    shm = SharedMemory.create(other, 8, auto_unlink=True)
    assert shm.auto_unlink
    del shm
    gc.collect()
    with pytest.raises(FileNotFoundError):
        SharedMemory.open(other)


def test_unlink_keeps_mapping_usable(shm_name: str) -> None:
    shm = SharedMemory.create(shm_name, 8)
    shm.unlink()
    shm.write(0, b"x")
    assert shm.read(0, 1) == b"x"
    shm.close()
    with pytest.raises(FileNotFoundError):
        shm.unlink()


def test_use_after_close_is_value_error(shm_name: str) -> None:
    shm = SharedMemory.create(shm_name, 8)
    shm.close()
    shm.close()  # idempotent
    for call in (
        lambda: shm.read(0, 1),
        lambda: shm.write(0, b"x"),
        lambda: shm.read_int(0),
        lambda: shm.write_uint(0, 1),
        lambda: shm.buf,
        lambda: memoryview(shm),
    ):
        with pytest.raises(ValueError, match="closed"):
            call()


@linux_only
@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022])
def test_mode_is_exact_whatever_the_umask(shm_name: str, umask: int) -> None:
    old = os.umask(umask)
    try:
        SharedMemory.create(shm_name, 8).close()
        assert stat.S_IMODE(os.stat(SHM_DIR / shm_name[1:]).st_mode) == 0o600
        SharedMemory.remove(shm_name)
        SharedMemory.create(shm_name, 8, mode=0o640).close()
        assert stat.S_IMODE(os.stat(SHM_DIR / shm_name[1:]).st_mode) == 0o640
    finally:
        os.umask(old)


@linux_only
def test_no_space_is_reported_at_creation_and_leaves_nothing(shm_name: str) -> None:
    free = os.statvfs(SHM_DIR)
    too_big = free.f_blocks * free.f_frsize * 4  # more than /dev/shm can ever hold
    with pytest.raises(OSError, match="not enough space") as info:
        SharedMemory.create(shm_name, too_big)
    assert info.value.errno == errno.ENOSPC
    assert not (SHM_DIR / shm_name[1:]).exists()


def test_open_refuses_a_file_smaller_than_expected(seg_path: Path) -> None:
    SharedMemory.create(path=seg_path, size=100).close()
    with pytest.raises(memspace.LayoutError, match="fewer than the 101 expected"):
        SharedMemory.open(path=seg_path, size=101)
    assert SharedMemory.open(path=seg_path, size=100).size == 100


def test_open_refuses_empty_and_non_regular_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch()
    with pytest.raises(memspace.LayoutError, match="empty"):
        SharedMemory.open(path=empty)
    with pytest.raises((memspace.LayoutError, IsADirectoryError)):
        SharedMemory.open(path=tmp_path)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["demo", "/", "/a/b", "/a\0b", "/" + "x" * 256, "//x", "/.", "/.."],
)
def test_bad_names_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError, match="segment name"):
        SharedMemory.create(name, 8)
    with pytest.raises(ValueError, match="segment name"):
        SharedMemory.open(name)
    with pytest.raises(ValueError, match="segment name"):
        SharedMemory.remove(name)


@pytest.mark.parametrize("size", [0, -1, -(2**70), 2**47, 2**200])
def test_bad_sizes_are_value_errors(shm_name: str, size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        SharedMemory.create(shm_name, size)
    assert leftover_segments() == []


@pytest.mark.parametrize("size", ["8", 8.0, True, None, b"8"])
def test_size_of_wrong_type_is_type_error(shm_name: str, size: object) -> None:
    with pytest.raises(TypeError):
        SharedMemory.create(shm_name, size)  # type: ignore[arg-type]


def test_name_and_path_together_or_neither(shm_name: str, seg_path: Path) -> None:
    with pytest.raises(TypeError, match="not both"):
        SharedMemory.create(shm_name, 8, path=seg_path)
    with pytest.raises(TypeError, match="name"):
        SharedMemory.create(size=8)
    with pytest.raises(TypeError):
        SharedMemory.open(b"/bytes-name")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [-1, 0o10000, 2**40])
def test_bad_mode(shm_name: str, mode: int) -> None:
    with pytest.raises(ValueError, match="mode"):
        SharedMemory.create(shm_name, 8, mode=mode)


def test_existing_and_missing(shm_name: str, seg_path: Path) -> None:
    SharedMemory.create(shm_name, 8).close()
    with pytest.raises(FileExistsError) as info:
        SharedMemory.create(shm_name, 8)
    assert info.value.errno == errno.EEXIST
    SharedMemory.remove(shm_name)
    with pytest.raises(FileNotFoundError):
        SharedMemory.open(shm_name)
    with pytest.raises(FileNotFoundError):
        SharedMemory.remove(shm_name)
    with pytest.raises(FileNotFoundError):
        SharedMemory.open(path=seg_path)
    SharedMemory.create(path=seg_path, size=1).close()
    with pytest.raises(FileExistsError):
        SharedMemory.create(path=seg_path, size=1)


def test_out_of_range_accesses(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 16) as shm:
        with pytest.raises(IndexError):
            shm.read(10, 7)
        with pytest.raises(IndexError):
            shm.read(17)
        with pytest.raises(IndexError):
            shm.write(15, b"ab")
        with pytest.raises(IndexError):
            shm.read_int(9)
        with pytest.raises(IndexError):
            shm.write_float(16, 1.0)
        with pytest.raises(IndexError):
            shm.read(2**62, 2**62)
        with pytest.raises(ValueError, match=">= 0"):
            shm.read(-1, 1)
        with pytest.raises(ValueError, match=">= 0"):
            shm.read(0, -1)
        with pytest.raises(ValueError, match=">= 0"):
            shm.write_int(-8, 1)
        assert shm.read(16) == b""  # an empty read at the end is fine
        assert shm.read() == bytes(16)  # nothing was changed by the refusals


def test_out_of_range_values_are_overflow_errors(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 16) as shm:
        with pytest.raises(OverflowError):
            shm.write_int(0, 2**63)
        with pytest.raises(OverflowError):
            shm.write_uint(0, -1)
        with pytest.raises(OverflowError):
            shm.write_uint(0, 2**64)
        with pytest.raises(OverflowError):
            shm.read(2**64, 1)
        assert shm.read() == bytes(16)


def test_wrong_types(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 16) as shm:
        with pytest.raises(TypeError, match="bytes-like"):
            shm.write(0, "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            shm.write(0, 5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            shm.write_int(0, 1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            shm.write_float(0, "1.0")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            shm.read("0")  # type: ignore[arg-type]


def test_non_contiguous_source_is_refused(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    with SharedMemory.create(shm_name, 64) as shm:
        with pytest.raises(BufferError, match="contiguous"):
            shm.write(0, np.arange(16, dtype=np.uint8)[::2])
        assert shm.read() == bytes(64)


# --- threads ----------------------------------------------------------------------------------


def test_threads_reading_writing_and_closing_do_not_crash(shm_name: str) -> None:
    shm = SharedMemory.create(shm_name, 1 << 20)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(200):
                shm.write(i * 1000, bytes([i]) * 1000)
                assert shm.read(i * 1000, 1000) == bytes([i]) * 1000
        except ValueError as e:  # closed under our feet: the only acceptable failure
            assert "closed" in str(e)  # noqa: PT017
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    shm.close()
    for t in threads:
        t.join()
    assert errors == []


# --- listing --------------------------------------------------------------------------------


@linux_only
def test_segments_lists_what_we_created(shm_name: str) -> None:
    with SharedMemory.create(shm_name, 321):
        infos = {s.name: s for s in memspace.segments()}
        info = infos[shm_name]
        assert (info.size, info.kind, info.mode) == (321, "raw", 0o600)
        assert info.uid == os.geteuid()
        assert info.modified is not None
