"""Fixtures of the filesystem tests: `mfs`, the opt-in pytest plugin's own fixture (a fresh
MemoryFileSystem per test), so that the tests exercise the fixture users get."""

from memspace.pytest_plugin import mfs

__all__ = ["mfs"]
