"""SIGBUS from segments memspace did not make, and truncation (issue #11, finding 8).

A sparse file (made with `ftruncate` only, as `multiprocessing.shared_memory` makes its
segments) on a full file system maps fine and raises SIGBUS at the first write to a page that
cannot be allocated. memspace reserves the space when it opens such a file, so the failure is
a clean `OSError(ENOSPC)` at `open()`. The full file system is a tiny tmpfs mounted for the
test (root only; skipped otherwise), never the machine's /dev/shm."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import memspace
import pytest

from tests.helpers import run_child


@pytest.fixture
def tiny_tmpfs() -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted after the test."""
    mnt = Path(f"/tmp/memspace-tiny-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    mnt.mkdir()
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
        try:
            yield mnt
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    finally:
        mnt.rmdir()


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def test_sparse_file_on_a_full_tmpfs_is_enospc_at_open_not_sigbus(tiny_tmpfs: Path) -> None:
    path = tiny_tmpfs / "sparse"
    _sparse(path, 4 << 20)  # 4 MiB on a 1 MiB file system
    # In a child: before the fix the write below kills the process with SIGBUS.
    proc = subprocess.run(
        [
            os.sys.executable,  # type: ignore[attr-defined]
            "-c",
            "import sys, memspace\n"
            "try:\n"
            "    shm = memspace.SharedMemory.open(path=sys.argv[1])\n"
            "except OSError as e:\n"
            "    print('ERRNO', e.errno); raise SystemExit(0)\n"
            "shm.write(0, b'x' * (4 << 20))\n"
            "print('WROTE')\n",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != -signal.SIGBUS, "SIGBUS: the space was not reserved at open"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ERRNO", str(errno.ENOSPC)], proc.stdout
    assert path.stat().st_size == 4 << 20  # open changed nothing about the file's size


def test_sparse_file_that_fits_is_reserved_at_open(tiny_tmpfs: Path) -> None:
    path = tiny_tmpfs / "sparse"
    _sparse(path, 256 << 10)
    assert path.stat().st_blocks * 512 < 256 << 10
    with memspace.SharedMemory.open(path=path) as shm:
        assert path.stat().st_blocks * 512 >= 256 << 10
        # Now the rest of the file system is too small for another one: a clean error.
        other = tiny_tmpfs / "other"
        _sparse(other, 900 << 10)
        with pytest.raises(OSError, match="not enough space") as info:
            memspace.SharedMemory.open(path=other)
        assert info.value.errno == errno.ENOSPC
        shm.write(0, b"x" * (256 << 10))  # no SIGBUS: every page is allocated


def test_sparse_named_segment_made_by_another_tool_is_reserved(shm_name: str) -> None:
    from multiprocessing import shared_memory

    sm = shared_memory.SharedMemory(name=shm_name.lstrip("/"), create=True, size=1 << 20)
    try:
        f = Path("/dev/shm") / shm_name.lstrip("/")
        with memspace.SharedMemory.open(shm_name) as shm:
            assert f.stat().st_blocks * 512 >= 1 << 20
            shm.write(0, b"ok")
        assert bytes(sm.buf[:2]) == b"ok"
    finally:
        sm.close()


def test_a_truncated_structured_segment_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "q"
    memspace.Queue.create(path=path, capacity=1 << 16).close()
    size = path.stat().st_size
    os.truncate(path, size // 2)
    with pytest.raises(memspace.LayoutError):
        memspace.Queue.open(path=path)
    # Truncated and grown back: the header is gone (zero), which is refused too.
    os.truncate(path, 0)
    os.truncate(path, size)
    with pytest.raises(memspace.LayoutError):
        memspace.Queue.open(path=path)


def test_a_segment_truncated_under_a_live_handle_is_detected(tmp_path: Path) -> None:
    # A peer that shrinks a structured segment under a live handle makes the next touch of a
    # lost page SIGBUS (documented; no library can prevent it). What can be detected is
    # detected: `inspect()` checks the file before reading it.
    path = tmp_path / "q"
    run_child(
        """
        import os, sys, memspace
        q = memspace.Queue.create(path=sys.argv[1], capacity=1 << 16)
        q.put(b"x")
        size = os.stat(sys.argv[1]).st_size
        os.truncate(sys.argv[1], 4096)
        try:
            q.inspect()
        except memspace.CorruptSegmentError as e:
            assert "truncated" in str(e), e
        else:
            raise AssertionError("truncation not detected")
        # Emptied and grown back (every page lost, the header with them): refused too.
        os.truncate(sys.argv[1], 0)
        os.truncate(sys.argv[1], size)
        try:
            q.inspect()
        except memspace.CorruptSegmentError as e:
            assert "header" in str(e), e
        else:
            raise AssertionError("a segment emptied by truncation was not detected")
        """,
        str(path),
    )
