"""The `memspace` command line: `ls`, `rm`, `rm --stale`, `inspect` and `--version`, run in
real second processes (`memspace demo` has its own file, test_demo.py).

`rm --stale` is only ever given this test's own names here: without names it looks at every
segment of the user, and other test runs may share the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import memspace
import pytest
from memspace import Ring, SharedMemory

from tests.helpers import StartChild, linux_only, run_child, run_cli

CLI = "import sys; from memspace.cli import main; raise SystemExit(main(sys.argv[1:]))"

# What every report has, whatever the kind; rings and queues share CHANNEL_KEYS too.
COMMON_KEYS = {
    "name",
    "path",
    "kind",
    "size",
    "mode",
    "uid",
    "modified",
    "state",
    "created",
    "creator_pid",
    "in_use",
    "empty",
    "holds",
}
CHANNEL_KEYS = {"capacity", "max_message_size", "messages", "used_bytes", "free_bytes"}


def inspect(name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(run_cli("inspect", name, "--json").stdout)
    return report


def make_and_exit(code: str, *names: str) -> None:
    """Run `code` (which creates segments named sys.argv[1:]) in a child that then exits, so
    that nobody is attached to what it made."""
    run_child("import memspace, sys\n" + code, *names)


def exists(name: str) -> bool:
    return any(s.name == name for s in memspace.segments())


# --- ls, rm, --version --------------------------------------------------------------------------


@linux_only
def test_cli_ls_and_rm(shm_name: str) -> None:
    SharedMemory.create(shm_name, 2048).close()
    out = run_cli("ls")
    assert shm_name in out.stdout
    assert "raw" in out.stdout
    rows = json.loads(run_cli("ls", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == shm_name]
    assert (row["size"], row["kind"], row["mode"]) == (2048, "raw", "0600")
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


def test_force_goes_only_with_stale(shm_name: str) -> None:
    SharedMemory.create(shm_name, 64).close()
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "rm", "--force", shm_name],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--force goes with --stale" in proc.stderr
    assert exists(shm_name)


# --- rm --stale: only what holds nothing ----------------------------------------------------------


@linux_only
def test_rm_stale_keeps_channels_that_hold_messages_and_force_removes_them(
    make_name: Callable[[str], str],
) -> None:
    q, r = make_name("q"), make_name("r")
    make_and_exit(
        """
q = memspace.Queue.create(sys.argv[1], 1 << 14)
for i in range(10):
    q.put(b"undelivered %d" % i)
r = memspace.Ring.create(sys.argv[2], 1 << 14)
tx = memspace.Ring.open(sys.argv[2], role="producer")
tx.put(b"one"); tx.put(b"two")
""",
        q,
        r,
    )
    out = run_cli("rm", "--stale", "-n", q, r).stdout
    assert f"would keep {q} (queue, holds 10 messages" in out
    assert f"would keep {r} (ring, holds 2 messages" in out
    assert "--force removes it" in out
    out = run_cli("rm", "--stale", q, r).stdout
    assert f"kept {q}" in out
    assert f"kept {r}" in out
    assert exists(q)
    assert exists(r)
    assert memspace.Queue.open(q).qsize() == 10  # untouched
    out = run_cli("rm", "--stale", "--force", "-n", q, r).stdout
    assert f"would remove {q} (queue, holds 10 messages" in out
    assert exists(q)
    out = run_cli("rm", "--stale", "--force", q, r).stdout
    assert f"removed {q} (queue, held 10 messages" in out
    assert f"removed {r} (ring, held 2 messages" in out
    assert not exists(q)
    assert not exists(r)


@linux_only
def test_rm_stale_removes_unattached_segments_that_hold_nothing(
    make_name: Callable[[str], str],
) -> None:
    q, r, m, rw = make_name("q"), make_name("r"), make_name("m"), make_name("rw")
    b = make_name("b")
    make_and_exit(
        """
q = memspace.Queue.create(sys.argv[1], 1 << 14)
q.put(b"taken"); q.get()
memspace.Ring.create(sys.argv[2], 1 << 14)
memspace.Mutex.create(sys.argv[3])
memspace.RwLock.create(sys.argv[4])
bc = memspace.Broadcast.create(sys.argv[5], 1 << 14)
sub = memspace.Broadcast.open(sys.argv[5])
bc.put(b"unread when the subscriber went")
""",
        q,
        r,
        m,
        rw,
        b,
    )
    out = run_cli("rm", "--stale", "-n", q, r, m, rw, b).stdout
    assert f"would remove {q} (queue, holds no messages)" in out
    assert f"would remove {m} (mutex, holds nothing" in out
    # A new subscriber sees only what is published after it subscribed: without a live
    # subscriber, a broadcast holds nothing.
    assert f"would remove {b} (broadcast, holds no unread messages)" in out
    assert all(exists(n) for n in (q, r, m, rw, b))
    out = run_cli("rm", "--stale", q, r, m, rw, b).stdout
    for n in (q, r, m, rw, b):
        assert f"removed {n} " in out
        assert not exists(n)


@linux_only
def test_rm_stale_keeps_views_and_records_unless_forced(make_name: Callable[[str], str]) -> None:
    v, zero, rec = make_name("v"), make_name("zero"), make_name("rec")
    make_and_exit(
        """
memspace.View.create(sys.argv[1], 256).write(42)
memspace.View.create(sys.argv[2], 256)
Foo = memspace.Record.define("Foo", a="i32", b="f64")
Foo.create(sys.argv[3], a=0, b=0.0)
""",
        v,
        zero,
        rec,
    )
    out = run_cli("rm", "--stale", v, zero, rec).stdout
    for n in (v, zero, rec):
        assert f"kept {n}" in out
        assert exists(n)
    assert "(view, holds a 256 B value area (" in out
    assert f"kept {rec} (record, holds record fields" in out
    run_cli("rm", "--stale", "--force", v, zero, rec)
    assert not any(exists(n) for n in (v, zero, rec))


@linux_only
def test_rm_stale_removes_a_segment_whose_creator_died_initialising_it(
    make_name: Callable[[str], str],
) -> None:
    dead, poisoned = make_name("init"), make_name("poisoned")
    make_and_exit(
        """
for name in sys.argv[1:]:
    q = memspace.Queue.create(name, 1 << 14)
    q.put(b"x")
""",
        dead,
        poisoned,
    )
    # The state word (header offset 120): INITIALIZING 0, as a creator killed before it
    # published READY leaves it; POISONED 2.
    for name, state in ((dead, 0), (poisoned, 2)):
        with SharedMemory.open(name) as raw:
            assert raw.read(120, 4) == (1).to_bytes(4, sys.byteorder)  # READY
            raw.write(120, state.to_bytes(4, sys.byteorder))
    assert inspect(dead)["state"] == "initializing"
    assert inspect(poisoned)["state"] == "poisoned"
    out = run_cli("rm", "--stale", dead, poisoned).stdout
    assert f"removed {dead} (queue, held nothing: its creator died before it was ready)" in out
    assert f"kept {poisoned} (queue, holds unknown data (its state is poisoned)" in out
    assert not exists(dead)
    assert exists(poisoned)


@linux_only
def test_a_corrupt_header_is_reported_and_kept(make_name: Callable[[str], str]) -> None:
    name = make_name("corrupt")
    make_and_exit("memspace.Mutex.create(sys.argv[1])", name)
    with SharedMemory.open(name) as raw:
        raw.write(88, b"\xff\xff")  # creator_pid, under the header checksum
    report = inspect(name)
    assert (report["kind"], report["state"], report["created"]) == ("corrupt", "unknown", None)
    assert report["empty"] is False
    out = run_cli("rm", "--stale", name).stdout
    assert f"kept {name} (corrupt, holds unknown data (its header is corrupt)" in out
    run_cli("rm", "--stale", "--force", name)
    assert not exists(name)


@linux_only
def test_rm_stale_never_touches_raw_or_attached_segments(
    make_name: Callable[[str], str], start_child: StartChild
) -> None:
    raw, held = make_name("raw"), make_name("held")
    SharedMemory.create(raw, 64).close()
    child = start_child(
        "import memspace, sys, time\n"
        "m = memspace.Mutex.create(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
        held,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    out = run_cli("rm", "--stale", "--force", raw, held).stdout
    assert f"{raw} is not a memspace structured segment; kept" in out
    assert f"{held} is in use by a live process; kept" in out
    assert exists(raw)
    assert exists(held)


# --- inspect --------------------------------------------------------------------------------------


@linux_only
def test_inspect_reports_share_their_keys_across_kinds(make_name: Callable[[str], str]) -> None:
    kinds = ("ring", "queue", "view", "record", "mutex", "rwlock", "broadcast")
    names = {k: make_name(k) for k in kinds}
    raw = make_name("raw")
    make_and_exit(
        """
ring, queue, view, record, mutex, rwlock, broadcast = sys.argv[1:8]
memspace.Ring.create(ring, 4096)
memspace.Queue.create(queue, 4096).put(b"m")
memspace.View.create(view, 64)
memspace.Record.define("R", x="i64").create(record, x=1)
memspace.Mutex.create(mutex)
memspace.RwLock.create(rwlock)
memspace.Broadcast.create(broadcast, 4096, overflow="overwrite").put(b"m")
memspace.SharedMemory.create(sys.argv[8], 100).close()
""",
        *names.values(),
        raw,
    )
    reports = {kind: inspect(name) for kind, name in names.items()}
    reports["raw"] = inspect(raw)
    for kind, report in reports.items():
        assert set(report) >= COMMON_KEYS, kind
        assert report["kind"] == kind
        assert report["name"] == (names[kind] if kind != "raw" else raw)
        assert report["path"] is None
        assert report["mode"] == "0600"
        assert report["in_use"] is (None if kind == "raw" else False)
    for kind in ("ring", "queue"):
        assert set(reports[kind]) >= CHANNEL_KEYS
        assert reports[kind]["capacity"] == 4096
    assert reports["queue"]["messages"] == 1
    assert reports["queue"]["empty"] is False
    assert reports["ring"]["empty"] is True
    assert reports["ring"]["free_bytes"] == 4096
    assert reports["queue"]["free_bytes"] == 4096 - reports["queue"]["used_bytes"]
    assert reports["view"]["data_size"] == 64
    assert reports["mutex"]["empty"] is True
    assert reports["rwlock"]["readers"] == 0
    assert reports["raw"]["state"] is None
    for kind in kinds:
        assert reports[kind]["state"] == "ready"
    bc = reports["broadcast"]
    assert (bc["capacity"], bc["overflow"], bc["published"]) == (4096, "overwrite", 1)
    assert (bc["publisher_alive"], bc["subscribers"], bc["empty"]) == (False, [], True)


@linux_only
def test_inspect_leaves_the_inspector_out_and_prints_no_python_reprs(
    shm_name: str, start_child: StartChild
) -> None:
    child = start_child(
        "import memspace, sys, time\n"
        "q = memspace.Queue.create(sys.argv[1], 4096); q.put(b'x')\n"
        "print('ready', flush=True); time.sleep(60)",
        shm_name,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    report = inspect(shm_name)
    assert report["attached"] == [{"pid": child.pid, "alive": True}]
    assert report["in_use"] is True
    assert report["creator_pid"] == child.pid
    text = run_cli("inspect", shm_name).stdout
    assert f"attached          pid {child.pid} alive yes" in text
    assert "{" not in text
    assert "'" not in text
    assert "True" not in text


def test_cli_inspect_shows_fill_level_and_roles(shm_name: str) -> None:
    with Ring.create(shm_name, 4096) as ring:
        ring.put(b"x" * 100)
        info = inspect(shm_name)
        assert info["kind"] == "ring"
        assert info["messages"] == 1
        assert info["used_bytes"] == 8 + 104
        assert info["free_bytes"] == 4096 - 8 - 104
        assert info["producer_alive"] is True  # this handle holds it
        assert info["consumer_alive"] is False
        assert info["in_use"] is True
    out = run_cli("ls")
    assert shm_name in out.stdout
    assert "ring" in out.stdout


def test_inspect_a_file_backed_segment(tmp_path: Any) -> None:
    path = tmp_path / "q.seg"
    make_and_exit("memspace.Queue.create(path=sys.argv[1], capacity=4096).put(b'abc')", str(path))
    report = json.loads(run_cli("inspect", "--path", str(path), "--json").stdout)
    assert (report["name"], report["path"], report["kind"]) == (None, str(path), "queue")
    assert report["messages"] == 1
    out = run_cli("rm", "--stale", "--path", str(path)).stdout
    assert "kept" in out
    assert path.exists()


def test_inspect_of_a_missing_segment_fails_clearly() -> None:
    with pytest.raises(AssertionError, match="does not exist"):
        run_cli("inspect", "/memspace-test-no-such-segment")


# --- a closed output pipe -----------------------------------------------------------------------


@linux_only
def test_ls_json_into_head_through_a_real_pipe(shm_name: str) -> None:
    SharedMemory.create(shm_name, 64).close()
    proc = subprocess.run(
        ["bash", "-c", f'set -o pipefail; "{sys.executable}" -c "$0" ls --json | head -c 10', CLI],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[\n  {\n    "[:10]
    assert proc.stderr == ""


@pytest.mark.parametrize(
    "args", [("ls", "--json"), ("ls",), ("--help",), ("inspect", "NAME", "--json")]
)
def test_output_to_a_pipe_nobody_reads_ends_quietly(args: tuple[str, ...], shm_name: str) -> None:
    # The reader is gone before the first write: every write fails with EPIPE.
    SharedMemory.create(shm_name, 64).close()
    args = tuple(shm_name if a == "NAME" else a for a in args)
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CLI, *args],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(w)
    assert proc.returncode == 0
    assert proc.stderr == ""


@linux_only
def test_rm_stale_finishes_its_work_when_the_pipe_closes(make_name: Callable[[str], str]) -> None:
    names = [make_name("m") for _ in range(3)]
    make_and_exit("for n in sys.argv[1:]: memspace.Mutex.create(n)", *names)
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CLI, "rm", "--stale", *names],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(w)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert not any(exists(n) for n in names)
