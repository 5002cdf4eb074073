"""memspace.aio: every channel for asyncio. The API, timeouts and cancellation (never a lost
message), many coroutines on one queue, real producer and consumer processes, the waiter
thread (one per loop, no polling: idle CPU), Ctrl-C, and the fallback without futex_waitv."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import pickle
import queue
import random
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import memspace
import pytest
from memspace import _memspace, aio

from tests.helpers import StartChild, run_child

T = TypeVar("T")

# A wait this long means something is stuck: fail instead of hanging.
STUCK = 30.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs `coro` in a new event loop, failing (not hanging) if it is stuck."""
    return asyncio.run(asyncio.wait_for(coro, STUCK))


def waiter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "memspace-aio-waiter"]


@pytest.fixture(params=["futex_waitv", "helper threads"])
def waiter_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the native waiter as it is here, and with the fallback of kernels
    without futex_waitv (a helper thread per watched word)."""
    if request.param == "helper threads":
        monkeypatch.setattr(aio, "_Waiter", functools.partial(_memspace._Waiter, threads=True))
    kind: str = request.param
    return kind


PRODUCER = """
import sys, struct, time, memspace
q = memspace.{cls}.open(sys.argv[1])
n, pause = int(sys.argv[2]), float(sys.argv[3])
for i in range(n):
    q.put(struct.pack("<I", i), timeout=30)
    if pause and i % 10 == 0:
        time.sleep(pause)
"""


# --- the API ------------------------------------------------------------------------------


def test_queue_round_trip_and_the_synchronous_rest(shm_name: str) -> None:
    aq = aio.Queue.create(shm_name, 4096, max_message_size=512)
    assert isinstance(aq.sync, memspace.Queue)
    assert (aq.name, aq.path, aq.capacity, aq.max_message_size) == (shm_name, None, 4096, 512)

    async def main() -> None:
        await aq.put(b"one")
        await aq.put(bytearray(b"two"))
        assert await aq.put_many([b"three", memoryview(b"four")]) == 2
        assert aq.qsize() == 4
        assert not aq.empty()
        assert not aq.full()
        assert await aq.get() == b"one"
        assert aq.get_nowait() == b"two"
        assert await aq.get_many(10) == [b"three", b"four"]
        assert aq.try_get() is None
        with pytest.raises(aio.Empty):
            aq.get_nowait()
        await aq.put_object({"k": [1, 2]})
        assert await aq.get_object() == {"k": [1, 2]}
        await aq.put(b"viewed")
        async with aq.get_view() as mv:
            assert bytes(mv) == b"viewed"
        assert aq.empty()
        assert aq.try_put(b"x")
        aq.put_nowait(b"y")
        assert aq.clear() == 2

    run(main())
    assert "Queue" in repr(aq)
    aq.close()
    assert aq.closed
    aio.Queue.remove(shm_name)


def test_wrapping_an_open_handle_and_pickling(shm_name: str) -> None:
    q = memspace.Queue.create(shm_name, 4096)
    aq = aio.Queue(q)
    assert aq.sync is q
    with pytest.raises(TypeError):
        aio.Queue(b"not a queue")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        aio.Ring(q)  # type: ignore[arg-type, unused-ignore]
    again = pickle.loads(pickle.dumps(aq))
    assert isinstance(again, aio.Queue)
    assert again.name == shm_name
    q.put(b"through the other handle")

    async def main() -> bytes:
        return await again.get()

    assert run(main()) == b"through the other handle"
    again.close()
    q.close()


def test_ring_round_trip(shm_name: str) -> None:
    ar = aio.Ring.create(shm_name, 4096)

    async def main() -> None:
        await ar.put(b"a")
        assert await ar.put_many([b"b", b"c"]) == 2
        assert len(ar) == 3
        assert await ar.get() == b"a"
        assert await ar.get_many(5) == [b"b", b"c"]
        await ar.put_value(3.5)
        assert await ar.get_value() == 3.5
        async with ar.reserve(5) as mv:
            mv[:] = b"hello"
        async with ar.get_view() as view:
            assert bytes(view) == b"hello"
        assert ar.try_get() is None
        assert ar.role == "both"
        assert ar.free == ar.capacity

    run(main())
    ar.close()


def test_timeouts_raise_the_queue_and_the_asyncio_exception(shm_name: str) -> None:
    aq = aio.Queue.create(shm_name, 256)

    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(queue.Empty):
            await aq.get(timeout=0.1)
        assert time.monotonic() - t0 >= 0.09
        with pytest.raises(asyncio.QueueEmpty):
            await aq.get_many(3, timeout=0)
        with pytest.raises(aio.Empty):
            await aq.get_object(timeout=0.01)
        with pytest.raises(ValueError, match="timeout"):
            await aq.get(timeout=-1)
        while aq.try_put(b"x" * 100):
            pass
        with pytest.raises(queue.Full):
            await aq.put(b"x" * 100, timeout=0.05)
        with pytest.raises(asyncio.QueueFull):
            await aq.put_many([b"x" * 100] * 3, timeout=0)
        with pytest.raises(aio.Full):
            aq.put_nowait(b"x" * 100)
        # asyncio's own timeouts cancel the call: TimeoutError, and nothing is consumed.
        aq.clear()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aq.get(), 0.05)
        await aq.put(b"kept")
        assert await asyncio.wait_for(aq.get(), 1) == b"kept"

    run(main())
    aq.close()


def test_close_ends_async_for_and_wakes_waiters(shm_name: str) -> None:
    aq = aio.Queue.create(shm_name, 4096)

    async def main() -> None:
        got: list[bytes] = []

        async def consume() -> None:
            async for m in aq:
                got.append(m)

        async def blocked_get() -> None:
            with pytest.raises(ValueError, match="closed"):
                await aq.get()

        tasks = [asyncio.ensure_future(consume()), asyncio.ensure_future(blocked_get())]
        await aq.put(b"1")
        await aq.put(b"2")
        while len(got) < 2:
            await asyncio.sleep(0.01)
        aq.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert got == [b"1", b"2"]

    run(main())


def live_attachments(name: str) -> int:
    """Live attachments of the queue `name`, the handle used to look excluded."""
    with memspace.Queue.open(name) as q:
        return sum(1 for a in q.inspect()["attached"] if a["alive"]) - 1


def test_close_releases_the_channel_even_after_waits(shm_name: str) -> None:
    """close() lets go of the channel (its slot and mapping) at once, as the synchronous
    close does, though the handle's coroutines waited on it (and were waiting at close)."""
    owner = memspace.Queue.create(shm_name, 4096)
    handles = [aio.Queue.open(shm_name) for _ in range(3)]
    assert live_attachments(shm_name) == 4

    async def main() -> None:
        for h in handles:
            with pytest.raises(aio.Empty):
                await h.get(timeout=0.02)
        waiting = [asyncio.ensure_future(h.get()) for h in handles]
        await asyncio.sleep(0.05)
        for h in handles:
            h.close()
        for t in waiting:
            with pytest.raises(ValueError, match="closed"):
                await t

    run(main())
    gc.collect()  # awaited tasks and their exceptions' tracebacks form cycles (asyncio)
    deadline = time.monotonic() + 5  # the waiter thread lets go of what it slept on
    while live_attachments(shm_name) > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live_attachments(shm_name) == 1
    owner.close()


# --- waiting across processes --------------------------------------------------------------


@pytest.mark.parametrize("cls", ["Queue", "Ring"])
def test_consumer_awaits_a_producer_process(
    make_name: Callable[[str], str], start_child: StartChild, waiter_kind: str, cls: str
) -> None:
    name = make_name(cls.lower())
    ch: Any = getattr(aio, cls).create(name, 1024)
    n = 3000
    proc = start_child(PRODUCER.format(cls=cls), name, str(n), "0.002")

    async def main() -> list[int]:
        got = []
        for _ in range(n):
            got.append(struct.unpack("<I", await ch.get(timeout=STUCK))[0])
        return got

    assert run(main()) == list(range(n))
    assert proc.wait(STUCK) == 0
    ch.close()


def test_put_awaits_room_from_a_consumer_process(
    shm_name: str, start_child: StartChild, waiter_kind: str
) -> None:
    aq = aio.Queue.create(shm_name, 256)
    n = 500
    code = """
        import sys, time, memspace
        q = memspace.Queue.open(sys.argv[1])
        time.sleep(0.2)
        got = [q.get(timeout=30) for _ in range(int(sys.argv[2]))]
        assert got == [i.to_bytes(4, "little") * 10 for i in range(int(sys.argv[2]))]
    """
    proc = start_child(code, shm_name, str(n))

    async def main() -> None:
        while aq.try_put(b"\0" * 100):  # full before the consumer starts
            pass
        aq.clear()
        for i in range(n):
            await aq.put(i.to_bytes(4, "little") * 10, timeout=STUCK)

    run(main())
    assert proc.wait(STUCK) == 0
    aq.close()


def test_put_many_waits_for_room_for_all(shm_name: str, start_child: StartChild) -> None:
    aq = aio.Queue.create(shm_name, 512)
    code = """
        import sys, memspace
        q = memspace.Queue.open(sys.argv[1])
        got = [q.get(timeout=30) for _ in range(200)]
        assert got == [b"%03d" % i for i in range(200)], got
    """
    proc = start_child(code, shm_name)

    async def main() -> int:
        return await aq.put_many([b"%03d" % i for i in range(200)], timeout=STUCK)

    assert run(main()) == 200
    assert proc.wait(STUCK) == 0
    aq.close()


def test_many_coroutines_on_one_queue(
    make_name: Callable[[str], str], start_child: StartChild
) -> None:
    """Fifty coroutines of one loop share a queue fed by two producer processes: every message
    exactly once, FIFO per producer for each consumer, one waiter thread for all of them."""
    name = make_name("many")
    aq = aio.Queue.create(name, 2048)
    n = 2000
    code = """
        import sys, struct, time, memspace
        q = memspace.Queue.open(sys.argv[1])
        p = int(sys.argv[2])
        for i in range(int(sys.argv[3])):
            q.put(struct.pack("<II", p, i), timeout=30)
            if i % 100 == 0:
                time.sleep(0.005)
    """
    procs = [start_child(code, name, str(p), str(n)) for p in range(2)]
    threads_before = threading.active_count()

    async def main() -> list[list[tuple[int, int]]]:
        results: list[list[tuple[int, int]]] = [[] for _ in range(50)]
        peak = 0

        async def consume(c: int) -> None:
            nonlocal peak
            while True:
                try:
                    m = await aq.get(timeout=2.0)
                except aio.Empty:
                    return
                results[c].append(struct.unpack("<II", m))
                peak = max(peak, threading.active_count())

        await asyncio.gather(*(consume(c) for c in range(50)))
        assert peak <= threads_before + 1, "one waiter thread for the loop, none per call"
        return results

    results = run(main())
    for proc in procs:
        assert proc.wait(STUCK) == 0
    seen = sorted(x for r in results for x in r)
    assert seen == sorted((p, i) for p in range(2) for i in range(n))
    for r in results:
        for p in range(2):
            mine = [i for q, i in r if q == p]
            assert mine == sorted(mine)
    assert sum(1 for r in results if r) > 1, "the work was shared"
    aq.close()


def test_cancellation_mid_wait_loses_no_message(shm_name: str, start_child: StartChild) -> None:
    """Gets cancelled at random moments (by cancel() and by wait_for timeouts) while a
    producer process sends: every message is received by a get that returned, or is still in
    the queue; none twice."""
    aq = aio.Queue.create(shm_name, 1024)
    n = 3000
    proc = start_child(PRODUCER.format(cls="Queue"), shm_name, str(n), "0.003")
    rng = random.Random(7)

    async def main() -> list[int]:
        got: list[int] = []
        cancelled = 0

        async def getter() -> None:
            nonlocal cancelled
            while len(got) < n:
                t = asyncio.ensure_future(aq.get(timeout=5))
                r = rng.random()
                if r < 0.3:
                    await asyncio.sleep(rng.random() * 0.002)
                    t.cancel()
                elif r < 0.5:
                    try:
                        await asyncio.wait_for(asyncio.shield(t), rng.random() * 0.002)
                    except asyncio.TimeoutError:
                        t.cancel()
                try:
                    m = await t
                except asyncio.CancelledError:
                    cancelled += 1
                    continue
                except aio.Empty:
                    return
                got.append(struct.unpack("<I", m)[0])

        await asyncio.gather(*(getter() for _ in range(8)))
        assert cancelled > 50, "the test cancelled gets mid-wait"
        return got

    got = run(main())
    assert proc.wait(STUCK) == 0
    while (m := aq.try_get()) is not None:
        got.append(struct.unpack("<I", m)[0])
    assert sorted(got) == list(range(n))
    aq.close()


def test_a_consumer_killed_holding_messages_does_not_strand_a_put(
    shm_name: str, start_child: StartChild
) -> None:
    """The queue is full and a consumer holds the oldest message when it is SIGKILLed: no
    notify ever comes, and the awaiting put still gets the space (the waiter's recheck)."""
    aq = aio.Queue.create(shm_name, 256)
    code = """
        import sys, time, memspace
        q = memspace.Queue.open(sys.argv[1])
        view = q.get_view()
        mv = view.__enter__()
        print("holding", flush=True)
        time.sleep(60)
    """
    aq.sync.put(b"held" * 20)
    proc = start_child(code, shm_name, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    while aq.try_put(b"x" * 20):
        pass

    async def main() -> None:
        put = asyncio.ensure_future(aq.put(b"y" * 80, timeout=STUCK))
        await asyncio.sleep(0.2)
        assert not put.done()
        proc.kill()
        await put

    run(main())
    aq.close()


# --- the waiter: one thread per loop, no polling, Ctrl-C -----------------------------------


def wait_for_no_waiter_threads() -> None:
    """Waits (boundedly) for the waiter threads of earlier loops to end."""
    deadline = time.monotonic() + 10
    while waiter_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not waiter_threads()


def test_one_waiter_thread_per_loop_for_many_channels(make_name: Callable[[str], str]) -> None:
    wait_for_no_waiter_threads()
    queues = [aio.Queue.create(make_name("ch"), 256) for _ in range(10)]
    rings = [aio.Ring.create(make_name("ring"), 256) for _ in range(3)]
    before = threading.active_count()

    async def main() -> None:
        tasks = [asyncio.ensure_future(ch.get()) for ch in [*queues, *rings] for _ in range(10)]
        await asyncio.sleep(0.2)
        assert threading.active_count() == before + 1
        assert len(waiter_threads()) == 1
        for i, ch in enumerate([*queues, *rings]):
            for _ in range(10):
                ch.sync.put(b"%d" % i)
        got = await asyncio.gather(*tasks)
        assert sorted(got) == sorted(b"%d" % (i // 10) for i in range(130))

    run(main())
    for ch in [*queues, *rings]:
        ch.close()
    # The thread ends once nothing has waited for a while (the loop is closed anyway).
    wait_for_no_waiter_threads()


def test_idle_awaiting_consumer_uses_almost_no_cpu(shm_name: str) -> None:
    aio.Queue.create(shm_name, 4096).close()
    code = """
        import asyncio, resource, sys, time, memspace.aio

        async def main():
            q = memspace.aio.Queue.open(sys.argv[1])
            try:
                await q.get(timeout=2.0)
            except memspace.aio.Empty:
                pass

        r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.monotonic()
        asyncio.run(main())
        r1 = resource.getrusage(resource.RUSAGE_SELF); t1 = time.monotonic()
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        print(cpu / (t1 - t0))
    """
    out = run_child(code, shm_name)
    assert float(out.stdout) < 0.01


@pytest.mark.parametrize("call", ["get", "put", "async for"])
def test_ctrl_c_interrupts_a_loop_awaiting_memspace(
    shm_name: str, call: str, start_child: StartChild
) -> None:
    q = memspace.Queue.create(shm_name, 256)
    if call == "put":
        while q.try_put(b"x" * 100):
            pass
    awaited = {
        "get": "await q.get()",
        "put": "await q.put(b'x' * 100)",
        "async for": "async for m in q: pass",
    }[call]
    code = (
        "import asyncio, sys, time, memspace.aio\n"
        "async def main():\n"
        "    q = memspace.aio.Queue.open(sys.argv[1])\n"
        "    print('waiting', flush=True)\n"
        f"    {awaited}\n"
        "try:\n    asyncio.run(main())\nexcept KeyboardInterrupt:\n"
        "    print('interrupted', time.monotonic(), flush=True)\n"
    )
    proc = start_child(code, shm_name, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    line = proc.stdout.readline().split()
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 1.0
    assert proc.wait(10) == 0  # and the waiter thread let the interpreter exit
    q.close()


def test_the_waiter_never_takes_a_message(shm_name: str) -> None:
    """A get whose watch fired but that was cancelled before it ran leaves the message for the
    next get (the waiter thread only wakes futures)."""
    aq = aio.Queue.create(shm_name, 4096)

    async def main() -> None:
        first = asyncio.ensure_future(aq.get())
        second = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.05)
        aq.sync.put(b"only one")
        # Let the waiter fire and the first get be woken, then cancel it before it runs.
        lw = aio._loop_waiter(asyncio.get_running_loop())
        deadline = time.monotonic() + 5
        while lw.by_watch and time.monotonic() < deadline:
            await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, 5) == b"only one"

    run(main())
    aq.close()


def test_fallback_waiter_helper_threads_end(shm_name: str) -> None:
    w = _memspace._Waiter(threads=True)
    q = memspace.Queue.create(shm_name, 256)
    sig = q._signal("readable")
    with pytest.raises(ValueError, match="interest"):
        q._signal("sideways")  # type: ignore[arg-type]
    key = sig.prepare()
    wid = w.watch(sig, key)
    assert wid is not None
    assert len(w) == 1
    t = threading.Timer(0.05, q.put, (b"x",))
    t.start()
    assert w.wait(STUCK) == [wid]
    t.join()
    assert w.wait(0.01) == []
    w.close()
    assert w.wait(None) is None
    assert w.watch(sig, sig.prepare()) is None
    q.close()


def test_interpreter_exit_with_coroutines_still_waiting(shm_name: str) -> None:
    """A loop closed with gets still pending (never cancelled), then exit: the waiter thread
    ends and the interpreter exits cleanly."""
    memspace.Queue.create(shm_name, 256).close()
    code = """
        import asyncio, sys, memspace.aio
        q = memspace.aio.Queue.open(sys.argv[1])
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(q.get()) for _ in range(3)]
        loop.run_until_complete(asyncio.sleep(0.1))
        loop.close()
        print("closed", flush=True)
    """
    t0 = time.monotonic()
    out = run_child(code, shm_name, timeout=20)
    assert out.stdout.strip() == "closed"
    assert time.monotonic() - t0 < 10
    assert os.path.exists("/dev/shm" + shm_name)
