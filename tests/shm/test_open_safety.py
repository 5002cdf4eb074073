"""What `open()` and `create()` do with what they find at a path or name before mapping it
(issue #11, finding 7): symbolic links are never followed, devices and FIFOs are refused
without side effects (`O_NOFOLLOW | O_NOCTTY | O_NONBLOCK`, then `fstat`)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import memspace
import pytest

from tests.helpers import linux_only, run_child

SHM_DIR = Path("/dev/shm")

Rec = memspace.Record.define("SafetyRec", a="i64")


def _victim(tmp_path: Path) -> Path:
    target = tmp_path / "victim.txt"
    target.write_bytes(b"precious data\n" * 4)
    target.chmod(0o600)
    return target


def test_open_path_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = _victim(tmp_path)
    link = tmp_path / "planted-link"
    link.symlink_to(target)
    with pytest.raises(memspace.LayoutError, match="symbolic link"):
        memspace.SharedMemory.open(path=link).write(0, b"OVERWRITTEN")
    assert target.read_bytes() == b"precious data\n" * 4


STRUCTURED = {
    "Mutex": (lambda p: memspace.Mutex.create(path=p), memspace.Mutex.open),
    "RwLock": (lambda p: memspace.RwLock.create(path=p), memspace.RwLock.open),
    "View": (lambda p: memspace.View.create(path=p, size=64), memspace.View.open),
    "Record": (lambda p: Rec.create(path=p), Rec.open),
    "Ring": (lambda p: memspace.Ring.create(path=p, capacity=4096), memspace.Ring.open),
    "Queue": (lambda p: memspace.Queue.create(path=p, capacity=4096), memspace.Queue.open),
    "Broadcast": (
        lambda p: memspace.Broadcast.create(path=p, capacity=4096),
        memspace.Broadcast.open,
    ),
}


@pytest.mark.parametrize("kind", sorted(STRUCTURED))
def test_structured_open_path_does_not_follow_a_symlink(tmp_path: Path, kind: str) -> None:
    create, open_ = STRUCTURED[kind]
    real = tmp_path / "real"
    create(real)
    open_(path=real)  # the real thing opens
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(memspace.LayoutError, match="symbolic link"):
        open_(path=link)


def test_create_path_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = _victim(tmp_path)
    link = tmp_path / "planted-link"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        memspace.SharedMemory.create(path=link, size=4096)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(FileExistsError):
        memspace.Queue.create(path=dangling, capacity=4096)
    assert not (tmp_path / "would-be-created").exists()
    assert target.read_bytes() == b"precious data\n" * 4


@linux_only
def test_open_name_does_not_follow_a_symlink_in_dev_shm(tmp_path: Path, shm_name: str) -> None:
    target = _victim(tmp_path)
    link = SHM_DIR / shm_name.lstrip("/")
    link.symlink_to(target)
    try:
        with pytest.raises((memspace.LayoutError, OSError)):
            memspace.SharedMemory.open(shm_name).write(0, b"OVERWRITTEN")
        with pytest.raises((memspace.LayoutError, OSError)):
            memspace.Queue.open(shm_name)
    finally:
        link.unlink()
    assert target.read_bytes() == b"precious data\n" * 4


@linux_only
def test_a_device_is_refused() -> None:
    with pytest.raises(memspace.LayoutError, match="not a regular file"):
        memspace.SharedMemory.open(path="/dev/null")
    with pytest.raises(memspace.LayoutError, match="not a regular file"):
        memspace.Queue.open(path="/dev/zero")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # In a child with a watchdog: a blocking open of a FIFO would hang the test run.
    run_child(
        """
        import sys, memspace
        try:
            memspace.SharedMemory.open(path=sys.argv[1])
        except memspace.LayoutError as e:
            assert "not a regular file" in str(e), e
        else:
            raise AssertionError("a FIFO was opened")
        """,
        str(fifo),
        timeout=30,
    )
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises((memspace.LayoutError, IsADirectoryError)):
        memspace.SharedMemory.open(path=tmp_path)
