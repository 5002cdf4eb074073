"""The bounded in-memory filesystem: a drop-in replacement for D-MemFS (``dmemfs``).

Change ``from dmemfs import ...`` to ``from memspace import ...`` (or ``memspace.fs``);
names, parameters, defaults and exceptions are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memspace.errors import MFSNodeLimitExceededError, MFSQuotaExceededError
from memspace.fs._archive import (
    ArchiveAdapter,
    TarAdapter,
    ZipAdapter,
    expand_archive,
    expand_archive_streaming,
)
from memspace.fs._fs import MemoryFileHandle, MemoryFileSystem
from memspace.fs._shared import SharedFileHandle, SharedFileSystem, SharedFileView
from memspace.fs._text import MFSTextHandle
from memspace.fs._typing import MFSStatResult, MFSStats

if TYPE_CHECKING:
    from memspace.fs._async import AsyncMemoryFileHandle, AsyncMemoryFileSystem

__all__ = [
    "ArchiveAdapter",
    "AsyncMemoryFileHandle",
    "AsyncMemoryFileSystem",
    "MFSNodeLimitExceededError",
    "MFSQuotaExceededError",
    "MFSStatResult",
    "MFSStats",
    "MFSTextHandle",
    "MemoryFileHandle",
    "MemoryFileSystem",
    "SharedFileHandle",
    "SharedFileSystem",
    "SharedFileView",
    "TarAdapter",
    "ZipAdapter",
    "expand_archive",
    "expand_archive_streaming",
]


def __getattr__(name: str) -> Any:
    # The async facade imports asyncio (tens of ms): load it on first use, as dmemfs does.
    if name in ("AsyncMemoryFileSystem", "AsyncMemoryFileHandle"):
        from memspace.fs import _async

        value = getattr(_async, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
