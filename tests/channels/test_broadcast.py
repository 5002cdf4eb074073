"""memspace.Broadcast: semantics, bad input, roles, blocking, both overflow modes, crashes, and
real subscriber processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import queue
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import memspace
import pytest
from memspace import Broadcast

from tests.helpers import StartChild, run_child, run_cli, stop_child

# The broadcast's lock-area layout (see crates/memspace/src/broadcast/segment.rs): cursor lines
# of 128 bytes from offset 384, one per attachment slot.
_SUBS_OFF = 384
_LINE = 128


def _ready(proc: subprocess.Popen[Any]) -> None:
    """Waits for a child's first line, which must be "ready"."""
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"


# --- basics -----------------------------------------------------------------------------------


def test_create_reports_geometry_and_holds_no_role(shm_name: str) -> None:
    with Broadcast.create(shm_name, 1000) as b:
        assert b.capacity == 1024
        assert b.max_message_size == 1024 // 2 - 16
        assert b.overflow == "block"
        assert b.role is None
        assert b.lag is None
        assert b.name == shm_name
        assert b.path is None
        assert "overflow=" in repr(b)
    with Broadcast.create(shm_name + "o", 4096, overflow="overwrite", max_message_size=100) as b:
        assert b.overflow == "overwrite"
        assert b.max_message_size == 100
    Broadcast.remove(shm_name + "o")


def test_every_subscriber_sees_every_message_after_it_subscribed(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub:
        pub.put(b"nobody hears this")
        early = Broadcast.open(shm_name)
        pub.put(b"one")
        late = Broadcast.open(shm_name)
        pub.put_many([b"two", b"", b"three"])
        assert pub.role == "publisher"
        assert early.get() == b"one"
        assert early.get_many(10) == [b"two", b"", b"three"]
        assert late.get_many(10, timeout=0) == [b"two", b"", b"three"]
        for s in (early, late):
            assert s.try_get() is None
            with pytest.raises(queue.Empty):
                s.get_nowait()
            assert s.lag == 0
            assert s.role == "subscriber"
            s.close()


def test_accepts_any_bytes_like_and_zero_copy_both_sides(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        pub.put(bytearray(b"ba"))
        pub.put(memoryview(b"xmvx")[1:3])
        with pub.reserve(5) as buf:
            assert len(buf) == 5
            buf[:] = b"hello"
        assert sub.get() == b"ba"
        assert sub.get() == b"mv"
        with sub.get_view() as mv:
            assert mv.readonly
            assert bytes(mv) == b"hello"
        assert sub.try_get() is None


def test_view_not_consumed_on_exception_and_reserve_aborts(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        pub.put(b"again")
        with pytest.raises(RuntimeError), sub.get_view():
            raise RuntimeError("subscriber failed")
        assert sub.get() == b"again"

        def write_then_fail() -> None:
            with pub.reserve(3) as buf:
                buf[:] = b"bad"
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            write_then_fail()
        pub.put(b"good")
        assert sub.get() == b"good"
        assert sub.try_get() is None


def test_view_still_exported_is_buffer_error_and_not_consumed(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        pub.put(b"12345678")
        kept = []
        with pytest.raises(BufferError, match="not consumed"), sub.get_view() as mv:
            kept.append(np.frombuffer(mv, dtype=np.uint8))
        kept.clear()
        assert sub.get() == b"12345678"


def test_wraparound_many_sizes_two_subscribers(shm_name: str) -> None:
    with Broadcast.create(shm_name, 512) as pub:
        a, b = Broadcast.open(shm_name), Broadcast.open(shm_name)
        for i in range(3000):
            m = bytes([i % 251]) * (i * 7 % (pub.max_message_size + 1))
            pub.put(m, timeout=5)
            assert a.get() == m
            assert b.get() == m
        a.close()
        b.close()


def test_overwrite_mode_lagged_carries_the_exact_count(shm_name: str) -> None:
    with Broadcast.create(shm_name, 1024, overflow="overwrite") as pub:
        sub = Broadcast.open(shm_name)
        n = 1000
        for i in range(n):
            pub.put_nowait(struct.pack("=Q", i) * (1 + i % 4))  # never Full in overwrite mode
        assert sub.lag == n
        with pytest.raises(memspace.Lagged) as info:
            sub.get()
        missed = info.value.count
        assert 0 < missed < n
        assert str(missed) in str(info.value)
        rest = sub.get_many(n)
        assert [struct.unpack_from("=Q", m)[0] for m in rest] == list(range(missed, n))
        assert sub.inspect()["subscribers"][0]["missed"] == missed
        sub.close()


def test_overwrite_get_view_raises_lagged_when_written_over(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256, overflow="overwrite") as pub:
        sub = Broadcast.open(shm_name)
        pub.put(b"\x00" * 16)

        def lap_the_view() -> None:
            with sub.get_view() as mv:
                assert bytes(mv) == b"\x00" * 16
                for i in range(1, 40):
                    pub.put(struct.pack("=Q", i) * 2)

        with pytest.raises(memspace.Lagged) as info:
            lap_the_view()
        assert info.value.count >= 1  # the viewed message counts among the missed
        first = struct.unpack_from("=Q", sub.get())[0]
        assert first == info.value.count  # the oldest message still there, exactly after
        # Not written over: the view's block consumes normally.
        pub.put(b"fresh")
        sub.get_many(100)
        pub.put(b"view me")
        with sub.get_view() as mv:
            assert bytes(mv) == b"view me"
        assert sub.try_get() is None
        sub.close()


def test_get_many_stops_at_a_lap_and_the_next_call_reports_it(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256, overflow="overwrite") as pub:
        sub = Broadcast.open(shm_name)
        pub.put(b"a" * 8)
        assert sub.get_many(1) == [b"a" * 8]
        for i in range(50):
            pub.put(struct.pack("=Q", i))
        with pytest.raises(memspace.Lagged):
            sub.get_many(100)
        got = sub.get_many(100)
        assert got
        assert sub.try_get() is None
        sub.close()


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1, 2**60])
def test_bad_capacity(shm_name: str, capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Broadcast.create(shm_name, capacity)


def test_bad_arguments_are_refused_before_memory_is_touched(shm_name: str) -> None:
    with pytest.raises(ValueError, match="overflow"):
        Broadcast.create(shm_name, 4096, overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_message_size"):
        Broadcast.create(shm_name, 4096, max_message_size=4096)
    with pytest.raises(TypeError):
        Broadcast.create(shm_name)
    with pytest.raises(TypeError):
        Broadcast.create(shm_name, "big")  # type: ignore[arg-type]
    assert not any(s.name == shm_name for s in memspace.segments()), "a refused create left one"
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        with pytest.raises(TypeError):
            pub.put("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            pub.put(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_message_size"):
            pub.put(b"x" * (pub.max_message_size + 1))
        pub.put(b"x" * pub.max_message_size)  # the limit itself fits
        with pytest.raises(ValueError, match="timeout"):
            sub.get(timeout=-1)
        with pytest.raises(ValueError, match="max_count"):
            sub.get_many(0)
        with pytest.raises(ValueError, match="role"):
            Broadcast.open(shm_name, role="reader")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="n must be"):
            pub.reserve(-1)
        with pytest.raises(RuntimeError, match="not a subscriber"):
            pub.get_nowait()
        assert len(sub.get()) == pub.max_message_size


def test_open_refuses_other_kinds(shm_name: str, make_name: Callable[[str], str]) -> None:
    memspace.SharedMemory.create(shm_name, 4096).close()
    with pytest.raises(memspace.LayoutError):
        Broadcast.open(shm_name)
    ring = make_name("ring")
    memspace.Ring.create(ring, 4096).close()
    with pytest.raises(memspace.LayoutError, match="not a broadcast"):
        Broadcast.open(ring)
    with pytest.raises(FileNotFoundError):
        Broadcast.open(shm_name + "-missing")


def test_use_after_close(shm_name: str) -> None:
    b = Broadcast.create(shm_name, 4096)
    s = Broadcast.open(shm_name)
    b.close()
    s.close()
    assert b.closed
    assert s.closed
    with pytest.raises(ValueError, match="closed"):
        b.put(b"x")
    with pytest.raises(ValueError, match="closed"):
        s.get_nowait()
    with pytest.raises(ValueError, match="closed"):
        s.get_view()


def test_close_keeps_location_pickling_and_views_and_frees_the_roles(shm_name: str) -> None:
    b = Broadcast.create(shm_name, 4096, overflow="overwrite")
    pub = Broadcast.open(shm_name, role="publisher")
    sub = Broadcast.open(shm_name)
    pub.put(b"in place")
    view = sub.get_view()
    mv = view.__enter__()
    sub.close()
    assert bytes(mv) == b"in place"  # the view keeps its own reference to the mapping
    with pytest.raises(ValueError, match="closed"):
        view.__exit__(None, None, None)
    mv.release()
    del view, mv
    for h in (sub, pub):
        h.close()
        assert h.closed
        # What is kept apart from the core object works after close()...
        assert (h.name, h.path, h.capacity, h.overflow) == (shm_name, None, 4096, "overwrite")
        assert "closed" in repr(h)
        assert h.role is None
        # ...the rest is a ValueError.
        with pytest.raises(ValueError, match="closed Broadcast"):
            _ = h.lag
        with pytest.raises(ValueError, match="closed Broadcast"):
            _ = h.max_message_size
        with pytest.raises(ValueError, match="closed Broadcast"):
            h.inspect()
        with pytest.raises(ValueError, match="closed Broadcast"):
            h.put(b"x")
    again = pickle.loads(pickle.dumps(sub))  # a closed handle still pickles by name
    assert not again.closed
    assert again.role is None  # it was no longer a subscriber when pickled
    # The publisher role went with close(): another handle claims it at once.
    again.put(b"after")
    assert b.inspect()["publisher_alive"] is True
    assert b.inspect()["subscribers"] == []  # and so did the subscription
    again.close()
    b.unlink()  # the handle stays usable until closed
    assert not b.closed
    assert b.inspect()["published"] == 2
    with pytest.raises(FileNotFoundError):
        Broadcast.open(shm_name)
    with pytest.raises(FileNotFoundError):
        b.unlink()
    b.close()


# --- corrupt segments -------------------------------------------------------------------------


def test_corrupt_head_is_detected_and_poisons(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        pub.put(b"x")
        assert sub.get() == b"x"
        with memspace.SharedMemory.open(shm_name) as raw:
            raw.write_uint(pub._control_offset, 2**40)  # head far beyond the cursor + capacity
        with pytest.raises(memspace.CorruptSegmentError, match="impossible"):
            sub.get(timeout=1)
    with pytest.raises(memspace.CorruptSegmentError):
        Broadcast.open(shm_name)


def test_corrupt_record_is_detected(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub:
        sub = Broadcast.open(shm_name)
        pub.put(b"payload")
        with memspace.SharedMemory.open(shm_name) as raw:
            raw.write(pub._data_offset, struct.pack("=I", 4000))  # a length past what was written
        with pytest.raises(memspace.CorruptSegmentError):
            sub.get(timeout=1)
        sub.close()


@pytest.mark.parametrize("overflow", ["block", "overwrite"])
def test_corrupt_index_is_detected(shm_name: str, overflow: str) -> None:
    with Broadcast.create(shm_name, 4096, overflow=overflow) as pub:  # type: ignore[arg-type]
        sub = Broadcast.open(shm_name)
        pub.put(b"first")
        assert sub.get() == b"first"
        pub.put(b"second")  # index 1, at position 24 (8 header + 8 index + 8 payload before it)
        with memspace.SharedMemory.open(shm_name) as raw:
            raw.write_uint(pub._data_offset + 24 + 8, 0)  # index 0 again: goes back
        with pytest.raises(memspace.CorruptSegmentError, match="index"):
            sub.get(timeout=1)
        sub.close()


def test_impossible_cursor_is_detected_by_the_publisher(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256) as pub:
        sub = Broadcast.open(shm_name)
        slot = pub.inspect()["subscribers"][0]["slot"]
        with memspace.SharedMemory.open(shm_name) as raw:
            raw.write_uint(pub._control_offset + _SUBS_OFF + _LINE * slot, 2**50)

        def put_until_it_scans() -> None:
            for _ in range(100):  # the publisher scans the cursors once it needs the room
                pub.put(b"x" * 40, timeout=1)

        with pytest.raises(memspace.CorruptSegmentError, match="cursor"):
            put_until_it_scans()
        sub.close()


def test_a_forged_cursor_in_a_dead_slot_never_blocks_the_publisher(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256) as pub:
        pub.put(b"x")
        s = Broadcast.open(shm_name)
        slot = s.inspect()["subscribers"][0]["slot"]
        del s  # (the handle holds its attachment slot until it is dropped)
        # The slot's holder is gone, but its cursor says "subscribed at 0".
        with memspace.SharedMemory.open(shm_name) as raw:
            raw.write_uint(pub._control_offset + _SUBS_OFF + _LINE * slot, 0)
        t0 = time.monotonic()
        for _ in range(200):
            pub.put(b"y" * 40, timeout=5)
        assert time.monotonic() - t0 < 5


# --- roles ------------------------------------------------------------------------------------

_HOLD = """
import sys, time, memspace
b = memspace.Broadcast.open(sys.argv[1], role=sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def test_second_live_publisher_is_refused_and_a_dead_one_replaced(
    shm_name: str, start_child: StartChild
) -> None:
    Broadcast.create(shm_name, 4096).close()
    holder = start_child(_HOLD, shm_name, "publisher", stdout=subprocess.PIPE, text=True)
    _ready(holder)
    with pytest.raises(memspace.RoleTakenError, match="publisher"):
        Broadcast.open(shm_name, role="publisher")
    with Broadcast.open(shm_name, role=None) as b:
        assert b.inspect()["publisher_alive"] is True
        with pytest.raises(memspace.RoleTakenError):
            b.put(b"x")  # the first put claims the role
    holder.send_signal(signal.SIGSTOP)  # stopped is not dead
    with pytest.raises(memspace.RoleTakenError):
        Broadcast.open(shm_name, role="publisher")
    holder.send_signal(signal.SIGCONT)
    stop_child(holder)
    with Broadcast.open(shm_name, role="publisher") as b:
        assert b.role == "publisher"


def test_pickles_by_reference_into_a_spawned_process(shm_name: str) -> None:
    ctx = mp.get_context("spawn")
    with Broadcast.create(shm_name, 4096) as pub:
        sub = Broadcast.open(shm_name)
        assert pickle.loads(pickle.dumps(sub)).role == "subscriber"
        assert pickle.loads(pickle.dumps(Broadcast.open(shm_name, role=None))).role is None
        result = ctx.Queue()
        child = ctx.Process(target=_echo_from_child, args=(sub, result))
        child.start()
        assert result.get(timeout=60) == "subscribed"
        pub.put(b"to the child")
        assert result.get(timeout=60) == b"to the child"
        child.join(60)
        assert child.exitcode == 0
        # A publisher handle's copy claims the role at its first put: free it first.
        pub.close()
        child = ctx.Process(target=_publish_from_child, args=(Broadcast.open(shm_name, role=None),))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert sub.get_many(10, timeout=10) == [b"to the child", b"from the child"]
        sub.close()
        result.close()
        result.join_thread()


def _echo_from_child(sub: Broadcast, result: Any) -> None:
    result.put("subscribed")
    result.put(sub.get(timeout=30))


def _publish_from_child(b: Broadcast) -> None:
    b.put(b"from the child")
    b.close()


def test_forked_child_does_not_inherit_the_publisher_role(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        pub.put(b"parent")
        ctx = mp.get_context("fork")
        result = ctx.Queue()
        child = ctx.Process(target=_put_from_fork, args=(pub, result))
        child.start()
        child.join(30)
        assert result.get(timeout=10) == "RoleTakenError"
        pub.put(b"parent again")
        assert sub.get_many(10) == [b"parent", b"parent again"]
        result.close()
        result.join_thread()


def _put_from_fork(b: Broadcast, result: Any) -> None:
    try:
        b.put(b"child")
        result.put("sent")
    except memspace.RoleTakenError:
        result.put("RoleTakenError")


# --- blocking ---------------------------------------------------------------------------------


def test_timeouts_land_close_to_what_was_asked(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256) as pub, Broadcast.open(shm_name) as sub:
        for wanted in (0.05, 0.2):
            t0 = time.monotonic()
            with pytest.raises(queue.Empty):
                sub.get(timeout=wanted)
            took = time.monotonic() - t0
            assert wanted <= took < wanted + 0.15
        while pub.try_put(b"x" * 40):  # fill: the subscriber does not read
            pass
        t0 = time.monotonic()
        with pytest.raises(queue.Full):
            pub.put(b"x" * 40, timeout=0.1)
        assert 0.1 <= time.monotonic() - t0 < 0.25
        with pytest.raises(queue.Full):
            pub.put_nowait(b"x" * 40)
        with pytest.raises(queue.Full), pub.reserve(40, timeout=0.05):
            pass


def test_overwrite_publisher_never_waits_for_a_subscriber(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256, overflow="overwrite") as pub:
        sub = Broadcast.open(shm_name)  # never reads
        t0 = time.monotonic()
        assert pub.put_many(struct.pack("=Q", i) * 4 for i in range(10_000)) == 10_000
        for _ in range(1000):
            assert pub.try_put(b"x" * 40)
            pub.put_nowait(b"y" * 40)
        assert time.monotonic() - t0 < 30  # a watchdog, not a speed claim
        sub.close()


def test_one_publication_wakes_every_sleeping_subscriber(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub:
        subs = [Broadcast.open(shm_name) for _ in range(3)]
        got: list[bytes] = []
        lock = threading.Lock()

        def wait(s: Broadcast) -> None:
            m = s.get(timeout=20)
            with lock:
                got.append(m)

        threads = [threading.Thread(target=wait, args=(s,)) for s in subs]
        for t in threads:
            t.start()
        time.sleep(0.2)  # all three asleep in the kernel
        pub.put(b"wake")
        for t in threads:
            t.join(20)
        assert got == [b"wake"] * 3
        for s in subs:
            s.close()


def test_gil_is_released_while_waiting(shm_name: str) -> None:
    with Broadcast.create(shm_name, 256) as pub, Broadcast.open(shm_name) as sub:
        ticks = 0
        stop = threading.Event()

        def count() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                time.sleep(0.001)

        t = threading.Thread(target=count, daemon=True)
        t.start()
        try:
            with pytest.raises(queue.Empty):
                sub.get(timeout=0.3)  # waits with the GIL released
            while pub.try_put(b"x" * 40):
                pass
            with pytest.raises(queue.Full):
                pub.put(b"x" * 40, timeout=0.3)
        finally:
            stop.set()
            t.join()
        assert ticks > 20  # (the count would stay near 0 if the waits held the GIL)


def test_blocked_get_wakes_on_put_from_another_process(
    shm_name: str, start_child: StartChild
) -> None:
    with Broadcast.create(shm_name, 4096), Broadcast.open(shm_name) as sub:
        child = start_child(
            "import sys, time, memspace\n"
            "b = memspace.Broadcast.open(sys.argv[1], role='publisher')\n"
            "time.sleep(0.3); b.put(b'late')",
            shm_name,
        )
        t0 = time.monotonic()
        assert sub.get(timeout=20) == b"late"
        assert time.monotonic() - t0 >= 0.25
        child.wait(20)


def test_idle_blocked_subscriber_uses_almost_no_cpu(shm_name: str) -> None:
    Broadcast.create(shm_name, 4096).close()
    out = run_child(
        """
        import sys, time, queue, memspace
        b = memspace.Broadcast.open(sys.argv[1])
        t0 = time.monotonic(); c0 = time.process_time()
        try:
            b.get(timeout=1.0)
        except queue.Empty:
            pass
        print((time.process_time() - c0) / (time.monotonic() - t0))
        """,
        shm_name,
    )
    assert float(out.stdout) < 0.01


_INTERRUPTED = """
import sys, time, memspace
b = memspace.Broadcast.open(sys.argv[1])
p = memspace.Broadcast.open(sys.argv[1], role="publisher")
if sys.argv[2] == "put":
    while p.try_put(b"x" * 40):  # fill: its own subscriber holds it back
        pass
print("waiting", flush=True)
try:
    p.put(b"x" * 40) if sys.argv[2] == "put" else b.get()
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
"""


@pytest.mark.parametrize("op", ["get", "put"])
def test_ctrl_c_interrupts_a_blocked_call(shm_name: str, op: str, start_child: StartChild) -> None:
    Broadcast.create(shm_name, 256).close()
    proc = start_child(_INTERRUPTED, shm_name, op, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    line = proc.stdout.readline().split()
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.2
    proc.wait(10)


# --- subscribers in other processes: stalls, deaths, joins ------------------------------------

# Counts what a subscriber received and was told it missed, checking every message: prints
# `start received missed`, where `start` is the index it joined at (reconstructed from the first
# message and the laps before it), once it has the message with index argv[2] - 1.
_COUNTER = """
import struct, sys, queue, memspace
b = memspace.Broadcast.open(sys.argv[1])
print("ready", flush=True)
received = missed = 0
start = None
while True:
    try:
        for m in b.get_many(256, timeout=60):
            i = struct.unpack_from("=Q", m)[0]
            if start is None:
                start = i - missed
            assert i == start + received + missed, (i, start, received, missed)
            assert m[8:] == bytes([i % 251]) * (len(m) - 8), "torn"
            received += 1
            if i == int(sys.argv[2]) - 1:
                print(start, received, missed, flush=True)
                raise SystemExit(0)
    except memspace.Lagged as e:
        missed += e.count
"""


def _msg(i: int) -> bytes:
    return struct.pack("=Q", i) + bytes([i % 251]) * (i % 48)


def _put_until_full(pub: Broadcast, i: int) -> int:
    """Puts messages `i`, `i + 1` ... until one times out (`queue.Full`); returns the index of
    that one (the next to send)."""
    while True:
        try:
            pub.put(_msg(i), timeout=0.3)
        except queue.Full:
            return i
        i += 1


def test_block_mode_a_stalled_subscriber_holds_the_publisher_until_it_resumes(
    shm_name: str, start_child: StartChild
) -> None:
    n = 3000
    with Broadcast.create(shm_name, 1024) as pub:
        sub = start_child(_COUNTER, shm_name, str(n), stdout=subprocess.PIPE, text=True)
        _ready(sub)
        sub.send_signal(signal.SIGSTOP)
        sent = _put_until_full(pub, 0)
        assert 0 < sent < 100, "the stopped (alive) subscriber holds the publisher back"
        sub.send_signal(signal.SIGCONT)
        while sent < n:
            pub.put(_msg(sent), timeout=30)
            sent += 1
        assert sub.stdout is not None
        assert tuple(map(int, sub.stdout.readline().split())) == (0, n, 0)
        assert sub.wait(30) == 0


def test_overwrite_mode_a_stalled_subscriber_is_told_exactly_what_it_missed(
    shm_name: str, start_child: StartChild
) -> None:
    n = 20_000
    with Broadcast.create(shm_name, 4096, overflow="overwrite") as pub:
        sub = start_child(_COUNTER, shm_name, str(n), stdout=subprocess.PIPE, text=True)
        _ready(sub)
        sub.send_signal(signal.SIGSTOP)
        for i in range(n):
            pub.put_nowait(_msg(i))  # never Full: nobody holds an overwriting publisher back
        info = pub.inspect()["subscribers"][0]
        assert info["lag_messages"] == n
        sub.send_signal(signal.SIGCONT)
        assert sub.stdout is not None
        start, received, missed = map(int, sub.stdout.readline().split())
        assert (start, received + missed) == (0, n), "the lag count is exact"
        assert missed > 0
        assert received > 0
        assert sub.wait(30) == 0


def test_a_killed_subscriber_stops_holding_back_and_a_new_one_joins_mid_stream(
    shm_name: str, start_child: StartChild
) -> None:
    n = 30_000
    with Broadcast.create(shm_name, 2048) as pub:
        steady = start_child(_COUNTER, shm_name, str(n), stdout=subprocess.PIPE, text=True)
        doomed = start_child(_COUNTER, shm_name, str(n), stdout=subprocess.PIPE, text=True)
        _ready(steady)
        _ready(doomed)
        late = None
        i = 0
        while i < n:
            if i == 5000 and doomed.poll() is None:
                doomed.send_signal(signal.SIGSTOP)  # stopped: alive, it holds the publisher back
                i = _put_until_full(pub, i)
                doomed.kill()  # dead: it stops holding the publisher back at once
                doomed.wait()
                t0 = time.monotonic()
                pub.put(_msg(i), timeout=30)
                assert time.monotonic() - t0 < 10
                i += 1
                continue
            if i == 10_000 and late is None:
                late = start_child(_COUNTER, shm_name, str(n), stdout=subprocess.PIPE, text=True)
                _ready(late)
            pub.put(_msg(i), timeout=30)
            i += 1
        info = pub.inspect()
        assert info["dead_subscribers"] in (0, 1)  # the late one may have taken the dead slot
        assert steady.stdout is not None
        assert late is not None
        assert late.stdout is not None
        assert tuple(map(int, steady.stdout.readline().split())) == (0, n, 0)
        start, received, missed = map(int, late.stdout.readline().split())
        assert start >= 10_000
        assert start + received == n
        assert missed == 0
        assert steady.wait(30) == 0
        assert late.wait(30) == 0


def test_a_dead_subscribers_slot_is_reused(shm_name: str, start_child: StartChild) -> None:
    with Broadcast.create(shm_name, 4096) as pub:
        holder = start_child(_HOLD, shm_name, "subscriber", stdout=subprocess.PIPE, text=True)
        _ready(holder)
        slot = pub.inspect()["subscribers"][0]["slot"]
        stop_child(holder)
        assert pub.inspect()["subscribers"] == []
        assert pub.inspect()["dead_subscribers"] == 1
        with Broadcast.open(shm_name) as again:
            info = again.inspect()
            assert [s["slot"] for s in info["subscribers"]] == [slot]
            assert info["dead_subscribers"] == 0


# --- a publisher killed mid-message -----------------------------------------------------------

_PUBLISHER = """
import hashlib, random, struct, sys, memspace
name, seed = sys.argv[1], int(sys.argv[2])
progress = memspace.SharedMemory.open(sys.argv[3])
b = memspace.Broadcast.open(name, role="publisher")
rng = random.Random(seed)
maxlen = b.max_message_size - 24
i = 0
while True:
    body = rng.randbytes(rng.randrange(0, maxlen + 1) if i % 10 == 0 else rng.randrange(0, 64))
    b.put(struct.pack("=Q", i) + hashlib.blake2b(body, digest_size=16).digest() + body)
    i += 1
    progress.write_int(0, i)
"""


@pytest.mark.parametrize("overflow", ["block", "overwrite"])
def test_killed_publisher_never_delivers_half_a_message(
    shm_name: str, overflow: str, make_name: Callable[[str], str], start_child: StartChild
) -> None:
    progress = memspace.SharedMemory.create(make_name("progress"), 8)
    pub_name = progress.name
    assert pub_name is not None
    with Broadcast.create(shm_name, 1 << 12, overflow=overflow):  # type: ignore[arg-type]
        sub = Broadcast.open(shm_name)
        for round_ in range(20):
            progress.write_int(0, 0)
            prod = start_child(_PUBLISHER, shm_name, str(round_), pub_name)
            expected = 0  # sequence numbers restart with every publisher
            delivered = missed = 0
            deadline = time.monotonic() + 0.05 + (round_ % 7) * 0.03

            def take(timeout: float) -> None:
                nonlocal expected, delivered, missed
                try:
                    for m in sub.get_many(64, timeout=timeout):
                        seq = struct.unpack("=Q", m[:8])[0]
                        assert seq >= expected, "reordered or repeated"
                        assert hashlib.blake2b(m[24:], digest_size=16).digest() == m[8:24], "torn"
                        if overflow == "block":
                            assert seq == expected, "lost"
                        expected = seq + 1
                        delivered += 1
                except memspace.Lagged as e:
                    assert overflow == "overwrite"
                    missed += e.count

            while time.monotonic() < deadline or delivered == 0:
                take(10)
            prod.kill()
            prod.wait()
            committed = progress.read_int(0)
            with contextlib.suppress(queue.Empty):  # drain what the dead publisher published
                while True:
                    take(0)
            assert delivered + missed >= committed, (round_, committed, delivered, missed)
        sub.close()
    progress.close()


# --- 4 subscriber processes x 10^6 messages ---------------------------------------------------

_SUBSCRIBER = """
import random, sys, memspace
name, n, single = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
bodies = [rng.randbytes(rng.randrange(0, 120)) for _ in range(4096)]
b = memspace.Broadcast.open(name)
print("ready", flush=True)
expected = 0
while expected < single:  # the first messages one get() at a time
    m = b.get(timeout=60)
    assert int.from_bytes(m[:8], "little") == expected, (m[:8], expected)
    assert m[8:] == bodies[expected & 4095], expected
    expected += 1
while expected < n:
    for m in b.get_many(4096, timeout=60):
        if int.from_bytes(m[:8], "little") != expected or m[8:] != bodies[expected & 4095]:
            raise SystemExit(f"message {expected}: got {m[:8].hex()} of {len(m)} bytes")
        expected += 1
print("ok", expected, b.try_get(), flush=True)
"""


def test_four_subscriber_processes_a_million_messages_exactly_once_in_order(
    shm_name: str, start_child: StartChild
) -> None:
    import random

    n, single = 1_000_000, 20_000
    rng = random.Random(7)
    bodies = [rng.randbytes(rng.randrange(0, 120)) for _ in range(4096)]
    with Broadcast.create(shm_name, 1 << 16, max_message_size=256) as pub:
        subs = [
            start_child(
                _SUBSCRIBER, shm_name, str(n), str(single), stdout=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        for s in subs:
            _ready(s)
        for i in range(single):  # one put() at a time
            pub.put(i.to_bytes(8, "little") + bodies[i & 4095], timeout=60)
        i = single
        while i < n:
            k = min(2000, n - i)
            batch = [j.to_bytes(8, "little") + bodies[j & 4095] for j in range(i, i + k)]
            assert pub.put_many(batch, timeout=60) == k
            i += k
        for s in subs:
            assert s.stdout is not None
            assert s.stdout.readline().split() == ["ok", str(n), "None"]
            assert s.wait(60) == 0
        assert pub.inspect()["published"] == n


# --- inspection -------------------------------------------------------------------------------


def test_inspect_shows_each_subscribers_lag(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub:
        a, b = Broadcast.open(shm_name), Broadcast.open(shm_name)
        pub.put_many([b"x" * 8] * 5)
        a.get_many(5)
        b.get()
        info = pub.inspect()
        assert info["kind"] == "broadcast"
        assert info["overflow"] == "block"
        assert info["published"] == 5
        assert info["publisher_alive"] is True
        lags = sorted((s["lag_messages"], s["lag_bytes"]) for s in info["subscribers"])
        assert lags == [(0, 0), (4, 4 * 24)]
        assert all(s["pid"] == os.getpid() for s in info["subscribers"])
        assert b.lag == 4
        a.close()
        b.close()


def test_cli_inspect_shows_the_subscribers(shm_name: str) -> None:
    with Broadcast.create(shm_name, 4096) as pub, Broadcast.open(shm_name) as sub:
        pub.put(b"one")
        out = json.loads(run_cli("inspect", shm_name, "--json").stdout)
        assert out["kind"] == "broadcast"
        assert out["state"] == "ready"
        assert out["in_use"] is True
        assert out["capacity"] == 4096
        assert out["overflow"] == "block"
        assert out["published"] == 1
        assert out["publisher_alive"] is True
        assert out["dead_subscribers"] == 0
        # The CLI did not subscribe: the one subscriber is `sub`.
        assert out["subscribers"] == [
            {
                "pid": os.getpid(),
                "slot": out["subscribers"][0]["slot"],
                "lag_messages": 1,
                "lag_bytes": 24,
                "missed": 0,
            }
        ]
        assert out["empty"] is False
        assert out["holds"] == "1 unread message (for 1 subscriber)"
        text = run_cli("inspect", shm_name).stdout
        assert f"subscribers       pid {os.getpid()} slot " in text
        assert "lag_messages 1 lag_bytes 24 missed 0" in text
        assert "{" not in text
        assert "'" not in text
        assert "True" not in text
        assert sub.get() == b"one"
        out = json.loads(run_cli("inspect", shm_name, "--json").stdout)
        assert out["empty"] is True
        assert out["holds"] == "no unread messages"
    # Nobody attached: a broadcast holds nothing then (a new subscriber sees only what is
    # published after it subscribes), so rm --stale removes it and its lock file.
    assert "removed" in run_cli("rm", "--stale", shm_name).stdout
    with pytest.raises(FileNotFoundError):
        Broadcast.open(shm_name)
    assert not os.path.exists("/dev/shm" + shm_name + ".memspace-lock")
