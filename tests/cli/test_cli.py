"""The `memspace` command line: `ls`, `rm`, `inspect` and `--version` in a real second process
(`memspace demo` has its own file, test_demo.py; `rm --stale` is with the lock crash tests,
which make its stale segments)."""

from __future__ import annotations

import json

import memspace
import pytest
from memspace import Ring, SharedMemory

from tests.helpers import linux_only, run_child, run_cli


@linux_only
def test_cli_ls_and_rm(shm_name: str) -> None:
    SharedMemory.create(shm_name, 2048).close()
    out = run_cli("ls")
    assert shm_name in out.stdout
    assert "raw" in out.stdout
    out = run_cli("ls", "--json")
    assert f'"name": "{shm_name}"' in out.stdout
    run_cli("rm", shm_name)
    with pytest.raises(FileNotFoundError):
        SharedMemory.open(shm_name)
    with pytest.raises(AssertionError, match="does not exist"):
        run_cli("rm", shm_name)


def test_python_dash_m_version() -> None:
    out = run_child(
        "import runpy, sys; sys.argv = ['memspace', '--version']; "
        "runpy.run_module('memspace', run_name='__main__')"
    )
    assert out.stdout.strip() == f"memspace {memspace.__version__}"


def test_cli_inspect_shows_fill_level_and_roles(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"x" * 100)
        out = run_cli("inspect", shm_name, "--json")
        info = json.loads(out.stdout)
        assert info["kind"] == "ring"
        assert info["messages"] == 1
        assert info["used_bytes"] == 8 + 104
        assert info["producer_alive"] is True  # this handle holds it
        assert info["consumer_alive"] is False
    out = run_cli("ls")
    assert shm_name in out.stdout
    assert "ring" in out.stdout
