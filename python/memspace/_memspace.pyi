"""Type stubs of the native module ``memspace._memspace`` (checked by stubtest)."""

import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, final

from typing_extensions import Buffer, Self, disjoint_base

from memspace.fs._typing import MFSStatResult, MFSStats

__version__: Final[str]

# The `trust=` of every open(): None (only your own segments, writable by nobody else), a uid
# or a collection of uids (segments owned by you or by them, any mode), or "any".
_Trust = int | Iterable[int] | Literal["any"] | None

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
        trust: _Trust = None,
    ) -> SharedMemory:
        """Open an existing segment; ``size`` (optional) is the least size it must have.

        By default only a segment owned by your effective uid that neither group nor other
        may write is opened (``PermissionError`` otherwise: another user may have created it
        first). ``trust`` opts in to deliberate sharing: a uid or a collection of uids whose
        segments to accept (with any mode), or ``"any"``.
        """

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

@final
class LockGuard:
    """A held lock; a context manager that releases it on exit.

    Dropping a guard does not release the lock: use ``with``, :meth:`release`, or the
    lock's own ``release()``.
    """

    @property
    def owner_died(self) -> bool:
        """True if a previous holder died holding the lock and this acquisition replaced it."""

    @property
    def held(self) -> bool:
        """True until released through this guard (``with`` exit or :meth:`release`)."""

    def release(self) -> None:
        """Release (``LockError`` if already released or held by another thread)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *_args: object) -> Literal[False]: ...

@final
class Mutex:
    """A cross-process mutex that survives a killed holder, in its own segment.

    ``with mutex:`` acquires it (as with ``threading.Lock``); to close the handle at the end
    of a block use ``with contextlib.closing(memspace.Mutex.open(...)) as m:``.
    A hold belongs to this handle in its process: a thread that exits holding it leaves it
    held until the handle is closed or collected, or the process exits; the next holder is
    then told ``owner_died`` (as after a killed holder, which is replaced within about 20 ms).
    """

    @staticmethod
    def create(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
    ) -> Mutex:
        """Create a new mutex segment (``FileExistsError`` if it exists)."""

    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        trust: _Trust = None,
    ) -> Mutex:
        """Open an existing mutex (``LayoutError`` if the segment holds something else)."""

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a mutex segment."""

    def acquire(self, timeout: float | None = None) -> LockGuard:
        """Acquire, waiting at most ``timeout`` seconds (None: no limit; 0: try once).

        Raises ``TimeoutError``; ``LockError`` if this thread already holds it.
        """

    def release(self) -> None:
        """Release the mutex held by this thread (``LockError`` if it does not hold it)."""

    def __call__(self, timeout: float | None = None) -> LockGuard:
        """``with mutex(timeout=...) as g:``."""

    def __enter__(self) -> LockGuard:
        """``with mutex:`` acquires (no timeout); the block's end releases."""

    def __exit__(self, *_args: object) -> Literal[False]: ...
    def close(self) -> None:
        """Detach this handle: its attachment slot and mapping are released once no guard
        taken from it is alive. The mutex stays for other handles; closing twice does
        nothing. Closing does not release a mutex this thread holds: release it first."""

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""

    def unlink(self) -> None:
        """Remove this mutex's segment (handles that have it open keep it)."""

    @property
    def name(self) -> str | None:
        """The POSIX name, or None."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...

@final
class RwLock:
    """A writer-preferring cross-process reader/writer lock that survives killed holders."""

    @staticmethod
    def create(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
    ) -> RwLock:
        """Create a new rwlock segment."""

    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        trust: _Trust = None,
    ) -> RwLock:
        """Open an existing rwlock segment."""

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove an rwlock segment."""

    def read(self, timeout: float | None = None) -> LockGuard:
        """Acquire a shared hold (``TimeoutError``; ``LockError`` on reentry)."""

    def write(self, timeout: float | None = None) -> LockGuard:
        """Acquire the exclusive hold (``TimeoutError``; ``LockError`` on reentry)."""

    @property
    def write_locked(self) -> bool:
        """True if a writer holds or waits for the lock."""

    @property
    def reader_count(self) -> int:
        """Number of read holds now."""

    def close(self) -> None:
        """Detach this handle: its attachment slot and mapping are released once no guard
        taken from it is alive. The rwlock stays for other handles; closing twice does
        nothing."""

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""

    def unlink(self) -> None:
        """Remove this rwlock's segment (handles that have it open keep it)."""

    def __enter__(self) -> Self:
        """``with RwLock.open(...) as lock:`` closes the handle at the end of the block."""

    def __exit__(self, *_args: object) -> bool: ...
    @property
    def name(self) -> str | None:
        """The POSIX name, or None."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...

_Value = bool | int | float | str | bytes
_Tag = str | type[bool] | type[int] | type[float] | type[str] | type[bytes]

@final
class View:
    """Typed, tagged values in a shared-memory segment behind a cross-process rwlock."""

    @staticmethod
    def create(
        name: str | None = None,
        size: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        mode: int = 0o600,
    ) -> View:
        """Create a view with a data area of ``size`` bytes (zeroed)."""

    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        trust: _Trust = None,
    ) -> View:
        """Open an existing view (``trust`` as for :meth:`SharedMemory.open`)."""

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a view segment."""

    @staticmethod
    def _create_record(
        name: str | None,
        path: str | os.PathLike[str] | None,
        mode: int,
        size: int,
        fingerprint: int,
    ) -> View: ...
    @staticmethod
    def _open_record(
        name: str | None,
        path: str | os.PathLike[str] | None,
        fingerprint: int,
        trust: _Trust = None,
    ) -> View: ...
    def _field_get(self, code: int, offset: int) -> Any: ...
    def _field_set(self, code: int, offset: int, value: Any) -> None: ...
    @property
    def _data_offset(self) -> int: ...
    @property
    def size(self) -> int:
        """Size of the data area in bytes."""

    def __len__(self) -> int:
        """``len(view)``: the size of the data area in bytes."""

    def write(
        self,
        value: _Value | bytearray | memoryview,
        offset: int | None = None,
        *,
        tag: _Tag | None = None,
        timeout: float | None = None,
    ) -> int:
        """Write one tagged value; return the offset after it."""

    def read(self, tag: _Tag, offset: int | None = None, *, timeout: float | None = None) -> Any:
        """Read one value of type ``tag`` (``TypeError`` if another type is stored there)."""

    def write_mixed(
        self,
        items: list[Any] | tuple[Any, ...],
        offset: int | None = None,
        *,
        timeout: float | None = None,
    ) -> int:
        """Write several values (nested lists flattened) under one write lock."""

    def read_mixed(
        self, schema: Any, offset: int | None = None, *, timeout: float | None = None
    ) -> list[Any]:
        """Read ``(tag, count)`` pairs under one read lock."""

    def read_bytes(self, offset: int, n: int, *, timeout: float | None = None) -> bytes:
        """Copy ``n`` raw bytes at ``offset`` as one snapshot (membridge's ``read_range``)."""

    def read_all(self, *, timeout: float | None = None) -> bytes:
        """Copy the whole data area (``size`` bytes) as one snapshot."""

    def zero(self, *, timeout: float | None = None) -> None:
        """Zero the data area under the write lock."""

    def seek(self, pos: int = 0) -> None:
        """Move the cursor."""

    def tell(self) -> int:
        """The cursor position."""

    def read_lock(self, timeout: float | None = None) -> LockGuard:
        """Hold the read lock: this thread's reads inside it are seen together."""

    def write_lock(self, timeout: float | None = None) -> LockGuard:
        """Hold the write lock: this thread's writes inside it are one update for others."""

    @property
    def write_locked(self) -> bool:
        """True if a writer holds or waits for the view's lock."""

    @property
    def reader_count(self) -> int:
        """Number of read holds of the view's lock now (optimistic reads take none)."""

    def close(self) -> None:
        """Detach this handle: its attachment slot and mapping are released at once, or when
        the last lock guard taken from it is released. Closing twice does nothing."""

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""

    def unlink(self) -> None:
        """Remove this view's segment (handles that have it open keep it)."""

    def __enter__(self) -> Self:
        """``with View.open(...) as v:`` closes the handle at the end of the block."""

    def __exit__(self, *_args: object) -> bool: ...
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...
    @property
    def name(self) -> str | None:
        """The POSIX name, or None."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None."""

@final
class Queue:
    """A multi-producer/multi-consumer queue of byte messages between processes.

    Any number of processes and threads may put and get. FIFO per producer; a message is
    returned by exactly one ``get``; a killed producer or consumer loses at most what it held
    and never wedges the queue. Blocking waits do not poll and release the GIL.

    ``queue.Full`` means no room and ``queue.Empty`` nothing to take. A call that gave up
    because another process kept the producer (or consumer) lock throughout, while the queue
    had room (or messages), raises :class:`memspace.QueueBusy`, a subclass of both; ``try_put``
    returns False and ``try_get`` None then. Every wait ends at its deadline.
    """

    @staticmethod
    def create(
        name: str | None = None,
        capacity: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int | None = None,
        mode: int = 0o600,
    ) -> Queue: ...
    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        trust: _Trust = None,
    ) -> Queue:
        """Open an existing queue (``trust`` as for :meth:`SharedMemory.open`).

        A queue is only as trustworthy as whoever may write it: :meth:`get_object` unpickles
        what they put, which can run any code. The default refuses a queue that another user
        created (name squatting) or that group or other may write.
        """
    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None: ...
    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed queue."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None for a POSIX queue."""

    def put(self, data: Buffer, block: bool = True, timeout: float | None = None) -> None: ...
    def put_nowait(self, data: Buffer) -> None: ...
    def try_put(self, data: Buffer) -> bool: ...
    def put_many(self, items: Iterable[Buffer], timeout: float | None = None) -> int: ...
    def get(self, block: bool = True, timeout: float | None = None) -> bytes: ...
    def get_nowait(self) -> bytes: ...
    def try_get(self) -> bytes | None: ...
    def get_many(
        self, max_count: int, block: bool = True, timeout: float | None = None
    ) -> list[bytes]:
        """Wait (unless ``block`` is false) for one message, then take up to ``max_count``."""

    def get_view(self, timeout: float | None = None) -> QueueView:
        """Context manager: a read-only memoryview of the next message, in place.

        The message is taken on entry; leaving the block hands its space back. A view still
        exported when the block ends (e.g. a numpy array) is a ``BufferError``; the space then
        returns when the last view is dropped.
        """

    def put_object(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        """Send any picklable object (pickle protocol 5).

        Out-of-band buffers (numpy arrays, ``pickle.PickleBuffer``) are copied straight into
        the message, not pickled. A pickling error or an oversize object raises before
        anything is sent.
        """

    def get_object(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the next message sent by :meth:`put_object` and unpickle it.

        Out-of-band buffers come back as writable, 64-byte aligned memory (one copy). A
        message not sent by ``put_object`` is a ``ValueError`` (and is consumed).

        Unpickling runs code chosen by whoever wrote the message. Another local user who
        creates the queue's name first (name squatting), or who may write the queue, can put
        such a message: :meth:`Queue.open` refuses a queue not owned by you or writable by
        group or other unless you pass ``trust=``; trust only users you would let run code.
        """

    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def clear(self) -> int:
        """Drop every waiting message (they count as done for :meth:`join`); return how many."""

    def task_done(self) -> None:
        """Mark one message this handle took as processed (``ValueError`` if none is left)."""

    def join(self, timeout: float | None = None) -> None:
        """Wait until every message put was taken and marked with :meth:`task_done` (or lost
        with a handle that died or closed holding it); ``TimeoutError`` after `timeout`."""

    def _join_now(self, thorough: bool) -> bool: ...
    @property
    def used(self) -> int:
        """Bytes the waiting messages take (``qsize()`` counts them)."""

    @property
    def capacity(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def inspect(self) -> dict[str, Any]: ...
    @property
    def _control_offset(self) -> int: ...
    @property
    def _data_offset(self) -> int: ...
    def _signal(self, interest: Literal["readable", "writable", "done"]) -> _Signal: ...
    def close(self) -> None:
        """Detach this handle: its attachment slot and mapping are released at once (or
        when a ``get_view()`` message still held is dropped). The queue stays."""

    def unlink(self) -> None:
        """Remove this queue's segment (handles that have it open keep it)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *_args: object) -> bool: ...

@final
class Ring:
    """A single-producer/single-consumer ring of variable-length messages between processes.

    One process (or handle) holds the producer role, one the consumer role; a role whose
    holder died can be taken over. Blocking waits do not poll and release the GIL.
    """

    @staticmethod
    def create(
        name: str | None = None,
        capacity: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int | None = None,
        mode: int = 0o600,
    ) -> Ring:
        """Create a ring of at least ``capacity`` bytes (rounded up to a power of two)."""

    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        role: Literal["producer", "consumer"] | None = None,
        trust: _Trust = None,
    ) -> Ring:
        """Open an existing ring, claiming ``role`` now (else on first put/get); ``trust`` as
        for :meth:`SharedMemory.open`."""

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a ring's segment."""

    def put(self, data: Buffer, block: bool = True, timeout: float | None = None) -> None:
        """Send one message; ``queue.Full`` if there is no room in time."""

    def put_nowait(self, data: Buffer) -> None:
        """``put(data, block=False)``."""

    def try_put(self, data: Buffer) -> bool:
        """Send one message if there is room now; return whether it was sent."""

    def put_many(self, items: Iterable[Buffer], timeout: float | None = None) -> int:
        """Send every message in order, publishing once per run; return how many were sent."""

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Take one message; ``queue.Empty`` if none arrives in time."""

    def get_nowait(self) -> bytes:
        """``get(block=False)``."""

    def try_get(self) -> bytes | None:
        """Take one message if there is one now."""

    def get_many(
        self, max_count: int, block: bool = True, timeout: float | None = None
    ) -> list[bytes]:
        """Wait (unless ``block`` is false) for one message, then take up to ``max_count``
        without waiting."""

    def get_view(self, timeout: float | None = None) -> RingView:
        """Context manager: a read-only memoryview of the next message, consumed on exit."""

    def reserve(self, n: int, timeout: float | None = None) -> RingReservation:
        """Context manager: a writable memoryview of ``n`` bytes, sent on exit."""

    def put_value(
        self,
        value: bool | int | float | str | bytes,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Send one typed value (the encoding of :class:`View`)."""

    def get_value(
        self, block: bool = True, timeout: float | None = None
    ) -> bool | int | float | str | bytes:
        """Take one typed value sent with :meth:`put_value` (``queue.Empty`` as for ``get``)."""

    def put_object(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        """Send any picklable object (pickle protocol 5), as :meth:`Queue.put_object` does.

        Out-of-band buffers (numpy arrays, ``pickle.PickleBuffer``) are copied straight into the
        message. A pickling error or an object too large for the ring raises before anything
        is sent.
        """

    def get_object(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the next message sent by :meth:`put_object` and unpickle it.

        A message not sent by ``put_object`` is a ``ValueError`` and stays in the ring.
        """

    def clear(self) -> int:
        """Drop every waiting message (as the consumer); return how many."""

    def empty(self) -> bool:
        """True if no message is waiting."""

    def full(self) -> bool:
        """True if not even an empty message would fit now."""

    def __len__(self) -> int:
        """Messages waiting (:attr:`used` gives their bytes)."""

    @property
    def capacity(self) -> int:
        """Capacity in bytes (a power of two)."""

    @property
    def used(self) -> int:
        """Bytes the waiting messages take, headers and padding included."""

    @property
    def free(self) -> int:
        """Bytes free for new messages (``capacity - used``)."""

    @property
    def max_message_size(self) -> int:
        """Largest message in bytes."""

    @property
    def role(self) -> Literal["producer", "consumer", "both"] | None:
        """The roles this handle holds."""

    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed ring."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None for a POSIX ring."""

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""

    @property
    def _control_offset(self) -> int: ...
    @property
    def _data_offset(self) -> int: ...
    def _signal(self, interest: Literal["readable", "writable"]) -> _Signal: ...
    def inspect(self) -> dict[str, Any]:
        """Fill level, geometry and role liveness."""

    def close(self) -> None:
        """Give up the roles and detach (the attachment slot and mapping are released);
        the ring and its messages stay."""

    def unlink(self) -> None:
        """Remove this ring's segment (handles that have it open keep it)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> bool: ...

@final
class RingView:
    """Returned by :meth:`Ring.get_view`."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, _exc: object = None, _tb: object = None
    ) -> bool: ...

@final
class RingReservation:
    """Returned by :meth:`Ring.reserve`."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, _exc: object = None, _tb: object = None
    ) -> bool: ...

@final
class Broadcast:
    """One publisher, any number of subscribers, each seeing every message, between processes.

    Every subscriber sees every message published after it subscribed, in order, exactly once.
    ``overflow="block"``: the publisher waits for the slowest live subscriber (a dead one stops
    holding it back at once). ``overflow="overwrite"``: the publisher never waits; a subscriber
    that fell a lap behind gets :class:`memspace.Lagged` (with the exact count it missed) and
    continues with the oldest message still there. Blocking waits do not poll and release the
    GIL.
    """

    @staticmethod
    def create(
        name: str | None = None,
        capacity: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int | None = None,
        overflow: Literal["block", "overwrite"] = "block",
        mode: int = 0o600,
    ) -> Broadcast:
        """Create a broadcast of at least ``capacity`` bytes (rounded up to a power of two).

        The handle holds no role: its first ``put`` claims the publisher role.
        """

    @staticmethod
    def open(
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        role: Literal["subscriber", "publisher"] | None = "subscriber",
        trust: _Trust = None,
    ) -> Broadcast:
        """Open a broadcast: subscribe now (the default), claim the publisher role, or neither.

        A subscriber sees every message published after ``open`` returns.
        ``memspace.RoleTakenError`` if another live process holds the publisher role.
        ``trust`` as for :meth:`SharedMemory.open`.
        """

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Remove a broadcast's segment."""

    def unlink(self) -> None:
        """Remove this broadcast's segment (handles that have it open keep it)."""

    def put(self, data: Buffer, block: bool = True, timeout: float | None = None) -> None:
        """Send one message to every subscriber; ``queue.Full`` if there is no room in time."""

    def put_nowait(self, data: Buffer) -> None:
        """``put(data, block=False)``."""

    def try_put(self, data: Buffer) -> bool:
        """Send one message if there is room now; return whether it was sent."""

    def put_many(self, items: Iterable[Buffer], timeout: float | None = None) -> int:
        """Send every message in order, publishing once per run; return how many were sent."""

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Take the next message; ``queue.Empty`` if none arrives in time.

        Overwrite mode: :class:`memspace.Lagged` if the publisher lapped this subscriber.
        """

    def get_nowait(self) -> bytes:
        """``get(block=False)``."""

    def try_get(self) -> bytes | None:
        """Take the next message if there is one now."""

    def get_many(self, max_count: int, timeout: float | None = None) -> list[bytes]:
        """Wait for one message, then take up to ``max_count`` without waiting."""

    def get_view(self, timeout: float | None = None) -> BroadcastView:
        """Context manager: a read-only memoryview of the next message, consumed on exit.

        Overwrite mode: leaving the block raises :class:`memspace.Lagged` if the publisher
        wrote over the message while the block ran (discard what was read).
        """

    def reserve(self, n: int, timeout: float | None = None) -> BroadcastReservation:
        """Context manager: a writable memoryview of ``n`` bytes, published on exit."""

    @property
    def capacity(self) -> int:
        """Capacity in bytes (a power of two)."""

    @property
    def max_message_size(self) -> int:
        """Largest message in bytes."""

    @property
    def overflow(self) -> Literal["block", "overwrite"]:
        """What the publisher does when a subscriber falls behind."""

    @property
    def role(self) -> Literal["publisher", "subscriber", "both"] | None:
        """The roles this handle holds."""

    @property
    def lag(self) -> int | None:
        """Messages published that this subscriber has not read (None: not a subscriber)."""

    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed broadcast."""

    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None for a POSIX broadcast."""

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""

    @property
    def _control_offset(self) -> int: ...
    @property
    def _data_offset(self) -> int: ...
    def _signal(self, interest: Literal["readable", "writable"]) -> _Signal: ...
    def inspect(self) -> dict[str, Any]:
        """Geometry, the publisher's position and each live subscriber's lag."""

    def close(self) -> None:
        """Give up the publisher role and the subscription and detach; the broadcast stays."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> bool: ...

@final
class BroadcastView:
    """Returned by :meth:`Broadcast.get_view`."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, _exc: object = None, _tb: object = None
    ) -> bool: ...

@final
class BroadcastReservation:
    """Returned by :meth:`Broadcast.reserve`."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, _exc: object = None, _tb: object = None
    ) -> bool: ...

@final
class QueueView:
    """Returned by :meth:`Queue.get_view`."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self, _exc_type: type[BaseException] | None, _exc: object = None, _tb: object = None
    ) -> bool: ...

@final
class MessageBytes:
    """Bytes of a ring or queue message exported through the buffer protocol (internal)."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...

@final
class _Signal:
    """One eventcount of a channel (internal: memspace.aio uses it)."""

    def prepare(self) -> int: ...
    def cancel(self) -> None: ...
    def changed(self, key: int) -> bool: ...
    def same_as(self, other: _Signal) -> bool: ...

@final
class _Waiter:
    """Waits on many signals from one thread (internal: memspace.aio uses it)."""

    def __new__(cls, *, threads: bool = False) -> _Waiter: ...
    def watch(self, signal: _Signal, key: int) -> int | None: ...
    def unwatch(self, id: int) -> bool: ...
    def wait(self, timeout: float | None = None) -> list[int] | None: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...

def _reopen(
    cls: Any, name: str | None, path: str | os.PathLike[str] | None, trust: _Trust = None
) -> Any: ...
def _reopen_broadcast(
    name: str | None,
    path: str | os.PathLike[str] | None,
    role: Literal["subscriber", "publisher"] | None,
    trust: _Trust = None,
) -> Broadcast: ...
def _header_report(
    name: str | None = None, *, path: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None: ...
def _staleness(
    name: str | None = None, *, path: str | os.PathLike[str] | None = None
) -> bool | None: ...
def _reopen_segment(
    name: str | None, path: str | os.PathLike[str] | None, trust: _Trust = None
) -> SharedMemory: ...
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
    def _scandir(
        self, path: str, parent: tuple[int, int] | None = None, name: str = ""
    ) -> tuple[tuple[int, int], list[str], list[str]]: ...
    def _free_bytes(self) -> int: ...
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

@disjoint_base
class _SharedFileSystem:
    """Native half of :class:`memspace.SharedFileSystem` (use that class)."""

    def __new__(
        cls,
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        create: bool = False,
        max_quota: int = 268435456,
        max_nodes: int | None = None,
        chunk_overhead_override: int | None = None,
        promotion_hard_limit: int | None = None,
        default_storage: str = "auto",
        default_lock_timeout: float | None = 30.0,
        max_open: int = 4096,
        slots: int = 128,
        data_size: int | None = None,
        mode: int = 384,
        trust: Any = None,
    ) -> Self: ...
    @staticmethod
    def _remove_segment(
        name: str | None = None, *, path: str | os.PathLike[str] | None = None
    ) -> None: ...
    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed filesystem."""
    @property
    def path(self) -> pathlib.Path | None:
        """The file path, or None for a POSIX one."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
    @property
    def max_quota(self) -> int:
        """The quota."""
    @property
    def max_nodes(self) -> int:
        """The node limit (the root included)."""
    def close(self) -> None:
        """Detach (open handles and views keep the mapping until they close)."""
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...
    def open(
        self,
        path: str,
        mode: str = "rb",
        preallocate: int = 0,
        lock_timeout: float | None = None,
    ) -> SharedFileHandle:
        """Open a file in a binary mode (``rb``, ``wb``, ``ab``, ``r+b``, ``xb``)."""
    def mkdir(self, path: str, exist_ok: bool = False) -> None:
        """Create a directory and its missing parents."""
    def _remove_file(self, path: str) -> None: ...
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
    def _scandir(
        self, path: str, parent: tuple[int, int] | None = None, name: str = ""
    ) -> tuple[tuple[int, int], list[str], list[str]]: ...
    def _free_bytes(self) -> int: ...
    def _file_paths(self, prefix: str = "/", only_dirty: bool = False) -> list[str]: ...
    def _read_bytes(self, path: str, max_size: int | None = None) -> bytes: ...
    def _view(self, path: str) -> SharedFileView: ...
    def fsck(self, reap: bool = False) -> dict[str, Any]:
        """Check every invariant: ``{"ok", "problems", ...}``."""
    def reap(self) -> int:
        """Remove what dead processes left; returns how many lock entries."""
    def info(self) -> dict[str, Any]:
        """Usage and health (what ``memspace inspect`` shows)."""

@final
class SharedFileView:
    """A read-only view of one committed version of a file, in place in shared memory."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __len__(self) -> int: ...
    def release(self) -> None:
        """Unpin the version (``BufferError`` while a memoryview of it is exported)."""
    def __enter__(self) -> memoryview: ...
    def __exit__(self, *_args: object) -> bool: ...

@final
class SharedFileHandle:
    """An open file of a :class:`memspace.SharedFileSystem` (a registered ``io.RawIOBase``)."""

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
        """Commit what was written so far (visible to every process)."""
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
        """Commit (a writable handle) and release the file's lock."""
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
