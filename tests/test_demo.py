"""`memspace demo`, the main job, runs end to end (small frames, so it is quick)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_child


def test_demo_runs_and_reports_both_rates() -> None:
    pytest.importorskip("numpy")
    out = run_child(
        "import os; print('PID', os.getpid()); from memspace.cli import main; "
        "raise SystemExit(main(['demo', '--frames', '40', '--width', '320', '--height', '240',"
        " '--ticks', '20000']))",
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
    # The demo's segment (named after the demo's process) is gone: auto_unlink removed it.
    pid = re.search(r"PID (\d+)", out.stdout)
    assert pid
    assert not Path(f"/dev/shm/memspace-demo-{pid.group(1)}").exists()


def test_demo_refuses_bad_arguments() -> None:
    with pytest.raises(AssertionError, match="frames must be >= 1"):
        run_child(
            "from memspace.cli import main; raise SystemExit(main(['demo', '--frames', '0']))"
        )
