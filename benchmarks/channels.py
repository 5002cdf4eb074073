"""Two-process channel endpoints for the throughput and ping-pong benchmarks.

Each transport is a class with the same few static methods, so that one driver measures them
all the same way: `setup()` in the parent returns a picklable handle; `producer(handle)` and
`consumer(handle)` (in their processes) return endpoint objects with `send(bytes)`,
`send_many(list)`, `recv() -> bytes` and `recv_many(n) -> list`; `teardown(handle)` cleans up.
A transport that busy-polls says so in its label: it burns a core while it waits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from typing import Any

RING_BYTES = 8 << 20


class Endpoint:
    """Default batch methods in terms of single ones."""

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def recv(self) -> bytes:
        raise NotImplementedError

    def send_many(self, items: list[bytes]) -> None:
        for item in items:
            self.send(item)

    def recv_many(self, n: int) -> list[bytes]:
        return [self.recv() for _ in range(n)]

    def close(self) -> None:
        """Release the endpoint."""


class Transport:
    label = ""
    batched = False
    zero_copy = False  # the consumer reads in place and hands back only a length
    max_size: int | None = None  # largest message the transport can carry
    max_size_reason = ""  # where max_size comes from (said when a size is skipped)

    @staticmethod
    def setup() -> Any:
        return None

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        raise NotImplementedError

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        raise NotImplementedError

    @staticmethod
    def teardown(handle: Any) -> None:
        return None


# --- multiprocessing ---------------------------------------------------------------------------


class _MpQueueEnd(Endpoint):
    def __init__(self, q: Any) -> None:
        self.q = q

    def send(self, data: bytes) -> None:
        self.q.put(data)

    def recv(self) -> bytes:
        data: bytes = self.q.get()
        return data


class MpQueue(Transport):
    label = "multiprocessing.Queue"

    @staticmethod
    def setup() -> Any:
        return mp.get_context("spawn").Queue(maxsize=1024)

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _MpQueueEnd(handle)

    consumer = producer


class _PipeEnd(Endpoint):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send(self, data: bytes) -> None:
        self.conn.send_bytes(data)

    def recv(self) -> bytes:
        data: bytes = self.conn.recv_bytes()
        return data


class MpPipe(Transport):
    label = "multiprocessing.Pipe (send_bytes)"

    @staticmethod
    def setup() -> Any:
        return mp.get_context("spawn").Pipe(duplex=False)

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _PipeEnd(handle[1])

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _PipeEnd(handle[0])


# --- faster-fifo -------------------------------------------------------------------------------


class _FifoEnd(Endpoint):
    def __init__(self, q: Any) -> None:
        self.q = q

    def send(self, data: bytes) -> None:
        self.q.put(data, timeout=1e9)

    # faster-fifo's get grows its receive buffer when a message does not fit, then retries
    # *without blocking*: with several consumers another one may have taken the message, and
    # the blocking get raises queue.Empty. Such an Empty (never a timeout here) means wait again.
    def recv(self) -> bytes:
        while True:
            try:
                data: bytes = self.q.get(timeout=1e9)
                return data
            except queue.Empty:
                pass

    def send_many(self, items: list[bytes]) -> None:
        self.q.put_many(items, timeout=1e9)

    def recv_many(self, n: int) -> list[bytes]:
        while True:
            try:
                out: list[bytes] = self.q.get_many(max_messages_to_get=n, timeout=1e9)
                return out
            except queue.Empty:
                pass


class FasterFifo(Transport):
    label = "faster_fifo put/get"

    @staticmethod
    def setup() -> Any:
        import faster_fifo

        return faster_fifo.Queue(max_size_bytes=RING_BYTES)

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _FifoEnd(handle)

    consumer = producer


class FasterFifoBatched(FasterFifo):
    label = "faster_fifo put_many/get_many"
    batched = True


# --- membridge ---------------------------------------------------------------------------------


class _MembridgeEnd(Endpoint):
    def __init__(self, name: str) -> None:
        import membridge

        self.shm = membridge.SharedMemory.open(name)
        self.ring = self.shm.spsc()

    def send(self, data: bytes) -> None:
        push = self.ring.push
        while not push(data):  # membridge never blocks: the caller spins
            pass

    def recv(self) -> bytes:
        pop = self.ring.pop
        while True:
            data = pop()
            if data is not None:
                return bytes(data)


class Membridge(Transport):
    label = "membridge SpscRingBuffer (busy-poll)"

    @staticmethod
    def setup() -> Any:
        import membridge

        name = f"/mb-bench-{os.getpid()}-{os.urandom(3).hex()}"
        # The creator's spsc() writes the ring header; openers' spsc() read it.
        membridge.SharedMemory.create(name, RING_BYTES + 24).spsc()
        return name

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _MembridgeEnd(handle)

    consumer = producer

    @staticmethod
    def teardown(handle: Any) -> None:
        import membridge

        membridge.SharedMemory.remove(handle)


# --- posix_ipc -----------------------------------------------------------------------------------


class _MqEnd(Endpoint):
    def __init__(self, name: str) -> None:
        import posix_ipc

        self.mq = posix_ipc.MessageQueue(name)

    def send(self, data: bytes) -> None:
        self.mq.send(data)

    def recv(self) -> bytes:
        data: bytes = self.mq.receive()[0]
        return data

    def close(self) -> None:
        self.mq.close()


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

    @staticmethod
    def setup() -> Any:
        import posix_ipc

        name = f"/mq-bench-{os.getpid()}-{os.urandom(3).hex()}"
        mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, max_message_size=PosixMq.max_size)
        mq.close()
        return name

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _MqEnd(handle)

    consumer = producer

    @staticmethod
    def teardown(handle: Any) -> None:
        import posix_ipc

        posix_ipc.unlink_message_queue(handle)


# --- iceoryx2 ------------------------------------------------------------------------------------


def _iox_service(name: str) -> tuple[Any, Any]:
    import ctypes

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


_IOX_BUFFER = 64


class _IoxPublisher(Endpoint):
    def __init__(self, name: str) -> None:
        import iceoryx2 as iox

        self.node, self.service = _iox_service(name)
        self.pub = (
            self.service.publisher_builder()
            .initial_max_slice_len(64)
            .allocation_strategy(iox.AllocationStrategy.PowerOfTwo)
            .backpressure_strategy(iox.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )

    def send(self, data: bytes) -> None:
        import ctypes

        sample = self.pub.loan_slice_uninit(len(data))
        ctypes.memmove(sample.payload().as_ptr(), data, len(data))
        sample.assume_init().send()

    def close(self) -> None:
        self.pub.delete()


class _IoxSubscriber(Endpoint):
    def __init__(self, name: str, copy: bool = True) -> None:
        self.node, self.service = _iox_service(name)
        self.sub = self.service.subscriber_builder().buffer_size(_IOX_BUFFER).create()
        self.copy = copy

    def recv(self) -> bytes:
        import ctypes

        receive = self.sub.receive
        while True:  # iceoryx2's subscriber is polled: the caller spins
            sample = receive()
            if sample is not None:
                payload = sample.payload()
                data = ctypes.string_at(payload.as_ptr(), payload.len())
                sample.delete()
                return data

    def close(self) -> None:
        self.sub.delete()


class Iceoryx2(Transport):
    label = "iceoryx2 pub/sub, copying (busy-poll)"

    @staticmethod
    def setup() -> Any:
        return f"memspace-bench-{os.getpid()}-{os.urandom(3).hex()}"

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _IoxPublisher(handle)

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _IoxSubscriber(handle)


class _IoxZeroCopySubscriber(_IoxSubscriber):
    def recv(self) -> bytes:
        receive = self.sub.receive
        while True:
            sample = receive()
            if sample is not None:
                n = sample.payload().len()  # read in place: nothing copied
                sample.delete()
                return _Sized(n)  # type: ignore[return-value]


class Iceoryx2ZeroCopy(Iceoryx2):
    label = "iceoryx2 pub/sub, zero-copy receive (busy-poll)"
    zero_copy = True

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _IoxZeroCopySubscriber(handle)


class _Sized:
    """What a zero-copy receive returns to the driver: only the length of what it saw."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


# --- memspace ------------------------------------------------------------------------------------


class _RingEnd(Endpoint):
    def __init__(self, name: str, role: str) -> None:
        import memspace

        self.ring = memspace.Ring.open(name, role=role)  # type: ignore[arg-type]
        self.send = self.ring.put  # type: ignore[method-assign]
        self.recv = self.ring.get  # type: ignore[method-assign]

    def send_many(self, items: list[bytes]) -> None:
        self.ring.put_many(items)

    def recv_many(self, n: int) -> list[bytes]:
        return self.ring.get_many(n)

    def close(self) -> None:
        self.ring.close()


class _RingViewEnd(_RingEnd):
    def __init__(self, name: str, role: str) -> None:
        super().__init__(name, role)
        view = self.ring.get_view

        def recv() -> bytes:
            with view() as mv:  # read in place: nothing copied
                return _Sized(mv.nbytes)  # type: ignore[return-value]

        self.recv = recv  # type: ignore[method-assign]


class MemspaceRing(Transport):
    label = "memspace.Ring put/get"

    @staticmethod
    def setup() -> Any:
        import memspace

        name = f"/ms-bench-{os.getpid()}-{os.urandom(3).hex()}"
        memspace.Ring.create(name, RING_BYTES).close()
        return name

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _RingEnd(handle, "producer")

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _RingEnd(handle, "consumer")

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

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _RingViewEnd(handle, "consumer")


RINGS: list[type[Transport]] = [MemspaceRing, MemspaceRingBatched, MemspaceRingView]


class _QueueEnd(Endpoint):
    def __init__(self, name: str) -> None:
        import memspace

        self.q = memspace.Queue.open(name)
        self.send = self.q.put  # type: ignore[method-assign]
        self.recv = self.q.get  # type: ignore[method-assign]

    def send_many(self, items: list[bytes]) -> None:
        self.q.put_many(items)

    def recv_many(self, n: int) -> list[bytes]:
        return self.q.get_many(n)

    def close(self) -> None:
        self.q.close()


class MemspaceQueue(Transport):
    label = "memspace.Queue put/get"

    @staticmethod
    def setup() -> Any:
        import memspace

        name = f"/ms-bench-q-{os.getpid()}-{os.urandom(3).hex()}"
        memspace.Queue.create(name, RING_BYTES).close()
        return name

    @staticmethod
    def producer(handle: Any) -> Endpoint:
        return _QueueEnd(handle)

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _QueueEnd(handle)

    @staticmethod
    def teardown(handle: Any) -> None:
        import memspace

        memspace.Queue.remove(handle)


class MemspaceQueueBatched(MemspaceQueue):
    label = "memspace.Queue put_many/get_many"
    batched = True


class _QueueViewEnd(_QueueEnd):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        view = self.q.get_view

        def recv() -> bytes:
            with view() as mv:  # read in place: nothing copied
                return _Sized(mv.nbytes)  # type: ignore[return-value]

        self.recv = recv  # type: ignore[method-assign]


class MemspaceQueueView(MemspaceQueue):
    label = "memspace.Queue put/get_view (zero-copy receive)"
    zero_copy = True

    @staticmethod
    def consumer(handle: Any) -> Endpoint:
        return _QueueViewEnd(handle)


QUEUES: list[type[Transport]] = [MemspaceQueue, MemspaceQueueBatched, MemspaceQueueView]

PEERS: list[type[Transport]] = [
    Membridge,
    FasterFifo,
    FasterFifoBatched,
    MpPipe,
    MpQueue,
    PosixMq,
    Iceoryx2,
    Iceoryx2ZeroCopy,
]
