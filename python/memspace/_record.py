"""``memspace.Record``: a fixed C-struct-like layout in shared memory.

A record class is declared once, in every process that uses it::

    Foo = memspace.Record.define("Foo", bar="i32", baz="i32")
    f = Foo.create("/suchfoo", bar=42, baz=98)     # or Foo.create(path=...)
    g = Foo.open("/suchfoo")                        # another process
    g.bar = 31337                                   # seen by every process at once
    with g.locked():                                # several fields as one update
        g.bar, g.baz = 1, 2
    h = Foo.open_or_create("/suchfoo", bar=1)       # the O_CREAT idiom: values only if new
    data = g.as_bytes()                             # Foo.size bytes, the C struct's layout
    copy = Foo.from_bytes(data)                     # a record in local memory (not shared)

Each field is read and written with one atomic load or store of its natural width, so a
single field is never torn. Updates of several fields that must be seen together take the
record's cross-process write lock with :meth:`Record.locked`, and readers that need a
consistent snapshot use ``locked(shared=True)``, :meth:`Record.asdict` or
:meth:`Record.as_bytes`.

The layout (field names, types, order) is fingerprinted into the segment header: opening a
record with another definition raises :class:`memspace.LayoutError`. The record's bytes are
``Foo.size`` bytes in the C layout of the same fields (natural alignment, native byte order)
and start at :attr:`Record.offset` in the segment, after memspace's header and lock.
"""

from __future__ import annotations

import hashlib
import keyword
import math
import os
import pathlib
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

from memspace._memspace import LockGuard, View
from memspace.errors import LayoutError

__all__ = ["FIELD_TYPES", "Record"]

# name -> (native code, size, numpy format). The codes index the native field table; the
# numpy formats are also `struct` formats ("=" is native byte order, standard sizes).
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
# native code -> `struct` format of a record in local memory (Record.from_bytes).
_STRUCT = {0: "=?", 1: "=b", 2: "=B", 3: "=h", 4: "=H", 5: "=i", 6: "=I", 7: "=q", 8: "=Q"}
_STRUCT.update({9: "=f", 10: "=d"})
_CODE_NAMES = {code: name for name, (code, _, _) in FIELD_TYPES.items()}
_F32_MAX = 3.4028234663852886e38

_R = TypeVar("_R", bound="Record")


class _LocalLock:
    """What :meth:`Record.locked` returns for a record in local memory: nothing to lock."""

    owner_died = False
    held = True

    def release(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> _LocalLock:
        return self

    def __exit__(self, *_args: object) -> Literal[False]:
        return False


class _LocalStore:
    """The bytes of a record made by :meth:`Record.from_bytes`: private memory, the same
    checks as a shared record's fields (``TypeError``, ``OverflowError``)."""

    __slots__ = ("_buf",)

    def __init__(self, data: bytes) -> None:
        self._buf = bytearray(data)

    def _field_get(self, code: int, offset: int) -> Any:
        return struct.unpack_from(_STRUCT[code], self._buf, offset)[0]

    def _field_set(self, code: int, offset: int, value: Any) -> None:
        struct.pack_into(_STRUCT[code], self._buf, offset, _checked(code, value))

    def as_bytes(self) -> bytes:
        return bytes(self._buf)


def _checked(code: int, value: Any) -> Any:
    """``value`` for field type ``code``, refused as the native field setter refuses it."""
    if code == 0:
        if not isinstance(value, bool):
            raise TypeError(f"a bool field takes a bool, not {type(value).__name__}")
        return value
    if code in (9, 10):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"a float field takes a float or int, not {type(value).__name__}")
        f = float(value)
        if code == 9 and math.isfinite(f) and abs(f) > _F32_MAX:
            raise OverflowError(f"{f} does not fit in f32")
        return f
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an integer field takes an int, not {type(value).__name__}")
    bits = 8 * struct.calcsize(_STRUCT[code])
    if code in (1, 3, 5, 7):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    if not lo <= value <= hi:
        raise OverflowError(f"{value} does not fit in {_CODE_NAMES[code]}")
    return value


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
    """Base class of the record classes made by :meth:`Record.define`.

    A record is either in shared memory (:meth:`create`, :meth:`open`,
    :meth:`open_or_create`) or a private copy in local memory (:meth:`from_bytes`); both
    have the same fields, :meth:`as_bytes` and :meth:`asdict`. ``with`` closes a shared
    record (like :meth:`close`); it never removes the segment.
    """

    _layout: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    _size: ClassVar[int] = 0
    _fingerprint: ClassVar[int] = 0
    #: Size of the record's bytes (``len(record)``, ``len(record.as_bytes())``): the
    #: ``sizeof`` of the C struct with the same fields.
    size: ClassVar[int] = 0
    dtype: ClassVar[Any] = _DtypeDescriptor()

    __slots__ = ("_view",)

    def __init__(self, view: View | _LocalStore) -> None:
        if not type(self)._layout:
            raise TypeError("use Record.define(...) to declare a record type first")
        self._view = view

    @staticmethod
    def define(name: str, /, **fields: str) -> type[Record]:
        """Declare a record type: ``Record.define("Foo", bar="i32", baz="f64")``.

        Field types: bool, i8, u8, i16, u16, i32, u32, i64 (or int), u64, f32, f64 (or
        float). Fields are laid out in the order given with natural (C) alignment. A field
        cannot be named like a method or attribute of :class:`Record` (``size``, ``name``,
        ``close`` ...).
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
                raise ValueError(
                    f"{field!r} cannot be a field name (it is a keyword, starts with '_', or "
                    "is a Record attribute)"
                )
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
            "size": total,
            "__doc__": f"Record {name}: " + ", ".join(f"{f}: {t}" for f, t, _ in layout),
        }
        for field, t, off in layout:
            namespace[field] = _field_property(field, FIELD_TYPES[t][0], off, t)
        return type(name, (Record,), namespace)

    @classmethod
    def _checked_values(cls, values: dict[str, Any]) -> None:
        """Refuses unknown fields and bad values before any memory is touched."""
        cls._check_defined()
        unknown = set(values) - {f for f, _, _ in cls._layout}
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
        if values:
            scratch = cls(_LocalStore(bytes(cls._size)))
            for k, v in values.items():
                setattr(scratch, k, v)

    @classmethod
    def create(
        cls: type[_R],
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
        **values: Any,
    ) -> _R:
        """Create the record's segment (exclusively: ``FileExistsError`` if it exists),
        zero-filled, then set ``values``. See :meth:`open_or_create` for the ``O_CREAT``
        idiom."""
        cls._checked_values(values)
        view = View._create_record(name, path, mode, cls._size, cls._fingerprint)
        rec = cls(view)
        if values:
            try:
                with rec.locked():
                    for k, v in values.items():
                        setattr(rec, k, v)
            except BaseException:
                view.close()
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
        """Open an existing record segment created with the same definition
        (``FileNotFoundError`` if there is none, ``LayoutError`` for another definition).

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
    def open_or_create(
        cls: type[_R],
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
        trust: int | Iterable[int] | Literal["any"] | None = None,
        **values: Any,
    ) -> _R:
        """Open the record if it exists, else create it and set ``values`` (C's ``O_CREAT``
        without ``O_EXCL``): the values apply only to a record this call created.

        Safe against a race with another process doing the same: exactly one of them
        creates it. ``mode`` applies only to a new segment, ``trust`` (as for :meth:`open`)
        only to an existing one.
        """
        cls._checked_values(values)
        for _ in range(100):
            try:
                return cls.create(name, path=path, mode=mode, **values)
            except FileExistsError:
                pass
            try:
                return cls.open(name, path=path, trust=trust)
            except FileNotFoundError:
                continue  # removed between our create and our open: try again
        raise FileNotFoundError(f"{name or path!r} kept appearing and disappearing")

    @classmethod
    def from_bytes(cls: type[_R], data: bytes | bytearray | memoryview) -> _R:
        """A record in local memory (not shared) holding a copy of ``data``: exactly
        ``cls.size`` bytes in the record's layout, as :meth:`as_bytes` gives them (or a C
        program sends them). Its fields can be read and set; it has no segment."""
        cls._check_defined()
        try:
            raw = bytes(memoryview(data))
        except TypeError:
            raise TypeError(
                f"from_bytes() takes a bytes-like object, not {type(data).__name__}"
            ) from None
        if len(raw) != cls._size:
            raise ValueError(
                f"{cls.__name__}.from_bytes() needs exactly {cls._size} bytes, not {len(raw)}"
            )
        return cls(_LocalStore(raw))

    @classmethod
    def remove(cls, name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a record segment by name or path."""
        View.remove(name, path=path)

    @classmethod
    def _check_defined(cls) -> None:
        if not cls._layout:
            raise TypeError("use Record.define(...) to declare a record type first")

    def locked(
        self, timeout: float | None = None, *, shared: bool = False
    ) -> LockGuard | _LocalLock:
        """Hold the record's cross-process lock (exclusive, or shared with ``shared=True``).
        A record in local memory has nothing to lock: the guard does nothing."""
        view = self._view
        if isinstance(view, _LocalStore):
            return _LocalLock()
        if shared:
            return view.read_lock(timeout)
        return view.write_lock(timeout)

    def asdict(self, timeout: float | None = None) -> dict[str, Any]:
        """All fields, read together under the shared lock."""
        with self.locked(timeout, shared=True):
            return {f: getattr(self, f) for f, _, _ in self._layout}

    def as_bytes(self, timeout: float | None = None) -> bytes:
        """The record's ``size`` bytes (the C struct's layout, native byte order), read
        together as one snapshot: what :meth:`from_bytes` takes, to send a record over a
        socket or a queue."""
        view = self._view
        if isinstance(view, _LocalStore):
            return view.as_bytes()
        return view.read_bytes(0, self._size, timeout=timeout)

    def __len__(self) -> int:
        return self._size

    @property
    def offset(self) -> int:
        """Where the record's bytes start in its segment (after memspace's header and lock):
        a C program that maps the same segment finds field ``f`` at ``offset`` plus the
        field's offset in ``Foo.dtype``. Such a program bypasses the record's lock and
        memspace's torn-read protection; for memory shared with C, a raw
        :class:`~memspace.SharedMemory` with ``Foo.dtype`` (offset 0) is simpler.
        ``ValueError`` for a record in local memory."""
        view = self._view
        if isinstance(view, _LocalStore):
            raise ValueError("a record made by from_bytes() is not in a segment")
        return view._data_offset

    def close(self) -> None:
        """Detach from the segment (its attachment slot and mapping are released); the
        record stays for other handles. Nothing to do for a record in local memory."""
        view = self._view
        if not isinstance(view, _LocalStore):
            view.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (always False for a record in local memory)."""
        view = self._view
        return not isinstance(view, _LocalStore) and view.closed

    def unlink(self) -> None:
        """Remove this record's segment (processes that have it open keep it)."""
        view = self._view
        if isinstance(view, _LocalStore):
            raise ValueError("a record made by from_bytes() is not in a segment")
        view.unlink()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed record or one in local memory."""
        view = self._view
        return None if isinstance(view, _LocalStore) else view.name

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None."""
        view = self._view
        return None if isinstance(view, _LocalStore) else view.path

    def __repr__(self) -> str:
        if self.closed:
            where = self.name if self.name is not None else str(self.path)
            return f"{type(self).__name__}({where!r}, closed)"
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f, _, _ in self._layout)
        return f"{type(self).__name__}({fields})"
