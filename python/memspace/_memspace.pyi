"""Type stubs of the native module ``memspace._memspace`` (checked by stubtest)."""

import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any, Final, final

from typing_extensions import Buffer, Self, disjoint_base

from memspace.fs._typing import MFSStatResult, MFSStats

__version__: Final[str]
__all__ = [
    "MemoryFileHandle",
    "SharedMemory",
    "_FileSystem",
    "__version__",
    "_list_segments",
    "_reopen_segment",
]

@final
class SharedMemory:
    """A named (POSIX) or file-backed shared-memory segment.

    Supports the buffer protocol (``memoryview(shm)``, ``numpy.frombuffer(shm)``) and is a
    context manager that closes it on exit. Closing never removes the segment unless it was
    created with ``auto_unlink=True``.
    """

    @staticmethod
    def create(
        name: str | None = None,
        size: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
        auto_unlink: bool = False,
    ) -> SharedMemory:
        """Create a new segment of ``size`` bytes, zero-filled.

        Raises ``FileExistsError`` if it exists, ``ValueError`` for a bad name, size or mode,
        and ``OSError(ENOSPC)`` if the space cannot be reserved.
        """

    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        size: int | None = None,
    ) -> SharedMemory:
        """Open an existing segment; ``size`` (optional) is the least size it must have."""

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a segment by name or path; ``FileNotFoundError`` if there is none."""

    @property
    def name(self) -> str | None:
        """The POSIX name (``"/demo"``), or None for a file-backed segment."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None for a POSIX segment."""

    @property
    def size(self) -> int:
        """Size in bytes."""

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""

    @property
    def auto_unlink(self) -> bool:
        """True if closing or collecting this object removes the segment."""

    @property
    def buf(self) -> memoryview:
        """A writable memoryview over the whole segment."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def read(self, offset: int = 0, n: int | None = None) -> bytes:
        """Copy ``n`` bytes (default: to the end) starting at ``offset``."""

    def write(self, offset: int, data: Buffer) -> int:
        """Copy a bytes-like object into the segment at ``offset``; return the byte count."""

    def read_int(self, offset: int) -> int:
        """Read a native-endian int64 (atomic, acquire, when ``offset`` is 8-aligned)."""

    def write_int(self, offset: int, value: int) -> None:
        """Write a native-endian int64 (atomic, release, when 8-aligned)."""

    def read_uint(self, offset: int) -> int:
        """Read a native-endian uint64."""

    def write_uint(self, offset: int, value: int) -> None:
        """Write a native-endian uint64."""

    def read_float(self, offset: int) -> float:
        """Read a native-endian float64."""

    def write_float(self, offset: int, value: float) -> None:
        """Write a native-endian float64."""

    def ndarray(self, dtype: Any, shape: int | tuple[int, ...] | list[int], offset: int = 0) -> Any:
        """A zero-copy ``numpy.ndarray`` over the segment (needs numpy)."""

    def close(self) -> None:
        """Detach; views already taken stay valid until released."""

    def unlink(self) -> None:
        """Remove the segment by its name or path."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> bool: ...
    def __reduce__(self) -> tuple[Any, tuple[str | None, str | None], None]: ...

def _reopen_segment(name: str | None, path: str | os.PathLike[str] | None) -> SharedMemory: ...
def _list_segments() -> list[tuple[str, int, str, float | None, int, int]]: ...

@disjoint_base
class _FileSystem:
    """Native half of :class:`memspace.MemoryFileSystem` (use that class)."""

    def __new__(
        cls,
        max_quota: int = 268435456,
        chunk_overhead_override: int | None = None,
        promotion_hard_limit: int | None = None,
        max_nodes: int | None = None,
        default_storage: str = "auto",
        default_lock_timeout: float | None = 30.0,
        memory_guard: str = "none",
        memory_guard_action: str = "warn",
        memory_guard_interval: float = 1.0,
    ) -> Self: ...
    def open(
        self,
        path: str,
        mode: str = "rb",
        preallocate: int = 0,
        lock_timeout: float | None = None,
    ) -> MemoryFileHandle:
        """Open a file in a binary mode (``rb``, ``wb``, ``ab``, ``r+b``, ``xb``)."""
    def mkdir(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its missing parents."""
    def remove(self, path: str) -> None:
        """Delete a file."""
    def rmtree(self, path: str) -> None:
        """Delete a directory tree."""
    def rename(self, src: str, dst: str) -> None:
        """Rename a file or directory (the destination's parent must exist)."""
    def move(self, src: str, dst: str) -> None:
        """Move a file or directory, creating the destination's parents."""
    def copy(self, src: str, dst: str) -> None:
        """Copy a file."""
    def copy_tree(self, src: str, dst: str) -> None:
        """Copy a directory tree, all or nothing."""
    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted."""
    def exists(self, path: str) -> bool:
        """Whether a path exists."""
    def is_dir(self, path: str) -> bool:
        """Whether a path is a directory."""
    def is_file(self, path: str) -> bool:
        """Whether a path is a file."""
    def stat(self, path: str) -> MFSStatResult:
        """Metadata of a path."""
    def stats(self) -> MFSStats:
        """Usage of the filesystem."""
    def get_size(self, path: str) -> int:
        """Size of a file."""
    def glob(self, pattern: str) -> list[str]:
        """Paths matching a glob pattern, sorted, each once."""
    def export_tree(self, prefix: str = "/", only_dirty: bool = False) -> dict[str, bytes]:
        """All files below ``prefix`` as ``{path: bytes}``."""
    def import_tree(self, tree: Mapping[str, Buffer]) -> None:
        """Write every entry, all or nothing."""
    def _scandir(self, path: str) -> tuple[list[str], list[str]]: ...
    def _file_paths(self, prefix: str = "/", only_dirty: bool = False) -> list[str]: ...
    def _read_bytes(self, path: str, max_size: int | None = None) -> bytes: ...

@final
class MemoryFileHandle:
    """An open file of a :class:`memspace.MemoryFileSystem` (a registered ``io.RawIOBase``)."""

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (``-1``/``None``: to the end)."""
    def readall(self) -> bytes:
        """Read to the end."""
    def readinto(self, buffer: Buffer) -> int:
        """Read into a writable buffer."""
    def readline(self, size: int | None = -1) -> bytes:
        """Read one line."""
    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read the remaining lines."""
    def write(self, data: Buffer) -> int:
        """Write a bytes-like object."""
    def writelines(self, lines: Iterable[Buffer]) -> None:
        """Write every bytes-like object of an iterable."""
    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the cursor."""
    def tell(self) -> int:
        """The cursor."""
    def truncate(self, size: int | None = None) -> int:
        """Resize the file."""
    def flush(self) -> None:
        """No-op on an open handle."""
    def readable(self) -> bool:
        """Whether the handle may read."""
    def writable(self) -> bool:
        """Whether the handle may write."""
    def seekable(self) -> bool:
        """Always ``True``."""
    def isatty(self) -> bool:
        """Always ``False``."""
    def fileno(self) -> int:
        """Raises ``io.UnsupportedOperation``."""
    def close(self) -> None:
        """Release the file's lock."""
    @property
    def closed(self) -> bool:
        """Whether the handle is closed."""
    @property
    def mode(self) -> str:
        """The mode string."""
    @property
    def name(self) -> str:
        """The normalised path."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *_args: object) -> bool: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> bytes: ...
