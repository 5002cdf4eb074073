"""Fixtures of the filesystem tests: `mfs`, the opt-in pytest plugin's own fixture (a fresh
MemoryFileSystem per test), so that the tests exercise the fixture users get; and
`fs_factory`, which makes the filesystem a test asks for either in-process
(`MemoryFileSystem`) or shared (`SharedFileSystem` in a fresh segment), so that every test
that does not depend on being in one process runs against both."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from memspace import MemoryFileSystem, SharedFileSystem
from memspace.pytest_plugin import mfs

from tests.helpers import unique_name

__all__ = ["FsFactory", "fs_factory", "mfs"]

FsFactory = Callable[..., Any]


@pytest.fixture(params=["memory", "shared"])
def fs_factory(request: pytest.FixtureRequest) -> Iterator[FsFactory]:
    """`fs_factory(**MemoryFileSystem kwargs)`: a new filesystem of the parametrised kind."""
    made: list[tuple[str, Any]] = []

    def make(**kwargs: Any) -> Any:
        if request.param == "memory":
            return MemoryFileSystem(**kwargs)
        name = unique_name("sfs")
        fs = SharedFileSystem.create(name, **kwargs)
        made.append((name, fs))
        return fs

    yield make
    for name, fs in made:
        report = fs.fsck(reap=True)
        fs.close()
        with contextlib.suppress(FileNotFoundError):
            SharedFileSystem.remove(name)
        assert report["ok"], report["problems"]
