"""`memspace demo`, the main job, runs end to end (small sizes, so it is quick)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import run_child, run_cli


def test_demo_runs_and_reports_both_rates() -> None:
    pytest.importorskip("numpy")
    out = run_child(
        "import os; print('PID', os.getpid()); from memspace.cli import main; "
        "raise SystemExit(main(['demo', '--frames', '40', '--width', '320', '--height', '240',"
        " '--ticks', '20000', '--tasks', '4000', '--workers', '2']))",
        timeout=120,
    )
    assert "40 frames of 320x240 RGB" in out.stdout
    match = re.search(
        r"([\d.]+)x faster than multiprocessing.Queue \(([\d.]+) vs ([\d.]+) GB/s", out.stdout
    )
    assert match, out.stdout
    assert float(match.group(2)) > 0
    assert float(match.group(3)) > 0
    assert "memspace.SharedMemory (zero-copy)" in out.stderr
    ticks = re.search(
        r"Ring moved ticks ([\d.]+)x faster .* one at a time and ([\d.]+)x faster in batches",
        out.stdout,
    )
    assert ticks, out.stdout
    assert "20,000 records of 64 bytes" in out.stdout
    pool = re.search(
        r"memspace.Queue fed 2 workers ([\d.]+)x faster .* one task at a time and ([\d.]+)x "
        r"faster in batches \((\d+) and (\d+) vs (\d+) k tasks/s",
        out.stdout,
    )
    assert pool, out.stdout
    assert "4,000 tasks of 1024 bytes from a producer process to 2 worker processes" in out.stdout
    assert "multiprocessing.Queue put/get" in out.stderr
    # The demo's segments (named after the demo's process) are gone.
    pid = re.search(r"PID (\d+)", out.stdout)
    assert pid
    assert not list(Path("/dev/shm").glob(f"memspace-demo*-{pid.group(1)}"))


def test_demo_pool_stage_alone_with_an_odd_pool() -> None:
    """Three workers taking batches: stop messages a worker took for others are handed back,
    every worker exits cleanly, every result is checked (run_pool raises otherwise)."""
    out = run_child(
        "import os; print('PID', os.getpid()); from memspace import demo; "
        "demo.run_pool(3000, workers=3, baseline=False)",
        timeout=120,
    )
    assert "3,000 tasks of 1024 bytes from a producer process to 3 worker processes" in out.stdout
    assert re.search(
        r"memspace.Queue: \d+ k tasks/s one at a time, \d+ k tasks/s in batches", out.stdout
    ), out.stdout
    assert "multiprocessing.Queue" not in out.stdout + out.stderr
    pid = re.search(r"PID (\d+)", out.stdout)
    assert pid
    assert not list(Path("/dev/shm").glob(f"memspace-demo*-{pid.group(1)}"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "0"], "frames must be >= 1"),
        (["--tasks", "-1"], "ticks and tasks >= 0"),
        (["--workers", "0"], "workers must be >= 1"),
    ],
)
def test_demo_refuses_bad_arguments(args: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        run_cli("demo", *args)


def test_demo_pool_stage_cleans_up_when_a_check_fails() -> None:
    """A wrong result stops the stage: its processes are stopped, its queues removed."""
    out = run_child(
        """
        import multiprocessing, os
        from memspace import demo
        print("PID", os.getpid())
        block = os.urandom(8 * demo.CHUNK)
        try:
            demo._run_pool(2000, 2, 64, block, [-1] * 2000)
        except RuntimeError as e:
            print("refused:", e)
        print("children left:", len(multiprocessing.active_children()))
        """,
        timeout=120,
    )
    assert re.search(r"refused: task \d+ came back with a wrong checksum", out.stdout), out.stdout
    assert "children left: 0" in out.stdout
    pid = re.search(r"PID (\d+)", out.stdout)
    assert pid
    assert not list(Path("/dev/shm").glob(f"memspace-demo*-{pid.group(1)}"))


def test_the_summary_says_how_busy_the_machine_was() -> None:
    from memspace import demo

    assert demo._load_note(0.5).startswith("The machine was busy: other processes used 50%")
    assert "lower than an idle machine" in demo._load_note(0.5)
    assert demo._load_note(0.01).startswith("The machine was idle: other processes used 1%")
    assert "unknown" in demo._load_note(None)
    share = demo._OtherLoad().share()
    assert share is None or 0.0 <= share <= 1.0
    out = run_child(
        "from memspace.cli import main; raise SystemExit(main(['demo', '--frames', '8', "
        "'--width', '64', '--height', '64', '--ticks', '0', '--tasks', '0']))",
        timeout=120,
    )
    assert re.search(r"The machine was (busy|idle): other processes used \d+%", out.stdout)
