"""`AsyncMemoryFileSystem`: the same filesystem for asyncio code.

Each call runs the synchronous method in a worker thread (:func:`asyncio.to_thread`), so a
lock wait never blocks the event loop, and the native code releases the GIL for large copies,
so concurrent coroutines' transfers really overlap.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from memspace.fs._fs import MemoryFileSystem
from memspace.fs._typing import MFSStatResult, MFSStats

__all__ = ["AsyncMemoryFileHandle", "AsyncMemoryFileSystem"]


class AsyncMemoryFileHandle:
    """An open file for asyncio code (use with ``async with``)."""

    def __init__(self, _sync_handle: Any) -> None:
        self._h = _sync_handle

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (``-1``: to the end)."""
        data: bytes = await asyncio.to_thread(self._h.read, size)
        return data

    async def write(self, data: bytes) -> int:
        """Write bytes; returns the count."""
        n: int = await asyncio.to_thread(self._h.write, data)
        return n

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the cursor."""
        pos: int = await asyncio.to_thread(self._h.seek, offset, whence)
        return pos

    async def tell(self) -> int:
        """The cursor."""
        pos: int = await asyncio.to_thread(self._h.tell)
        return pos

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file."""
        n: int = await asyncio.to_thread(self._h.truncate, size)
        return n

    async def flush(self) -> None:
        """No-op (there is no buffer)."""
        await asyncio.to_thread(self._h.flush)

    async def readable(self) -> bool:
        """Whether reading is allowed."""
        r: bool = await asyncio.to_thread(self._h.readable)
        return r

    async def writable(self) -> bool:
        """Whether writing is allowed."""
        r: bool = await asyncio.to_thread(self._h.writable)
        return r

    async def seekable(self) -> bool:
        """Always ``True``."""
        r: bool = await asyncio.to_thread(self._h.seekable)
        return r

    async def close(self) -> None:
        """Release the file's lock."""
        await asyncio.to_thread(self._h.close)

    async def __aenter__(self) -> AsyncMemoryFileHandle:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


class AsyncMemoryFileSystem:
    """The async facade of :class:`MemoryFileSystem` (same constructor arguments)."""

    def __init__(
        self,
        max_quota: int = 256 * 1024 * 1024,
        chunk_overhead_override: int | None = None,
        promotion_hard_limit: int | None = None,
        max_nodes: int | None = None,
        default_storage: str = "auto",
        default_lock_timeout: float | None = 30.0,
        memory_guard: str = "none",
        memory_guard_action: str = "warn",
        memory_guard_interval: float = 1.0,
    ) -> None:
        self._sync = MemoryFileSystem(
            max_quota=max_quota,
            chunk_overhead_override=chunk_overhead_override,
            promotion_hard_limit=promotion_hard_limit,
            max_nodes=max_nodes,
            default_storage=default_storage,
            default_lock_timeout=default_lock_timeout,
            memory_guard=memory_guard,
            memory_guard_action=memory_guard_action,
            memory_guard_interval=memory_guard_interval,
        )

    @classmethod
    def of(cls, fs: Any) -> AsyncMemoryFileSystem:
        """The async facade over an existing filesystem (a :class:`MemoryFileSystem` or a
        :class:`~memspace.SharedFileSystem`)."""
        self = cls.__new__(cls)
        self._sync = fs
        return self

    async def open(
        self,
        path: str,
        mode: str = "rb",
        preallocate: int = 0,
        lock_timeout: float | None = None,
    ) -> AsyncMemoryFileHandle:
        """Open a file (see :meth:`MemoryFileSystem.open`)."""
        h = await asyncio.to_thread(self._sync.open, path, mode, preallocate, lock_timeout)
        return AsyncMemoryFileHandle(h)

    async def mkdir(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its parents."""
        await asyncio.to_thread(self._sync.mkdir, path, exist_ok)

    async def rename(self, src: str, dst: str) -> None:
        """Rename a file or directory."""
        await asyncio.to_thread(self._sync.rename, src, dst)

    async def move(self, src: str, dst: str) -> None:
        """Move a file or directory, creating parents."""
        await asyncio.to_thread(self._sync.move, src, dst)

    async def remove(self, path: str) -> None:
        """Delete a file."""
        await asyncio.to_thread(self._sync.remove, path)

    async def rmtree(self, path: str) -> None:
        """Delete a directory tree."""
        await asyncio.to_thread(self._sync.rmtree, path)

    async def listdir(self, path: str) -> list[str]:
        """Names in a directory."""
        return await asyncio.to_thread(self._sync.listdir, path)

    async def exists(self, path: str) -> bool:
        """Whether a path exists."""
        return await asyncio.to_thread(self._sync.exists, path)

    async def is_dir(self, path: str) -> bool:
        """Whether a path is a directory."""
        return await asyncio.to_thread(self._sync.is_dir, path)

    async def is_file(self, path: str) -> bool:
        """Whether a path is a file."""
        return await asyncio.to_thread(self._sync.is_file, path)

    async def stat(self, path: str) -> MFSStatResult:
        """Metadata of a path."""
        return await asyncio.to_thread(self._sync.stat, path)

    async def stats(self) -> MFSStats:
        """Usage of the filesystem."""
        return await asyncio.to_thread(self._sync.stats)

    async def get_size(self, path: str) -> int:
        """Size of a file."""
        return await asyncio.to_thread(self._sync.get_size, path)

    async def export_as_bytesio(self, path: str, max_size: int | None = None) -> io.BytesIO:
        """A copy of a file as ``BytesIO``."""
        return await asyncio.to_thread(self._sync.export_as_bytesio, path, max_size)

    async def export_tree(self, prefix: str = "/", only_dirty: bool = False) -> dict[str, bytes]:
        """All files below ``prefix`` as a dict."""
        return await asyncio.to_thread(self._sync.export_tree, prefix, only_dirty)

    async def import_tree(self, tree: dict[str, bytes]) -> None:
        """Write many files, all or nothing."""
        await asyncio.to_thread(self._sync.import_tree, tree)

    async def copy(self, src: str, dst: str) -> None:
        """Copy a file."""
        await asyncio.to_thread(self._sync.copy, src, dst)

    async def copy_tree(self, src: str, dst: str) -> None:
        """Copy a directory tree, all or nothing."""
        await asyncio.to_thread(self._sync.copy_tree, src, dst)

    async def walk(self, path: str = "/") -> list[tuple[str, list[str], list[str]]]:
        """The whole walk as a list (a generator cannot cross threads)."""
        return await asyncio.to_thread(lambda: list(self._sync.walk(path)))

    async def glob(self, pattern: str) -> list[str]:
        """Paths matching a pattern."""
        return await asyncio.to_thread(self._sync.glob, pattern)
