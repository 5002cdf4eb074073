"""What the tests share besides fixtures: unique segment names, their cleanup, and real child
processes. Test modules import these (`from tests.helpers import run_child`); the fixtures
built on them are in conftest.py."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memspace
import pytest

# Every segment a test creates starts with this prefix, so the session can check that none is
# left behind, whatever the test did.
PREFIX = f"mst-{os.getpid()}-"
_counter = itertools.count()

# For tests that look at /dev/shm itself (where POSIX segments live on Linux).
linux_only = pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm (Linux)")


def unique_name(tag: str = "seg") -> str:
    """A POSIX segment name no other test (or test run) uses."""
    return f"/{PREFIX}{tag}-{next(_counter)}"


def remove_quietly(name: str) -> None:
    """Remove the segment `name` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        memspace.SharedMemory.remove(name)


def leftover_segments() -> list[str]:
    """Names of this run's segments still in /dev/shm."""
    shm_dir = Path("/dev/shm")
    if not shm_dir.is_dir():
        return []
    return sorted(p.name for p in shm_dir.iterdir() if p.name.startswith(PREFIX))


def run_child(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh Python process (a real second process) and return its result.

    The child gets `args` as sys.argv[1:]. Raises if it fails, showing its stderr.
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child failed with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `memspace *args` (memspace.cli.main) in a fresh Python process, as run_child does."""
    return run_child(
        "import sys; from memspace.cli import main; raise SystemExit(main(sys.argv[1:]))",
        *args,
        timeout=timeout,
    )


def start_child(code: str, *args: str, **popen: Any) -> subprocess.Popen[Any]:
    """Start `code` in a fresh Python process with `args` as sys.argv[1:], and return at once.

    `popen` goes to subprocess.Popen (`stdout=subprocess.PIPE, text=True` ...). Tests use the
    `start_child` fixture, which also stops the child after the test.
    """
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], **popen)


# The type of the `start_child` fixture.
StartChild = Callable[..., subprocess.Popen[Any]]


def stop_child(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL `proc` unless it has exited, reap it, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
