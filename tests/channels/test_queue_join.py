"""Queue.task_done() and Queue.join(): multiprocessing.JoinableQueue semantics across
processes, per handle, and crash-aware (a consumer killed holding tasks never makes join()
wait forever: its tasks are settled as lost)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable

import memspace
import pytest
from memspace import Queue, aio

from tests.helpers import StartChild

STUCK = 30.0

WORKER = """
import sys, time, memspace
jobs = memspace.Queue.open(sys.argv[1])
done = memspace.Queue.open(sys.argv[2])
while True:
    m = jobs.get(timeout=30)
    if m == b"stop":
        jobs.task_done()
        break
    time.sleep(0.001)              # the work
    done.put(m)                    # its result, before the task is marked done
    jobs.task_done()
"""


def test_join_semantics_in_one_process(shm_name: str) -> None:
    q = Queue.create(shm_name, 4096)
    q.join(timeout=0)  # nothing put: done at once
    q.put(b"a")
    q.put(b"b")
    with pytest.raises(TimeoutError):
        q.join(timeout=0.05)
    assert q.get() == b"a"
    q.task_done()
    with pytest.raises(TimeoutError):
        q.join(timeout=0)  # b"b" is still in the queue
    assert q.get_many(5) == [b"b"]
    q.task_done()
    q.join(timeout=STUCK)
    with pytest.raises(ValueError, match="more times"):
        q.task_done()
    # Views and objects are tasks too; clear() counts what it drops as done.
    q.put(b"v")
    with q.get_view() as mv:
        assert bytes(mv) == b"v"
    q.put_object([1])
    assert q.get_object() == [1]
    q.task_done()
    q.task_done()
    q.put(b"dropped")
    assert q.clear() == 1
    q.join(timeout=0)
    info = q.inspect()
    assert (info["unfinished_taken"], info["tasks_lost"]) == (0, 0)
    with pytest.raises(ValueError, match="timeout"):
        q.join(timeout=-1)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.task_done()


def test_each_handle_marks_what_it_took(shm_name: str) -> None:
    owner = Queue.create(shm_name, 4096)
    worker = Queue.open(shm_name)
    owner.put(b"job")
    assert worker.get() == b"job"
    with pytest.raises(ValueError, match="more times"):
        owner.task_done()  # it took nothing
    with pytest.raises(TimeoutError):
        owner.join(timeout=0)
    worker.task_done()
    owner.join(timeout=0)
    # A handle closed with a task unmarked: the task is lost with it, join() does not wait.
    owner.put(b"job 2")
    assert worker.get() == b"job 2"
    worker.close()
    owner.join(timeout=STUCK)
    assert owner.inspect()["tasks_lost"] == 1
    owner.close()


def test_join_across_processes(make_name: Callable[[str], str], start_child: StartChild) -> None:
    """Three worker processes take jobs and mark them done after their work: join() returns
    only when every job's result is there."""
    jobs_name, done_name = make_name("jobs"), make_name("done")
    jobs = Queue.create(jobs_name, 4096)
    done = Queue.create(done_name, 1 << 16)
    workers = [start_child(WORKER, jobs_name, done_name) for _ in range(3)]
    n = 300
    for i in range(n):
        jobs.put(i.to_bytes(4, "little"), timeout=STUCK)
    jobs.join(timeout=STUCK)
    results = []
    while (m := done.try_get()) is not None:
        results.append(int.from_bytes(m, "little"))
    assert sorted(results) == list(range(n)), "join() returned before every task was done"
    for _ in workers:
        jobs.put(b"stop")
    jobs.join(timeout=STUCK)
    for w in workers:
        assert w.wait(STUCK) == 0
    assert jobs.inspect()["tasks_lost"] == 0
    jobs.close()
    done.close()


def test_a_consumer_killed_holding_tasks_does_not_block_join(
    shm_name: str, start_child: StartChild
) -> None:
    q = Queue.create(shm_name, 4096)
    for i in range(5):
        q.put(b"%d" % i)
    code = """
        import sys, time, memspace
        q = memspace.Queue.open(sys.argv[1])
        got = q.get_many(2)
        q.task_done()              # one of the two
        print("holding", flush=True)
        time.sleep(60)
    """
    proc = start_child(code, shm_name, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    assert q.get_many(3) == [b"2", b"3", b"4"]
    for _ in range(3):
        q.task_done()
    with pytest.raises(TimeoutError):
        q.join(timeout=0.2)  # the live consumer still holds one (a stopped one would too)
    proc.send_signal(signal.SIGSTOP)
    with pytest.raises(TimeoutError):
        q.join(timeout=0.2)
    proc.kill()
    proc.wait()
    q.join(timeout=STUCK)  # its unmarked task is settled as lost
    info = q.inspect()
    assert (info["unfinished_taken"], info["tasks_lost"]) == (0, 1)
    q.close()


def test_a_new_process_in_a_dead_slot_settles_it_once(
    shm_name: str, start_child: StartChild
) -> None:
    """The next process to take a dead consumer's attachment slot settles what it left, and
    its own tasks are its own (never counted as its predecessor's)."""
    q = Queue.create(shm_name, 4096)
    for i in range(3):
        q.put(b"%d" % i)
    code = """
        import sys, time, memspace
        q = memspace.Queue.open(sys.argv[1])
        q.get()
        print("holding", flush=True)
        time.sleep(60)
    """
    proc = start_child(code, shm_name, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    proc.kill()
    proc.wait()
    again = [Queue.open(shm_name) for _ in range(4)]  # one of them gets the dead slot
    assert again[0].get() == b"1"
    with pytest.raises(TimeoutError):
        q.join(timeout=0)
    assert q.inspect()["tasks_lost"] == 1
    again[0].task_done()
    assert q.get() == b"2"
    q.task_done()
    q.join(timeout=0)
    assert q.inspect()["tasks_lost"] == 1
    for h in again:
        h.close()
    q.close()


def test_ctrl_c_interrupts_join(shm_name: str, start_child: StartChild) -> None:
    q = Queue.create(shm_name, 256)
    q.put(b"never done")
    code = (
        "import sys, time, memspace\n"
        "q = memspace.Queue.open(sys.argv[1])\n"
        "print('waiting', flush=True)\n"
        "try:\n    q.join()\nexcept KeyboardInterrupt:\n"
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
    assert float(line[1]) - sent < 1.0
    assert proc.wait(10) == 0
    q.close()


def test_aio_join_and_task_done(make_name: Callable[[str], str], start_child: StartChild) -> None:
    jobs_name, done_name = make_name("ajobs"), make_name("adone")
    aq = aio.Queue.create(jobs_name, 4096)
    done = Queue.create(done_name, 1 << 16)

    async def main() -> None:
        await aq.join(timeout=0)
        await aq.put(b"local")
        assert await aq.get() == b"local"
        with pytest.raises(TimeoutError):
            await aq.join(timeout=0.05)
        aq.task_done()
        await aq.join()
        worker = start_child(WORKER, jobs_name, done_name)
        for i in range(100):
            await aq.put(i.to_bytes(4, "little"))
        await asyncio.wait_for(aq.join(), STUCK)
        assert done.qsize() == 100
        await aq.put(b"stop")
        await asyncio.wait_for(aq.join(), STUCK)
        assert worker.wait(STUCK) == 0
        with pytest.raises(ValueError, match="more times"):
            aq.task_done()

    asyncio.run(asyncio.wait_for(main(), STUCK))
    aq.close()
    done.close()


def test_aio_join_is_cancellable(shm_name: str) -> None:
    aq = aio.Queue.create(shm_name, 4096)

    async def main() -> None:
        await aq.put(b"x")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aq.join(), 0.05)
        assert await aq.get() == b"x"
        joiner = asyncio.ensure_future(aq.join())
        await asyncio.sleep(0.05)
        assert not joiner.done()
        aq.task_done()
        await asyncio.wait_for(joiner, STUCK)

    asyncio.run(asyncio.wait_for(main(), STUCK))
    aq.close()
    memspace.Queue.remove(shm_name)
