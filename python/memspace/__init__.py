"""memspace: memory as a workspace and as a channel.

- :class:`SharedMemory`: named (POSIX) or file-backed shared-memory segments, zero-copy from
  numpy, never unlinked behind your back.
- :func:`segments`: the segments this process can see.
- :class:`MemoryFileSystem`: a bounded in-memory filesystem (hard byte quota, node limit,
  directories, per-file locks), a drop-in replacement for D-MemFS (``dmemfs``).

The core is written in Rust; nothing here requires knowing that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memspace._memspace import SharedMemory, __version__
from memspace._segments import SegmentInfo, segments
from memspace.errors import (
    LayoutError,
    MemspaceError,
    MFSNodeLimitExceededError,
    MFSQuotaExceededError,
)
from memspace.fs import (
    ArchiveAdapter,
    MemoryFileHandle,
    MemoryFileSystem,
    MFSStatResult,
    MFSStats,
    MFSTextHandle,
    expand_archive,
    expand_archive_streaming,
)

__all__ = [
    "ArchiveAdapter",
    "AsyncMemoryFileHandle",
    "AsyncMemoryFileSystem",
    "LayoutError",
    "MFSNodeLimitExceededError",
    "MFSQuotaExceededError",
    "MFSStatResult",
    "MFSStats",
    "MFSTextHandle",
    "MemoryFileHandle",
    "MemoryFileSystem",
    "MemspaceError",
    "SegmentInfo",
    "SharedMemory",
    "__version__",
    "expand_archive",
    "expand_archive_streaming",
    "segments",
]

if TYPE_CHECKING:
    from memspace.fs import AsyncMemoryFileHandle, AsyncMemoryFileSystem


def __getattr__(name: str) -> Any:
    # The async facade imports asyncio: load it on first use.
    if name in ("AsyncMemoryFileSystem", "AsyncMemoryFileHandle"):
        from memspace import fs

        value = getattr(fs, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
