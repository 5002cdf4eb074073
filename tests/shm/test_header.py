"""Structured-segment headers as seen from Python: kinds in `memspace ls`."""

from __future__ import annotations

import memspace


def test_raw_segment_is_listed_as_raw(shm_name: str) -> None:
    with memspace.SharedMemory.create(shm_name, 4096):
        info = [s for s in memspace.segments() if s.name == shm_name]
    assert [s.kind for s in info] == ["raw"]
