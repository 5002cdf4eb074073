"""A second, unprivileged local user for the hostile-peer tests.

The tests run the attacker as `nobody` with `setpriv --reuid=nobody --regid=<nobody's group>
--clear-groups`, which needs root (and util-linux's setpriv). Where that is impossible the
tests skip and say why; they never pretend."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class OtherUser:
    """How to run Python code as another local user."""

    uid: int
    gid: int
    argv: tuple[str, ...]

    def run(self, code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `code` as this user and wait; raises (with its stderr) if it fails."""
        proc = subprocess.run(
            [*self.argv, sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"attacker failed with {proc.returncode}\nstdout:\n{proc.stdout}\n"
                f"stderr:\n{proc.stderr}"
            )
        return proc

    def start(self, code: str, *args: str) -> subprocess.Popen[str]:
        """Start `code` as this user; its stdout is a pipe (text)."""
        return subprocess.Popen(
            [*self.argv, sys.executable, "-c", textwrap.dedent(code), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _other_user() -> OtherUser:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to run code as another user (setpriv)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("there is no user 'nobody' on this machine")
    group = grp.getgrgid(nobody.pw_gid).gr_name  # nogroup on Debian, nobody elsewhere
    argv = (
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
    )
    user = OtherUser(nobody.pw_uid, nobody.pw_gid, argv)
    probe = subprocess.run(
        [*argv, sys.executable, "-c", "import os, memspace; print(os.geteuid())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != str(nobody.pw_uid):
        pytest.skip(
            f"cannot run this Python as nobody:{group} with memspace importable "
            f"(is the checkout readable by other users?): {probe.stderr.strip()[-300:]}"
        )
    return user


@pytest.fixture(scope="session")
def nobody() -> OtherUser:
    """Runs code as `nobody` (skips the test where that is impossible)."""
    return _other_user()


@pytest.fixture
def attackers() -> Iterator[list[subprocess.Popen[Any]]]:
    """Long-running attacker processes of one test, killed and reaped after it."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)
