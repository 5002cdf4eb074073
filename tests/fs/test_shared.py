"""SharedFileSystem across real processes: the promises of the README, each tested.

The long tests (writers and readers for 20 s) take their duration from
MEMSPACE_SFS_STRESS_SECS (default 20); the Rust chaos test (crates/memspace/tests/
shared_fs_processes.rs) SIGKILLs writers every 50 ms with an fsck after each kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import memspace
import pytest
from memspace import MFSNodeLimitExceededError, MFSQuotaExceededError, SharedFileSystem

from tests.helpers import StartChild, linux_only, run_child, run_cli, unique_name

pytestmark = linux_only

STRESS_SECS = float(os.environ.get("MEMSPACE_SFS_STRESS_SECS", "20"))


@pytest.fixture
def sfs_name() -> Iterator[str]:
    name = unique_name("sfs")
    yield name
    with contextlib.suppress(FileNotFoundError):
        SharedFileSystem.remove(name)


def wait_line(proc: subprocess.Popen[str], want: str, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child exited before saying {want!r}")
        if line.startswith(want):
            return line
    raise AssertionError(f"child did not say {want!r} in {timeout} s")


def test_visibility_view_and_exceptions_across_processes(sfs_name: str) -> None:
    fs = SharedFileSystem.create(sfs_name, max_quota=1 << 20)
    fs.mkdir("/data")
    with fs.open("/data/a.bin", "wb") as f:
        f.write(b"from parent")
    out = run_child(
        """
        import sys, memspace
        fs = memspace.SharedFileSystem.open(sys.argv[1])
        with fs.view("/data/a.bin") as mv:
            assert bytes(mv) == b"from parent"
        with fs.open("/data/b.bin", "wb") as f:
            f.write(b"from child")
        try:
            fs.open("/nope", "rb")
        except FileNotFoundError:
            print("ENOENT")
        print(fs.listdir("/data"))
        """,
        sfs_name,
    )
    assert "ENOENT" in out.stdout
    assert "['a.bin', 'b.bin']" in out.stdout
    assert fs.export_tree() == {"/data/a.bin": b"from parent", "/data/b.bin": b"from child"}
    assert fs.fsck()["ok"]
    fs.close()


def test_a_view_survives_rewrites_by_another_process(sfs_name: str) -> None:
    fs = SharedFileSystem.create(sfs_name, max_quota=4 << 20)
    with fs.open("/f", "wb") as f:
        f.write(b"A" * 100_000)
    with fs.view("/f") as mv:
        run_child(
            """
            import sys, memspace
            fs = memspace.SharedFileSystem.open(sys.argv[1])
            for i in range(50):
                with fs.open("/f", "wb") as f:
                    f.write(bytes([66 + i % 20]) * 100_000)
            """,
            sfs_name,
        )
        assert bytes(mv) == b"A" * 100_000
        assert fs.info()["old_version_bytes"] >= 100_000
    fs.reap()
    assert fs.info()["old_version_bytes"] == 0
    fs.close()


def test_lock_semantics_across_processes(sfs_name: str, start_child: StartChild) -> None:
    fs = SharedFileSystem.create(sfs_name, max_quota=1 << 20)
    with fs.open("/f", "wb") as f:
        f.write(b"x")
    child = start_child(
        """
        import sys, time, memspace
        fs = memspace.SharedFileSystem.open(sys.argv[1])
        h = fs.open("/f", "r+b")
        h.write(b"uncommitted")
        print("HOLDING", flush=True)
        time.sleep(3600)
        """,
        sfs_name,
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_line(child, "HOLDING")
    t = time.monotonic()
    with pytest.raises(BlockingIOError):
        fs.open("/f", "rb", lock_timeout=0.2)
    assert time.monotonic() - t >= 0.2
    with pytest.raises(BlockingIOError):
        fs.remove("/f")
    # SIGSTOP: a stopped process is alive and keeps its lock.
    os.kill(child.pid, signal.SIGSTOP)
    with pytest.raises(BlockingIOError):
        fs.open("/f", "wb", lock_timeout=0.15)
    os.kill(child.pid, signal.SIGCONT)
    used_before = fs.stats()["used_bytes"]
    assert used_before == 11  # the child's private bytes are charged (promoted: no overhead)
    # SIGKILL mid-write: its lock vanishes at once and its uncommitted bytes with it.
    child.kill()
    child.wait()
    t = time.monotonic()
    with fs.open("/f", "rb", lock_timeout=5) as f:
        assert f.read() == b"x"  # the old content, never a mix
    assert time.monotonic() - t < 0.2
    assert fs.stats()["used_bytes"] == 1 + 128
    report = fs.fsck(reap=True)
    assert report["ok"], report["problems"]
    assert report["used_bytes"] == report["charged_bytes"] == 1 + 128
    fs.close()


def test_quota_and_node_limits_at_the_boundary_across_processes(sfs_name: str) -> None:
    fs = SharedFileSystem.create(sfs_name, max_quota=10_000, max_nodes=5)
    run_child(
        """
        import sys, memspace
        fs = memspace.SharedFileSystem.open(sys.argv[1])
        with fs.open("/a", "wb") as f:
            f.write(b"a" * (6000 - 128))
        fs.mkdir("/d1/d2")
        """,
        sfs_name,
    )
    with fs.open("/b", "wb") as f:
        f.write(b"b" * (4000 - 128))  # exactly the quota
        with pytest.raises(MFSQuotaExceededError) as e:
            f.write(b"!")
        assert (e.value.requested, e.value.available) == (129, 0)
    assert fs.stats()["used_bytes"] == 10_000
    with pytest.raises(MFSNodeLimitExceededError):
        fs.mkdir("/d3")  # root, /a, /d1, /d2, /b = 5
    out = run_child(
        """
        import sys, memspace
        fs = memspace.SharedFileSystem.open(sys.argv[1])
        try:
            fs.open("/c", "wb")
        except memspace.MFSNodeLimitExceededError as e:
            print("NODES", e.current, e.limit)
        fs.remove("/a")
        with fs.open("/c", "wb") as f:
            f.write(b"c" * (6000 - 128))
        try:
            with fs.open("/e", "wb") as f:
                pass
        except memspace.MFSNodeLimitExceededError:
            print("NODES AGAIN")
        """,
        sfs_name,
    )
    assert "NODES 5 5" in out.stdout
    assert "NODES AGAIN" in out.stdout
    assert fs.stats()["used_bytes"] == 10_000
    assert fs.fsck()["ok"]
    fs.close()


WRITER = """
import hashlib, os, sys, time, memspace
fs = memspace.SharedFileSystem.open(sys.argv[1])
wid, secs = sys.argv[2], float(sys.argv[3])
fs.mkdir(f"/w{wid}", exist_ok=True)
end = time.monotonic() + secs
n = 0
kept = []
while time.monotonic() < end:
    size = [10, 4096, 30_000, 200_000][n % 4] + n % 97
    data = os.urandom(size)
    name = f"/w{wid}/{hashlib.blake2b(data, digest_size=12).hexdigest()}"
    if n % 3 == 0:
        fs.import_tree({name: data})
    else:
        with fs.open(name + ".tmp", "wb") as f:
            for i in range(0, size, 8192):
                f.write(data[i : i + 8192])
        fs.rename(name + ".tmp", name)
    print("C", name, flush=True)   # committed: must be found later (unless removed)
    kept.append(name)
    if len(kept) > 200:
        old = kept.pop(0)
        try:
            fs.remove(old)
            print("R", old, flush=True)
        except BlockingIOError:  # a reader has it open: try again later
            kept.insert(0, old)
    n += 1
print("DONE", n, flush=True)
"""

READER = """
import hashlib, sys, time, memspace
fs = memspace.SharedFileSystem.open(sys.argv[1])
secs = float(sys.argv[2])
end = time.monotonic() + secs
checked = torn = 0
while time.monotonic() < end:
    for p in fs.glob("/w*/*"):
        if p.endswith(".tmp"):
            continue
        try:
            if checked % 2:
                with fs.open(p, "rb", lock_timeout=1) as f:
                    data = f.read()
            else:
                with fs.view(p) as mv:
                    data = bytes(mv)
        except (FileNotFoundError, BlockingIOError):
            continue
        if hashlib.blake2b(data, digest_size=12).hexdigest() != p.rsplit("/", 1)[1]:
            torn += 1
        checked += 1
print("READER", checked, torn, flush=True)
"""


def test_writers_and_readers_never_see_a_torn_file(sfs_name: str, start_child: StartChild) -> None:
    """Two writer and two reader processes for MEMSPACE_SFS_STRESS_SECS (20 s): every
    file's name is the hash of its content; readers check every file they read."""
    fs = SharedFileSystem.create(sfs_name, max_quota=512 << 20, max_nodes=100_000)
    writers = [
        start_child(WRITER, sfs_name, str(i), str(STRESS_SECS), stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    readers = [
        start_child(READER, sfs_name, str(STRESS_SECS), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    committed: list[str] = []
    for w in writers:
        out, _ = w.communicate(timeout=STRESS_SECS + 60)
        assert w.returncode == 0
        lines = out.splitlines()
        removed = {line.split()[1] for line in lines if line.startswith("R ")}
        committed += [
            line.split()[1]
            for line in lines
            if line.startswith("C ") and line.split()[1] not in removed
        ]
        assert "DONE" in out
    for r in readers:
        out, _ = r.communicate(timeout=STRESS_SECS + 60)
        assert r.returncode == 0
        _, checked, torn = out.split()
        assert int(torn) == 0, out
        assert int(checked) > 0
    # Zero lost committed writes: everything a writer reported is there, intact.
    assert committed
    present = set(fs.glob("/w*/*"))
    missing = [p for p in committed if p not in present]
    assert not missing, missing[:5]
    report = fs.fsck(reap=True)
    assert report["ok"], report["problems"]
    assert report["files"] == len(committed)
    fs.close()


def test_pandas_across_processes_through_fsspec(sfs_name: str) -> None:
    pd = pytest.importorskip("pandas")
    fsspec = pytest.importorskip("fsspec")
    fs = SharedFileSystem.create(sfs_name, max_quota=64 << 20)
    df = pd.DataFrame({"a": range(1000), "b": [f"row {i}" for i in range(1000)]})
    df.to_csv("memspace://tables/t.csv", index=False, storage_options={"shared": sfs_name})
    fmts = ["csv"]
    try:
        import pyarrow  # noqa: F401

        df.to_parquet("memspace://tables/t.parquet", storage_options={"shared": sfs_name})
        fmts.append("parquet")
    except ImportError:
        pass
    out = run_child(
        """
        import sys, pandas as pd
        name, fmts = sys.argv[1], sys.argv[2].split(",")
        opts = {"shared": name}
        for fmt in fmts:
            reader = pd.read_csv if fmt == "csv" else pd.read_parquet
            df = reader(f"memspace://tables/t.{fmt}", storage_options=opts)
            assert list(df["a"]) == list(range(1000)), fmt
            print("OK", fmt, len(df))
        pd.DataFrame({"x": [1, 2, 3]}).to_csv(
            "memspace://tables/back.csv", index=False, storage_options=opts
        )
        """,
        sfs_name,
        ",".join(fmts),
    )
    assert out.stdout.count("OK") == len(fmts)
    back = pd.read_csv("memspace://tables/back.csv", storage_options={"shared": sfs_name})
    assert list(back["x"]) == [1, 2, 3]
    mfs = fsspec.filesystem("memspace", shared=sfs_name)
    assert sorted(mfs.ls("/tables", detail=False)) == [
        f"/tables/{n}" for n in sorted(["back.csv", *[f"t.{f}" for f in fmts]])
    ]
    fs.close()


def test_cli_inspect_and_fsck(sfs_name: str) -> None:
    fs = SharedFileSystem.create(sfs_name, max_quota=1 << 20)
    with fs.open("/a", "wb") as f:
        f.write(b"abc")
    out = run_cli("inspect", sfs_name).stdout
    assert "fs" in out
    assert "used" in out
    assert "files" in out
    out = run_cli("fsck", sfs_name).stdout
    assert "consistent" in out
    ls = run_cli("ls").stdout
    assert sfs_name.lstrip("/") in ls
    fs.close()


def test_async_facade_and_text_handle_over_a_shared_filesystem(sfs_name: str) -> None:
    import asyncio

    fs = SharedFileSystem.create(sfs_name, max_quota=1 << 20)

    async def main() -> bytes:
        afs = fs.as_async()
        await afs.mkdir("/x")
        async with await afs.open("/x/a", "wb") as f:
            await f.write(b"async")
        async with await afs.open("/x/a") as f:
            return await f.read()

    assert asyncio.run(main()) == b"async"
    with fs.open("/t.txt", "wb") as f, memspace.MFSTextHandle(f) as t:
        t.write("héllo\n")
    with fs.open("/t.txt", "rb") as f, memspace.MFSTextHandle(f) as t:
        assert t.read() == "héllo\n"
    fs.close()
