"""`MemoryFileSystem`: the native filesystem plus its few Python-level methods.

Everything that touches data (open, read, write, copy, import/export, glob, stat) is native
(`memspace._memspace._FileSystem`); this class adds only what is naturally Python: the
generators (`walk`, `iter_export_tree`), `export_as_bytesio`, and the memory guard.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from memspace._memspace import MemoryFileHandle, _FileSystem
from memspace.fs._guard import MemoryGuard

__all__ = ["MemoryFileHandle", "MemoryFileSystem"]

io.RawIOBase.register(MemoryFileHandle)


class _TreeMethods:
    """The Python-level methods every memspace filesystem shares (in-process and shared):
    the generators and ``export_as_bytesio``, over the native ``_scandir``, ``_file_paths``
    and ``_read_bytes``."""

    if TYPE_CHECKING:

        def _scandir(
            self, path: str, parent: tuple[int, int] | None = None, name: str = ""
        ) -> tuple[tuple[int, int], list[str], list[str]]: ...
        def _file_paths(self, prefix: str = "/", only_dirty: bool = False) -> list[str]: ...
        def _read_bytes(self, path: str, max_size: int | None = None) -> bytes: ...

    def walk(self, path: str = "/") -> Iterator[tuple[str, list[str], list[str]]]:
        """Walk the tree top-down like :func:`os.walk`: yields ``(dirpath, dirnames,
        filenames)``, names sorted.

        Weakly consistent, as in dmemfs: no lock is held between yields; a directory removed
        meanwhile is skipped. Raises ``FileNotFoundError`` / ``NotADirectoryError`` for a bad
        ``path`` (on the first ``next()``).
        """
        top = _normpath(path)
        token, dirs, files = self._scandir(top)
        yield top, dirs, files
        # Each pending directory is (its parent's path, the parent's token, its name); the
        # token lets the core find it without looking its whole path up, so a walk down a
        # deep chain costs each step its own names (plus the path string it yields).
        stack = [(top, token, d) for d in reversed(dirs)]
        while stack:
            parent, ptoken, name = stack.pop()
            current = f"{parent}/{name}" if parent != "/" else "/" + name
            try:
                token, dirs, files = self._scandir(current, ptoken, name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            yield current, dirs, files
            stack.extend((current, token, d) for d in reversed(dirs))

    def iter_export_tree(
        self, prefix: str = "/", only_dirty: bool = False
    ) -> Iterator[tuple[str, bytes]]:
        """Yield ``(path, bytes)`` for every file below ``prefix`` (sorted by path).

        The path list is taken at the first ``next()``; each file is then copied as one
        consistent state without waiting for its lock. Files removed meanwhile are skipped.
        With ``only_dirty``, only files written since creation or ``import_tree``.
        """
        for p in self._file_paths(prefix, only_dirty):
            try:
                data = self._read_bytes(p)
            except (FileNotFoundError, IsADirectoryError):
                continue
            yield p, data

    def export_as_bytesio(self, path: str, max_size: int | None = None) -> io.BytesIO:
        """A copy of a file's bytes as a new :class:`io.BytesIO` at offset 0.

        Never waits for the file's lock (a thread holding the file open does not block it);
        it copies the data as of the last completed write. ``ValueError`` if the file is
        larger than ``max_size``. The copy is outside quota control.
        """
        return io.BytesIO(self._read_bytes(path, max_size))


class MemoryFileSystem(_TreeMethods, _FileSystem):
    """A bounded, thread-safe filesystem in memory: a drop-in replacement for
    ``dmemfs.MemoryFileSystem`` (same constructor, methods, defaults and exceptions).

    Parameters
    ----------
    max_quota:
        Byte budget for file data (default 256 MiB). A write that would exceed it raises
        :class:`~memspace.MFSQuotaExceededError` before anything is written.
    chunk_overhead_override:
        Quota overhead charged per chunk of a sequential file (default 128, as dmemfs).
    promotion_hard_limit:
        Largest sequential file that may be promoted to random-access (default 512 MiB).
    max_nodes:
        Most files + directories, the root included (default unlimited); exceeding it raises
        :class:`~memspace.MFSNodeLimitExceededError`.
    default_storage:
        ``"auto"`` (chunked, promoted on the first random write), ``"sequential"`` (random
        writes raise ``io.UnsupportedOperation``) or ``"random_access"``.
    default_lock_timeout:
        Seconds ``open()`` waits for a file lock when not told otherwise (``None``: forever).
    memory_guard, memory_guard_action, memory_guard_interval:
        ``"none"``, ``"init"`` (compare ``max_quota`` with available RAM once) or
        ``"per_write"`` (also before each write, probing at most every ``interval`` s);
        the action is ``"warn"`` (``ResourceWarning``) or ``"raise"`` (``MemoryError``).

    Example
    -------
    >>> from memspace import MemoryFileSystem
    >>> mfs = MemoryFileSystem(max_quota=1 << 20)
    >>> mfs.mkdir("/data")
    >>> with mfs.open("/data/a.bin", "wb") as f:
    ...     f.write(b"hello")
    5
    >>> with mfs.open("/data/a.bin") as f:
    ...     f.read()
    b'hello'
    """

    _guard: MemoryGuard

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
        # The native constructor has already validated and applied every argument.
        self._guard = MemoryGuard(memory_guard, memory_guard_action, memory_guard_interval)
        self._guard.check_init(max_quota)
        if memory_guard == "per_write":
            self.open = self._guarded_open  # type: ignore[method-assign]

    def _guarded_open(
        self,
        path: str,
        mode: str = "rb",
        preallocate: int = 0,
        lock_timeout: float | None = None,
    ) -> Any:
        if preallocate > 0:
            self._guard.check_write(preallocate)
        handle = _FileSystem.open(self, path, mode, preallocate, lock_timeout)
        if mode == "rb":
            return handle
        from memspace.fs._guarded import GuardedHandle

        return GuardedHandle(handle, self._guard)

    def __repr__(self) -> str:
        st = self.stats()
        return (
            f"<memspace.MemoryFileSystem at {id(self):#x} used={st['used_bytes']} "
            f"quota={st['quota_bytes']} "
            f"files={st['file_count']} dirs={st['dir_count']}>"
        )


def _normpath(path: str) -> str:
    """The normalised absolute form of ``path`` (``ValueError`` above the root)."""
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError(f"Path traversal attempt detected: '{path}'")
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)
