"""D-MemFS's drop-in claim, whole: after `dmemfs` -> `memspace`, its pytest plugin line
(`pytest_plugins = ["dmemfs._pytest_plugin"]`) keeps working as
`pytest_plugins = ["memspace._pytest_plugin"]` (issue #13 §1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

TEST = """
def test_write_read(mfs):
    mfs.mkdir("/tmp")
    with mfs.open("/tmp/hello.txt", "wb") as f:
        f.write(b"hello")
    with mfs.open("/tmp/hello.txt", "rb") as f:
        assert f.read() == b"hello"
    assert mfs.stats()["quota_bytes"] == 1024 * 1024


def test_a_fresh_filesystem_per_test(mfs):
    assert not mfs.exists("/tmp")
"""


@pytest.mark.parametrize("plugin", ["memspace._pytest_plugin", "memspace.pytest_plugin"])
def test_the_plugin_line_works_after_the_rename(tmp_path: Path, plugin: str) -> None:
    (tmp_path / "conftest.py").write_text(f"pytest_plugins = [{plugin!r}]\n")
    (tmp_path / "test_example.py").write_text(TEST)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_both_plugin_modules_give_the_same_fixture() -> None:
    from memspace import _pytest_plugin, pytest_plugin

    assert _pytest_plugin.mfs is pytest_plugin.mfs


def test_every_public_name_of_dmemfs_is_in_memspace() -> None:
    # docs/porting/d-memfs.md: "Every public name of dmemfs exists in memspace".
    import inspect

    import memspace

    dmemfs = pytest.importorskip("dmemfs")
    for name in dmemfs.__all__:
        assert hasattr(memspace, name), name
        theirs, ours = getattr(dmemfs, name), getattr(memspace, name)
        if inspect.isfunction(theirs):  # the same parameters (annotations are spelt apart)
            shape = [
                [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
                for f in (ours, theirs)
            ]
            # memspace may add keyword-only parameters with defaults (e.g. expand_archive's
            # max_depth): every D-MemFS call still works. Nothing else may differ.
            extra = shape[0][len(shape[1]) :]
            assert shape[0][: len(shape[1])] == shape[1], name
            assert all(
                kind is inspect.Parameter.KEYWORD_ONLY and default is not inspect.Parameter.empty
                for _, kind, default in extra
            ), (name, extra)
