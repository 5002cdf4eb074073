"""memspace: memory as a workspace and as a channel.

- :class:`SharedMemory`: named (POSIX) or file-backed shared-memory segments, zero-copy from
  numpy, never unlinked behind your back.
- :func:`segments`: the segments this process can see.
- :class:`MemoryFileSystem`: a bounded in-memory filesystem (hard byte quota, node limit,
  directories, per-file locks), a drop-in replacement for D-MemFS (``dmemfs``).
- :class:`Mutex` and :class:`RwLock`: cross-process locks that survive a killed holder
  (``g.owner_died`` tells the next holder), with timeouts and Ctrl-C between wait slices.
- :class:`View`: typed, tagged values in shared memory behind an rwlock (no torn reads).
- :class:`Record`: a fixed C-struct-like layout in shared memory, ``Record.define(...)``.
- :class:`Queue`: a crash-safe multi-producer/multi-consumer queue between processes
  (``queue.Queue`` semantics; a killed worker never wedges it).
- :class:`Ring`: the fastest single-producer/single-consumer channel between processes, with
  blocking waits that do not poll, batches and zero-copy views.
- :mod:`memspace.aio`: every channel for asyncio (``await q.get()``, ``async for msg in q``),
  one waiter thread per event loop, never a thread per call.
- :class:`Broadcast`: one publisher, any number of subscriber processes, each seeing every
  message; the publisher waits for the slowest live subscriber or overwrites (a lapped
  subscriber gets :class:`Lagged` with the exact count it missed).

The core is written in Rust; nothing here requires knowing that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memspace._memspace import (
    Broadcast,
    LockGuard,
    Mutex,
    Queue,
    Ring,
    RwLock,
    SharedMemory,
    View,
    __version__,
)
from memspace._record import Record
from memspace._segments import SegmentInfo, segments
from memspace.errors import (
    CorruptSegmentError,
    Lagged,
    LayoutError,
    LockError,
    MemspaceError,
    MFSNodeLimitExceededError,
    MFSQuotaExceededError,
    QueueBusy,
    RoleTakenError,
)
from memspace.fs import (
    ArchiveAdapter,
    MemoryFileHandle,
    MemoryFileSystem,
    MFSStatResult,
    MFSStats,
    MFSTextHandle,
    SharedFileSystem,
    expand_archive,
    expand_archive_streaming,
)

__all__ = [
    "ArchiveAdapter",
    "AsyncMemoryFileHandle",
    "AsyncMemoryFileSystem",
    "Broadcast",
    "CorruptSegmentError",
    "Lagged",
    "LayoutError",
    "LockError",
    "LockGuard",
    "MFSNodeLimitExceededError",
    "MFSQuotaExceededError",
    "MFSStatResult",
    "MFSStats",
    "MFSTextHandle",
    "MemoryFileHandle",
    "MemoryFileSystem",
    "MemspaceError",
    "Mutex",
    "Queue",
    "QueueBusy",
    "Record",
    "Ring",
    "RoleTakenError",
    "RwLock",
    "SegmentInfo",
    "SharedFileSystem",
    "SharedMemory",
    "View",
    "__version__",
    "aio",
    "expand_archive",
    "expand_archive_streaming",
    "segments",
]

if TYPE_CHECKING:
    from memspace import aio
    from memspace.fs import AsyncMemoryFileHandle, AsyncMemoryFileSystem


def __getattr__(name: str) -> Any:
    # The async facades import asyncio: load them on first use.
    if name == "aio":
        import importlib

        module = importlib.import_module("memspace.aio")
        globals()[name] = module
        return module
    if name in ("AsyncMemoryFileSystem", "AsyncMemoryFileHandle"):
        from memspace import fs

        value = getattr(fs, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
