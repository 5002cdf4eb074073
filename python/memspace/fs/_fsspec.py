"""`memspace://` for fsspec (and so for pandas, pyarrow, polars, dask ...).

Registered through the ``fsspec.specs`` entry point when the ``fsspec`` extra is installed.
Each :class:`MemspaceFileSystem` wraps its own :class:`MemoryFileSystem` (pass one as
``mfs=`` to share it); unlike fsspec's ``memory://`` there is no process-wide store.

>>> import fsspec, memspace                                     # doctest: +SKIP
>>> mfs = memspace.MemoryFileSystem()                          # doctest: +SKIP
>>> df.to_csv("memspace://out/a.csv", storage_options={"mfs": mfs})  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import errno
from typing import Any

from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

from memspace.fs._fs import MemoryFileSystem
from memspace.fs._shared import SharedFileSystem

__all__ = ["MemspaceFileSystem"]


class MemspaceFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem over a :class:`MemoryFileSystem` (protocol ``memspace``).

    Parameters
    ----------
    mfs:
        The filesystem to expose; by default a new one with ``max_quota`` bytes.
    max_quota:
        Quota of the filesystem created when ``mfs`` is not given (default 256 MiB).
    shared, shared_path:
        Expose the :class:`~memspace.SharedFileSystem` at this POSIX name (or file path)
        instead, so that every process that names it sees the same files:
        ``fsspec.filesystem("memspace", shared="/scratch")``, or
        ``storage_options={"shared": "/scratch"}`` with pandas.
    """

    protocol = "memspace"
    root_marker = "/"

    def __init__(
        self,
        mfs: MemoryFileSystem | SharedFileSystem | None = None,
        max_quota: int = 256 * 1024 * 1024,
        shared: str | None = None,
        shared_path: str | None = None,
        **storage_options: Any,
    ) -> None:
        super().__init__(**storage_options)
        if shared is not None or shared_path is not None:
            self.mfs: MemoryFileSystem | SharedFileSystem = SharedFileSystem.open(
                shared, path=shared_path
            )
        else:
            self.mfs = mfs if mfs is not None else MemoryFileSystem(max_quota=max_quota)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("memspace://"):
            path = path[len("memspace://") :]
        path = "/" + path.lstrip("/")
        return path.rstrip("/") or "/"

    def _info_of(self, path: str) -> dict[str, Any]:
        st = self.mfs.stat(path)
        return {
            "name": path,
            "size": st["size"],
            "type": "directory" if st["is_dir"] else "file",
            "created": st["created_at"],
            "mtime": st["modified_at"],
        }

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Metadata of one path (``FileNotFoundError`` if missing)."""
        return self._info_of(self._strip_protocol(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Entries of a directory (or the file itself)."""
        path = self._strip_protocol(path)
        if self.mfs.is_file(path):
            entries = [path]
        else:
            entries = [path.rstrip("/") + "/" + n for n in self.mfs.listdir(path)]
        if not detail:
            return entries
        return [self._info_of(p) for p in entries]

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether a path exists."""
        return self.mfs.exists(self._strip_protocol(path))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a directory (``FileExistsError`` if it exists)."""
        path = self._strip_protocol(path)
        parent = path.rsplit("/", 1)[0] or "/"
        if not create_parents and not self.mfs.is_dir(parent):
            raise FileNotFoundError(errno.ENOENT, "parent directory does not exist", parent)
        self.mfs.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its parents."""
        self.mfs.mkdir(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        path = self._strip_protocol(path)
        if self.mfs.listdir(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        self.mfs.rmtree(path)

    def rm_file(self, path: str) -> None:
        """Delete a file."""
        self.mfs.remove(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files, or directory trees with ``recursive=True``."""
        for p in self.expand_path(path, recursive=recursive, maxdepth=maxdepth)[::-1]:
            if self.mfs.is_file(p):
                self.mfs.remove(p)
            elif self.mfs.is_dir(p) and p != "/":
                self.mfs.rmtree(p)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy a file (replacing the destination)."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.mfs.is_dir(src):
            self.mfs.mkdir(dst, exist_ok=True)
            return
        if self.mfs.is_file(dst):
            self.mfs.remove(dst)
        self.mfs.copy(src, dst)

    def mv(self, path1: str, path2: str, recursive: bool = False, **kwargs: Any) -> None:
        """Move a file or directory, creating the destination's parents."""
        self.mfs.move(self._strip_protocol(path1), self._strip_protocol(path2))

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """A file's bytes (or a slice of them)."""
        data: bytes = self.mfs._read_bytes(self._strip_protocol(path))
        return data[start:end]

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write a whole file."""
        path = self._strip_protocol(path)
        self.mfs.mkdir(path.rsplit("/", 1)[0] or "/", exist_ok=True)
        with self.mfs.open(path, "xb" if mode == "create" else "wb") as f:
            f.write(value)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        path = self._strip_protocol(path)
        if mode not in ("rb", "wb", "ab", "xb", "r+b"):
            raise ValueError(f"unsupported file mode for MemspaceFileSystem: {mode!r}")
        if mode != "rb" and mode != "r+b":
            self.mfs.mkdir(path.rsplit("/", 1)[0] or "/", exist_ok=True)
        return self.mfs.open(path, mode)

    def created(self, path: str) -> datetime.datetime:
        """Creation time (UTC)."""
        ts = self.mfs.stat(self._strip_protocol(path))["created_at"]
        return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)

    def modified(self, path: str) -> datetime.datetime:
        """Last modification time (UTC)."""
        ts = self.mfs.stat(self._strip_protocol(path))["modified_at"]
        return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
