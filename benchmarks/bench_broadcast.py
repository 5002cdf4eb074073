"""One publisher process to 4 subscriber processes: messages per second to each subscriber.

Every subscriber receives every message, losslessly: the publisher waits for the slowest one
(memspace.Broadcast with overflow="block"; pyzmq through an XPUB socket over ipc:// with
XPUB_NODROP, so that a full pipe blocks the publisher instead of dropping; iceoryx2 with
RetryUntilDelivered). Every process is spawned afresh per repetition; the subscribers join
first (the publisher waits for every zmq subscription), then the parent stamps the release on
CLOCK_MONOTONIC and each subscriber stamps its last message: figure = N / (the last
subscriber's last message - the release), the rate at which every subscriber got everything.

Every transport runs the same loop, written out inline in `_publisher` and `_subscriber` as its
user would write it: a bound method called once per message (memspace's `put`/`get`, zmq's
`send`/`recv`), or for iceoryx2, whose subscriber is polled, the polling loop itself (no
Python frame per message that memspace does not pay too). Batched rows move lists of up to 256
messages per call (at most a quarter of the area); zero-copy rows read each message in place
and look only at its length.

The last table is the overwrite mode's promise: its publisher's rate (64 B, `put` in a loop,
in-process) with no subscriber, and with one subscriber process that joined and was stopped
(SIGSTOP): the two should be equal, since an overwriting publisher never looks at anyone.

With 4 subscribers there are five processes on a 2-core machine: busy-polling subscribers
(iceoryx2) compete with the publisher for the cores, blocking ones sleep.

Run: python benchmarks/run.py broadcast   (MEMSPACE_BENCH_QUICK=1: a smoke run)
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from _harness import Result, measure, table

QUICK = os.environ.get("MEMSPACE_BENCH_QUICK") == "1"
SIZES = [64, 1 << 20]
SUBSCRIBERS = 4
REPS = 1 if QUICK else 5
AREA = 8 << 20  # bytes of the broadcast's area (and the size class iceoryx2 is given)
BATCH = 256
STALL_SECONDS = 120
IOX_BUFFER = 64


def count_for(size: int) -> int:
    n = {64: 200_000, 1 << 20: 500}[size]
    return max(n // 100, 5) if QUICK else n


def batch_for(size: int) -> int:
    return max(1, min(BATCH, AREA // 4 // (size + 64)))


# --- the transports: setup in the parent, then endpoints in the spawned processes --------------
#
# kind "memspace": put/get (or put_many/get_many, get_view); "zmq": send/recv; "iox": loan and
# send / poll receive.


class Transport:
    label = ""
    kind = ""
    batched = False
    zero_copy = False

    @staticmethod
    def setup() -> Any:
        return f"bench-bcast-{os.getpid()}-{os.urandom(3).hex()}"

    @staticmethod
    def teardown(handle: Any) -> None:
        return None


class MemspaceBroadcast(Transport):
    label = "memspace.Broadcast put/get"
    kind = "memspace"

    @staticmethod
    def setup() -> Any:
        import memspace

        name = "/" + Transport.setup()
        memspace.Broadcast.create(name, AREA, overflow="block").close()
        return name

    @staticmethod
    def teardown(handle: Any) -> None:
        import memspace

        memspace.Broadcast.remove(handle)


class MemspaceBroadcastBatched(MemspaceBroadcast):
    label = "memspace.Broadcast put_many/get_many"
    batched = True


class MemspaceBroadcastView(MemspaceBroadcast):
    label = "memspace.Broadcast put/get_view (zero-copy receive)"
    zero_copy = True


class ZmqPubSub(Transport):
    label = "pyzmq XPUB/SUB ipc:// send/recv"
    kind = "zmq"

    @staticmethod
    def setup() -> Any:
        import tempfile

        return os.path.join(tempfile.gettempdir(), Transport.setup() + ".ipc")

    @staticmethod
    def teardown(handle: Any) -> None:
        if os.path.exists(handle):
            os.unlink(handle)


class Iceoryx2(Transport):
    label = "iceoryx2 pub/sub, copying (busy-poll)"
    kind = "iox"


class Iceoryx2ZeroCopy(Iceoryx2):
    label = "iceoryx2 pub/sub, zero-copy receive (busy-poll)"
    zero_copy = True


TRANSPORTS: list[type[Transport]] = [
    MemspaceBroadcast,
    MemspaceBroadcastBatched,
    MemspaceBroadcastView,
    ZmqPubSub,
    Iceoryx2,
    Iceoryx2ZeroCopy,
]


def _find(name: str) -> type[Transport]:
    return next(t for t in TRANSPORTS if t.__name__ == name)


def _iox_service(name: str) -> Any:
    import iceoryx2 as iox

    iox.set_log_level(iox.LogLevel.Error)
    node = iox.NodeBuilder.new().create(iox.ServiceType.Ipc)
    service = (
        node.service_builder(iox.ServiceName.new(name))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)  # lossless: the publisher waits instead of overwriting
        .subscriber_max_buffer_size(IOX_BUFFER)
        .max_subscribers(SUBSCRIBERS + 1)
        .max_nodes(SUBSCRIBERS + 2)
        .history_size(0)
        .open_or_create()
    )
    return node, service


# --- the two loops ------------------------------------------------------------------------------


def _publisher(name: str, handle: Any, size: int, n: int, subs: int, ctl: Connection) -> None:
    t = _find(name)
    data = os.urandom(size)
    keep: list[Any] = []
    if t.kind == "memspace":
        import memspace

        b = memspace.Broadcast.open(handle, role="publisher")
        keep.append(b)
        ctl.send("ready")
        ctl.recv()
        if t.batched:
            per = batch_for(size)
            batch = [data] * per
            put_many = b.put_many
            sent = 0
            while sent < n:
                k = min(per, n - sent)
                put_many(batch if k == per else batch[:k])
                sent += k
        else:
            put = b.put
            for _ in range(n):
                put(data)
    elif t.kind == "zmq":
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # one subscription message per subscriber
        sock.bind(f"ipc://{handle}")
        for _ in range(subs):  # one subscription message per subscriber: all have joined
            sock.recv()
        keep.extend([ctx, sock])
        ctl.send("ready")
        ctl.recv()
        send = sock.send
        for _ in range(n):
            send(data)
    else:
        import iceoryx2 as iox

        node, service = _iox_service(handle)
        pub = (
            service.publisher_builder()
            .initial_max_slice_len(size)
            .allocation_strategy(iox.AllocationStrategy.PowerOfTwo)
            .backpressure_strategy(iox.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        keep.extend([node, service, pub])
        ctl.send("ready")
        ctl.recv()
        loan = pub.loan_slice_uninit
        memmove = ctypes.memmove
        for _ in range(n):
            sample = loan(size)
            memmove(sample.payload().as_ptr(), data, size)
            sample.assume_init().send()
    ctl.recv()  # stay alive until every subscriber has everything
    if t.kind == "iox":
        keep[2].delete()


def _subscriber(name: str, handle: Any, size: int, n: int, ctl: Connection) -> None:
    t = _find(name)
    clock = time.monotonic
    keep: list[Any] = []
    if t.kind == "memspace":
        import memspace

        b = memspace.Broadcast.open(handle)  # subscribed from here on
        keep.append(b)
        ctl.send("ready")
        if t.batched:
            per = batch_for(size)
            get_many = b.get_many
            got = 0
            while got < n:
                for m in get_many(min(per, n - got)):
                    if len(m) != size:
                        raise AssertionError("wrong length")
                    got += 1
        elif t.zero_copy:
            view = b.get_view
            for _ in range(n):
                with view() as mv:  # read in place: nothing copied
                    if mv.nbytes != size:
                        raise AssertionError("wrong length")
        else:
            get = b.get
            for _ in range(n):
                if len(get()) != size:
                    raise AssertionError("wrong length")
    elif t.kind == "zmq":
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"ipc://{handle}")
        keep.extend([ctx, sock])
        ctl.send("ready")
        recv = sock.recv
        for _ in range(n):
            if len(recv()) != size:
                raise AssertionError("wrong length")
    else:
        node, service = _iox_service(handle)
        sub = service.subscriber_builder().buffer_size(IOX_BUFFER).create()
        keep.extend([node, service, sub])
        ctl.send("ready")
        receive = sub.receive
        string_at = ctypes.string_at
        got = 0
        while got < n:  # iceoryx2's subscriber is polled: the caller spins
            sample = receive()
            if sample is None:
                continue
            payload = sample.payload()
            # Zero-copy: read in place, nothing copied; else one copy out, as get() makes.
            k = payload.len() if t.zero_copy else len(string_at(payload.as_ptr(), payload.len()))
            sample.delete()
            if k != size:
                raise AssertionError("wrong length")
            got += 1
    ctl.send(clock())
    if t.kind == "iox":
        keep[2].delete()


_PROCS: list[mp.process.BaseProcess] = []


def _start(target: Any, args: tuple[Any, ...]) -> Connection:
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=target, args=(*args, theirs))
    p.start()
    _PROCS.append(p)
    return mine


def _ready(c: Connection, what: str) -> None:
    if not c.poll(STALL_SECONDS):
        raise TimeoutError(f"{what}: an endpoint did not start")
    assert c.recv() == "ready"


def _reap() -> None:
    for p in _PROCS:
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    _PROCS.clear()


def throughput(t: type[Transport], size: int, subs: int = SUBSCRIBERS) -> float:
    """Messages per second received by each subscriber (all of them got all of them)."""
    n = count_for(size)
    handle = t.setup()
    try:
        sub_ctl = [_start(_subscriber, (t.__name__, handle, size, n)) for _ in range(subs)]
        for c in sub_ctl:
            _ready(c, t.label)
        pub_ctl = _start(_publisher, (t.__name__, handle, size, n, subs))
        _ready(pub_ctl, t.label)
        release = time.monotonic()
        pub_ctl.send("go")
        last = 0.0
        for c in sub_ctl:
            if not c.poll(STALL_SECONDS):
                raise TimeoutError(f"{t.label}: {size} B stalled")
            last = max(last, c.recv())
        pub_ctl.send("done")
    finally:
        _reap()
        t.teardown(handle)
    return n / (last - release)


# --- overwrite mode: the publisher's rate with and without a stalled subscriber -----------------


def _stalled_subscriber(name: str, ctl: Connection) -> None:
    import memspace

    b = memspace.Broadcast.open(name)
    ctl.send("ready")
    ctl.recv()  # (stopped by the parent before it gets here again)
    b.close()


def overwrite_rate(stalled: bool) -> float:
    import memspace

    n = count_for(64) * 5
    name = "/" + Transport.setup()
    b = memspace.Broadcast.create(name, 1 << 20, overflow="overwrite")
    ctl = None
    try:
        if stalled:
            ctl = _start(_stalled_subscriber, (name,))
            _ready(ctl, "stalled subscriber")
            pid = _PROCS[-1].pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
        data = os.urandom(64)
        put = b.put
        t0 = time.perf_counter()
        for _ in range(n):
            put(data)
        elapsed = time.perf_counter() - t0
        if stalled:
            assert b.inspect()["subscribers"][0]["lag_messages"] == n, "the subscriber was stalled"
    finally:
        if ctl is not None:
            pid = _PROCS[-1].pid
            assert pid is not None
            os.kill(pid, signal.SIGCONT)
            ctl.send("done")
            _reap()
        b.close()
        memspace.Broadcast.remove(name)
    return n / elapsed


def main() -> str:
    sections = []
    stalled: list[str] = []
    for size in SIZES:
        rows: list[Result] = []
        for t in TRANSPORTS:
            print(f"  {t.label} {size} B x {SUBSCRIBERS}", file=sys.stderr, flush=True)
            try:
                rows.append(measure(t.label, lambda t=t, s=size: throughput(t, s), REPS, warmup=0))
            except (TimeoutError, OSError, AssertionError) as e:
                stalled.append(f"{t.label} at {size} B: {e}")
        ref = next((r for r in rows if r.label == ZmqPubSub.label), None)
        label = f"{size} B" if size < 1024 else "1 MiB"
        sections.append(
            table(
                f"{label} messages, 1 publisher -> {SUBSCRIBERS} subscribers",
                "msg/s per subscriber",
                rows,
                ref,
                "pyzmq",
            )
        )
    print("  overwrite-mode publisher", file=sys.stderr, flush=True)
    none = measure("overwrite mode, no subscriber", lambda: overwrite_rate(False), REPS)
    one = measure("overwrite mode, one stalled subscriber", lambda: overwrite_rate(True), REPS)
    sections.append(
        table("64 B, publisher alone (put in a loop)", "msg/s", [none, one], none, "none")
    )
    if stalled:
        sections.append("Stalled or failed (no row): " + "; ".join(stalled))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
