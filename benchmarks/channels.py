"""The transports the channel benchmarks measure, each as its own user would drive it.

The rule: every transport runs the same inline loop, with no extra Python frame or call for
anyone. A transport here is a handful of statements, not a method:

    SEND       sends the message `m` (`size` is len(m));
    RECV       receives one message and sets `k` to its length;
    SEND_MANY  sends the list `b`;
    RECV_MANY  receives at most `c` messages into the list `ms`;

and benchmarks/loops.py pastes those statements into one loop template per kind of loop (send
n, receive n, round trip, ...), identical for every transport. So:

- the same iteration and the same reused message object (`os.urandom(size)`, made once) for
  every transport;
- bound methods are hoisted for everyone: `producer()` and `consumer()` return the names the
  statements use (`put = ring.put`, `push = ring.push`, ...), and they become locals of the
  generated loop;
- a transport that cannot wait (a busy-poll ring) gets its retry loop inline, as its README
  writes it (`while not push(m): pass`), never a Python method per message that the others do
  not pay; a transport whose own API is pure Python (multiprocessing, iceoryx2's payload
  helpers) pays those frames, as its users do;
- no conversion a user would not write: membridge's `pop()` already returns `bytes`.

A busy-polling transport says so in its label: it burns a core while it waits.

Handles: `setup(size, consumers)` runs in the parent and returns a picklable handle;
`producer(handle)` / `consumer(handle)` run in the measuring processes and return an `End`;
`teardown(handle)` cleans up. A broadcast transport's `consumer()` is called once per
subscriber process on the same handle.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RING_BYTES = 8 << 20


def _nothing() -> None:
    return None


@dataclass
class End:
    """One open end: the names its transport's statements use, and how to close it."""

    names: dict[str, Any]
    close: Callable[[], None] = _nothing
    keep: list[Any] = field(default_factory=list)  # objects the names need kept alive


class Transport:
    label = ""
    batched = False
    zero_copy = False  # the consumer reads in place and sees only a length
    is_async = False  # RECV awaits (benchmarks/bench_aio.py)
    max_size: int | None = None  # largest message the transport can carry
    max_size_reason = ""  # where max_size comes from (said when a size is skipped)

    SEND = ""
    RECV = ""
    SEND_MANY = ""
    RECV_MANY = ""

    @staticmethod
    def available() -> bool:
        """False when the library (or the feature) is not installed: no row, a note."""
        return True

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        return None

    @staticmethod
    def producer(handle: Any) -> End:
        raise NotImplementedError

    @staticmethod
    def consumer(handle: Any) -> End:
        raise NotImplementedError

    @staticmethod
    def teardown(handle: Any) -> None:
        return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _unique(tag: str) -> str:
    return f"/{tag}-{os.getpid()}-{os.urandom(3).hex()}"


# --- multiprocessing ---------------------------------------------------------------------------


class MpQueue(Transport):
    label = "multiprocessing.Queue"
    SEND = "put(m)"
    RECV = "k = len(get())"

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        return mp.get_context("spawn").Queue(maxsize=1024)

    @staticmethod
    def producer(handle: Any) -> End:
        return End({"put": handle.put})

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"get": handle.get})


class MpPipe(Transport):
    label = "multiprocessing.Pipe (send_bytes)"
    SEND = "send_bytes(m)"
    RECV = "k = len(recv_bytes())"

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        return mp.get_context("spawn").Pipe(duplex=False)

    @staticmethod
    def producer(handle: Any) -> End:
        return End({"send_bytes": handle[1].send_bytes})

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"recv_bytes": handle[0].recv_bytes})


# --- faster-fifo -------------------------------------------------------------------------------


class FasterFifo(Transport):
    """faster-fifo's README: `q.put(x)`, `q.get()` (10 s default timeouts, far above any wait
    here). Its get grows its receive buffer when a message does not fit, then retries *without
    blocking*: with several consumers another one may have taken the message, and the blocking
    get raises queue.Empty. Such an Empty means "wait again", so the retry is inline."""

    label = "faster_fifo put/get"
    SEND = "put(m)"
    RECV = """
while True:
    try:
        k = len(get())
        break
    except Empty:
        pass
"""
    SEND_MANY = "put_many(b)"
    RECV_MANY = """
while True:
    try:
        ms = get_many(max_messages_to_get=c)
        break
    except Empty:
        pass
"""

    @staticmethod
    def available() -> bool:
        return _installed("faster_fifo")

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        import faster_fifo

        return faster_fifo.Queue(max_size_bytes=RING_BYTES)

    @staticmethod
    def producer(handle: Any) -> End:
        return End({"put": handle.put, "put_many": handle.put_many})

    @staticmethod
    def consumer(handle: Any) -> End:
        return End({"get": handle.get, "get_many": handle.get_many, "Empty": queue.Empty})


class FasterFifoBatched(FasterFifo):
    label = "faster_fifo put_many/get_many"
    batched = True


# --- membridge ---------------------------------------------------------------------------------


class Membridge(Transport):
    """membridge's ring never blocks: `push` returns False when full and `pop` None when empty,
    and its README retries in the caller's own loop. `pop()` returns bytes."""

    label = "membridge SpscRingBuffer (busy-poll)"
    SEND = """
while not push(m):
    pass
"""
    RECV = """
while (d := pop()) is None:
    pass
k = len(d)
"""

    @staticmethod
    def available() -> bool:
        return _installed("membridge")

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        import membridge

        name = _unique("mb-bench")
        # The creator's spsc() writes the ring header; openers' spsc() read it.
        membridge.SharedMemory.create(name, RING_BYTES + 24).spsc()
        return name

    @staticmethod
    def _open(name: str) -> tuple[Any, Any]:
        import membridge

        shm = membridge.SharedMemory.open(name)
        return shm, shm.spsc()

    @staticmethod
    def producer(handle: Any) -> End:
        shm, ring = Membridge._open(handle)
        return End({"push": ring.push}, keep=[shm, ring])

    @staticmethod
    def consumer(handle: Any) -> End:
        shm, ring = Membridge._open(handle)
        return End({"pop": ring.pop}, keep=[shm, ring])

    @staticmethod
    def teardown(handle: Any) -> None:
        import membridge

        membridge.SharedMemory.remove(handle)


# --- posix_ipc -----------------------------------------------------------------------------------


def _mq_msgsize_max() -> int:
    """The largest message a POSIX message queue may carry here: the kernel's
    fs.mqueue.msgsize_max (8192 by default)."""
    try:
        with open("/proc/sys/fs/mqueue/msgsize_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 8192


class PosixMq(Transport):
    label = "posix_ipc.MessageQueue"
    max_size = _mq_msgsize_max()
    max_size_reason = "the kernel's fs.mqueue.msgsize_max"
    SEND = "send(m)"
    RECV = "k = len(receive()[0])"

    @staticmethod
    def available() -> bool:
        return _installed("posix_ipc")

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        import posix_ipc

        name = _unique("mq-bench")
        mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, max_message_size=PosixMq.max_size)
        mq.close()
        return name

    @staticmethod
    def producer(handle: Any) -> End:
        import posix_ipc

        mq = posix_ipc.MessageQueue(handle)
        return End({"send": mq.send}, close=mq.close)

    @staticmethod
    def consumer(handle: Any) -> End:
        import posix_ipc

        mq = posix_ipc.MessageQueue(handle)
        return End({"receive": mq.receive}, close=mq.close)

    @staticmethod
    def teardown(handle: Any) -> None:
        import posix_ipc

        posix_ipc.unlink_message_queue(handle)


# --- pyzmq -------------------------------------------------------------------------------------


def _zmq_hwm(size: int) -> int:
    """zmq's high-water marks count messages (1000 by default): at most the rings' 8 MiB worth
    per socket, so that no transport queues more bytes than the others."""
    return max(1, min(1000, RING_BYTES // max(size, 1)))


def _zmq_socket(kind: str, hwm: int) -> tuple[Any, Any]:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(getattr(zmq, kind))
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return ctx, sock


def _zmq_close(ctx: Any) -> Callable[[], None]:
    return lambda: ctx.destroy(linger=0)


class ZmqPushPull(Transport):
    """pyzmq's README way: `sock.send(m)`, `sock.recv()` (copying; blocking). PUSH waits at
    its high-water mark: nothing is lost. The consumer binds, the producer connects."""

    label = "pyzmq PUSH/PULL over ipc://"
    SEND = "send(m)"
    RECV = "k = len(recv())"

    @staticmethod
    def available() -> bool:
        return _installed("zmq")

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        path = f"/tmp/memspace-bench-zmq-{os.getpid()}-{os.urandom(3).hex()}.ipc"
        return (f"ipc://{path}", _zmq_hwm(size), consumers)

    @staticmethod
    def producer(handle: Any) -> End:
        addr, hwm, _ = handle
        ctx, sock = _zmq_socket("PUSH", hwm)
        sock.connect(addr)
        return End({"send": sock.send}, close=_zmq_close(ctx), keep=[sock])

    @staticmethod
    def consumer(handle: Any) -> End:
        addr, hwm, _ = handle
        ctx, sock = _zmq_socket("PULL", hwm)
        sock.bind(addr)
        return End({"recv": sock.recv}, close=_zmq_close(ctx), keep=[sock])

    @staticmethod
    def teardown(handle: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle[0].removeprefix("ipc://"))


class ZmqPubSub(ZmqPushPull):
    """Broadcast: one publisher socket, one SUB socket per subscriber process. The publisher
    is an XPUB socket (zmq's PUB that also hands the publisher its subscriptions) so that it
    can wait until every subscriber has joined before the clock starts (a plain PUB drops what
    it sends before a subscription arrives); XPUB_NODROP makes it wait at its high-water mark
    instead of dropping, so every subscriber gets every message, as with the other
    transports. Sending is the same `send(m)` as PUB."""

    label = "pyzmq PUB/SUB over ipc:// (XPUB, lossless)"
    JOIN_SECONDS = 60

    @staticmethod
    def producer(handle: Any) -> End:
        import zmq

        addr, hwm, subscribers = handle
        ctx, sock = _zmq_socket("XPUB", hwm)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not the first
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.bind(addr)
        deadline = time.monotonic() + ZmqPubSub.JOIN_SECONDS
        joined = 0
        while joined < subscribers:
            if not sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                ctx.destroy(linger=0)
                raise TimeoutError(f"pyzmq: {joined} of {subscribers} subscribers joined")
            if sock.recv()[:1] == b"\x01":
                joined += 1
        return End({"send": sock.send}, close=_zmq_close(ctx), keep=[sock])

    @staticmethod
    def consumer(handle: Any) -> End:
        import zmq

        addr, hwm, _ = handle
        ctx, sock = _zmq_socket("SUB", hwm)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(addr)
        return End({"recv": sock.recv}, close=_zmq_close(ctx), keep=[sock])


# --- iceoryx2 ------------------------------------------------------------------------------------

_IOX_BUFFER = 64


def _iox_service(name: str) -> tuple[Any, Any]:
    import iceoryx2 as iox

    iox.set_log_level(iox.LogLevel.Error)
    node = iox.NodeBuilder.new().create(iox.ServiceType.Ipc)
    service = (
        node.service_builder(iox.ServiceName.new(name))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)  # lossless: the publisher waits instead of overwriting
        .subscriber_max_buffer_size(_IOX_BUFFER)
        .history_size(0)
        .open_or_create()
    )
    return node, service


class Iceoryx2(Transport):
    """iceoryx2's Python binding: loan a slice, fill it, send; the subscriber polls `receive()`
    (its examples poll with a sleep; here without one, as membridge). The payload is filled
    and read with one `ctypes` call each (memmove, string_at), the fastest a user can do with
    the binding's `payload().as_ptr()`; `loan_slice_uninit`, `payload` and `assume_init` are
    the binding's own Python functions."""

    label = "iceoryx2 pub/sub, copying (busy-poll)"
    SEND = """
s = loan(size)
memmove(s.payload().as_ptr(), m, size)
s.assume_init().send()
"""
    RECV = """
while (s := receive()) is None:
    pass
p = s.payload()
k = len(string_at(p.as_ptr(), p.len()))
s.delete()
"""

    @staticmethod
    def available() -> bool:
        return _installed("iceoryx2")

    JOIN_SECONDS = 60

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        return (f"memspace-bench-{os.getpid()}-{os.urandom(3).hex()}", consumers)

    @staticmethod
    def producer(handle: Any) -> End:
        import iceoryx2 as iox

        name, subscribers = handle
        node, service = _iox_service(name)
        pub = (
            service.publisher_builder()
            .initial_max_slice_len(64)
            .allocation_strategy(iox.AllocationStrategy.PowerOfTwo)
            .backpressure_strategy(iox.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        # What a subscriber misses before the publisher has connected to it is lost to it
        # (history 0): wait until every subscriber is there, then connect, before the clock.
        deadline = time.monotonic() + Iceoryx2.JOIN_SECONDS
        while service.dynamic_config.number_of_subscribers < subscribers:
            if time.monotonic() > deadline:
                pub.delete()
                raise TimeoutError(f"iceoryx2: fewer than {subscribers} subscribers joined")
            time.sleep(0.001)
        pub.update_connections()
        return End(
            {"loan": pub.loan_slice_uninit, "memmove": ctypes.memmove},
            close=pub.delete,
            keep=[node, service, pub],
        )

    @staticmethod
    def consumer(handle: Any) -> End:
        node, service = _iox_service(handle[0])
        sub = service.subscriber_builder().buffer_size(_IOX_BUFFER).create()
        return End(
            {"receive": sub.receive, "string_at": ctypes.string_at},
            close=sub.delete,
            keep=[node, service, sub],
        )


class Iceoryx2ZeroCopy(Iceoryx2):
    label = "iceoryx2 pub/sub, zero-copy receive (busy-poll)"
    zero_copy = True
    RECV = """
while (s := receive()) is None:
    pass
k = s.payload().len()
s.delete()
"""


# --- memspace ------------------------------------------------------------------------------------


class MemspaceRing(Transport):
    label = "memspace.Ring put/get"
    SEND = "put(m)"
    RECV = "k = len(get())"
    SEND_MANY = "put_many(b)"
    RECV_MANY = "ms = get_many(c)"

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        import memspace

        name = _unique("ms-bench")
        memspace.Ring.create(name, RING_BYTES).close()
        return name

    @staticmethod
    def producer(handle: Any) -> End:
        import memspace

        r = memspace.Ring.open(handle, role="producer")
        return End({"put": r.put, "try_put": r.try_put, "put_many": r.put_many}, close=r.close)

    @staticmethod
    def consumer(handle: Any) -> End:
        import memspace

        r = memspace.Ring.open(handle, role="consumer")
        names = {"get": r.get, "try_get": r.try_get, "get_many": r.get_many}
        return End({**names, "get_view": r.get_view}, close=r.close)

    @staticmethod
    def teardown(handle: Any) -> None:
        import memspace

        memspace.Ring.remove(handle)


class MemspaceRingBatched(MemspaceRing):
    label = "memspace.Ring put_many/get_many"
    batched = True


class MemspaceRingView(MemspaceRing):
    label = "memspace.Ring put/get_view (zero-copy receive)"
    zero_copy = True
    RECV = """
with get_view() as v:
    k = v.nbytes
"""


class MemspaceRingPoll(MemspaceRing):
    """memspace driven exactly as membridge is: the non-blocking calls in a busy-poll loop."""

    label = "memspace.Ring try_put/try_get (busy-poll)"
    SEND = """
while not try_put(m):
    pass
"""
    RECV = """
while (d := try_get()) is None:
    pass
k = len(d)
"""


RINGS: list[type[Transport]] = [
    MemspaceRing,
    MemspaceRingPoll,
    MemspaceRingBatched,
    MemspaceRingView,
]


class MemspaceQueue(Transport):
    label = "memspace.Queue put/get"
    SEND = "put(m)"
    RECV = "k = len(get())"
    SEND_MANY = "put_many(b)"
    RECV_MANY = "ms = get_many(c)"

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        import memspace

        name = _unique("ms-bench-q")
        memspace.Queue.create(name, RING_BYTES).close()
        return name

    @staticmethod
    def producer(handle: Any) -> End:
        import memspace

        q = memspace.Queue.open(handle)
        names = {"put": q.put, "put_many": q.put_many, "put_object": q.put_object}
        return End(names, close=q.close)

    @staticmethod
    def consumer(handle: Any) -> End:
        import memspace

        q = memspace.Queue.open(handle)
        names = {"get": q.get, "get_many": q.get_many, "get_view": q.get_view}
        return End({**names, "get_object": q.get_object}, close=q.close)

    @staticmethod
    def teardown(handle: Any) -> None:
        import memspace

        memspace.Queue.remove(handle)


class MemspaceQueueBatched(MemspaceQueue):
    label = "memspace.Queue put_many/get_many"
    batched = True


class MemspaceQueueView(MemspaceQueue):
    label = "memspace.Queue put/get_view (zero-copy receive)"
    zero_copy = True
    RECV = MemspaceRingView.RECV


QUEUES: list[type[Transport]] = [MemspaceQueue, MemspaceQueueBatched, MemspaceQueueView]


# --- objects (numpy arrays): the snippets send `m` and set `d` ---------------------------------


class MemspaceQueueObjects(MemspaceQueue):
    label = "memspace.Queue put_object/get_object"
    SEND = "put_object(m)"
    RECV = "d = get_object()"


class MpQueueObjects(MpQueue):
    label = "multiprocessing.Queue put/get (pickle)"
    RECV = "d = get()"


# --- broadcast: one publisher, every subscriber sees every message --------------------------------


class Iceoryx2Broadcast(Iceoryx2):
    """The same service as the 1P/1C rows, one subscriber port per subscriber process; the
    publisher waits for every subscriber to join before the clock starts, and for the
    slowest one while it sends (RetryUntilDelivered)."""


class MemspaceBroadcast(Transport):
    """memspace.Broadcast in blocking mode (the publisher waits for the slowest subscriber).
    No row until memspace has it: `available()` checks."""

    label = "memspace.Broadcast put/get"
    SEND = "put(m)"
    RECV = "k = len(get())"

    @staticmethod
    def available() -> bool:
        import memspace

        return hasattr(memspace, "Broadcast")

    @staticmethod
    def setup(size: int, consumers: int = 1) -> Any:
        import memspace

        name = _unique("ms-bench-bc")
        memspace.Broadcast.create(name, RING_BYTES, overflow="block").close()
        return name

    @staticmethod
    def producer(handle: Any) -> End:
        import memspace

        b = memspace.Broadcast.open(handle, role="publisher")
        return End({"put": b.put}, close=b.close)

    @staticmethod
    def consumer(handle: Any) -> End:
        import memspace

        b = memspace.Broadcast.open(handle)
        return End({"get": b.get}, close=b.close)

    @staticmethod
    def teardown(handle: Any) -> None:
        import memspace

        memspace.Broadcast.remove(handle)


BROADCASTS: list[type[Transport]] = [MemspaceBroadcast, ZmqPubSub, Iceoryx2Broadcast]


# --- asyncio: the consumer awaits each message (its End is made inside the running loop) -------


def _memspace_aio() -> Any:
    import importlib

    return importlib.import_module("memspace.aio")


class AioMemspaceQueue(MemspaceQueue):
    """memspace.aio.Queue: `await q.get()`. No row until memspace has it."""

    label = "memspace.aio.Queue `await get()`"
    is_async = True
    RECV = "k = len(await get())"

    @staticmethod
    def available() -> bool:
        import memspace

        return hasattr(memspace, "aio") or _installed("memspace.aio")

    @staticmethod
    def consumer(handle: Any) -> End:
        q = _memspace_aio().Queue.open(handle)
        return End({"get": q.get}, close=q.close)


class AioMpQueue(MpQueue):
    """What an asyncio user has today: the blocking get in the loop's default thread pool."""

    label = "multiprocessing.Queue via `loop.run_in_executor`"
    is_async = True
    RECV = "k = len(await run_in_executor(None, get))"

    @staticmethod
    def consumer(handle: Any) -> End:
        import asyncio

        loop = asyncio.get_running_loop()
        return End({"run_in_executor": loop.run_in_executor, "get": handle.get})


AIO: list[type[Transport]] = [AioMemspaceQueue, AioMpQueue]


PEERS: list[type[Transport]] = [
    Membridge,
    FasterFifo,
    FasterFifoBatched,
    MpPipe,
    MpQueue,
    PosixMq,
    ZmqPushPull,
    Iceoryx2,
    Iceoryx2ZeroCopy,
]

ALL: dict[str, type[Transport]] = {
    t.__name__: t
    for t in [
        *RINGS,
        *QUEUES,
        *PEERS,
        *BROADCASTS,
        *AIO,
        MemspaceQueueObjects,
        MpQueueObjects,
    ]
}


def find(name: str) -> type[Transport]:
    """A transport by its class name (what the measuring processes are told)."""
    return ALL[name]
