"""The dict shapes that :meth:`MemoryFileSystem.stat` and :meth:`MemoryFileSystem.stats` return
(the same keys as dmemfs's ``MFSStatResult`` and ``MFSStats``)."""

from __future__ import annotations

from typing import TypedDict

__all__ = ["MFSStatResult", "MFSStats"]


class MFSStats(TypedDict):
    """Usage of a whole filesystem."""

    used_bytes: int
    """Bytes charged to the quota (file data plus the per-chunk overhead estimate)."""
    quota_bytes: int
    """The configured ``max_quota``."""
    free_bytes: int
    """``quota_bytes - used_bytes``."""
    file_count: int
    """Number of files."""
    dir_count: int
    """Number of directories, the root included."""
    chunk_count: int
    """Chunks held by sequential (not yet promoted) files."""
    overhead_per_chunk_estimate: int
    """The per-chunk overhead charged to the quota."""


class MFSStatResult(TypedDict):
    """Metadata of one path."""

    size: int
    """Size in bytes (0 for a directory)."""
    created_at: float
    """Creation time (``time.time()`` scale)."""
    modified_at: float
    """Time of the last write or truncate."""
    generation: int
    """Number of data changes since creation or the last ``import_tree`` (0: clean)."""
    is_dir: bool
    """Whether it is a directory."""
