"""memspace.Queue: queue.Queue semantics, bad input, corruption, and real processes that
put and get (the chaos run that kills them is in test_queue_chaos.py)."""

from __future__ import annotations

import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import memspace
import pytest
from memspace import Queue

from tests.channels.queue_workers import read_received, spawn
from tests.helpers import StartChild, run_child, stop_child


def test_fifo_batches_and_sizes(shm_name: str) -> None:
    q = Queue.create(shm_name, 1000)
    assert q.capacity == 1024
    assert q.max_message_size == 504
    q.put(b"a")
    q.put(bytearray(b"bb"))
    q.put(memoryview(b"ccc"))
    assert q.put_many([b"", b"d" * 504]) == 2
    assert q.qsize() == 5
    assert q.get() == b"a"
    assert q.get_nowait() == b"bb"
    assert q.get_many(10) == [b"ccc", b"", b"d" * 504]
    assert q.try_get() is None
    assert q.empty()
    q.close()


def test_other_process_sees_messages(shm_name: str) -> None:
    q = Queue.create(shm_name, 4096)
    q.put(b"from parent")
    code = f"""
        import memspace
        q = memspace.Queue.open({shm_name!r})
        assert q.get(timeout=5) == b"from parent"
        q.put(b"from child")
    """
    run_child(code, timeout=30)
    assert q.get(timeout=5) == b"from child"


def test_bad_input_changes_nothing(shm_name: str) -> None:
    q = Queue.create(shm_name, 256, max_message_size=16)
    with pytest.raises(ValueError, match="max_message_size"):
        q.put(b"x" * 17)
    with pytest.raises(ValueError, match="max_message_size"):
        q.put_many([b"ok", b"x" * 17])
    with pytest.raises(TypeError):
        q.put("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.put_many([b"ok", 3])  # type: ignore[list-item]
    assert q.empty()
    assert q.qsize() == 0
    with pytest.raises(ValueError, match="max_count"):
        q.get_many(0)


def test_timeouts_land_on_time(shm_name: str) -> None:
    q = Queue.create(shm_name, 256)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert 0.1 <= time.monotonic() - t0 < 0.15
    with pytest.raises(queue.Empty):
        q.get_nowait()
    while q.try_put(b"x" * 100):
        pass
    assert q.full() or not q.try_put(b"x" * 100)
    with pytest.raises(queue.Full):
        q.put_nowait(b"x" * 100)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(b"x" * 100, timeout=0.1)
    assert 0.1 <= time.monotonic() - t0 < 0.15
    assert q.clear() >= 1
    assert q.empty()


def test_closed_handle_refuses(shm_name: str) -> None:
    with Queue.create(shm_name, 256) as q:
        pass
    assert q.closed
    with pytest.raises(ValueError, match="closed"):
        q.put(b"x")


def test_corrupt_positions_raise(shm_name: str) -> None:
    q = Queue.create(shm_name, 256)
    q.put(b"hello")
    seg = memspace.SharedMemory.open(shm_name)
    off = q._control_offset
    seg.buf[off : off + 8] = struct.pack("<Q", 1 << 40)
    with pytest.raises(memspace.CorruptSegmentError):
        q.get(timeout=1)
    seg.close()


def test_corrupt_record_header_raises(shm_name: str) -> None:
    q = Queue.create(shm_name, 256)
    q.put(b"hello")
    seg = memspace.SharedMemory.open(shm_name)
    off = q._data_offset
    seg.buf[off : off + 8] = b"\xff" * 8
    with pytest.raises(memspace.CorruptSegmentError):
        q.get(timeout=1)
    seg.close()


def test_inspect_shows_depth_and_attached(shm_name: str) -> None:
    q = Queue.create(shm_name, 4096)
    q.put(b"12345")
    info = q.inspect()
    assert info["kind"] == "queue"
    assert info["messages"] == 1
    assert info["used_bytes"] == 16
    assert info["attached"][0]["alive"]
    out = subprocess.run(
        [sys.executable, "-m", "memspace", "inspect", shm_name],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "queue" in out


def test_two_by_two_processes_exactly_once_in_order(shm_name: str, tmp_path: Path) -> None:
    Queue.create(shm_name, 1 << 14)
    n = 5000
    clogs = [tmp_path / f"c{c}.log" for c in range(2)]
    consumers = [spawn("consumer", shm_name, log, "--wait", "2.0") for log in clogs]
    producers = [
        spawn("producer", shm_name, tmp_path / f"p{p}.log", "--id", str(p), "--count", str(n))
        for p in range(2)
    ]
    for proc in producers + consumers:
        assert proc.wait(timeout=120) == 0
    # read_received checks that each consumer got each producer's messages in order.
    got = [(p, i) for log in clogs for p, i, _ in read_received(log)]
    assert sorted(got) == [(p, i) for p in range(2) for i in range(n)]


def test_a_dead_producers_claim_is_stepped_over_at_once(
    shm_name: str, start_child: StartChild
) -> None:
    """A producer killed between claim and commit: the message behind its claim is there for
    a non-blocking get at once, and the claim is counted out of qsize()."""
    big = 1 << 24  # long enough to copy that a kill lands between claim and commit
    q = Queue.create(shm_name, 4 * big, max_message_size=big)
    code = """
        import sys, memspace
        q = memspace.Queue.open(sys.argv[1])
        data = bytes(int(sys.argv[2]))
        print("claiming", flush=True)
        q.put(data)
    """
    for attempt in range(40):
        proc = start_child(code, shm_name, str(big), stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"claiming\n"
            time.sleep(0.001 * (attempt % 5))
        finally:
            stop_child(proc)
        claimed = q.inspect()["used_bytes"] > 0
        q.put(b"behind")
        first = q.try_get()
        if first == b"behind" and claimed:
            break  # killed between claim and commit, and stepped over without waiting
        assert first is not None, "a committed message was invisible to try_get()"
        if first != b"behind":  # committed after all: drain and try again
            assert len(first) == big
            assert q.try_get() == b"behind"
    else:
        pytest.skip("no kill landed between claim and commit")
    assert q.empty()
    assert q.qsize() == 0
    assert q.inspect()["messages"] == 0


def test_sigstopped_process_is_not_dead(shm_name: str, start_child: StartChild) -> None:
    q = Queue.create(shm_name, 4096)
    code = f"""
        import memspace, time
        q = memspace.Queue.open({shm_name!r})
        q.put(b"ready")
        time.sleep(60)
    """
    proc = start_child(code)
    assert q.get(timeout=20) == b"ready"
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(0.1)
    alive = {a["pid"]: a["alive"] for a in q.inspect()["attached"]}
    assert alive[proc.pid]
    q.put(b"still works")
    assert q.get(timeout=1) == b"still works"


# --- waiting: no polling, no lost wake-ups, the GIL released, Ctrl-C ---------------------------


def test_idle_blocked_get_uses_almost_no_cpu(shm_name: str) -> None:
    Queue.create(shm_name, 4096).close()
    code = """
        import sys, time, queue, memspace
        q = memspace.Queue.open(sys.argv[1])
        t0 = time.monotonic(); c0 = time.process_time()
        try:
            q.get(timeout=1.0)
        except queue.Empty:
            pass
        print((time.process_time() - c0) / (time.monotonic() - t0))
    """
    out = run_child(code, shm_name)
    assert float(out.stdout) < 0.01


def test_no_lost_wakeups_over_many_ping_pongs(
    make_name: Callable[[str], str], start_child: StartChild
) -> None:
    there, back = make_name("there"), make_name("back")
    Queue.create(there, 4096).close()
    Queue.create(back, 4096).close()
    code = """
        import sys, memspace
        a = memspace.Queue.open(sys.argv[1])
        b = memspace.Queue.open(sys.argv[2])
        while True:
            m = a.get(timeout=20)
            if m == b'stop':
                break
            b.put(m)
    """
    echo = start_child(code, there, back)
    out, inp = Queue.open(there), Queue.open(back)
    for i in range(20_000):
        out.put(i.to_bytes(4, "little"))
        assert inp.get(timeout=10) == i.to_bytes(4, "little")
    out.put(b"stop")
    assert echo.wait(20) == 0


def test_blocked_calls_release_the_gil(shm_name: str) -> None:
    """While one thread waits in get() (or put() on a full queue), another thread runs Python."""
    q = Queue.create(shm_name, 256)
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        with pytest.raises(queue.Empty):
            q.get(timeout=0.3)
        during_get = ticks
        while q.try_put(b"x" * 100):
            pass
        with pytest.raises(queue.Full):
            q.put(b"x" * 100, timeout=0.3)
        during_put = ticks - during_get
    finally:
        stop.set()
        t.join()
    # a thread that kept the GIL for 0.3 s would leave the other one a handful of switches
    assert during_get > 10_000
    assert during_put > 10_000


@pytest.mark.parametrize("call", ["get", "put", "get_object", "get_view"])
def test_ctrl_c_interrupts_a_blocked_call(
    shm_name: str, call: str, start_child: StartChild
) -> None:
    q = Queue.create(shm_name, 256)
    if call == "put":
        while q.try_put(b"x" * 100):
            pass
    blocked = {
        "get": "q.get()",
        "put": "q.put(b'x' * 100)",
        "get_object": "q.get_object()",
        "get_view": "q.get_view().__enter__()",
    }[call]
    code = (
        "import sys, time, memspace\n"
        "q = memspace.Queue.open(sys.argv[1])\n"
        "print('waiting', flush=True)\n"
        f"try:\n    {blocked}\nexcept KeyboardInterrupt:\n"
        "    print('interrupted', time.monotonic(), flush=True)\n"
    )
    proc = start_child(code, shm_name, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    line = proc.stdout.readline().split()
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.2
    assert proc.wait(10) == 0


def test_threads_share_one_handle(shm_name: str) -> None:
    """Producer and consumer threads on one handle (the GIL released while they wait):
    every message exactly once, FIFO per producer."""
    q = Queue.create(shm_name, 4096)
    n, producers = 5_000, 3
    got: list[list[tuple[int, int]]] = [[] for _ in range(3)]

    def produce(p: int) -> None:
        for i in range(n):
            q.put(struct.pack("<II", p, i), timeout=20)

    def consume(c: int) -> None:
        while True:
            m = q.get(timeout=20)
            if m == b"stop":
                return
            got[c].append(struct.unpack("<II", m))

    ps = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    cs = [threading.Thread(target=consume, args=(c,)) for c in range(3)]
    for t in ps + cs:
        t.start()
    for t in ps:
        t.join()
    for _ in cs:
        q.put(b"stop")
    for t in cs:
        t.join()
    for seen in got:
        for p in range(producers):
            mine = [i for (pp, i) in seen if pp == p]
            assert mine == sorted(mine), "per-producer order"
    everything = sorted(x for seen in got for x in seen)
    assert everything == [(p, i) for p in range(producers) for i in range(n)]
    assert q.empty()


def test_get_many_block_false_and_used(shm_name: str) -> None:
    with Queue.create(shm_name, 4096) as q:
        with pytest.raises(queue.Empty):
            q.get_many(5, block=False)
        assert q.used == 0
        q.put_many([b"12345", b""])
        assert q.used == 16 + 8  # 8-byte headers, payloads rounded up to 8
        assert q.get_many(5, False) == [b"12345", b""]
        assert q.used == 0
        with pytest.raises(ValueError, match="timeout"):
            q.get_many(5, block=True, timeout=-1)
