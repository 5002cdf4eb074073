"""Shared fixtures: unique segment names and their cleanup, and child processes that are
stopped after the test. The helpers they are built on (and that tests import) are in
helpers.py; fixtures of one area are in that area's conftest.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import leftover_segments, remove_quietly, unique_name


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A unique POSIX name, removed after the test if the test left it."""
    name = unique_name()
    yield name
    remove_quietly(name)


@pytest.fixture
def seg_path(tmp_path: Path) -> Path:
    """A path for a file-backed segment (pytest removes the directory)."""
    return tmp_path / "segment.bin"


@pytest.fixture(scope="session", autouse=True)
def _no_segment_left_behind() -> Iterator[None]:
    yield
    left = leftover_segments()
    for name in left:
        remove_quietly("/" + name)
    assert not left, f"segments left in /dev/shm after the suite: {left}"


@pytest.fixture
def make_name() -> Iterator[Callable[[str], str]]:
    """A factory of unique segment names; all are removed after the test."""
    names: list[str] = []

    def make(tag: str = "x") -> str:
        name = unique_name(tag)
        names.append(name)
        return name

    yield make
    for name in names:
        remove_quietly(name)


@pytest.fixture
def start_child() -> Iterator[helpers.StartChild]:
    """helpers.start_child for one test: every child it started is killed (unless it has
    exited) and reaped after the test, whatever the test did."""
    started: list[subprocess.Popen[Any]] = []

    def start(code: str, *args: str, **popen: Any) -> subprocess.Popen[Any]:
        proc = helpers.start_child(code, *args, **popen)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        helpers.stop_child(proc)
