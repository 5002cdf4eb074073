"""Unpacking zip and tar archives into a :class:`MemoryFileSystem`.

:func:`expand_archive` is all-or-nothing (it builds the whole tree, then one
:meth:`~MemoryFileSystem.import_tree`); :func:`expand_archive_streaming` writes entry by entry
(lower peak memory, partial results on failure). Member paths are sanitised: absolute paths
become relative and ``..`` components are dropped, so nothing lands outside ``dest``.
Formats are pluggable through :class:`ArchiveAdapter`.
"""

from __future__ import annotations

import io
import posixpath
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from typing_extensions import Self

    from memspace.fs._fs import MemoryFileSystem

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


class ArchiveAdapter(ABC):
    """One archive format: yields ``(path_in_archive, bytes)`` for each regular file.

    Subclasses implement :meth:`members` and :meth:`_can_handle_impl`; :meth:`can_handle`
    wraps the latter (restoring a ``BytesIO`` position, turning any error into ``False``).
    """

    @abstractmethod
    def members(self) -> Iterator[tuple[str, bytes]]:
        """Yield ``(raw_path, data)`` for each file (never a directory)."""

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
        import zipfile

        with zipfile.ZipFile(self._source) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)

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
        import tarfile

        kwargs: dict[str, Any] = (
            {"fileobj": self._source}
            if isinstance(self._source, io.BytesIO)
            else {"name": self._source}
        )
        with tarfile.open(**kwargs) as tf:
            for member in tf:
                if member.isfile():
                    f = tf.extractfile(member)
                    if f is not None:
                        yield member.name, f.read()

    @classmethod
    def _can_handle_impl(cls, source: str | io.BytesIO) -> bool:
        import tarfile

        return tarfile.is_tarfile(source)


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


def _target(dest: str, raw: str) -> str | None:
    rel = _safe_relative(raw)
    if not rel:
        return None
    base = dest.rstrip("/")
    return f"{base}/{rel}" if base else f"/{rel}"


def expand_archive(
    mfs: MemoryFileSystem,
    source: str | io.BytesIO,
    dest: str = "/",
    *,
    on_conflict: Literal["raise", "overwrite"] = "raise",
    adapter: ArchiveAdapter | None = None,
    adapters: list[type[ArchiveAdapter]] | None = None,
) -> None:
    """Unpack ``source`` (a path or ``BytesIO``) below ``dest``, all or nothing.

    ``on_conflict="raise"`` refuses an existing file (``FileExistsError``) or a duplicate
    entry; ``"overwrite"`` replaces with a ``UserWarning``. A directory in the way is always
    ``IsADirectoryError``. Quota and node limit are checked for the whole archive first.
    """
    if on_conflict not in ("raise", "overwrite"):
        raise ValueError(
            f"Invalid on_conflict={on_conflict!r}. expand_archive() accepts: ['overwrite', 'raise']"
        )
    tree: dict[str, bytes] = {}
    with _pick(source, adapter, adapters) as ad:
        for raw, data in ad.members():
            target = _target(dest, raw)
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
            tree[target] = data
    for target in tree:
        if mfs.is_dir(target):
            raise IsADirectoryError(f"Cannot extract file over existing directory: {target!r}")
        if mfs.is_file(target):
            if on_conflict == "raise":
                raise FileExistsError(f"File already exists in MFS: {target!r}")
            warnings.warn(
                f"Existing MFS file {target!r} will be overwritten.", UserWarning, stacklevel=2
            )
    mfs.import_tree(tree)


def expand_archive_streaming(
    mfs: MemoryFileSystem,
    source: str | io.BytesIO,
    dest: str = "/",
    *,
    on_conflict: Literal["raise", "overwrite", "skip"] = "raise",
    adapter: ArchiveAdapter | None = None,
    adapters: list[type[ArchiveAdapter]] | None = None,
) -> int:
    """Unpack ``source`` below ``dest`` entry by entry; returns the number of files written.

    Not atomic: on an error, entries already written stay. ``on_conflict`` is ``"raise"``,
    ``"overwrite"`` (with a ``UserWarning``) or ``"skip"`` (first entry wins, existing files
    are kept). A directory in the way is always ``IsADirectoryError``.
    """
    if on_conflict not in ("raise", "overwrite", "skip"):
        raise ValueError(
            f"Invalid on_conflict={on_conflict!r}. "
            "expand_archive_streaming() accepts: ['overwrite', 'raise', 'skip']"
        )
    written = 0
    seen: set[str] = set()
    with _pick(source, adapter, adapters) as ad:
        for raw, data in ad.members():
            target = _target(dest, raw)
            if target is None:
                continue
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
            mfs.mkdir(posixpath.dirname(target) or "/", exist_ok=True)
            with mfs.open(target, "wb") as fh:
                fh.write(data)
            written += 1
    return written
