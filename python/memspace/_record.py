"""``memspace.Record``: a fixed C-struct-like layout in shared memory.

A record class is declared once, in every process that uses it::

    Foo = memspace.Record.define("Foo", bar="i32", baz="i32")
    f = Foo.create("/suchfoo", bar=42, baz=98)     # or Foo.create(path=...)
    g = Foo.open("/suchfoo")                        # another process
    g.bar = 31337                                   # seen by every process at once
    with g.locked():                                # several fields as one update
        g.bar, g.baz = 1, 2

Each field is read and written with one atomic load or store of its natural width, so a
single field is never torn. Updates of several fields that must be seen together take the
record's cross-process write lock with :meth:`Record.locked`, and readers that need a
consistent snapshot use ``locked(shared=True)`` or :meth:`Record.asdict`.

The layout (field names, types, order) is fingerprinted into the segment header: opening a
record with another definition raises :class:`memspace.LayoutError`.
"""

from __future__ import annotations

import hashlib
import keyword
import os
import pathlib
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, TypeVar

from memspace._memspace import LockGuard, View
from memspace.errors import LayoutError

__all__ = ["FIELD_TYPES", "Record"]

# name -> (native code, size, numpy format). The codes index the native field table.
FIELD_TYPES: dict[str, tuple[int, int, str]] = {
    "bool": (0, 1, "?"),
    "i8": (1, 1, "i1"),
    "u8": (2, 1, "u1"),
    "i16": (3, 2, "=i2"),
    "u16": (4, 2, "=u2"),
    "i32": (5, 4, "=i4"),
    "u32": (6, 4, "=u4"),
    "i64": (7, 8, "=i8"),
    "u64": (8, 8, "=u8"),
    "f32": (9, 4, "=f4"),
    "f64": (10, 8, "=f8"),
}
_ALIASES = {"int": "i64", "float": "f64"}

_R = TypeVar("_R", bound="Record")


class _DtypeDescriptor:
    """``Foo.dtype``: the numpy structured dtype of the layout (numpy imported on first use)."""

    def __get__(self, obj: object, cls: type[Record]) -> Any:
        import numpy as np

        fields = cls._layout
        return np.dtype(
            {
                "names": [f for f, _, _ in fields],
                "formats": [FIELD_TYPES[t][2] for _, t, _ in fields],
                "offsets": [o for _, _, o in fields],
                "itemsize": cls._size,
            }
        )


def _field_property(name: str, code: int, offset: int, type_name: str) -> property:
    def get(self: Record) -> Any:
        return self._view._field_get(code, offset)

    def set_(self: Record, value: Any) -> None:
        self._view._field_set(code, offset, value)

    return property(get, set_, doc=f"{name}: {type_name} at offset {offset}")


class Record:
    """Base class of the record classes made by :meth:`Record.define`."""

    _layout: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    _size: ClassVar[int] = 0
    _fingerprint: ClassVar[int] = 0
    dtype: ClassVar[Any] = _DtypeDescriptor()

    __slots__ = ("_view",)

    def __init__(self, view: View) -> None:
        if not type(self)._layout:
            raise TypeError("use Record.define(...) to declare a record type first")
        self._view = view

    @staticmethod
    def define(name: str, /, **fields: str) -> type[Record]:
        """Declare a record type: ``Record.define("Foo", bar="i32", baz="f64")``.

        Field types: bool, i8, u8, i16, u16, i32, u32, i64 (or int), u64, f32, f64 (or
        float). Fields are laid out in the order given with natural (C) alignment.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"record name must be an identifier, not {name!r}")
        if not fields:
            raise ValueError("a record needs at least one field")
        reserved = set(dir(Record))
        layout: list[tuple[str, str, int]] = []
        offset = 0
        align = 1
        for field, type_name in fields.items():
            if field.startswith("_") or keyword.iskeyword(field) or field in reserved:
                raise ValueError(f"{field!r} cannot be a field name")
            if not isinstance(type_name, str):
                raise TypeError(f"field {field!r}: type must be a str such as 'i32'")
            t = _ALIASES.get(type_name, type_name)
            if t not in FIELD_TYPES:
                raise ValueError(
                    f"field {field!r}: unknown type {type_name!r} "
                    f"(use one of {', '.join(FIELD_TYPES)})"
                )
            size = FIELD_TYPES[t][1]
            offset = (offset + size - 1) // size * size
            layout.append((field, t, offset))
            offset += size
            align = max(align, size)
        total = (offset + align - 1) // align * align
        spec = name + "|" + ",".join(f"{f}:{t}@{o}" for f, t, o in layout)
        fingerprint = int.from_bytes(
            hashlib.blake2b(spec.encode(), digest_size=8).digest(), "little"
        )
        namespace: dict[str, Any] = {
            "__slots__": (),
            "_layout": tuple(layout),
            "_size": total,
            "_fingerprint": fingerprint,
            "__doc__": f"Record {name}: " + ", ".join(f"{f}: {t}" for f, t, _ in layout),
        }
        for field, t, off in layout:
            namespace[field] = _field_property(field, FIELD_TYPES[t][0], off, t)
        return type(name, (Record,), namespace)

    @classmethod
    def create(
        cls: type[_R],
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
        **values: Any,
    ) -> _R:
        """Create the record's segment (exclusively), zero-filled, then set ``values``."""
        cls._check_defined()
        unknown = set(values) - {f for f, _, _ in cls._layout}
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
        view = View._create_record(name, path, mode, cls._size, cls._fingerprint)
        rec = cls(view)
        if values:
            try:
                with rec.locked():
                    for k, v in values.items():
                        setattr(rec, k, v)
            except BaseException:
                View.remove(name, path=path)
                raise
        return rec

    @classmethod
    def open(
        cls: type[_R],
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        trust: int | Iterable[int] | Literal["any"] | None = None,
    ) -> _R:
        """Open an existing record segment created with the same definition.

        ``trust`` says whose segment to accept, as for every ``open()``: by default only one
        owned by your effective uid that neither group nor other may write.
        """
        cls._check_defined()
        view = View._open_record(name, path, cls._fingerprint, trust)
        if view.size < cls._size:
            raise LayoutError(
                f"record segment {name if path is None else path!r} has a data area of "
                f"{view.size} bytes, too small for a {cls.__name__} ({cls._size} bytes)"
            )
        return cls(view)

    @classmethod
    def remove(cls, name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a record segment by name or path."""
        View.remove(name, path=path)

    @classmethod
    def _check_defined(cls) -> None:
        if not cls._layout:
            raise TypeError("use Record.define(...) to declare a record type first")

    def locked(self, timeout: float | None = None, *, shared: bool = False) -> LockGuard:
        """Hold the record's cross-process lock (exclusive, or shared with ``shared=True``)."""
        if shared:
            return self._view.read_lock(timeout)
        return self._view.write_lock(timeout)

    def asdict(self, timeout: float | None = None) -> dict[str, Any]:
        """All fields, read together under the shared lock."""
        with self.locked(timeout, shared=True):
            return {f: getattr(self, f) for f, _, _ in self._layout}

    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed record."""
        return self._view.name

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None."""
        return self._view.path

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f, _, _ in self._layout)
        return f"{type(self).__name__}({fields})"
