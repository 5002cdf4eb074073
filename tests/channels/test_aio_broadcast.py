"""memspace.aio.Broadcast: subscribers and a publisher awaiting across real processes, many
subscribers in one loop woken by one publication, overwrite mode's Lagged through an await,
cancellation mid-wait (never a lost or repeated message), a killed subscriber that stops
holding an awaiting publisher back, close."""

from __future__ import annotations

import asyncio
import pickle
import random
import struct
import subprocess
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import memspace
import pytest
from memspace import aio

from tests.helpers import StartChild

T = TypeVar("T")

# A wait this long means something is stuck: fail instead of hanging.
STUCK = 30.0

PUBLISHER = """
import sys, struct, time, memspace
b = memspace.Broadcast.open(sys.argv[1], role="publisher")
n, pause, every = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    b.put(struct.pack("<I", i) * (1 + i % 7), timeout=30)
    if pause and i % every == 0:
        time.sleep(pause)
"""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs `coro` in a new event loop, failing (not hanging) if it is stuck."""
    return asyncio.run(asyncio.wait_for(coro, STUCK))


def index(m: bytes) -> int:
    i: int = struct.unpack_from("<I", m)[0]
    assert m == struct.pack("<I", i) * (1 + i % 7), "a torn or foreign message"
    return i


def test_round_trip_and_the_synchronous_rest(shm_name: str) -> None:
    pub = aio.Broadcast.create(shm_name, 4096, max_message_size=512)
    sub = aio.Broadcast.open(shm_name)
    assert isinstance(pub.sync, memspace.Broadcast)
    assert (sub.name, sub.path, sub.capacity, sub.max_message_size) == (shm_name, None, 4096, 512)
    assert (sub.overflow, sub.role, sub.lag) == ("block", "subscriber", 0)

    async def main() -> None:
        await pub.put(b"one")
        assert pub.role == "publisher"
        assert await pub.put_many([b"two", bytearray(b"three"), memoryview(b"four")]) == 3
        async with pub.reserve(4) as mv:
            mv[:] = b"five"
        assert sub.lag == 5
        assert await sub.get() == b"one"
        assert sub.get_nowait() == b"two"
        assert await sub.get_many(2) == [b"three", b"four"]
        async with sub.get_view() as mv:
            assert bytes(mv) == b"five"
        assert sub.try_get() is None
        with pytest.raises(aio.Empty):
            sub.get_nowait()
        with pytest.raises(aio.Empty):
            await sub.get(timeout=0.05)
        with pytest.raises(aio.Empty):
            await sub.get_many(10, timeout=0.05)

    run(main())
    assert "Broadcast" in repr(sub)
    clone = pickle.loads(pickle.dumps(sub))
    assert isinstance(clone, aio.Broadcast)
    assert clone.role == "subscriber"
    clone.close()
    sub.close()
    pub.close()
    with pytest.raises(TypeError, match=r"wraps a memspace\.Broadcast"):
        aio.Broadcast(memspace.Queue.create(shm_name + "-q", 1024))  # type: ignore[arg-type]
    memspace.Queue.remove(shm_name + "-q")


def test_subscribers_in_one_loop_await_a_publisher_process(
    make_name: Callable[[str], str], start_child: StartChild
) -> None:
    """Four subscribers in one event loop (one waiter thread; one publication wakes them all)
    each see every message of a publisher process, in order, exactly once."""
    name = make_name("bc")
    aio.Broadcast.create(name, 2048).close()
    subs = [aio.Broadcast.open(name) for _ in range(4)]
    n = 3000
    proc = start_child(PUBLISHER, name, str(n), "0.002", "10")

    async def drain(sub: aio.Broadcast) -> list[int]:
        return [index(await sub.get(timeout=STUCK)) for _ in range(n)]

    async def main() -> list[list[int]]:
        return list(await asyncio.gather(*(drain(s) for s in subs)))

    for got in run(main()):
        assert got == list(range(n))
    assert proc.wait(STUCK) == 0
    for s in subs:
        s.close()


def test_publisher_awaits_room_from_a_subscriber_process(
    shm_name: str, start_child: StartChild
) -> None:
    """Block mode: the awaiting publisher is woken by a subscriber process's progress."""
    pub = aio.Broadcast.create(shm_name, 256)
    n = 500
    code = """
        import sys, struct, time, memspace
        b = memspace.Broadcast.open(sys.argv[1])
        print("subscribed", flush=True)
        time.sleep(0.2)
        n = int(sys.argv[2])
        got = [b.get(timeout=30) for _ in range(n)]
        assert got == [struct.pack("<I", i) * 10 for i in range(n)]
    """
    proc = start_child(code, shm_name, str(n), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "subscribed"

    async def main() -> None:
        for i in range(n):
            await pub.put(struct.pack("<I", i) * 10, timeout=STUCK)

    run(main())
    assert proc.wait(STUCK) == 0
    pub.close()


def test_a_killed_subscriber_stops_holding_an_awaiting_publisher(
    shm_name: str, start_child: StartChild
) -> None:
    """Block mode, the broadcast full for a stopped-reading subscriber process that is then
    SIGKILLed: its death notifies nobody, and the awaiting put still goes through (the
    waiter's recheck finds it dead)."""
    pub = aio.Broadcast.create(shm_name, 256)
    code = """
        import sys, time, memspace
        b = memspace.Broadcast.open(sys.argv[1])
        print("subscribed", flush=True)
        time.sleep(60)
    """
    proc = start_child(code, shm_name, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "subscribed"
    while pub.try_put(b"x" * 20):
        pass

    async def main() -> None:
        put = asyncio.ensure_future(pub.put(b"y" * 80, timeout=STUCK))
        await asyncio.sleep(0.2)
        assert not put.done(), "the live subscriber holds the publisher back"
        proc.kill()
        await put

    run(main())
    pub.close()


def test_overwrite_lagged_through_an_await(shm_name: str) -> None:
    pub = aio.Broadcast.create(shm_name, 1024, overflow="overwrite")
    sub = aio.Broadcast.open(shm_name)
    n = 1000

    async def main() -> None:
        for i in range(n):
            await pub.put(struct.pack("<Q", i) * (1 + i % 4))  # never waits in this mode
        with pytest.raises(memspace.Lagged) as info:
            await sub.get()
        missed = info.value.count
        assert 0 < missed < n
        rest = []
        while len(rest) < n - missed:
            rest += await sub.get_many(n, timeout=1)
        assert [struct.unpack_from("<Q", m)[0] for m in rest] == list(range(missed, n))
        # And an await that was sleeping when the lap happened.
        waiting = asyncio.ensure_future(sub.get(timeout=STUCK))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        for i in range(n):
            pub.sync.put(struct.pack("<Q", i))
        # The loop thread published all of them before the woken coroutine could run: lapped.
        with pytest.raises(memspace.Lagged) as lapped:
            await waiting
        assert 0 < lapped.value.count < n
        assert struct.unpack_from("<Q", await sub.get())[0] == lapped.value.count

    run(main())
    sub.close()
    pub.close()


def test_cancellation_mid_wait_loses_no_message(shm_name: str, start_child: StartChild) -> None:
    """Gets cancelled at random moments (cancel() and wait_for timeouts) while a publisher
    process publishes: the subscriber still sees every message once, in order."""
    aio.Broadcast.create(shm_name, 1024).close()
    sub = aio.Broadcast.open(shm_name)
    n = 400
    # A message every 5 ms, longer than any cancel's delay: most gets wait, so most cancels
    # land mid-wait (at 1 ms per message an idle machine delivered before most cancels).
    proc = start_child(PUBLISHER, shm_name, str(n), "0.005", "1")
    rng = random.Random(11)

    async def main() -> list[int]:
        got: list[int] = []
        cancelled = 0
        while len(got) < n:
            t = asyncio.ensure_future(sub.get(timeout=STUCK))
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
            got.append(index(m))
        assert cancelled > 50, "the test cancelled gets mid-wait"
        return got

    assert run(main()) == list(range(n))
    assert proc.wait(STUCK) == 0
    sub.close()


def test_close_ends_async_for_and_wakes_waiters(shm_name: str) -> None:
    pub = aio.Broadcast.create(shm_name, 1024)
    sub = aio.Broadcast.open(shm_name)

    async def main() -> list[bytes]:
        got: list[bytes] = []

        async def consume() -> None:
            async for m in sub:
                got.append(m)

        task = asyncio.ensure_future(consume())
        await pub.put(b"a")
        await pub.put(b"b")
        await asyncio.sleep(0.1)
        sub.close()
        await asyncio.wait_for(task, 5)
        return got

    assert run(main()) == [b"a", b"b"]
    assert sub.closed
    pub.close()
