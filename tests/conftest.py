"""Shared fixtures: unique segment names and their cleanup. The helpers they are built on
(and that tests import) are in helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
def make_name() -> Iterator[object]:
    """A factory of unique segment names; all are removed after the test."""
    names: list[str] = []

    def make(tag: str = "x") -> str:
        name = unique_name(tag)
        names.append(name)
        return name

    yield make
    for name in names:
        remove_quietly(name)
