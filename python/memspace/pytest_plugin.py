"""Opt-in pytest plugin: an ``mfs`` fixture with a fresh :class:`~memspace.MemoryFileSystem`.

Enable it in a ``conftest.py``::

    pytest_plugins = ["memspace.pytest_plugin"]

    def test_something(mfs):
        with mfs.open("/a.txt", "wb") as f:
            f.write(b"hello")
"""

from __future__ import annotations

import pytest

from memspace.fs import MemoryFileSystem

__all__ = ["mfs"]


@pytest.fixture
def mfs() -> MemoryFileSystem:
    """A new :class:`~memspace.MemoryFileSystem` with a 1 MiB quota, one per test."""
    return MemoryFileSystem(max_quota=1 * 1024 * 1024)
