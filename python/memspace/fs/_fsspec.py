"""`memspace://` for fsspec (and so for pandas, pyarrow, polars, dask ...).

Registered through the ``fsspec.specs`` entry point when the ``fsspec`` extra is installed.
A :class:`MemspaceFileSystem` is a view of one named store, the :class:`MemoryFileSystem`
passed as ``mfs=`` (in a URL: ``storage_options={"mfs": mfs}``). There is no process-wide
default store: a ``memspace://`` URL without one raises ``ValueError`` saying how to name it,
because a hidden shared store is exactly what separate ``MemoryFileSystem`` objects are not.

It follows fsspec's ``AbstractFileSystem`` contract as fsspec's own ``memory://`` does
(tested with fsspec's abstract test suite and against ``memory://``): missing paths raise
``FileNotFoundError``, copies and writes create the destination's parents, ``rm`` of a
non-empty directory without ``recursive=True`` raises ``OSError(ENOTEMPTY)``.

Reads get a snapshot of the file taken at ``open`` (holding no lock). Writes are staged: a
file opened for writing collects its bytes and commits them all at once when it is closed (one
all-or-nothing write into the store), so a quota error in the middle of a pandas or pyarrow
write leaves the previous file (or no file) behind, never a truncated one.

>>> import fsspec, memspace                                     # doctest: +SKIP
>>> mfs = memspace.MemoryFileSystem()                          # doctest: +SKIP
>>> df.to_csv("memspace://out/a.csv", storage_options={"mfs": mfs})  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import errno
import io
import os
from typing import Any

from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

from memspace.errors import MFSQuotaExceededError
from memspace.fs._fs import MemoryFileSystem
from memspace.fs._shared import SharedFileSystem

__all__ = ["MemspaceFileSystem"]

_PROTOCOL_PREFIX = "memspace://"

_NO_STORE = (
    "memspace:// needs a store: pass the MemoryFileSystem to use, e.g. "
    "MemspaceFileSystem(mfs=store) or, for a URL, storage_options={'mfs': store} "
    "(each MemoryFileSystem is its own store; there is no default one)"
)


# One attachment per shared filesystem and process, however many fsspec views name it (pandas
# makes one per call; each attachment takes a slot of the filesystem's attachment table).
_ATTACHED: dict[tuple[str | None, str | None], SharedFileSystem] = {}


def _store(
    mfs: object | None, shared: str | None = None, shared_path: str | None = None
) -> MemoryFileSystem | SharedFileSystem:
    """The store a :class:`MemspaceFileSystem` is a view of (one place to add other kinds)."""
    if shared is not None or shared_path is not None:
        if mfs is not None:
            raise TypeError("give mfs= or shared=/shared_path=, not both")
        key = (shared, shared_path)
        fs = _ATTACHED.get(key)
        if fs is None or fs.closed:
            fs = _ATTACHED[key] = SharedFileSystem.open(shared, path=shared_path)
        return fs
    if mfs is None:
        raise ValueError(_NO_STORE)
    if not isinstance(mfs, (MemoryFileSystem, SharedFileSystem)):
        raise TypeError(
            f"mfs must be a memspace.MemoryFileSystem or SharedFileSystem, not {type(mfs).__name__}"
        )
    return mfs


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


class MemspaceFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem over a :class:`MemoryFileSystem` (protocol ``memspace``).

    Parameters
    ----------
    mfs:
        The store to expose (required: a ``ValueError`` explains how to pass it), a
        :class:`MemoryFileSystem` or a :class:`~memspace.SharedFileSystem`.
    shared, shared_path:
        Instead of ``mfs``: the :class:`~memspace.SharedFileSystem` at this POSIX name (or
        file path), so that every process that names it sees the same files:
        ``fsspec.filesystem("memspace", shared="/scratch")``, or
        ``storage_options={"shared": "/scratch"}`` with pandas.
    **storage_options:
        fsspec's own options (``use_listings_cache`` and so on).
    """

    protocol = "memspace"
    root_marker = "/"
    # Instances are cheap views; caching them by their arguments' repr could hand one store's
    # view to another store. The store, not the instance, is the identity.
    cachable = False

    def __init__(
        self,
        mfs: MemoryFileSystem | SharedFileSystem | None = None,
        shared: str | None = None,
        shared_path: str | None = None,
        **storage_options: Any,
    ) -> None:
        self.mfs = _store(mfs, shared, shared_path)
        super().__init__(**storage_options)

    # --- paths ----------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
        if path.startswith(_PROTOCOL_PREFIX):
            path = path[len(_PROTOCOL_PREFIX) :]
        path = "/" + path.lstrip("/")
        return path.rstrip("/") or "/"

    # --- metadata -------------------------------------------------------------------------

    def _info_of(self, path: str) -> dict[str, Any]:
        st = self.mfs.stat(path)
        return {
            "name": path,
            "size": 0 if st["is_dir"] else st["size"],
            "type": "directory" if st["is_dir"] else "file",
            "created": st["created_at"],
            "mtime": st["modified_at"],
        }

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Metadata of one path (``FileNotFoundError`` if missing)."""
        return self._info_of(self._strip_protocol(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Entries of a directory, or the file itself (``FileNotFoundError`` if missing)."""
        path = self._strip_protocol(path)
        if self.mfs.is_file(path):
            entries = [path]
        else:
            entries = [path.rstrip("/") + "/" + n for n in self.mfs.listdir(path)]
        if not detail:
            return entries
        out = []
        for p in entries:
            try:
                out.append(self._info_of(p))
            except FileNotFoundError:  # removed by another thread since listdir
                continue
        return out

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether a path exists."""
        return self.mfs.exists(self._strip_protocol(path))

    def isdir(self, path: str) -> bool:
        """Whether a path is a directory."""
        return self.mfs.is_dir(self._strip_protocol(path))

    def isfile(self, path: str) -> bool:
        """Whether a path is a file."""
        return self.mfs.is_file(self._strip_protocol(path))

    def created(self, path: str) -> datetime.datetime:
        """Creation time (UTC)."""
        ts = self.mfs.stat(self._strip_protocol(path))["created_at"]
        return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)

    def modified(self, path: str) -> datetime.datetime:
        """Last modification time (UTC)."""
        ts = self.mfs.stat(self._strip_protocol(path))["modified_at"]
        return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)

    # --- directories ----------------------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a directory (``FileExistsError`` if the path exists)."""
        path = self._strip_protocol(path)
        if self.mfs.exists(path):
            raise FileExistsError(errno.EEXIST, "path exists", path)
        if not create_parents and not self.mfs.is_dir(_parent(path)):
            raise FileNotFoundError(errno.ENOENT, "parent directory does not exist", path)
        self.mfs.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its parents (``FileExistsError`` unless ``exist_ok``)."""
        self.mfs.mkdir(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        path = self._strip_protocol(path)
        if path == "/":
            raise PermissionError(errno.EPERM, "cannot remove the root directory", path)
        if self.mfs.listdir(path):  # FileNotFoundError / NotADirectoryError as they come
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        self.mfs.rmtree(path)

    # --- removing -------------------------------------------------------------------------

    def rm_file(self, path: str) -> None:
        """Delete a file (``FileNotFoundError`` if missing, ``IsADirectoryError`` for one)."""
        self.mfs.remove(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files, and directories with ``recursive=True`` (as fsspec's ``memory://``).

        ``FileNotFoundError`` if nothing matches; a directory that is not empty once its
        listed contents are gone (``recursive=False``, or entries below ``maxdepth``) raises
        ``OSError(ENOTEMPTY)``. The root directory itself is emptied, never removed.
        """
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        # A non-recursive expansion keeps a literal path whether or not it exists.
        existed = {p for p in paths if self.mfs.exists(p)}
        for p in reversed(paths):
            if self.mfs.is_file(p):
                self.mfs.remove(p)
            elif self.mfs.is_dir(p):
                if p == "/":
                    continue
                if recursive and maxdepth is None:
                    self.mfs.rmtree(p)
                else:
                    self.rmdir(p)
            elif p not in existed:
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", p)
            # else: removed with a directory above it earlier in this call

    # --- copying and moving ---------------------------------------------------------------

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one file (or make the directory, for a directory), creating the destination's
        parents and replacing a destination file; all or nothing."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.mfs.is_dir(src):
            self.mfs.mkdir(dst, exist_ok=True)
            return
        if not self.mfs.is_file(src):
            raise FileNotFoundError(errno.ENOENT, "no such file", src)
        if src == dst:
            return
        if self.mfs.exists(dst):
            # Replaced in one step with the quota exchanged, so a failed copy keeps the old.
            self.mfs.import_tree({dst: self.mfs._read_bytes(src)})
            return
        self.mfs.mkdir(_parent(dst), exist_ok=True)
        self.mfs.copy(src, dst)

    def mv(
        self,
        path1: Any,
        path2: Any,
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Move files or directories; a single path to a new one is one rename (parents
        created), everything else is fsspec's copy-then-remove."""
        if (
            isinstance(path1, str)
            and isinstance(path2, str)
            and not any(c in path1 for c in "*?[")
            and not path2.endswith("/")
        ):
            src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
            if src == dst:
                return
            if self.mfs.exists(src) and not self.mfs.exists(dst):
                self.mfs.move(src, dst)
                return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    # --- reading and writing --------------------------------------------------------------

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """A file's bytes, or ``[start:end]`` of them (negative values count from the end)."""
        path = self._strip_protocol(path)
        if start is None and end is None:
            data: bytes = self.mfs._read_bytes(path)
            return data
        out = b""
        with self.mfs.open(path, "rb") as f:
            lo, hi, _ = slice(start, end).indices(self.mfs.get_size(path))
            if hi > lo:
                f.seek(lo)
                out = f.read(hi - lo)
        return out

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write a whole file in one step (``mode="create"``: ``FileExistsError`` if it
        exists), creating its parents."""
        if mode not in ("overwrite", "create"):
            raise ValueError(f"mode must be 'overwrite' or 'create', not {mode!r}")
        _commit(self.mfs, self._strip_protocol(path), "xb" if mode == "create" else "wb", value)

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
        if mode == "rb":
            # A snapshot (as memory:// hands out a copy too): it holds no lock on the file, so
            # readers that never close their files (pyarrow leaves that to the collector)
            # neither block writers nor warn.
            return self.mfs.export_as_bytesio(path)
        if mode not in ("wb", "ab", "xb"):
            raise ValueError(f"unsupported file mode for MemspaceFileSystem: {mode!r}")
        if self.mfs.is_dir(path):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if mode == "xb" and self.mfs.exists(path):
            raise FileExistsError(errno.EEXIST, "file exists", path)
        if self.mfs.is_file(_parent(path)):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", _parent(path))
        return StagedFile(self.mfs, path, mode, autocommit=autocommit)


def _commit(
    mfs: MemoryFileSystem | SharedFileSystem, path: str, mode: str, data: bytes | bytearray
) -> None:
    """Write ``data`` to ``path`` in one all-or-nothing step; parents are created."""
    if mode == "wb" and mfs.exists(path):
        # One replacement with the quota exchanged (old charge for new): the old file stays
        # if it fails. (Such a file counts as imported for export_tree(only_dirty=True).)
        mfs.import_tree({path: data})
        return
    mfs.mkdir(_parent(path), exist_ok=True)
    created = mode != "ab" and not mfs.exists(path)
    with mfs.open(path, "xb" if mode == "xb" else mode) as f:
        try:
            f.write(data)  # one write: quota is checked before anything is written
        except BaseException:
            if created:
                f.close()
                mfs.remove(path)
            raise


class StagedFile(io.RawIOBase):
    """A file of a :class:`MemspaceFileSystem` opened for writing (``wb``, ``ab``, ``xb``).

    Bytes are collected and committed to the store in one step when the file is closed (or,
    inside an fsspec transaction, when it commits). Nothing is committed if a write failed
    (for instance with :class:`~memspace.MFSQuotaExceededError`, raised as soon as the
    collected bytes can no longer fit), if a ``with`` block around it raised, or after
    :meth:`discard`.
    """

    def __init__(
        self, mfs: MemoryFileSystem | SharedFileSystem, path: str, mode: str, autocommit: bool
    ) -> None:
        super().__init__()
        self.fs_store = mfs
        self.path = path
        self.mode = mode
        self.autocommit = autocommit
        self._buf = bytearray()
        self._failed = False

    @property
    def name(self) -> str:
        """The path being written."""
        return self.path

    def writable(self) -> bool:
        """True: the file is open for writing."""
        return True

    def readable(self) -> bool:
        """False: a staged file is write-only."""
        return False

    def seekable(self) -> bool:
        """False: bytes are appended in order."""
        return False

    def tell(self) -> int:
        """Bytes written so far."""
        self._check_open()
        return len(self._buf)

    def write(self, data: Any) -> int:
        """Collect ``data``; raises the quota error as soon as the file can no longer fit."""
        self._check_open()
        if self._failed:
            raise OSError(errno.EIO, "an earlier write to this file failed", self.path)
        with memoryview(data) as mv:
            n = mv.nbytes
        self._buf += data
        self._check_fits()
        return n

    def _check_fits(self) -> None:
        st = self.fs_store.stats()
        available = st["free_bytes"]
        if self.mode == "wb" and self.fs_store.is_file(self.path):
            available += self.fs_store.get_size(self.path)  # the old data is replaced
        requested = len(self._buf)
        if requested > available:
            self.discard()
            raise MFSQuotaExceededError(requested=requested, available=available)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def flush(self) -> None:
        """Nothing to do: the bytes are committed when the file is closed."""
        self._check_open()

    def commit(self) -> None:
        """Write the collected bytes into the store (fsspec's transaction interface)."""
        data, self._buf = self._buf, bytearray()
        if self._failed:
            return
        self._failed = True  # commit once
        _commit(self.fs_store, self.path, self.mode, data)

    def discard(self) -> None:
        """Drop the collected bytes; nothing is written."""
        self._failed = True
        self._buf = bytearray()

    def close(self) -> None:
        """Commit (unless a write failed or the file is part of a transaction) and close."""
        if self.closed:
            return
        try:
            if self.autocommit:
                self.commit()
        finally:
            super().close()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.discard()
        self.close()

    def __repr__(self) -> str:
        return f"<memspace staged file {self.path!r} mode={self.mode!r}>"
