"""asyncio for every memspace channel.

```python
aq = memspace.aio.Queue.open("/jobs")     # or aio.Queue(a_queue); aio.Ring, aio.Broadcast
await aq.put(b"x")
msg = await aq.get(timeout=1.0)           # memspace.aio.Empty after 1 s
batch = await aq.get_many(100)
async for msg in aq: ...                  # ends when the handle is closed
```

:class:`Queue` and :class:`Ring` wrap the synchronous handles (``aq.sync``) and add
coroutines for everything that may wait. A call that can proceed at once stays a synchronous
call of the native handle (no thread hop, no future); ``get_nowait``, ``qsize`` and the other
non-waiting methods are the synchronous ones.

How waiting works: no thread per call and no polling. Each event loop has one waiter thread
(started on first need, ended when nothing has waited for a second or the loop is closed) that
sleeps on the eventcounts of every channel its coroutines wait on at once (Linux
``futex_waitv``; a helper thread per channel where the kernel lacks it). The waiter never takes
a message: it only wakes a waiting coroutine (``call_soon_threadsafe``), which then tries again
on the loop thread. So cancelling a coroutine, or a timeout, never loses a message, exactly as
with :class:`asyncio.Queue`. Coroutines of one loop waiting on the same channel queue up in
FIFO order, and a woken one that got its message wakes the next.

Timeouts: ``timeout=`` on a coroutine gives the synchronous API's answer, :class:`Empty` or
:class:`Full` (which are both the :mod:`queue` and the :mod:`asyncio` exceptions:
``except queue.Empty`` and ``except asyncio.QueueEmpty`` both catch it).
``asyncio.timeout()`` / ``asyncio.wait_for()`` around a call work too (they cancel it and raise
:class:`TimeoutError`). Either way nothing is consumed by a call that did not return.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import math
import os
import queue
import threading
import types
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from memspace._memspace import Broadcast as _SyncBroadcast
from memspace._memspace import Queue as _SyncQueue
from memspace._memspace import Ring as _SyncRing
from memspace._memspace import _Signal, _Waiter

if TYPE_CHECKING:
    from memspace._memspace import _Trust

__all__ = ["Broadcast", "Empty", "Full", "Queue", "Ring"]

T = TypeVar("T")
_Self = TypeVar("_Self", bound="_Channel[Any]")


class Empty(queue.Empty, asyncio.QueueEmpty):
    """Nothing arrived in time: both :class:`queue.Empty` and :class:`asyncio.QueueEmpty`."""


class Full(queue.Full, asyncio.QueueFull):
    """No room came in time: both :class:`queue.Full` and :class:`asyncio.QueueFull`."""


# How long an idle waiter thread stays for the next wait before it ends.
_LINGER = 1.0
# How often an awaiting join makes the full look (the synchronous join's wait slice).
_JOIN_THOROUGH = 0.05


class _Nothing:
    """What an attempt returns when it must wait (a message may be anything, even None)."""


_NOTHING = _Nothing()


class _Slot:
    """The coroutines of one event loop waiting on one signal of one channel handle.

    At most one native watch per slot (one ``prepare`` for all of them: every queued
    coroutine tried after it, so a notify that could help any of them fires it). The waiter
    wakes one coroutine per fire; a woken coroutine that got what it waited for, or that gives
    up, wakes the next one, so no queued coroutine is stranded without a watch.
    """

    __slots__ = ("futures", "loop_waiter", "signal", "watch")

    def __init__(self, loop_waiter: _LoopWaiter, signal: _Signal) -> None:
        self.loop_waiter = loop_waiter
        self.signal = signal
        self.futures: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.watch: int | None = None

    def wake_next(self) -> None:
        """Wakes the first coroutine still waiting (if any)."""
        while self.futures:
            fut = self.futures.popleft()
            if not fut.done():
                fut.set_result(True)
                return

    def wake_all(self) -> None:
        """Wakes every waiting coroutine (the handle was closed)."""
        self.loop_waiter.unwatch(self)
        while self.futures:
            fut = self.futures.popleft()
            if not fut.done():
                fut.set_result(True)

    def leave(self, fut: asyncio.Future[bool]) -> None:
        """A queued coroutine stops waiting without having been woken."""
        with contextlib.suppress(ValueError):
            self.futures.remove(fut)
        if not any(not f.done() for f in self.futures):
            self.futures.clear()
            self.loop_waiter.unwatch(self)
            self.loop_waiter.forget(self)


class _LoopWaiter:
    """One event loop's waiter: the native waiter, the thread sleeping in it, the slots."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pid = os.getpid()
        self.native = _Waiter()
        self.slots: dict[int, _Slot] = {}
        self.by_watch: dict[int, _Slot] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    # --- on the loop thread ---

    def slot(self, signal: _Signal) -> _Slot:
        s = self.slots.get(id(signal))
        if s is None:
            s = self.slots[id(signal)] = _Slot(self, signal)
        return s

    def forget(self, slot: _Slot) -> None:
        """Drops a slot nobody waits on (it holds the signal, and so the mapping)."""
        if not slot.futures and slot.watch is None and self.slots.get(id(slot.signal)) is slot:
            del self.slots[id(slot.signal)]

    def watch(self, slot: _Slot, key: int) -> None:
        wid = self.native.watch(slot.signal, key)
        if wid is None:  # closed at interpreter exit: nothing will wake us
            raise RuntimeError("memspace.aio: the event loop's waiter is closed")
        slot.watch = wid
        self.by_watch[wid] = slot
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="memspace-aio-waiter", daemon=True
                )
                self.thread.start()

    def unwatch(self, slot: _Slot) -> None:
        if slot.watch is not None:
            self.native.unwatch(slot.watch)
            self.by_watch.pop(slot.watch, None)
            slot.watch = None

    def deliver(self, fired: list[int]) -> None:
        for wid in fired:
            slot = self.by_watch.pop(wid, None)
            if slot is not None and slot.watch == wid:
                slot.watch = None
                slot.wake_next()

    # --- on the waiter thread ---

    def _run(self) -> None:
        native = self.native
        while True:
            fired = native.wait(_LINGER)  # the GIL is released while it sleeps
            if fired is None:  # closed
                break
            if fired:
                try:
                    self.loop.call_soon_threadsafe(self.deliver, fired)
                except RuntimeError:  # the loop is closed: nobody is left to wake
                    native.close()
                    break
                continue
            with self.lock:
                if len(native) == 0 or self.loop.is_closed():
                    self.thread = None
                    if len(native):
                        native.close()
                    return
        with self.lock:
            self.thread = None


_waiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaiter] = (
    weakref.WeakKeyDictionary()
)
# Loops that cannot be weakly referenced (then kept for the life of the process).
_strong_waiters: dict[int, tuple[asyncio.AbstractEventLoop, _LoopWaiter]] = {}
_registry_lock = threading.Lock()


def _loop_waiter(loop: asyncio.AbstractEventLoop) -> _LoopWaiter:
    """The waiter of `loop` (called on its thread)."""
    try:
        lw = _waiters.get(loop)
    except TypeError:
        pair = _strong_waiters.get(id(loop))
        lw = pair[1] if pair is not None and pair[0] is loop else None
    if lw is not None and lw.pid == os.getpid():
        return lw
    # None yet, or one inherited through fork (whose thread does not exist here).
    with _registry_lock:
        lw = _LoopWaiter(loop)
        try:
            _waiters[loop] = lw
        except TypeError:
            _strong_waiters[id(loop)] = (loop, lw)
    return lw


def _all_waiters() -> list[_LoopWaiter]:
    with _registry_lock:
        return list(_waiters.values()) + [lw for _, lw in _strong_waiters.values()]


@atexit.register
def _close_all() -> None:
    """Ends every waiter thread while the interpreter is still whole (a thread woken during
    finalization could not take the GIL back)."""
    lws = _all_waiters()
    for lw in lws:
        lw.native.close()
    for lw in lws:
        t = lw.thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=1.0)


def _deadline(loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
    if timeout is None:
        return None
    t = float(timeout)
    if math.isnan(t) or t < 0:
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return None if math.isinf(t) else loop.time() + t


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


async def _until(
    signal: _Signal,
    attempt: Callable[[], T | _Nothing],
    timeout: float | None,
    exc: type[Exception],
) -> T:
    """Waits on `signal` and runs `attempt` (synchronous, never waiting) until it produces a
    value; `exc` once `timeout` has passed. Called after one attempt failed."""
    loop = asyncio.get_running_loop()
    deadline = _deadline(loop, timeout)
    lw = _loop_waiter(loop)
    # The slot that woke us, while we owe it a wake-up: a woken coroutine that leaves (with
    # its message, or giving up) wakes the next one, so none is left without a watch.
    woken: _Slot | None = None
    try:
        while True:
            if deadline is not None and loop.time() >= deadline:
                raise exc()
            slot = lw.slot(signal)
            if slot.watch is None:
                key = signal.prepare()
                try:
                    r = attempt()
                except BaseException:
                    signal.cancel()
                    raise
                if not isinstance(r, _Nothing):
                    signal.cancel()
                    return r
                lw.watch(slot, key)
            # Our last attempt came after the watch's prepare: any notify that could help
            # us fires the watch.
            woken = None
            fut: asyncio.Future[bool] = loop.create_future()
            slot.futures.append(fut)
            timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
            try:
                got = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.result():
                    woken = slot  # woken, then cancelled before it could run
                else:
                    slot.leave(fut)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if not got:  # the deadline, while queued
                slot.leave(fut)
                raise exc()
            woken = slot
            r = attempt()
            if not isinstance(r, _Nothing):
                return r
    finally:
        if woken is not None:
            woken.wake_next()
            lw.forget(woken)


class _Channel(AsyncIterator[T]):
    """What the asyncio face of every channel shares: the wrapped handle, its two signals,
    the waiting receive and send, and the non-waiting passthroughs."""

    def __init__(self, handle: Any) -> None:
        self._h = handle
        # The channel's two eventcounts (each keeps the mapping alive: dropped at close).
        self._signals: tuple[_Signal, _Signal] | None = (
            handle._signal("readable"),
            handle._signal("writable"),
        )
        self._try_get: Callable[[], bytes | None] = handle.try_get
        self._try_put: Callable[[Any], bool] = handle.try_put

    def _signal(self, i: int) -> _Signal:
        s = self._signals
        if s is None:
            raise ValueError(f"operation on a closed {type(self._h).__name__}")
        return s[i]

    @property
    def _readable(self) -> _Signal:
        return self._signal(0)

    @property
    def _writable(self) -> _Signal:
        return self._signal(1)

    def _wake_all(self, signals: tuple[_Signal, ...]) -> None:
        """After close: every coroutine waiting on this handle tries again (and finds it
        closed)."""
        for lw in _all_waiters():
            for sig in signals:
                slot = lw.slots.get(id(sig))
                if slot is not None:
                    with contextlib.suppress(RuntimeError):  # that loop is closed
                        lw.loop.call_soon_threadsafe(slot.wake_all)

    # --- receiving ---

    async def get(self, timeout: float | None = None) -> bytes:
        """Takes one message, waiting at most `timeout` seconds (then :class:`Empty`)."""
        m = self._try_get()
        if m is not None:
            return m
        try_get = self._try_get

        def attempt() -> bytes | _Nothing:
            m = try_get()
            return _NOTHING if m is None else m

        return await _until(self._readable, attempt, timeout, Empty)

    def get_nowait(self) -> bytes:
        """Takes one message if there is one now, else raises :class:`Empty`."""
        m = self._try_get()
        if m is None:
            raise Empty
        return m

    def try_get(self) -> bytes | None:
        """Takes one message if there is one now, else returns None."""
        return self._try_get()

    async def get_many(self, max_count: int, timeout: float | None = None) -> list[bytes]:
        """Takes up to `max_count` messages: waits (at most `timeout`) for the first, then
        takes what is there."""
        get_many = self._h.get_many

        def attempt() -> list[bytes] | _Nothing:
            try:
                ms: list[bytes] = get_many(max_count, timeout=0)
            except queue.Empty:
                return _NOTHING
            return ms

        r = attempt()
        if not isinstance(r, _Nothing):
            return r
        return await _until(self._readable, attempt, timeout, Empty)

    def get_view(self, timeout: float | None = None) -> _InPlace:
        """``async with aq.get_view() as mv:`` the next message in place (a read-only
        memoryview), as the synchronous ``get_view`` but waiting without blocking the loop."""
        return _InPlace(
            lambda: self._h.get_view(timeout=0),
            lambda: self._readable,
            queue.Empty,
            Empty,
            timeout,
        )

    def __aiter__(self) -> _Channel[T]:
        return self

    async def __anext__(self) -> T:
        """The next message; the iteration ends when the handle is closed."""
        if self._h.closed:
            raise StopAsyncIteration
        try:
            m: T = await self._next()
        except ValueError:
            if self._h.closed:
                raise StopAsyncIteration from None
            raise
        return m

    async def _next(self) -> Any:
        return await self.get()

    # --- sending ---

    async def put(self, data: Any, timeout: float | None = None) -> None:
        """Sends one message (bytes-like), waiting at most `timeout` for room (then
        :class:`Full`)."""
        if self._try_put(data):
            return
        try_put = self._try_put

        def attempt() -> bool | _Nothing:
            return True if try_put(data) else _NOTHING

        await _until(self._writable, attempt, timeout, Full)

    def put_nowait(self, data: Any) -> None:
        """Sends one message if there is room now, else raises :class:`Full`."""
        if not self._try_put(data):
            raise Full

    def try_put(self, data: Any) -> bool:
        """Sends one message if there is room now; returns whether it was sent."""
        return self._try_put(data)

    async def put_many(self, items: Iterable[Any], timeout: float | None = None) -> int:
        """Sends every message of `items` in order, waiting for room as needed (at most
        `timeout` in all); returns how many were sent (:class:`Full` if none could be)."""
        rest = list(items)
        total = len(rest)
        h = self._h

        def send_now(start: int) -> int:
            try:
                n: int = h.put_many(rest[start:], timeout=0)
            except queue.Full:
                return 0
            return n

        def attempt() -> int | _Nothing:
            # The first message as `put` sends it: a queue's `try_put` also reclaims the
            # space of consumers that died holding messages, which a batch does not look for.
            if not h.try_put(rest[0]):
                return _NOTHING
            return 1 + (send_now(1) if len(rest) > 1 else 0)

        if not rest:
            return 0
        del rest[: send_now(0)]
        if not rest:
            return total
        loop = asyncio.get_running_loop()
        deadline = _deadline(loop, timeout)
        while rest:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                n = await _until(self._writable, attempt, left, Full)
            except Full:
                if len(rest) < total:
                    return total - len(rest)
                raise
            del rest[:n]
        return total

    # --- the synchronous rest ---

    @property
    def sync(self) -> Any:
        """The wrapped synchronous handle."""
        return self._h

    @property
    def name(self) -> str | None:
        """The POSIX name, or None for a file-backed channel."""
        n: str | None = self._h.name
        return n

    @property
    def path(self) -> Any:
        """The file path, or None for a POSIX channel."""
        return self._h.path

    @property
    def capacity(self) -> int:
        """Capacity in bytes."""
        c: int = self._h.capacity
        return c

    @property
    def max_message_size(self) -> int:
        """Largest message in bytes."""
        m: int = self._h.max_message_size
        return m

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        c: bool = self._h.closed
        return c

    def close(self) -> None:
        """Closes the handle (the channel stays); coroutines waiting on it wake and raise
        ``ValueError`` (an ``async for`` ends)."""
        self._h.close()
        signals, self._signals = self._signals, None
        if signals is not None:
            self._wake_all(signals + self._more_signals())

    def _more_signals(self) -> tuple[_Signal, ...]:
        """Signals a subclass made besides the two (dropped at close too)."""
        return ()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self._h,))

    def __repr__(self) -> str:
        return f"memspace.aio.{self._h!r}"


class _InPlace:
    """``async with channel.get_view(timeout) as mv`` / ``async with channel.reserve(n,
    timeout) as mv``: the synchronous handle's context manager (`make()`, with ``timeout=0``),
    entered without blocking the loop: retried on `signal()` until it stops raising `busy`
    (``queue.Empty`` for a view, ``queue.Full`` for a reservation), then `gave_up` after
    `timeout`. Both are called when the block is entered, as the synchronous call would be."""

    def __init__(
        self,
        make: Callable[[], Any],
        signal: Callable[[], _Signal],
        busy: type[Exception],
        gave_up: type[Exception],
        timeout: float | None,
    ) -> None:
        self._make = make
        self._signal = signal
        self._busy = busy
        self._gave_up = gave_up
        self._timeout = timeout
        self._cm: Any = None

    async def __aenter__(self) -> memoryview:
        cm, busy = self._make(), self._busy

        def attempt() -> memoryview | _Nothing:
            try:
                mv: memoryview = cm.__enter__()
            except busy:
                return _NOTHING
            return mv

        r = attempt()
        if isinstance(r, _Nothing):
            r = await _until(self._signal(), attempt, self._timeout, self._gave_up)
        self._cm = cm
        return r

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> bool:
        cm, self._cm = self._cm, None
        if cm is None:
            return False
        r: bool = cm.__exit__(exc_type, exc, tb)
        return r


def _reservation(channel: _Channel[Any], n: int, timeout: float | None) -> _InPlace:
    """``async with channel.reserve(n, timeout) as mv``: room for a message written in place."""
    return _InPlace(
        lambda: channel._h.reserve(n, timeout=0),
        lambda: channel._writable,
        queue.Full,
        Full,
        timeout,
    )


class Queue(_Channel[bytes]):
    """:class:`memspace.Queue` for asyncio: ``Queue(q)`` wraps an open queue, or use
    :meth:`create` / :meth:`open`."""

    def __init__(self, queue: _SyncQueue) -> None:
        if not isinstance(queue, _SyncQueue):
            raise TypeError(f"memspace.aio.Queue wraps a memspace.Queue, not {type(queue)!r}")
        super().__init__(queue)
        self._done: _Signal | None = None  # join's, made at the first join that waits

    @classmethod
    def create(
        cls,
        name: str | None = None,
        capacity: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int | None = None,
        mode: int = 0o600,
    ) -> Queue:
        """Creates a queue (see :meth:`memspace.Queue.create`)."""
        return cls(
            _SyncQueue.create(
                name, capacity, path=path, max_message_size=max_message_size, mode=mode
            )
        )

    @classmethod
    def open(
        cls,
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        trust: _Trust = None,
    ) -> Queue:
        """Opens an existing queue (`trust` as for :meth:`memspace.Queue.open`)."""
        return cls(_SyncQueue.open(name, path=path, trust=trust))

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Removes the queue's segment (see :meth:`memspace.Queue.remove`)."""
        _SyncQueue.remove(name, path=path)

    async def get_object(self, timeout: float | None = None) -> Any:
        """Takes the next message sent by ``put_object`` and unpickles it (see
        :meth:`memspace.Queue.get_object`)."""
        get_object = self._h.get_object

        def attempt() -> Any:
            try:
                return get_object(block=False)
            except queue.Empty:
                return _NOTHING

        r = attempt()
        if not isinstance(r, _Nothing):
            return r
        return await _until(self._readable, attempt, timeout, Empty)

    async def put_object(self, obj: Any, timeout: float | None = None) -> None:
        """Sends any picklable object (see :meth:`memspace.Queue.put_object`)."""
        put_object = self._h.put_object

        def attempt() -> bool | _Nothing:
            try:
                put_object(obj, block=False)
            except queue.Full:
                return _NOTHING
            return True

        if isinstance(attempt(), _Nothing):
            await _until(self._writable, attempt, timeout, Full)

    def task_done(self) -> None:
        """Marks one message this handle took as processed (see
        :meth:`memspace.Queue.task_done`)."""
        self._h.task_done()

    async def join(self, timeout: float | None = None) -> None:
        """Waits until every message put has been taken and marked with :meth:`task_done`
        (or lost with a handle that died or closed holding it); ``TimeoutError`` after
        `timeout` (see :meth:`memspace.Queue.join`)."""
        join_now = self._h._join_now
        loop = asyncio.get_running_loop()
        last_thorough = -math.inf

        def attempt() -> bool | _Nothing:
            # Woken at every task_done: the full look (the consumer lock, liveness checks)
            # at most every 50 ms, a lock-free one in between (as the synchronous join).
            nonlocal last_thorough
            now = loop.time()
            thorough = now - last_thorough >= _JOIN_THOROUGH
            if thorough:
                last_thorough = now
            return True if join_now(thorough) else _NOTHING

        if not isinstance(attempt(), _Nothing):
            return
        if self._done is None:
            self._signal(0)  # ValueError once closed
            self._done = self._h._signal("done")
        await _until(self._done, attempt, timeout, TimeoutError)

    def _more_signals(self) -> tuple[_Signal, ...]:
        done, self._done = self._done, None
        return () if done is None else (done,)

    def qsize(self) -> int:
        """Messages waiting (approximate while others are active)."""
        n: int = self._h.qsize()
        return n

    def empty(self) -> bool:
        """True if no message is waiting."""
        e: bool = self._h.empty()
        return e

    def full(self) -> bool:
        """True if not even an empty message would fit now."""
        f: bool = self._h.full()
        return f

    def clear(self) -> int:
        """Drops every waiting message; returns how many."""
        n: int = self._h.clear()
        return n


class Ring(_Channel[bytes]):
    """:class:`memspace.Ring` for asyncio: ``Ring(r)`` wraps an open ring, or use
    :meth:`create` / :meth:`open`. One producer and one consumer, as for the ring itself."""

    def __init__(self, ring: _SyncRing) -> None:
        if not isinstance(ring, _SyncRing):
            raise TypeError(f"memspace.aio.Ring wraps a memspace.Ring, not {type(ring)!r}")
        super().__init__(ring)

    @classmethod
    def create(
        cls,
        name: str | None = None,
        capacity: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int | None = None,
        mode: int = 0o600,
    ) -> Ring:
        """Creates a ring (see :meth:`memspace.Ring.create`)."""
        return cls(
            _SyncRing.create(
                name, capacity, path=path, max_message_size=max_message_size, mode=mode
            )
        )

    @classmethod
    def open(
        cls,
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        role: Literal["producer", "consumer"] | None = None,
        trust: _Trust = None,
    ) -> Ring:
        """Opens an existing ring (`role` claims that role now; `trust` as for
        :meth:`memspace.Ring.open`)."""
        return cls(_SyncRing.open(name, path=path, role=role, trust=trust))

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Removes the ring's segment (see :meth:`memspace.Ring.remove`)."""
        _SyncRing.remove(name, path=path)

    async def get_value(self, timeout: float | None = None) -> Any:
        """Takes one value sent with ``put_value``, with its type."""
        get_value = self._h.get_value

        def attempt() -> Any:
            try:
                return get_value(timeout=0)
            except queue.Empty:
                return _NOTHING

        r = attempt()
        if not isinstance(r, _Nothing):
            return r
        return await _until(self._readable, attempt, timeout, Empty)

    async def put_value(self, value: Any, timeout: float | None = None) -> None:
        """Sends one typed value (see :meth:`memspace.Ring.put_value`)."""
        put_value = self._h.put_value

        def attempt() -> bool | _Nothing:
            try:
                put_value(value, timeout=0)
            except queue.Full:
                return _NOTHING
            return True

        if isinstance(attempt(), _Nothing):
            await _until(self._writable, attempt, timeout, Full)

    def reserve(self, n: int, timeout: float | None = None) -> _InPlace:
        """``async with ring.reserve(n) as mv:`` room for a message of `n` bytes written in
        place, sent when the block ends (see :meth:`memspace.Ring.reserve`)."""
        return _reservation(self, n, timeout)

    @property
    def role(self) -> str | None:
        """The roles this handle holds."""
        r: str | None = self._h.role
        return r

    @property
    def free(self) -> int:
        """Bytes free for new messages."""
        f: int = self._h.free
        return f

    def __len__(self) -> int:
        return len(self._h)


class Broadcast(_Channel[bytes]):
    """:class:`memspace.Broadcast` for asyncio: ``Broadcast(b)`` wraps an open broadcast, or
    use :meth:`create` / :meth:`open`.

    A subscriber's ``await get()`` sleeps until the publisher publishes (one notify wakes every
    sleeping subscriber, in every process and every event loop). In ``overflow="block"`` mode
    a publisher's ``await put()`` sleeps until the slowest live subscriber made room; a
    subscriber that dies wakes nobody, so the waiter's periodic recheck (about once a second)
    finds it dead and lets the publisher go on. In ``overflow="overwrite"`` mode ``put`` never
    waits, and a lapped subscriber's ``await get()`` raises :class:`memspace.Lagged` (with the
    count it missed) exactly as the synchronous ``get`` does; the next call continues with the
    oldest message still there.
    """

    def __init__(self, broadcast: _SyncBroadcast) -> None:
        if not isinstance(broadcast, _SyncBroadcast):
            raise TypeError(
                f"memspace.aio.Broadcast wraps a memspace.Broadcast, not {type(broadcast)!r}"
            )
        super().__init__(broadcast)

    @classmethod
    def create(
        cls,
        name: str | None = None,
        capacity: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        max_message_size: int | None = None,
        overflow: Literal["block", "overwrite"] = "block",
        mode: int = 0o600,
    ) -> Broadcast:
        """Creates a broadcast (see :meth:`memspace.Broadcast.create`); the handle holds no
        role until its first ``put`` claims the publisher role."""
        return cls(
            _SyncBroadcast.create(
                name,
                capacity,
                path=path,
                max_message_size=max_message_size,
                overflow=overflow,
                mode=mode,
            )
        )

    @classmethod
    def open(
        cls,
        name: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        role: Literal["subscriber", "publisher"] | None = "subscriber",
        trust: _Trust = None,
    ) -> Broadcast:
        """Opens an existing broadcast: subscribes now (the default), claims the publisher
        role, or neither (see :meth:`memspace.Broadcast.open`)."""
        return cls(_SyncBroadcast.open(name, path=path, role=role, trust=trust))

    @staticmethod
    def remove(name: str | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        """Removes the broadcast's segment (see :meth:`memspace.Broadcast.remove`)."""
        _SyncBroadcast.remove(name, path=path)

    def reserve(self, n: int, timeout: float | None = None) -> _InPlace:
        """``async with pub.reserve(n) as mv:`` room for a message of `n` bytes written in
        place, published when the block ends (see :meth:`memspace.Broadcast.reserve`)."""
        return _reservation(self, n, timeout)

    @property
    def role(self) -> str | None:
        """The role this handle holds (``"publisher"``, ``"subscriber"``, ``"both"``)."""
        r: str | None = self._h.role
        return r

    @property
    def overflow(self) -> str:
        """``"block"`` or ``"overwrite"``."""
        o: str = self._h.overflow
        return o

    @property
    def lag(self) -> int | None:
        """Messages published that this subscriber has not read yet (None: not subscribed)."""
        n: int | None = self._h.lag
        return n
