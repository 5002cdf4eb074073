"""memspace:// through fsspec's own abstract test suite (`fsspec.tests.abstract`): the copy,
get, put, open and pipe tests that fsspec runs against its own implementations, with the
fixtures an implementation provides (as fsspec's memory:// tests do)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

abstract = pytest.importorskip("fsspec.tests.abstract")

from memspace import MemoryFileSystem  # noqa: E402
from memspace.fs._fsspec import MemspaceFileSystem  # noqa: E402


class MemspaceFixtures(abstract.AbstractFixtures):  # type: ignore[misc,name-defined]
    @pytest.fixture
    def fs(self) -> Iterator[MemspaceFileSystem]:
        # A store of its own per test; each scenario fixture removes what it made, so the
        # store must be empty again at the end (quota back to exactly 0).
        fs = MemspaceFileSystem(mfs=MemoryFileSystem(max_quota=64 << 20))
        yield fs
        for name in fs.ls("/", detail=False):
            fs.rm(name, recursive=True)
        assert fs.mfs.stats()["used_bytes"] == 0

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return lambda *parts: "/".join(parts)

    @pytest.fixture
    def fs_path(self) -> str:
        return ""


class TestMemspaceCopy(abstract.AbstractCopyTests, MemspaceFixtures):  # type: ignore[misc,name-defined]
    pass


class TestMemspaceGet(abstract.AbstractGetTests, MemspaceFixtures):  # type: ignore[misc,name-defined]
    pass


class TestMemspacePut(abstract.AbstractPutTests, MemspaceFixtures):  # type: ignore[misc,name-defined]
    pass


class TestMemspaceOpen(abstract.AbstractOpenTests, MemspaceFixtures):  # type: ignore[misc,name-defined]
    pass


class TestMemspacePipe(abstract.AbstractPipeTests, MemspaceFixtures):  # type: ignore[misc,name-defined]
    pass


def test_the_abstract_suite_is_really_collected() -> None:
    # A renamed class in a future fsspec must not silently leave nothing to run.
    names: list[Any] = [
        abstract.AbstractCopyTests,
        abstract.AbstractGetTests,
        abstract.AbstractPutTests,
        abstract.AbstractOpenTests,
        abstract.AbstractPipeTests,
    ]
    for cls in names:
        assert [n for n in dir(cls) if n.startswith("test_")], cls
