"""memspace.Ring: objects (put_object/get_object), non-blocking typed values, clear(),
empty()/full(), `used` beside len(), get_many(block=...) (issue #13 §1, the membridge and
mmap-ipc ports), in one process and between two."""

from __future__ import annotations

import pickle
import queue
import struct

import memspace
import pytest
from memspace import Ring

from tests.helpers import run_child

pytestmark = pytest.mark.timeout(60)

np = pytest.importorskip("numpy")


def test_mixed_lists_round_trip(shm_name: str) -> None:
    # membridge pushes heterogeneous lists: ring.push(["Hello", 0.92, True]).
    with Ring.create(shm_name, 1 << 16) as ring:
        ring.put_object(["Hello", 0.92, True])
        ring.put_object({"k": (1, None, b"raw")})
        assert ring.get_object() == ["Hello", 0.92, True]
        assert ring.get_object(block=False) == {"k": (1, None, b"raw")}
        with pytest.raises(queue.Empty):
            ring.get_object(block=False)
        with pytest.raises(queue.Empty):
            ring.get_object(timeout=0.01)


def test_arrays_travel_out_of_band_and_come_back_aligned(shm_name: str) -> None:
    a = np.arange(100_000, dtype=np.float64).reshape(250, 400)
    b = np.asfortranarray(np.ones((30, 20), np.int16))
    with Ring.create(shm_name, 8 << 20) as ring:
        ring.put_object({"a": a, "b": b, "n": 7})
        assert ring.used >= a.nbytes + b.nbytes
        got = ring.get_object()
        assert got["n"] == 7
        for k, want in (("a", a), ("b", b)):
            assert np.array_equal(got[k], want)
            assert got[k].dtype == want.dtype
            assert got[k].ctypes.data % 64 == 0
            got[k][...] = 0  # writable: memory of its own
        # The message is the documented parts frame (the same as Queue.put_object's).
        ring.put_object(pickle.PickleBuffer(bytearray(b"x" * 100)))
        raw = ring.get()
        assert raw[:4] == b"\x89msp"
        (count,) = struct.unpack_from("<I", raw, 4)
        assert count == 2  # the pickle and one out-of-band buffer


def test_a_too_large_object_sends_nothing_and_says_how_large(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        with pytest.raises(ValueError, match=r"max_message_size of 2040 bytes.*capacity >="):
            ring.put_object(np.zeros(10_000, np.uint8))
        assert len(ring) == 0
        assert ring.used == 0
        with pytest.raises(queue.Empty):
            ring.get(block=False)


def test_unpicklable_objects_send_nothing(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        with pytest.raises((TypeError, pickle.PicklingError, AttributeError)):
            ring.put_object(lambda: None)
        assert ring.empty()
        with pytest.raises(ValueError, match="timeout"):
            ring.put_object(1, timeout=-1)
        assert ring.empty()


def test_a_message_that_is_not_an_object_stays_in_the_ring(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"plain bytes")
        with pytest.raises(ValueError, match=r"not sent by put_object.*left in the ring"):
            ring.get_object()
        assert ring.get() == b"plain bytes"
        ring.put_value(5)
        with pytest.raises(ValueError, match="not sent by put_object"):
            ring.get_object()
        assert ring.get_value(block=False) == 5


def test_objects_between_processes(shm_name: str) -> None:
    with Ring.create(shm_name, 1 << 20) as ring:
        run_child(
            """
            import sys, numpy as np, memspace
            with memspace.Ring.open(sys.argv[1], role="producer") as tx:
                for i in range(50):
                    tx.put_object([i, "s" * i, np.full(i, i, np.int64)], timeout=30)
            """,
            shm_name,
        )
        for i in range(50):
            n, s, arr = ring.get_object(timeout=30)
            assert (n, s) == (i, "s" * i)
            assert arr.tolist() == [i] * i


def test_get_value_does_not_have_to_block(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        with pytest.raises(queue.Empty):
            ring.get_value(block=False)
        with pytest.raises(queue.Empty):
            ring.get_value(timeout=0.01)
        ring.put_value("hi", block=False)
        assert ring.get_value(False) == "hi"


def test_clear_empty_full_and_used(shm_name: str) -> None:
    with Ring.create(shm_name, 256) as ring:
        assert ring.empty()
        assert not ring.full()
        assert (len(ring), ring.used, ring.free) == (0, 0, 256)
        ring.put(b"12345")  # 8 bytes of header + 5 rounded up to 8
        assert (len(ring), ring.used, ring.free) == (1, 16, 240)
        while ring.try_put(b""):
            pass
        assert ring.full()
        assert not ring.empty()
        n = len(ring)
        assert ring.clear() == n
        assert ring.empty()
        assert len(ring) == 0
        assert ring.used == 0
        assert ring.clear() == 0
        ring.put(b"after")
        assert ring.get() == b"after"


def test_clear_is_a_consumer_operation(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring, Ring.open(shm_name, role="consumer") as rx:
        ring.put(b"x")
        with pytest.raises(memspace.RoleTakenError, match="another handle in this process"):
            ring.clear()
        assert rx.clear() == 1


def test_get_many_without_blocking(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        with pytest.raises(queue.Empty):
            ring.get_many(10, block=False)
        ring.put_many([b"a", b"b", b"c"])
        assert ring.get_many(2, False) == [b"a", b"b"]
        assert ring.get_many(10, block=False) == [b"c"]


def test_after_close(shm_name: str) -> None:
    ring = Ring.create(shm_name, 4096)
    ring.close()
    for op in (
        lambda: ring.put_object(1),
        lambda: ring.get_object(),
        lambda: ring.clear(),
        lambda: ring.empty(),
        lambda: ring.full(),
        lambda: ring.used,
        lambda: len(ring),
    ):
        with pytest.raises(ValueError, match="closed"):
            op()
    assert ring.capacity == 4096


def test_put_object_on_a_full_ring_says_full(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        while ring.try_put(b"x" * 100):
            pass
        with pytest.raises(queue.Full):
            ring.put_object([1, 2, 3], block=False)
        with pytest.raises(queue.Full):
            ring.put_object([1, 2, 3], timeout=0.05)
        with pytest.raises(ValueError, match="timeout"):
            ring.get_object(timeout=-1)
        n = ring.clear()
        assert n > 0
        ring.put_object([1, 2, 3], block=False)
        assert ring.get_object(block=False) == [1, 2, 3]
