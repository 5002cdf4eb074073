"""memspace.Queue: put_object/get_object (pickle protocol 5, out-of-band buffers) and
get_view (zero-copy), in one process and between processes."""

from __future__ import annotations

import gc
import os
import pickle
import queue
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from typing import Any

import memspace
import pytest
from memspace import Queue

from tests.helpers import StartChild

np = pytest.importorskip("numpy")

MAGIC = b"\x89msp"


def parts_of(msg: bytes) -> list[tuple[int, int]]:
    """The (offset, length) table of a put_object message (the documented frame)."""
    assert msg[:4] == MAGIC
    (count,) = struct.unpack_from("<I", msg, 4)
    return [struct.unpack_from("<QQ", msg, 8 + 16 * i) for i in range(count)]


def arrays() -> dict[str, Any]:
    rng = np.random.default_rng(5)
    return {
        "f64": rng.random(125_000),
        "i32_2d": rng.integers(-1000, 1000, (300, 70), dtype=np.int32),
        "fortran": np.asfortranarray(rng.random((40, 30))),
        "strided": rng.random(1000)[::3],  # not contiguous: pickled in-band
        "empty": np.empty((0, 4)),
        "scalar0d": np.array(3.5),
        "bool": rng.random(77) > 0.5,
        "record": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i8"), ("b", "<f4")]),
        "u8_image": rng.integers(0, 255, (108, 192, 3), dtype=np.uint8),
    }


def check_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        g = got[k]
        assert g.dtype == v.dtype, k
        assert g.shape == v.shape, k
        assert np.array_equal(g, v), k


def test_objects_round_trip_in_process(shm_name: str) -> None:
    q = Queue.create(shm_name, 16 << 20)
    want = arrays()
    q.put_object(want)
    q.put_object({"text": "é", "n": None, "t": (1, 2.0), "b": b"raw", "ba": bytearray(b"xy")})
    q.put_object(None)
    got = q.get_object()
    check_equal(got, want)
    for k in ("f64", "i32_2d", "u8_image", "bool"):
        assert got[k].flags.writeable, k
        assert got[k].ctypes.data % 64 == 0, k  # out-of-band buffers come back aligned
    assert got["fortran"].flags.f_contiguous
    got["f64"][0] = -1.0  # writable memory of our own
    assert q.get_object() == {
        "text": "é",
        "n": None,
        "t": (1, 2.0),
        "b": b"raw",
        "ba": bytearray(b"xy"),
    }
    assert q.get_object() is None
    assert q.empty()


def test_large_arrays_are_not_pickled(shm_name: str) -> None:
    """An 8 MB array travels as one out-of-band part: the pickle holds only its metadata and
    the array's bytes sit verbatim, 64-byte aligned, in the message."""
    q = Queue.create(shm_name, 32 << 20)
    a = np.arange(1 << 20, dtype=np.float64)
    q.put_object(a)
    msg = q.get()
    table = parts_of(msg)
    assert len(table) == 2
    (p_off, p_len), (b_off, b_len) = table
    assert p_off % 64 == 0
    assert p_len < 512, f"the pickle is {p_len} bytes: the data was pickled"
    assert b_len == a.nbytes
    assert b_off % 64 == 0
    assert msg[b_off : b_off + b_len] == a.tobytes()
    assert len(msg) == b_off + b_len
    # and what pickle alone would have made (in-band) is the whole array
    assert len(pickle.dumps(a, protocol=5)) > a.nbytes


def test_arrays_between_processes(
    shm_name: str, make_name: Callable[[str], str], start_child: StartChild
) -> None:
    back_name = make_name("back")
    q = Queue.create(shm_name, 8 << 20)
    back = Queue.create(back_name, 8 << 20)
    code = f"""
        import numpy as np, memspace
        q = memspace.Queue.open({shm_name!r})
        back = memspace.Queue.open({back_name!r})
        for _ in range(20):
            obj = q.get_object(timeout=20)
            if obj is None:
                break
            obj["a"] *= 2
            back.put_object(obj, timeout=20)
    """
    child = start_child(code)
    rng = np.random.default_rng(1)
    sent = []
    for i in range(10):
        a = rng.random(125_000 + i)
        sent.append(a)
        q.put_object({"i": i, "a": a}, timeout=20)
    q.put_object(None)
    for i in range(10):
        obj = back.get_object(timeout=20)
        assert obj["i"] == i
        assert np.array_equal(obj["a"], sent[i] * 2)
    assert child.wait(timeout=30) == 0


def test_unpicklable_and_oversize_send_nothing(shm_name: str) -> None:
    q = Queue.create(shm_name, 1 << 16, max_message_size=4096)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put_object({"fine": np.zeros(10), "bad": lambda: None})
    with pytest.raises(TypeError):
        q.put_object(x for x in [1])  # generators cannot be pickled
    with pytest.raises(ValueError, match="max_message_size"):
        q.put_object(np.zeros(1000))  # 8000 bytes of buffer
    assert q.empty()
    assert q.inspect()["used_bytes"] == 0
    q.put_object(np.zeros(10))
    assert np.array_equal(q.get_object(), np.zeros(10))


def test_get_object_refuses_other_messages(shm_name: str) -> None:
    q = Queue.create(shm_name, 1 << 16)
    q.put(pickle.dumps(1))
    with pytest.raises(ValueError, match="not sent by put_object"):
        q.get_object()
    # a message with the header but a table pointing outside it: refused, never read
    bad = MAGIC + struct.pack("<I", 1) + struct.pack("<QQ", 24, 1 << 40)
    q.put(bad)
    with pytest.raises(ValueError, match="outside the message"):
        q.get_object()
    bad = MAGIC + struct.pack("<I", 1 << 30)
    q.put(bad)
    with pytest.raises(ValueError, match="table"):
        q.get_object()
    assert q.empty()  # each refused message was consumed
    q.put_object("still works")
    assert q.get_object() == "still works"


def test_object_timeouts_and_nowait(shm_name: str) -> None:
    q = Queue.create(shm_name, 4096, max_message_size=1024)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_object(timeout=0.1)
    assert 0.1 <= time.monotonic() - t0 < 0.2
    with pytest.raises(queue.Empty):
        q.get_object(block=False)
    while True:
        try:
            q.put_object(np.zeros(100), block=False)
        except queue.Full:
            break
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put_object(np.zeros(100), timeout=0.1)
    assert 0.1 <= time.monotonic() - t0 < 0.2
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put_object(1)
    with pytest.raises(ValueError, match="closed"):
        q.get_object()


def test_get_view_reads_in_place(shm_name: str) -> None:
    q = Queue.create(shm_name, 1 << 16)
    q.put_many([b"first", b"x" * 1000, b"third"])
    with q.get_view() as mv:
        assert mv.readonly
        assert bytes(mv) == b"first"
    with q.get_view(timeout=1) as mv:
        assert np.frombuffer(mv, dtype=np.uint8).sum() == ord("x") * 1000
    with pytest.raises(RuntimeError), q.get_view() as mv:
        raise RuntimeError("boom")
    # the message is taken on entry: an exception does not put it back
    assert q.empty()
    assert q.inspect()["used_bytes"] == 0
    with pytest.raises(queue.Empty), q.get_view(timeout=0.05):
        pass


def test_get_view_holds_space_while_a_view_lives(shm_name: str) -> None:
    q = Queue.create(shm_name, 1 << 16)
    q.put(b"y" * 4000)
    with pytest.raises(BufferError, match="still exported"), q.get_view() as mv:
        arr = np.frombuffer(mv, dtype=np.uint8)
    used = q.inspect()["used_bytes"]
    assert used >= 4000  # still held: arr looks at it
    assert int(arr[0]) == ord("y")
    del arr, mv
    gc.collect()
    assert q.inspect()["used_bytes"] == 0


def test_get_view_several_open_at_once(shm_name: str) -> None:
    q = Queue.create(shm_name, 1 << 16)
    q.put_many([b"a" * 100, b"b" * 100, b"c" * 100])
    v1, v2 = q.get_view(), q.get_view()
    m1 = v1.__enter__()
    m2 = v2.__enter__()
    assert bytes(m1[:1]) == b"a"
    assert bytes(m2[:1]) == b"b"
    with pytest.raises(ValueError, match="already open"):
        v1.__enter__()
    v2.__exit__(None)
    v1.__exit__(None)
    assert q.get() == b"c" * 100
    assert q.inspect()["used_bytes"] == 0
    q.close()
    with pytest.raises(ValueError, match="closed"), q.get_view():
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_never_releases_the_parents_view(shm_name: str) -> None:
    q = Queue.create(shm_name, 1 << 16)
    q.put(b"z" * 500)
    view = q.get_view()
    mv = view.__enter__()
    held = q.inspect()["used_bytes"]
    pid = os.fork()
    if pid == 0:  # the child drops everything it inherited, then exits
        try:
            mv.release()
            del mv, view
            gc.collect()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert q.inspect()["used_bytes"] == held
    assert bytes(mv[:3]) == b"zzz"
    view.__exit__(None)
    assert q.inspect()["used_bytes"] == 0


def test_consumer_killed_inside_get_view_never_wedges(
    shm_name: str, start_child: StartChild
) -> None:
    """A consumer SIGKILLed while it holds a view loses that message; the queue's space comes
    back, and the others carry on."""
    q = Queue.create(shm_name, 4096, max_message_size=1024)
    code = f"""
        import sys, time, memspace
        q = memspace.Queue.open({shm_name!r})
        with q.get_view(timeout=20) as mv:
            print("holding", flush=True)
            time.sleep(60)
    """
    q.put(b"doomed" * 100)
    child = start_child(code, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "holding"
    assert q.empty()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    # the held space comes back: messages keep flowing through every lap of the ring
    t0 = time.monotonic()
    for i in range(20):
        q.put(bytes([i]) * 1000, timeout=5)
        assert q.get(timeout=1)[0] == i
    took = time.monotonic() - t0
    assert took < 0.5, f"the queue resumed only after {took:.3f} s"
    assert q.inspect()["used_bytes"] == 0
    print(f"resumed {took * 1000:.1f} ms after the kill")


def _spawned_worker(q: Queue, replies: Queue, n: int) -> None:
    for _ in range(n):
        obj = q.get_object(timeout=20)
        replies.put_object(("done", obj["i"], obj["a"].sum()), timeout=20)


def test_handles_pickle_by_reference_to_spawned_processes(
    shm_name: str, make_name: Callable[[str], str]
) -> None:
    """A Queue (or Ring) handle pickles as its name: multiprocessing can pass it to a spawned
    process, as with multiprocessing.Queue."""
    import multiprocessing as mp

    q = Queue.create(shm_name, 1 << 20)
    replies = Queue.create(make_name("replies"), 1 << 20)
    again = pickle.loads(pickle.dumps(q))
    assert isinstance(again, Queue)
    assert again.capacity == q.capacity
    r = memspace.Ring.create(make_name("ring"), 4096)
    r2 = pickle.loads(pickle.dumps(r))
    r.put(b"ring")
    assert r2.get(timeout=5) == b"ring"
    p = mp.get_context("spawn").Process(target=_spawned_worker, args=(q, replies, 3))
    p.start()
    for i in range(3):
        q.put_object({"i": i, "a": np.ones(10)})
    got = sorted(replies.get_object(timeout=30) for _ in range(3))
    p.join(timeout=30)
    assert p.exitcode == 0
    assert got == [("done", i, 10.0) for i in range(3)]
