"""Unpacking zip and tar archives into a :class:`MemoryFileSystem`.

:func:`expand_archive` is all-or-nothing (it builds the whole tree, then one
:meth:`~MemoryFileSystem.import_tree`); :func:`expand_archive_streaming` writes entry by entry
(lower peak memory, partial results on failure). Member paths are sanitised: absolute paths
become relative and ``..`` components are dropped, so nothing lands outside ``dest``.
Formats are pluggable through :class:`ArchiveAdapter`.

An archive is untrusted input, so expanding one is bounded by the filesystem's quota, not by
what the archive claims: a member whose declared size does not fit is refused before it is
decompressed, decompression stops as soon as the bytes read would not fit (whatever was
declared), a tar's decompressed stream (headers included) may be at most about twice the room
left, and members nested deeper than ``max_depth`` directories are refused. Memory used stays
within a small multiple of the free quota.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import posixpath
import warnings
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from memspace.errors import MFSQuotaExceededError

if TYPE_CHECKING:
    import zipfile

    from typing_extensions import Self

    from memspace.fs._fs import MemoryFileSystem

#: How deep (in directories below ``dest``) an archive member may be by default.
DEFAULT_MAX_DEPTH = 1024

# Members are read this much at a time.
_CHUNK = 1 << 20
# A tar's decompressed stream may exceed the data it holds by this much at least (headers).
_HEADER_ROOM = 16 << 20

# One archive member: its path in the archive, its declared size (None: unknown), and a
# read(n) of its bytes (valid until the next member is asked for).
_Entry = tuple[str, "int | None", Callable[[int], bytes]]

__all__ = [
    "ArchiveAdapter",
    "TarAdapter",
    "ZipAdapter",
    "expand_archive",
    "expand_archive_streaming",
]


def _safe_relative(raw: str) -> str:
    """The archive path made relative and free of ``..`` (``""``: skip the entry)."""
    p = posixpath.normpath(raw.replace("\\", "/").lstrip("/")) if raw.strip("/\\") else ""
    return "/".join(c for c in p.split("/") if c not in ("", ".", ".."))


class _Stream(Protocol):
    """What is read from: a binary file, or a decompressing one."""

    def read(self, size: int = ..., /) -> bytes: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...
    def tell(self) -> int: ...


class _Room:
    """The bytes an expansion may still take in: the free quota when it started plus what
    the files it replaces hold (a necessary condition for the import to succeed, so nothing
    that would fit is refused), minus what it has read so far."""

    def __init__(self, mfs: MemoryFileSystem) -> None:
        self.limit = mfs._free_bytes()
        self.used = 0

    def check(self, more: int) -> None:
        """Refuses `more` bytes beyond what is used, before they are read."""
        if self.used + more > self.limit:
            raise MFSQuotaExceededError(requested=self.used + more, available=self.limit)

    def stream_limit(self) -> int:
        """How much of a tar's decompressed stream may be read (data plus headers)."""
        return self.limit + max(self.limit, _HEADER_ROOM)


def _read_member(read: Callable[[int], bytes], declared: int | None, room: _Room) -> bytearray:
    """A member's bytes, read a chunk at a time and refused as soon as they would not fit in
    `room` (whatever was declared); `room.used` grows by what was read."""
    if declared is not None:
        room.check(declared)
    buf = bytearray()
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            return buf
        room.check(len(chunk))
        room.used += len(chunk)
        buf += chunk


def _read_all(read: Callable[[int], bytes]) -> bytes:
    return b"".join(iter(lambda: read(_CHUNK), b""))


class _Bounded(io.RawIOBase):
    """A decompressed tar stream for :mod:`tarfile` that refuses to hand out more than
    `limit()` bytes in all (seeking forward over member data reads nothing out)."""

    def __init__(self, inner: _Stream, limit: Callable[[], int]) -> None:
        self._inner = inner
        self._limit = limit
        self._given = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        left = self._limit() - self._given
        if size is None or size < 0:
            size = left + 1
        if size > left:
            raise MFSQuotaExceededError(requested=self._given + size, available=self._limit())
        data = self._inner.read(size)
        self._given += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()


def _decompressing(raw: IO[bytes]) -> io.BufferedIOBase | None:
    """`raw` decompressed if it starts like gzip, bzip2 or xz (None otherwise)."""
    pos = raw.tell()
    magic = raw.read(6)
    raw.seek(pos)
    if magic.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(raw)
    return None


class _ZipMember:
    """A read(n) over a zip member that never decompresses more than its declared size.

    :mod:`zipfile` bounds each read of a stored or deflated member, but decompresses a bzip2
    or LZMA block whole before cutting it to the declared size (a few KiB of bzip2 can hold
    gigabytes); for those, the compressed bytes are read as if stored and decompressed here
    with a bounded output, and the size and CRC are checked here."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        import zipfile

        self._name = info.filename
        self._left = info.file_size
        self._expected = info.CRC
        self._crc = 0
        self._done = False
        self._own = info.compress_type in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
        self._decomp: Any = None
        self._lzma_head = b""
        if not self._own:
            self._file = zf.open(info)
            return
        raw = copy.copy(info)
        raw.compress_type = zipfile.ZIP_STORED
        raw.file_size = info.compress_size
        raw.CRC = None  # type: ignore[assignment]  # the CRC is of the decompressed bytes
        self._file = zf.open(raw)
        if info.compress_type == zipfile.ZIP_BZIP2:
            import bz2

            self._decomp = bz2.BZ2Decompressor()

    def close(self) -> None:
        self._file.close()

    def read(self, n: int) -> bytes:
        """Up to about `n` bytes; b"" at the end."""
        if not self._own:
            return self._file.read(n)
        while not self._done:
            out = self._step()
            if out:
                return out
        return b""

    def _step(self) -> bytes:
        """Decompresses the next run (possibly empty); checks size and CRC at the end."""
        if self._decomp is None:
            data = self._file.read(_CHUNK)
            if not data:
                raise _bad_zip(f"Truncated LZMA data for file {self._name!r}")
            rest = self._start_lzma(data)
            out = self._decomp.decompress(rest, self._left + 1) if self._decomp else b""
        elif self._decomp.eof:
            self._finish()
            return b""
        elif not self._decomp.needs_input:
            out = self._decomp.decompress(b"", self._left + 1)
        else:
            data = self._file.read(_CHUNK)
            if not data:
                self._finish()
                return b""
            out = self._decomp.decompress(data, self._left + 1)
        if len(out) > self._left:
            raise _bad_zip(f"File {self._name!r} is larger than its declared size")
        self._left -= len(out)
        self._crc = zlib.crc32(out, self._crc)
        return bytes(out)

    def _finish(self) -> None:
        self._done = True
        if self._left or self._crc != self._expected:
            raise _bad_zip(f"Bad CRC-32 for file {self._name!r}")

    def _start_lzma(self, data: bytes) -> bytes:
        """Reads the zip LZMA header (version, properties size, properties) and starts the
        decompressor once it is complete; returns the bytes after it."""
        import lzma

        head = self._lzma_head + data
        psize = int.from_bytes(head[2:4], "little") if len(head) >= 4 else None
        if psize is None or len(head) < 4 + psize:
            self._lzma_head = head
            return b""
        props = head[4 : 4 + psize]
        if len(props) < 5:
            raise _bad_zip(f"Bad LZMA properties for file {self._name!r}")
        d = props[0]
        filt = {
            "id": lzma.FILTER_LZMA1,
            "dict_size": int.from_bytes(props[1:5], "little"),
            "lc": d % 9,
            "lp": (d // 9) % 5,
            "pb": d // 45,
        }
        self._decomp = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
        return head[4 + psize :]


def _bad_zip(msg: str) -> Exception:
    import zipfile

    return zipfile.BadZipFile(msg)


class ArchiveAdapter(ABC):
    """One archive format: yields ``(path_in_archive, bytes)`` for each regular file.

    Subclasses implement :meth:`members` and :meth:`_can_handle_impl`; :meth:`can_handle`
    wraps the latter (restoring a ``BytesIO`` position, turning any error into ``False``).
    """

    @abstractmethod
    def members(self) -> Iterator[tuple[str, bytes]]:
        """Yield ``(raw_path, data)`` for each file (never a directory)."""

    def _entries(self, room: _Room | None) -> Iterator[_Entry]:
        """Each file as ``(raw_path, declared_size, read)``; the built-in adapters read their
        members a chunk at a time within `room`, others give :meth:`members`' bytes."""
        for raw, data in self.members():
            yield raw, len(data), io.BytesIO(data).read

    @classmethod
    def can_handle(cls, source: str | io.BytesIO) -> bool:
        """Whether this adapter recognises ``source`` (never raises)."""
        pos = source.tell() if isinstance(source, io.BytesIO) else None
        try:
            return bool(cls._can_handle_impl(source))
        except Exception:
            return False
        finally:
            if isinstance(source, io.BytesIO) and pos is not None:
                source.seek(pos)

    @classmethod
    @abstractmethod
    def _can_handle_impl(cls, source: str | io.BytesIO) -> bool:
        """Format detection; may raise (``can_handle`` catches it)."""

    def close(self) -> None:  # noqa: B027 (optional hook, deliberately not abstract)
        """Release resources (nothing by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZipAdapter(ArchiveAdapter):
    """ZIP archives (:mod:`zipfile`)."""

    def __init__(self, source: str | io.BytesIO) -> None:
        self._source = source

    def members(self) -> Iterator[tuple[str, bytes]]:
        """Each file entry with its bytes."""
        for raw, _, read in self._entries(None):
            yield raw, _read_all(read)

    def _entries(self, room: _Room | None) -> Iterator[_Entry]:
        import zipfile

        with zipfile.ZipFile(self._source) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    member = _ZipMember(zf, info)
                    try:
                        yield info.filename, info.file_size, member.read
                    finally:
                        member.close()

    @classmethod
    def _can_handle_impl(cls, source: str | io.BytesIO) -> bool:
        import zipfile

        return zipfile.is_zipfile(source)


class TarAdapter(ArchiveAdapter):
    """TAR archives, plain or compressed (gz, bz2, xz), read as a stream (:mod:`tarfile`)."""

    def __init__(self, source: str | io.BytesIO) -> None:
        self._source = source

    def members(self) -> Iterator[tuple[str, bytes]]:
        """Each regular file with its bytes (links and devices are skipped)."""
        for raw, _, read in self._entries(None):
            yield raw, _read_all(read)

    def _entries(self, room: _Room | None) -> Iterator[_Entry]:
        import tarfile

        with contextlib.ExitStack() as stack:
            raw: IO[bytes] = (
                self._source
                if isinstance(self._source, io.BytesIO)
                else stack.enter_context(open(self._source, "rb"))
            )
            # Decompress here (gzip, bzip2, xz), so that what tarfile reads, its headers
            # included, is counted; other compressions are left to tarfile.
            inner = _decompressing(raw)
            if inner is not None:
                stack.enter_context(inner)
            limit = room.stream_limit if room is not None else (lambda: 1 << 62)
            fileobj = _Bounded(inner if inner is not None else raw, limit)
            mode: Literal["r:", "r:*"] = "r:" if inner is not None else "r:*"
            tf = stack.enter_context(tarfile.open(fileobj=fileobj, mode=mode))
            for member in tf:
                if member.isfile():
                    f = tf.extractfile(member)
                    if f is not None:
                        yield member.name, member.size, f.read

    @classmethod
    def _can_handle_impl(cls, source: str | io.BytesIO) -> bool:
        # Only the first header block is read: tarfile.is_tarfile reads the whole first
        # member's headers, which a hostile archive makes as large as it likes.
        import tarfile

        with contextlib.ExitStack() as stack:
            raw: IO[bytes] = (
                source
                if isinstance(source, io.BytesIO)
                else stack.enter_context(open(source, "rb"))
            )
            start = raw.tell()
            inner = _decompressing(raw)
            if inner is not None:
                stack.enter_context(inner)
            block = (inner if inner is not None else raw).read(tarfile.BLOCKSIZE)
            try:
                tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError:
                if inner is not None:
                    return False
                # Perhaps another compression that tarfile knows (it reads more).
                raw.seek(start)
                return tarfile.is_tarfile(raw)
            return True


_DEFAULT_ADAPTERS: list[type[ArchiveAdapter]] = [ZipAdapter, TarAdapter]


def _pick(
    source: str | io.BytesIO,
    adapter: ArchiveAdapter | None,
    adapters: list[type[ArchiveAdapter]] | None,
) -> ArchiveAdapter:
    if adapter is not None:
        return adapter
    candidates = _DEFAULT_ADAPTERS if adapters is None else adapters
    for cls in candidates:
        if cls.can_handle(source):
            return cls(source)  # type: ignore[call-arg]
    names = [c.__name__ for c in candidates]
    raise ValueError(f"No registered adapter can handle the given source. Tried adapters: {names}")


def _target(dest: str, raw: str, max_depth: int | None) -> str | None:
    rel = _safe_relative(raw)
    if not rel:
        return None
    depth = rel.count("/")
    if max_depth is not None and depth > max_depth:
        shown = raw if len(raw) <= 80 else raw[:60] + "..." + raw[-17:]
        raise OSError(
            errno.ENAMETOOLONG,
            f"Archive member {shown!r} is {depth} directories deep; the limit is "
            f"max_depth={max_depth}",
        )
    base = dest.rstrip("/")
    return f"{base}/{rel}" if base else f"/{rel}"


def _existing_room(mfs: MemoryFileSystem, target: str) -> int:
    """What replacing the file `target` gives back to the quota, about: its size and one
    chunk's overhead (the import itself is exact; this only bounds what is read first)."""
    return mfs.get_size(target) + _CHUNK_OVERHEAD


# The quota overhead of one chunk of a sequential file (dmemfs's default estimate).
_CHUNK_OVERHEAD = 128


def expand_archive(
    mfs: MemoryFileSystem,
    source: str | io.BytesIO,
    dest: str = "/",
    *,
    on_conflict: Literal["raise", "overwrite"] = "raise",
    adapter: ArchiveAdapter | None = None,
    adapters: list[type[ArchiveAdapter]] | None = None,
    max_depth: int | None = DEFAULT_MAX_DEPTH,
) -> None:
    """Unpack ``source`` (a path or ``BytesIO``) below ``dest``, all or nothing.

    ``on_conflict="raise"`` refuses an existing file (``FileExistsError``) or a duplicate
    entry; ``"overwrite"`` replaces with a ``UserWarning``. A directory in the way is always
    ``IsADirectoryError``. Quota and node limit are checked for the whole archive first.

    The archive is untrusted: :class:`~memspace.MFSQuotaExceededError` is raised as soon as a
    member's declared size, or the bytes actually decompressed, exceed the free quota (plus
    what the files being replaced hold), before anything is written; ``requested`` is then
    what was needed so far. It is raised too when a tar's decompressed stream, its headers
    included, exceeds the room plus ``max(room, 16 MiB)`` (``available`` is then that bound).
    A member nested deeper than ``max_depth`` directories below
    ``dest`` raises ``OSError(ENAMETOOLONG)`` (``None``: no limit). A member whose data does
    not match its declared size or checksum raises the format's error
    (``zipfile.BadZipFile``, ``tarfile.ReadError``). On any error nothing has changed.
    """
    if on_conflict not in ("raise", "overwrite"):
        raise ValueError(
            f"Invalid on_conflict={on_conflict!r}. expand_archive() accepts: ['overwrite', 'raise']"
        )
    room = _Room(mfs)
    tree: dict[str, bytearray] = {}
    with _pick(source, adapter, adapters) as ad:
        for raw, declared, read in ad._entries(room):
            target = _target(dest, raw, max_depth)
            if target is None:
                continue
            if target in tree:
                if on_conflict == "raise":
                    raise FileExistsError(
                        f"Duplicate path in archive (after sanitization): {target!r}"
                    )
                warnings.warn(
                    f"Duplicate archive entry {target!r}; later entry will overwrite earlier one.",
                    UserWarning,
                    stacklevel=2,
                )
                room.used -= len(tree.pop(target))
            elif mfs.is_dir(target):
                raise IsADirectoryError(f"Cannot extract file over existing directory: {target!r}")
            elif mfs.is_file(target):
                if on_conflict == "raise":
                    raise FileExistsError(f"File already exists in MFS: {target!r}")
                warnings.warn(
                    f"Existing MFS file {target!r} will be overwritten.", UserWarning, stacklevel=2
                )
                room.limit += _existing_room(mfs, target)
            tree[target] = _read_member(read, declared, room)
    mfs.import_tree(tree)


def expand_archive_streaming(
    mfs: MemoryFileSystem,
    source: str | io.BytesIO,
    dest: str = "/",
    *,
    on_conflict: Literal["raise", "overwrite", "skip"] = "raise",
    adapter: ArchiveAdapter | None = None,
    adapters: list[type[ArchiveAdapter]] | None = None,
    max_depth: int | None = DEFAULT_MAX_DEPTH,
) -> int:
    """Unpack ``source`` below ``dest`` entry by entry; returns the number of files written.

    Not atomic: on an error, entries already written stay (the entry being written when it
    happened is not left half-written: it is removed). ``on_conflict`` is ``"raise"``,
    ``"overwrite"`` (with a ``UserWarning``) or ``"skip"`` (first entry wins, existing files
    are kept). A directory in the way is always ``IsADirectoryError``.

    As in :func:`expand_archive`, each entry is refused with
    :class:`~memspace.MFSQuotaExceededError` as soon as its declared size or the bytes
    decompressed exceed the free quota, before it is written; entries deeper than
    ``max_depth`` directories raise ``OSError(ENAMETOOLONG)``.
    """
    if on_conflict not in ("raise", "overwrite", "skip"):
        raise ValueError(
            f"Invalid on_conflict={on_conflict!r}. "
            "expand_archive_streaming() accepts: ['overwrite', 'raise', 'skip']"
        )
    written = 0
    seen: set[str] = set()
    # A tar's stream is bounded by the room when it started (entries are written as they
    # come, so the room for the data is measured again before each one).
    room = _Room(mfs)
    with _pick(source, adapter, adapters) as ad:
        for raw, declared, read in ad._entries(room):
            target = _target(dest, raw, max_depth)
            if target is None:
                continue
            entry_room = _Room(mfs)
            if target in seen:
                if on_conflict == "raise":
                    raise FileExistsError(
                        f"Duplicate path in archive (after sanitization): {target!r}"
                    )
                if on_conflict == "skip":
                    continue
                warnings.warn(
                    f"Duplicate archive entry {target!r}; later entry will overwrite earlier one.",
                    UserWarning,
                    stacklevel=2,
                )
                entry_room.limit += _existing_room(mfs, target)
            else:
                seen.add(target)
                if mfs.is_dir(target):
                    raise IsADirectoryError(
                        f"Cannot extract file over existing directory: {target!r}"
                    )
                if mfs.is_file(target):
                    if on_conflict == "raise":
                        raise FileExistsError(f"File already exists in MFS: {target!r}")
                    if on_conflict == "skip":
                        continue
                    warnings.warn(
                        f"Existing MFS file {target!r} will be overwritten.",
                        UserWarning,
                        stacklevel=2,
                    )
                    entry_room.limit += _existing_room(mfs, target)
            data = _read_member(read, declared, entry_room)
            mfs.mkdir(posixpath.dirname(target) or "/", exist_ok=True)
            try:
                with mfs.open(target, "wb") as fh:
                    fh.write(data)
            except BaseException:
                with contextlib.suppress(OSError):
                    mfs.remove(target)
                raise
            written += 1
    return written
