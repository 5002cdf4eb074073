"""memspace.Ring: semantics, bad input, roles, blocking, and real second processes."""

from __future__ import annotations

import hashlib
import os
import queue
import random
import signal
import struct
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import memspace
import pytest
from memspace import Ring

from tests.helpers import StartChild, run_child, stop_child

# --- basics -----------------------------------------------------------------------------------


def test_create_rounds_capacity_and_reports_geometry(shm_name: str) -> None:
    with Ring.create(shm_name, 1000) as ring:
        assert ring.capacity == 1024
        assert ring.max_message_size == 1024 // 2 - 8
        assert len(ring) == 0
        assert ring.free == 1024
        assert ring.name == shm_name


def test_put_get_fifo_including_empty_messages(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        msgs = [b"", b"a", b"hello", bytes(range(256)), b""]
        for m in msgs:
            ring.put(m)
        assert len(ring) == len(msgs)
        assert [ring.get() for _ in msgs] == msgs
        assert len(ring) == 0
        with pytest.raises(queue.Empty):
            ring.get_nowait()


def test_accepts_any_bytes_like(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(bytearray(b"ba"))
        ring.put(memoryview(b"xmvx")[1:3])
        assert ring.get() == b"ba"
        assert ring.get() == b"mv"


def test_try_and_nowait_variants(shm_name: str) -> None:
    with Ring.create(shm_name, 64) as ring:
        assert ring.try_get() is None
        assert ring.try_put(b"x" * 24) is True
        assert ring.try_put(b"y" * 24) is True
        assert ring.try_put(b"z") is False  # full: 2 x 32 bytes
        with pytest.raises(queue.Full):
            ring.put_nowait(b"z")
        with pytest.raises(queue.Full):
            ring.put(b"z", timeout=0.01)
        assert ring.try_get() == b"x" * 24
        ring.put_nowait(b"z")
        assert ring.get_nowait() == b"y" * 24
        assert ring.get(block=False) == b"z"


def test_oversize_message_is_value_error_and_changes_nothing(shm_name: str) -> None:
    with Ring.create(shm_name, 256) as ring:
        ring.put(b"keep")
        with pytest.raises(ValueError, match="max_message_size"):
            ring.put(b"x" * (ring.max_message_size + 1))
        ring.put(b"x" * ring.max_message_size)  # the limit itself fits
        assert ring.get() == b"keep"
        assert len(ring.get()) == ring.max_message_size
        assert ring.try_get() is None


def test_batches(shm_name: str) -> None:
    with Ring.create(shm_name, 1 << 16) as ring:
        assert ring.put_many(f"m{i}".encode() for i in range(100)) == 100
        got = ring.get_many(30)
        assert got == [f"m{i}".encode() for i in range(30)]
        assert ring.get_many(1000, timeout=0) == [f"m{i}".encode() for i in range(30, 100)]
        with pytest.raises(queue.Empty):
            ring.get_many(5, timeout=0.01)


def test_put_many_publishes_what_it_has_before_waiting(shm_name: str) -> None:
    # A batch larger than the ring must not deadlock: the producer publishes, the consumer
    # drains, the producer continues.
    with Ring.create(shm_name, 256) as ring:
        total = 200
        out: list[bytes] = []

        def consume() -> None:
            while len(out) < total:
                out.extend(ring.get_many(7, timeout=10))

        t = threading.Thread(target=consume)
        t.start()
        assert (
            ring.put_many((i.to_bytes(4, "little") * 5 for i in range(total)), timeout=10) == total
        )
        t.join(20)
        assert out == [i.to_bytes(4, "little") * 5 for i in range(total)]


def test_zero_copy_view_and_reserve(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        with ring.reserve(5) as buf:
            assert len(buf) == 5
            buf[:] = b"hello"
        ring.put(b"second")
        with ring.get_view() as mv:
            assert bytes(mv) == b"hello"
            assert mv.readonly
        assert ring.get() == b"second"


def test_reserve_aborts_on_exception(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:

        def write_then_fail() -> None:
            with ring.reserve(3) as buf:
                buf[:] = b"bad"
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            write_then_fail()
        ring.put(b"good")
        assert ring.get() == b"good"
        assert ring.try_get() is None


def test_get_view_not_consumed_on_exception(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"again")
        with pytest.raises(RuntimeError), ring.get_view():
            raise RuntimeError("consumer failed")
        assert ring.get() == b"again"


def test_typed_values(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        values: list[object] = [True, -5, 2**62, 1.5, "héllo", b"\x00bytes"]
        for v in values:
            ring.put_value(v)
        got = [ring.get_value() for _ in values]
        assert got == values
        assert [type(g) for g in got] == [type(v) for v in values]
        with pytest.raises(TypeError):
            ring.put_value(object())  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            ring.put_value(2**64)


def test_wraparound_many_sizes(shm_name: str) -> None:
    with Ring.create(shm_name, 512) as ring:
        for i in range(5000):
            m = bytes([i % 251]) * (i * 7 % (ring.max_message_size + 1))
            ring.put(m)
            assert ring.get() == m


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1, 2**60])
def test_bad_capacity(shm_name: str, capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Ring.create(shm_name, capacity)


def test_bad_types(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        with pytest.raises(TypeError):
            ring.put("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ring.put(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            ring.get(timeout=-1)
        with pytest.raises(ValueError, match="max_count"):
            ring.get_many(0)
        with pytest.raises(ValueError, match="role"):
            Ring.open(shm_name, role="reader")  # type: ignore[arg-type]


def test_open_refuses_other_kinds(shm_name: str) -> None:
    memspace.SharedMemory.create(shm_name, 4096).close()
    with pytest.raises(memspace.LayoutError):
        Ring.open(shm_name, role="consumer")


def test_use_after_close(shm_name: str) -> None:
    ring = Ring.create(shm_name, 4096)
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        ring.put(b"x")
    with pytest.raises(ValueError, match="closed"):
        ring.get_nowait()


def test_corrupt_record_length_is_detected(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"payload")
        data_offset = ring._data_offset  # where the byte ring starts in the segment
    with memspace.SharedMemory.open(shm_name) as raw:
        raw.write(data_offset, struct.pack("=I", 4000))  # a length running past what was written
    with Ring.open(shm_name, role="consumer") as ring, pytest.raises(memspace.CorruptSegmentError):
        ring.get(timeout=1)


def test_corrupt_positions_are_detected(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"x")
        assert ring.get() == b"x"
        with memspace.SharedMemory.open(shm_name) as raw:
            raw.write_uint(ring._control_offset, 2**40)  # head far beyond tail + capacity
        with pytest.raises(memspace.CorruptSegmentError, match="impossible"):
            ring.get(timeout=1)
    # The ring marked itself POISONED: later opens refuse it.
    with pytest.raises(memspace.CorruptSegmentError):
        Ring.open(shm_name)


# --- roles ------------------------------------------------------------------------------------

_HOLD = """
import sys, time, memspace
r = memspace.Ring.open(sys.argv[1], role=sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("role", ["producer", "consumer"])
def test_second_live_role_holder_is_refused_and_dead_one_replaced(
    shm_name: str, role: str, start_child: StartChild
) -> None:
    Ring.create(shm_name, 4096).close()
    holder = start_child(_HOLD, shm_name, role, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    with pytest.raises(memspace.RoleTakenError, match=role):
        Ring.open(shm_name, role=role)
    holder.send_signal(signal.SIGSTOP)  # stopped is not dead
    with pytest.raises(memspace.RoleTakenError):
        Ring.open(shm_name, role=role)
    holder.send_signal(signal.SIGCONT)
    stop_child(holder)
    with Ring.open(shm_name, role=role) as ring:
        assert ring.role == role


def test_reopen_never_resets_data(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"persist")
    with Ring.open(shm_name, role="producer") as ring:
        ring.put(b"more")
    with Ring.open(shm_name, role="consumer") as ring:
        assert ring.get() == b"persist"
        assert ring.get() == b"more"


# --- blocking ---------------------------------------------------------------------------------


def test_timeouts_land_close_to_what_was_asked(shm_name: str) -> None:
    with Ring.create(shm_name, 64) as ring:
        for wanted in (0.05, 0.2):
            t0 = time.monotonic()
            with pytest.raises(queue.Empty):
                ring.get(timeout=wanted)
            took = time.monotonic() - t0
            assert wanted <= took < wanted + 0.15
        ring.put(b"x" * 24)
        ring.put(b"x" * 24)
        t0 = time.monotonic()
        with pytest.raises(queue.Full):
            ring.put(b"x", timeout=0.1)
        assert 0.1 <= time.monotonic() - t0 < 0.25


def test_blocked_get_wakes_on_put_from_another_process(
    shm_name: str, start_child: StartChild
) -> None:
    with Ring.create(shm_name, 4096) as ring:
        child = start_child(
            "import sys, time, memspace; r = memspace.Ring.open(sys.argv[1], role='producer');"
            "time.sleep(0.3); r.put(b'late')",
            shm_name,
        )
        t0 = time.monotonic()
        assert ring.get(timeout=20) == b"late"
        assert time.monotonic() - t0 >= 0.25
        child.wait(20)


def test_idle_blocked_consumer_uses_almost_no_cpu(shm_name: str) -> None:
    Ring.create(shm_name, 4096).close()
    code = textwrap.dedent(
        """
        import sys, time, queue, resource, memspace
        r = memspace.Ring.open(sys.argv[1], role='consumer')
        t0 = time.monotonic(); c0 = time.process_time()
        try:
            r.get(timeout=1.0)
        except queue.Empty:
            pass
        print((time.process_time() - c0) / (time.monotonic() - t0))
        """
    )
    out = run_child(code, shm_name)
    assert float(out.stdout) < 0.01


def test_no_lost_wakeups_over_many_ping_pongs(
    make_name: Callable[[str], str], start_child: StartChild
) -> None:
    there, back = make_name("there"), make_name("back")
    Ring.create(there, 4096).close()
    Ring.create(back, 4096).close()
    echo = start_child(
        """
        import sys, memspace
        a = memspace.Ring.open(sys.argv[1], role='consumer')
        b = memspace.Ring.open(sys.argv[2], role='producer')
        while True:
            m = a.get(timeout=20)
            if m == b'stop':
                break
            b.put(m)
        """,
        there,
        back,
    )
    out = Ring.open(there, role="producer")
    inp = Ring.open(back, role="consumer")
    for i in range(20_000):
        out.put(i.to_bytes(4, "little"))
        assert inp.get(timeout=10) == i.to_bytes(4, "little")
    out.put(b"stop")
    assert echo.wait(20) == 0
    out.close()
    inp.close()


def test_ctrl_c_interrupts_a_blocked_get(shm_name: str, start_child: StartChild) -> None:
    Ring.create(shm_name, 4096).close()
    proc = start_child(
        "import sys, time, memspace\n"
        "r = memspace.Ring.open(sys.argv[1], role='consumer')\n"
        "print('waiting', flush=True)\n"
        "try:\n    r.get()\nexcept KeyboardInterrupt:\n"
        "    print('interrupted', time.monotonic(), flush=True)\n",
        shm_name,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    line = proc.stdout.readline().split()
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.2
    proc.wait(10)
    proc.stdout.close()


# --- two processes, exactly once --------------------------------------------------------------

_PRODUCER = """
import hashlib, random, struct, sys, memspace
name, n, batch, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# Optional: a segment where the producer records how many messages put() has committed.
progress = memspace.SharedMemory.open(sys.argv[5]) if len(sys.argv) > 5 else None
r = memspace.Ring.open(name, role="producer")
rng = random.Random(seed)
maxlen = r.max_message_size - 24
def msg(i):
    body = rng.randbytes(rng.randrange(0, maxlen + 1) if i % 10 == 0 else rng.randrange(0, 64))
    return struct.pack("=Q", i) + hashlib.blake2b(body, digest_size=16).digest() + body
i = 0
while i < n:
    if batch == 1:
        r.put(msg(i)); i += 1
        if progress is not None:
            progress.write_int(0, i)
    else:
        k = min(batch, n - i)
        r.put_many([msg(j) for j in range(i, i + k)]); i += k
"""


def _check_stream(ring: Ring, n: int) -> None:
    expected = 0
    while expected < n:
        for m in ring.get_many(512, timeout=30):
            seq, digest, body = struct.unpack("=Q", m[:8])[0], m[8:24], m[24:]
            assert seq == expected, f"got message {seq}, expected {expected}"
            assert hashlib.blake2b(body, digest_size=16).digest() == digest, f"message {seq} torn"
            expected += 1


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_two_processes_exactly_once_in_order(
    shm_name: str, batch: int, start_child: StartChild
) -> None:
    n = 200_000
    with Ring.create(shm_name, 1 << 14) as ring:  # small ring: many wrap-arounds
        prod = start_child(_PRODUCER, shm_name, str(n), str(batch), "1")
        _check_stream(ring, n)
        assert prod.wait(60) == 0
        assert ring.try_get() is None


def test_killed_producer_never_delivers_a_torn_message(
    shm_name: str, make_name: Callable[[str], str], start_child: StartChild
) -> None:
    """Kill the producer at random points, many times, and restart it: no torn message, and
    every message whose put() returned before the kill is delivered."""
    progress = memspace.SharedMemory.create(make_name("progress"), 8)
    with Ring.create(shm_name, 1 << 12) as ring:
        for round_ in range(30):
            progress.write_int(0, 0)
            prod = start_child(_PRODUCER, shm_name, "10000000", "1", str(round_), progress.name)
            expected = 0  # sequence numbers restart with every producer
            deadline = time.monotonic() + 0.05 + (round_ % 7) * 0.03

            def take(timeout: float) -> None:
                nonlocal expected
                for m in ring.get_many(64, timeout=timeout):
                    assert struct.unpack("=Q", m[:8])[0] == expected, "lost or reordered"
                    assert hashlib.blake2b(m[24:], digest_size=16).digest() == m[8:24], "torn"
                    expected += 1

            while time.monotonic() < deadline or expected == 0:
                take(10)
            prod.kill()
            prod.wait()
            committed = progress.read_int(0)
            while len(ring):
                take(0)
            assert expected >= committed, (
                f"round {round_}: {committed} committed, {expected} delivered"
            )
    progress.close()


def test_killed_consumer_loses_or_duplicates_nothing_it_returned(
    shm_name: str, tmp_path: Path, start_child: StartChild
) -> None:
    n = 30_000
    log = tmp_path / "received"
    consumer = """
        import os, struct, sys, memspace
        r = memspace.Ring.open(sys.argv[1], role="consumer")
        fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        while True:
            m = r.get(timeout=30)
            os.write(fd, m[:8])  # record every message get() returned, once
        """
    with Ring.create(shm_name, 1 << 12) as watch:  # holds no role: only watches the fill level
        prod = start_child(_PRODUCER, shm_name, str(n), "1", "9")
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                before = log.stat().st_size if log.exists() else 0
                cons = start_child(consumer, shm_name, str(log))
                # Kill it only once it has made progress (on a loaded machine starting a child
                # can take longer than any fixed delay), then at a random point mid-stream.
                while time.monotonic() < deadline and cons.poll() is None:
                    if (log.stat().st_size if log.exists() else 0) > before:
                        break
                    if prod.poll() is not None and len(watch) == 0:
                        break
                    time.sleep(0.005)
                time.sleep(random.uniform(0.0, 0.1))
                cons.kill()
                cons.wait()
                if prod.poll() is not None and len(watch) == 0:
                    break
            else:
                raise AssertionError("the stream did not drain in time")
        finally:
            if prod.poll() is None:
                prod.kill()
            prod.wait()
        assert prod.returncode == 0
    data = log.read_bytes()
    seen = [v[0] for v in struct.iter_unpack("=Q", data[: len(data) // 8 * 8])]
    # Never a duplicate, always in order. A consumer killed between get() returning and its
    # log write loses that one message from the log (it had consumed it): at most one per kill.
    assert len(seen) == len(set(seen)), "a message was delivered twice"
    assert seen == sorted(seen)
    assert len(seen) > n * 0.99


def test_file_backed_ring_persists(tmp_path: Path) -> None:
    path = tmp_path / "ring.bin"
    with Ring.create(path=path, capacity=4096) as ring:
        ring.put(b"across runs")
    out = run_child(
        "import sys, memspace; r = memspace.Ring.open(path=sys.argv[1], role='consumer');"
        "print(r.get(timeout=5).decode())",
        str(path),
    )
    assert out.stdout.strip() == "across runs"
    Ring.remove(path=path)
    assert not os.path.exists(path)


def test_forked_child_does_not_inherit_the_role(shm_name: str) -> None:
    import multiprocessing as mp

    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"parent")  # this handle now holds the producer role
        ctx = mp.get_context("fork")
        result = ctx.Queue()
        child = ctx.Process(target=_put_from_fork, args=(ring, result))
        child.start()
        child.join(30)
        assert result.get(timeout=10) == "RoleTakenError"
        ring.put(b"parent again")  # the parent still holds it
        assert ring.get() == b"parent"
        assert ring.get() == b"parent again"
        assert ring.try_get() is None
        result.close()
        result.join_thread()


def _put_from_fork(ring: Ring, result: object) -> None:
    try:
        ring.put(b"child")
        result.put("sent")  # type: ignore[attr-defined]
    except memspace.RoleTakenError:
        result.put("RoleTakenError")  # type: ignore[attr-defined]


def test_view_still_exported_at_exit_is_buffer_error_and_not_consumed(shm_name: str) -> None:
    np = pytest.importorskip("numpy")
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"12345678")
        kept = []
        with pytest.raises(BufferError, match="not consumed"), ring.get_view() as mv:
            kept.append(np.frombuffer(mv, dtype=np.uint8))
        kept.clear()
        assert ring.get() == b"12345678"  # still there for the next get
        with pytest.raises(BufferError, match="abandoned"), ring.reserve(4) as buf:
            kept.append(np.frombuffer(buf, dtype=np.uint8))
        kept.clear()
        assert ring.try_get() is None
