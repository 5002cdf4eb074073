"""memspace: memory as a workspace and as a channel.

- :class:`SharedMemory`: named (POSIX) or file-backed shared-memory segments, zero-copy from
  numpy, never unlinked behind your back.
- :func:`segments`: the segments this process can see.

The core is written in Rust; nothing here requires knowing that.
"""

from __future__ import annotations

from memspace._memspace import SharedMemory, __version__
from memspace._segments import SegmentInfo, segments
from memspace.errors import LayoutError, MemspaceError

__all__ = [
    "LayoutError",
    "MemspaceError",
    "SegmentInfo",
    "SharedMemory",
    "__version__",
    "segments",
]
