"""Shared fixtures: unique segment names, cleanup, and running real child processes."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import memspace
import pytest

# Every segment a test creates starts with this prefix, so the session can check that none is
# left behind, whatever the test did.
PREFIX = f"mst-{os.getpid()}-"
_counter = itertools.count()


def unique_name(tag: str = "seg") -> str:
    """A POSIX segment name no other test (or test run) uses."""
    return f"/{PREFIX}{tag}-{next(_counter)}"


def _remove_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        memspace.SharedMemory.remove(name)


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A unique POSIX name, removed after the test if the test left it."""
    name = unique_name()
    yield name
    _remove_quietly(name)


@pytest.fixture
def seg_path(tmp_path: Path) -> Path:
    """A path for a file-backed segment (pytest removes the directory)."""
    return tmp_path / "segment.bin"


def run_child(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh Python process (a real second process) and return its result.

    The child gets `args` as sys.argv[1:]. Raises if it fails, showing its stderr.
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child failed with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def leftover_segments() -> list[str]:
    """Names of this run's segments still in /dev/shm."""
    shm_dir = Path("/dev/shm")
    if not shm_dir.is_dir():
        return []
    return sorted(p.name for p in shm_dir.iterdir() if p.name.startswith(PREFIX))


@pytest.fixture(scope="session", autouse=True)
def _no_segment_left_behind() -> Iterator[None]:
    yield
    left = leftover_segments()
    for name in left:
        _remove_quietly("/" + name)
    assert not left, f"segments left in /dev/shm after the suite: {left}"


@pytest.fixture
def make_name() -> Iterator[object]:
    """A factory of unique segment names; all are removed after the test."""
    names: list[str] = []

    def make(tag: str = "x") -> str:
        name = unique_name(tag)
        names.append(name)
        return name

    yield make
    for name in names:
        _remove_quietly(name)
