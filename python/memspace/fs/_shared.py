"""`SharedFileSystem`: the bounded filesystem shared by many processes through one segment.

The native half (``memspace._memspace._SharedFileSystem``) does everything that touches the
segment; this class adds the Python-level methods it shares with :class:`MemoryFileSystem`
(``walk``, ``iter_export_tree``, ``export_as_bytesio``), the two names that mean one thing on
the class and another on an instance (``open`` and ``remove``), and the async facade.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from memspace._memspace import SharedFileHandle, SharedFileView, _SharedFileSystem
from memspace.fs._fs import _TreeMethods

if TYPE_CHECKING:
    from memspace.fs._async import AsyncMemoryFileSystem

__all__ = ["SharedFileHandle", "SharedFileSystem", "SharedFileView"]

io.RawIOBase.register(SharedFileHandle)

_R = TypeVar("_R")
_I = TypeVar("_I")


class _ClassOrInstance(Generic[_R, _I]):
    """A method that is a classmethod when called on the class and an ordinary method when
    called on an instance (``SharedFileSystem.open("/scratch")`` attaches to a filesystem,
    ``fs.open("/a", "wb")`` opens a file in it)."""

    def __init__(self, on_class: Callable[..., _R], on_instance: Callable[..., _I]) -> None:
        self._on_class = on_class
        self._on_instance = on_instance
        self.__doc__ = on_instance.__doc__

    @overload
    def __get__(self, obj: None, objtype: type[Any]) -> Callable[..., _R]: ...
    @overload
    def __get__(self, obj: object, objtype: type[Any] | None = None) -> Callable[..., _I]: ...
    def __get__(self, obj: object | None, objtype: type[Any] | None = None) -> Callable[..., Any]:
        if obj is None:
            return functools.partial(self._on_class, objtype)
        return functools.partial(self._on_instance, obj)


def _attach(
    cls: type[SharedFileSystem],
    name: str | None = None,
    *,
    path: str | Path | None = None,
    trust: Any = None,
) -> SharedFileSystem:
    return cls(name, path=path, trust=trust)


def _remove_segment(
    cls: type[SharedFileSystem], name: str | None = None, *, path: str | Path | None = None
) -> None:
    _SharedFileSystem._remove_segment(name, path=path)


class SharedFileSystem(_TreeMethods, _SharedFileSystem):
    """A bounded filesystem in shared memory that any number of processes use at once: the
    whole :class:`MemoryFileSystem` API (same methods, semantics and exceptions), crash-safe.

    >>> import memspace                                            # doctest: +SKIP
    >>> fs = memspace.SharedFileSystem.create("/scratch", max_quota=256 << 20)  # doctest: +SKIP
    >>> other = memspace.SharedFileSystem.open("/scratch")  # in any process  # doctest: +SKIP
    >>> with fs.open("/data/a.bin", "wb") as f:                   # doctest: +SKIP
    ...     f.write(b"...")
    >>> with other.view("/data/a.bin") as mv:                     # doctest: +SKIP
    ...     bytes(mv)
    >>> fs.close(); memspace.SharedFileSystem.remove("/scratch")  # doctest: +SKIP

    Promises (see the README): a change is visible to every process once the call that made
    it returns (a write handle's bytes at ``flush()`` or ``close()``); metadata operations,
    ``import_tree``, ``copy_tree``, ``rename`` and ``move`` are all-or-nothing; a read handle
    or a view sees one committed version; a process killed at any point leaves every file
    with its old or its new content and holds nothing locked; the quota and ``max_nodes`` are
    hard limits; the segment is reserved whole at creation.
    """

    @classmethod
    def create(
        cls,
        name: str | None = None,
        *,
        path: str | Path | None = None,
        max_quota: int = 256 * 1024 * 1024,
        max_nodes: int | None = None,
        chunk_overhead_override: int | None = None,
        promotion_hard_limit: int | None = None,
        default_storage: str = "auto",
        default_lock_timeout: float | None = 30.0,
        max_open: int = 4096,
        slots: int = 128,
        data_size: int | None = None,
        mode: int = 0o600,
        memory_guard: str = "none",
        memory_guard_action: str = "warn",
        memory_guard_interval: float = 1.0,
    ) -> SharedFileSystem:
        """Create a new shared filesystem at a POSIX name (``"/scratch"``) or ``path=``.

        Its whole size (``2 * max_quota`` of data room plus the metadata for ``max_nodes``,
        default 16384) is reserved now, so a full ``/dev/shm`` is an error here and never a
        crash later. ``max_open`` bounds the handles open at once (all processes together),
        ``slots`` the processes attached at once. The ``memory_guard`` arguments are
        checked as :class:`MemoryFileSystem` checks them and otherwise unused: the memory is
        reserved whole at creation, which fails cleanly if the machine cannot hold it.
        """
        if memory_guard_action not in ("warn", "raise"):
            raise ValueError(
                f"Invalid memory_guard_action: '{memory_guard_action}'. Expected 'warn' or 'raise'."
            )
        if memory_guard not in ("none", "init", "per_write"):
            raise ValueError(
                f"Invalid memory_guard: '{memory_guard}'. Expected 'none', 'init', or 'per_write'."
            )
        del memory_guard_interval
        return cls(
            name,
            path=path,
            create=True,
            max_quota=max_quota,
            max_nodes=max_nodes,
            chunk_overhead_override=chunk_overhead_override,
            promotion_hard_limit=promotion_hard_limit,
            default_storage=default_storage,
            default_lock_timeout=default_lock_timeout,
            max_open=max_open,
            slots=slots,
            data_size=data_size,
            mode=mode,
        )

    #: ``SharedFileSystem.open(name, path=..., trust=None)`` attaches to an existing
    #: filesystem (``trust`` as for every memspace ``open``: whose segment to accept);
    #: ``fs.open(path, mode="rb", preallocate=0, lock_timeout=None)`` opens a file in it.
    open = _ClassOrInstance(_attach, _SharedFileSystem.open)

    #: ``SharedFileSystem.remove(name, path=...)`` removes the segment;
    #: ``fs.remove(path)`` deletes a file in it.
    remove = _ClassOrInstance(_remove_segment, _SharedFileSystem._remove_file)

    def view(self, path: str) -> SharedFileView:
        """A zero-copy, read-only view of a file's bytes as committed now: ``with
        fs.view(p) as mv:`` hands out a ``memoryview``. Writers may replace the file
        meanwhile; the view keeps seeing its version, whose memory is never reused while the
        view lives (``BufferError`` at the end of the block if a view of it is still
        exported, e.g. a numpy array)."""
        return self._view(path)

    def inspect(self) -> dict[str, Any]:
        """Usage and health for ``memspace inspect``: used and free bytes, files, the data
        area's free space and fragmentation (free extents, largest free extent), old versions
        still pinned, open handles, the attached processes and the age of the oldest live
        reader's snapshot."""
        i = self.info()
        used, quota = i["used_bytes"], i["quota_bytes"]
        return {
            "kind": "fs",
            "used_bytes": used,
            "free_bytes": quota - used,
            "quota_bytes": quota,
            "files": i["files"],
            "dirs": i["dirs"],
            "max_nodes": i["max_nodes"],
            "data_bytes": i["data_bytes"],
            "free_data_bytes": i["free_data_bytes"],
            "free_extents": i["free_extents"],
            "largest_free_extent": i["largest_free_extent"],
            "fragmentation": (
                0.0
                if i["free_data_bytes"] == 0
                else round(1 - i["largest_free_extent"] / i["free_data_bytes"], 4)
            ),
            "old_version_bytes": i["old_version_bytes"],
            "open_handles": i["open_handles"],
            "generation": i["generation"],
            "attached_processes": [pid for _, pid in i["attached"]],
            "oldest_snapshot_age_s": i["oldest_snapshot_age"],
        }

    def as_async(self) -> AsyncMemoryFileSystem:
        """The async facade over this filesystem."""
        from memspace.fs._async import AsyncMemoryFileSystem

        return AsyncMemoryFileSystem.of(self)

    def __enter__(self) -> SharedFileSystem:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()
