"""MemoryFileSystem under threads: stress without corruption, the quota boundary under
contention, lock timeouts, lock waits that do not stall the filesystem, and writers that are
not starved by readers. No test asserts a speed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from memspace import MFSQuotaExceededError

from tests.fs.conftest import FsFactory


def run_threads(n: int, target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    lock = threading.Lock()

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a thread hung"
    return errors


def test_50_threads_1000_write_read_cycles_without_corruption(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=64 << 20)
    mfs.mkdir("/t")
    mfs.mkdir("/shared")

    def work(i: int) -> None:
        own = f"/t/{i}"
        for c in range(1000):
            payload = f"{i}:{c}:".encode() * (1 + c % 17)
            if c % 100 == 99:
                payload += bytes(300_000)  # now and then a copy large enough to drop the GIL
            with mfs.open(own, "wb") as f:
                f.write(payload)
            with mfs.open(own, "rb") as f:
                got = f.read()
            assert got == payload, f"thread {i} cycle {c}: corrupted"
            if c % 50 == 0:
                # Contended files: whole records appended under the exclusive lock.
                with mfs.open(f"/shared/{c % 3}", "ab", lock_timeout=30) as f:
                    f.write(f"<{i}:{c}>".encode())

    assert run_threads(50, work) == []
    for k in range(3):
        with mfs.open(f"/shared/{k}") as f:
            records = f.read().decode().strip("<>").split("><")
        expected = 50 * sum(1 for c in range(0, 1000, 50) if c % 3 == k)
        assert len(records) == len(set(records)) == expected
    st = mfs.stats()
    assert st["file_count"] == 53
    mfs.rmtree("/t")
    mfs.rmtree("/shared")
    assert mfs.stats()["used_bytes"] == 0


def test_40_threads_at_the_quota_boundary_see_only_quota_errors(fs_factory: FsFactory) -> None:
    quota = 200_000
    mfs = fs_factory(max_quota=quota)
    mfs.mkdir("/q")
    written = [0] * 40
    refused: list[tuple[int, int, int]] = []

    def work(i: int) -> None:
        with mfs.open(f"/q/{i}", "wb") as f:
            misses = 0
            while misses < 20:
                size = 1 + (i * 37 + misses * 11) % 900
                try:
                    f.write(b"x" * size)
                    written[i] += size
                except MFSQuotaExceededError as e:
                    refused.append((size + 128, e.requested, e.available))
                    misses += 1
                s = mfs.stats()
                assert s["used_bytes"] + s["free_bytes"] == quota
                assert s["used_bytes"] <= quota

    assert run_threads(40, work) == []
    assert len(refused) == 40 * 20
    assert all(asked == req and avail < req for asked, req, avail in refused)
    st = mfs.stats()
    assert st["used_bytes"] <= quota
    assert st["free_bytes"] < 1 + 128 + 900  # the boundary was reached
    sizes = {p: len(b) for p, b in mfs.export_tree().items()}
    assert sizes == {f"/q/{i}": written[i] for i in range(40)}
    assert st["used_bytes"] == sum(written) + 128 * st["chunk_count"]
    mfs.rmtree("/q")
    assert mfs.stats()["used_bytes"] == 0


def test_lock_timeouts(fs_factory: FsFactory) -> None:
    mfs = fs_factory(default_lock_timeout=0.2)
    with mfs.open("/f", "wb"):
        with pytest.raises(BlockingIOError):
            mfs.open("/f", "rb", lock_timeout=0)  # try once
        t0 = time.monotonic()
        with pytest.raises(BlockingIOError):
            mfs.open("/f", "rb")  # None: the instance default (0.2 s)
        assert time.monotonic() - t0 >= 0.15
        with pytest.raises(BlockingIOError):
            mfs.open("/f", "r+b", lock_timeout=0.05)
    with mfs.open("/f", "rb"), mfs.open("/f", "rb", lock_timeout=0):
        with pytest.raises(BlockingIOError):
            mfs.open("/f", "wb", lock_timeout=0)  # readers share, writers exclude
        with pytest.raises(BlockingIOError):
            mfs.open("/f", "ab", lock_timeout=0.01)
    with mfs.open("/f", "ab", lock_timeout=0):
        pass


def test_waiting_for_a_file_lock_does_not_stall_the_filesystem(fs_factory: FsFactory) -> None:
    """dmemfs waits for the file lock while holding its global lock: everything stops."""
    mfs = fs_factory()
    holder = mfs.open("/busy", "wb")
    waiting = threading.Event()
    result: list[object] = []

    def waiter() -> None:
        waiting.set()
        with mfs.open("/busy", "rb", lock_timeout=30) as f:
            result.append(f.read())

    t = threading.Thread(target=waiter)
    t.start()
    waiting.wait(10)
    time.sleep(0.05)  # let it block inside open()
    # Meanwhile, everything else works.
    mfs.mkdir("/other")
    with mfs.open("/other/x", "wb") as f:
        f.write(b"x")
    assert mfs.listdir("/other") == ["x"]
    assert mfs.stat("/busy")["size"] == 0
    assert mfs.export_tree("/other") == {"/other/x": b"x"}
    assert t.is_alive()
    assert result == []
    holder.write(b"done")
    holder.close()
    t.join(10)
    assert result == [b"done"]


def test_writers_are_not_starved_by_readers(fs_factory: FsFactory) -> None:
    """dmemfs's lock has no writer preference: overlapping readers keep a writer out."""
    mfs = fs_factory()
    with mfs.open("/f", "wb") as f:
        f.write(b"v0")
    stop = threading.Event()

    def reader(i: int) -> None:
        while not stop.is_set():
            try:
                with mfs.open("/f", "rb", lock_timeout=10) as f:
                    f.read()
                    time.sleep(0.002)  # hold it a little, so readers always overlap
            except BlockingIOError:
                pass

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for t in readers:
        t.start()
    try:
        time.sleep(0.05)
        for k in range(5):
            with mfs.open("/f", "wb", lock_timeout=5) as f:  # must get in
                f.write(f"v{k + 1}".encode())
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    with mfs.open("/f") as f:
        assert f.read() == b"v5"


def test_removal_while_waiting_for_the_lock(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    h = mfs.open("/f", "wb")
    outcome: list[object] = []

    def waiter() -> None:
        try:
            with mfs.open("/f", "rb", lock_timeout=10):
                outcome.append("opened")
        except FileNotFoundError:
            outcome.append("gone")

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    h.close()
    t.join(10)
    # Either the waiter got the lock first, or nothing was removed: it opened the file.
    assert outcome == ["opened"]
    h = mfs.open("/f", "wb")
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    h.close()
    t.join(10)
    mfs.remove("/f")
    assert outcome == ["opened", "opened"]


def test_one_handle_shared_by_threads(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    with mfs.open("/f", "ab") as f:

        def work(i: int) -> None:
            for _ in range(200):
                f.write(b"%03d;" % i)

        assert run_threads(8, work) == []
    with mfs.open("/f") as f:
        parts = f.read().split(b";")[:-1]
    assert len(parts) == 1600
    assert all(len(p) == 3 for p in parts)


def test_ctrl_c_interrupts_a_lock_wait(fs_factory: FsFactory) -> None:
    import os
    import signal

    mfs = fs_factory(default_lock_timeout=None)  # wait forever
    holder = mfs.open("/f", "wb")
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            mfs.open("/f", "rb")
    finally:
        timer.cancel()
        holder.close()
    with mfs.open("/f", "rb", lock_timeout=0):
        pass
