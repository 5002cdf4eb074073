"""Listing the POSIX shared-memory segments visible to this process."""

from __future__ import annotations

import dataclasses
import datetime

from memspace import _memspace

__all__ = ["SegmentInfo", "segments"]


@dataclasses.dataclass(frozen=True)
class SegmentInfo:
    """One POSIX shared-memory segment, as :func:`segments` sees it."""

    name: str
    """The name, with its leading ``/`` (what :meth:`SharedMemory.open` takes)."""
    size: int
    """Size in bytes."""
    kind: str
    """``"raw"`` for a plain :class:`SharedMemory`; structured objects report their kind."""
    modified: datetime.datetime | None
    """Last modification time (UTC), if the platform reports it."""
    uid: int
    """Owner's user id."""
    mode: int
    """Permission bits (``0o600`` by default)."""


def segments() -> list[SegmentInfo]:
    """Return the POSIX segments this process can see, sorted by name.

    On Linux these are the files in ``/dev/shm`` (including those of other programs, such as
    ``multiprocessing.shared_memory``). Platforms that cannot enumerate segments return ``[]``.
    File-backed segments are ordinary files and are not listed.
    """
    out = []
    for name, size, kind, mtime, uid, mode in _memspace._list_segments():
        modified = (
            None
            if mtime is None
            else datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)
        )
        out.append(SegmentInfo(name, size, kind, modified, uid, mode))
    return out
