"""The file handle used with ``memory_guard="per_write"``: the native handle behind a thin
:class:`io.RawIOBase` that consults the guard before each write. Only that mode pays for it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from memspace._memspace import MemoryFileHandle
from memspace.fs._guard import MemoryGuard

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["GuardedHandle"]


class GuardedHandle(io.RawIOBase):
    """A :class:`MemoryFileHandle` whose writes are checked against available memory."""

    def __init__(self, handle: MemoryFileHandle, guard: MemoryGuard) -> None:
        super().__init__()
        self._h = handle
        self._guard = guard

    def write(self, data: Buffer, /) -> int:
        """Check the guard, then write."""
        self._guard.check_write(memoryview(data).nbytes)
        return self._h.write(data)

    def truncate(self, size: int | None = None, /) -> int:
        """Resize the file (see :meth:`MemoryFileHandle.truncate`)."""
        return self._h.truncate(size)

    def read(self, size: int | None = -1, /) -> bytes:
        """Read (see :meth:`MemoryFileHandle.read`)."""
        return self._h.read(size)

    def readinto(self, buffer: Buffer, /) -> int:
        """Read into a buffer."""
        return self._h.readinto(buffer)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Move the cursor."""
        return self._h.seek(offset, whence)

    def tell(self) -> int:
        """The cursor."""
        return self._h.tell()

    def readable(self) -> bool:
        """Whether reading is allowed."""
        return self._h.readable()

    def writable(self) -> bool:
        """Whether writing is allowed."""
        return self._h.writable()

    def seekable(self) -> bool:
        """Always ``True``."""
        return self._h.seekable()

    def close(self) -> None:
        """Release the file's lock."""
        self._h.close()
        super().close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._h, name)
