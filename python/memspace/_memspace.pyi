"""Type stubs of the native module ``memspace._memspace`` (checked by stubtest)."""

import os
import pathlib
from typing import Any, Final, final

from typing_extensions import Buffer, Self

__version__: Final[str]

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
