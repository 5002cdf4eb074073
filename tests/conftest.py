"""Shared fixtures: unique segment names, cleanup of everything a test created, watchdogs."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator

import memspace
import pytest

_counter = itertools.count()


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A unique POSIX segment name, removed after the test whatever happened."""
    name = f"/memspace-test-{os.getpid()}-{next(_counter)}"
    yield name
    with contextlib.suppress(FileNotFoundError):
        memspace.SharedMemory.remove(name)


@pytest.fixture
def make_name() -> Iterator[object]:
    """A factory of unique segment names; all are removed after the test."""
    names: list[str] = []

    def make(tag: str = "x") -> str:
        name = f"/memspace-test-{tag}-{os.getpid()}-{next(_counter)}"
        names.append(name)
        return name

    yield make
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            memspace.SharedMemory.remove(name)
