"""The C program of docs/porting/blog-struct.md, compiled and run against both of the page's
ports: a raw SharedMemory of sizeof(Foo) bytes (offset 0), and a Record at `f.offset`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import memspace
import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "porting" / "blog-struct.md"
Foo = memspace.Record.define("Foo", bar="i32", baz="i32")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)"),
]


@pytest.fixture(scope="module")
def foo_writer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blocks = re.findall(r"^```c\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.S | re.M)
    assert len(blocks) == 1, "the page should hold one C program"
    d = tmp_path_factory.mktemp("c")
    (d / "foo_writer.c").write_text(blocks[0])
    exe = d / "foo_writer"
    cmd = ["cc", "-O1", "-Wall", "-Werror", "-o", str(exe), str(d / "foo_writer.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # old glibc keeps shm_open in librt
        proc = subprocess.run([*cmd, "-lrt"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return exe


def test_c_writes_a_raw_segment_python_reads_it(foo_writer: Path, shm_name: str) -> None:
    with memspace.SharedMemory.create(shm_name, Foo.size) as shm:
        subprocess.run([str(foo_writer), shm_name], check=True, timeout=30)
        foo = Foo.from_bytes(shm.read(0, Foo.size))
        assert foo.asdict() == {"bar": 42, "baz": 98}


def test_c_writes_a_record_at_its_offset(foo_writer: Path, shm_name: str) -> None:
    with Foo.create(shm_name, bar=1, baz=2) as f:
        subprocess.run([str(foo_writer), shm_name, str(f.offset)], check=True, timeout=30)
        assert f.asdict() == {"bar": 42, "baz": 98}
        assert f.as_bytes() == Foo.from_bytes(f.as_bytes()).as_bytes()
