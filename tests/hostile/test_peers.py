"""Hostile local peers (issue #11): another user, here `nobody`, who squats a name, plants a
symlink, read-locks a segment it may only read, or truncates a file it may write. The victim
is this test process. See conftest.py for how the attacker runs (and when these skip)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import memspace
import pytest

from tests.helpers import linux_only
from tests.hostile.conftest import OtherUser

pytestmark = [linux_only, pytest.mark.timeout(120)]

ctx = mp.get_context("fork")

# The attacker's pickle: unpickling it creates the directory named by argv (a harmless,
# checkable stand-in for "runs code as the victim").
SQUAT = """
import os, sys, memspace
class Payload:
    def __reduce__(self):
        return (os.mkdir, (sys.argv[2],))
q = memspace.Queue.create(sys.argv[1], 1 << 16, mode=0o666)
q.put_object(Payload())
print("SQUATTED", os.geteuid())
"""

# Opens a segment file read-only and read-locks every byte of it (and of its lock file, if
# it can open that), then waits to be killed. Standard library only: no memspace needed.
READ_LOCKER = """
import fcntl, os, struct, sys, time
locked = []
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        print("CANNOT_OPEN", path, e.errno, flush=True)
        continue
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("@hhqqi4x", fcntl.F_RDLCK, 0, 0, 0, 0))
    locked.append(fd)
    print("LOCKED", path, flush=True)
print("READY", flush=True)
time.sleep(3600)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A sticky, world-writable directory like /tmp, but our own (removed after the test)."""
    d = Path(f"/tmp/memspace-hostile-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    d.chmod(0o1777)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def _dev_shm(name: str) -> Path:
    return Path("/dev/shm") / name.lstrip("/")


def _wait_ready(p: subprocess.Popen[str]) -> list[str]:
    lines = []
    assert p.stdout is not None
    for line in p.stdout:
        lines.append(line.strip())
        if line.strip() == "READY":
            return lines
    raise AssertionError(
        f"attacker did not get ready: {lines} {p.stderr.read() if p.stderr else ''}"
    )


# --- squatting ------------------------------------------------------------------------------


def test_a_squatted_queue_is_refused(nobody: OtherUser, shm_name: str, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    out = nobody.run(SQUAT, shm_name, str(marker))
    assert f"SQUATTED {nobody.uid}" in out.stdout
    assert _dev_shm(shm_name).stat().st_uid == nobody.uid
    with pytest.raises(PermissionError) as info:
        memspace.Queue.open(shm_name)
    msg = str(info.value)
    assert f"uid {nobody.uid}" in msg, msg
    assert "trust=" in msg, msg
    assert not marker.exists()
    # Deliberate sharing: opting in to trust that user opens it (and we do not unpickle).
    q = memspace.Queue.open(shm_name, trust=nobody.uid)
    assert q.qsize() == 1
    with pytest.raises(PermissionError):
        memspace.Queue.open(shm_name, trust=nobody.uid + 1)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["SharedMemory", "Mutex", "RwLock", "View", "Ring", "Broadcast"])
def test_every_kind_refuses_a_squatted_name(kind: str, nobody: OtherUser, shm_name: str) -> None:
    make = {
        "SharedMemory": "memspace.SharedMemory.create(n, 64, mode=0o666)",
        "Mutex": "memspace.Mutex.create(n, mode=0o666)",
        "RwLock": "memspace.RwLock.create(n, mode=0o666)",
        "View": "memspace.View.create(n, 64, mode=0o666)",
        "Ring": "memspace.Ring.create(n, 4096, mode=0o666)",
        "Broadcast": "memspace.Broadcast.create(n, 4096, mode=0o666)",
    }[kind]
    nobody.run(f"import sys, memspace\nn = sys.argv[1]\n{make}\n", shm_name)
    cls = getattr(memspace, kind)
    with pytest.raises(PermissionError):
        cls.open(shm_name)
    cls.open(shm_name, trust="any")


def test_a_squatted_broadcast_is_refused_to_subscribers_and_publishers(
    nobody: OtherUser, shm_name: str, attackers: list[subprocess.Popen[Any]]
) -> None:
    # The squatter creates "/ticks" first and publishes what it likes: a victim that expects
    # its own broadcast must not subscribe to it, nor publish into it for the squatter to read.
    attacker = nobody.start(
        "import sys, time, memspace\n"
        "b = memspace.Broadcast.create(sys.argv[1], 4096, mode=0o666, overflow='overwrite')\n"
        "print('READY', flush=True)\n"
        "while True:\n"
        "    b.put(b'forged')\n"
        "    time.sleep(0.01)\n",
        shm_name,
    )
    attackers.append(attacker)
    _wait_ready(attacker)
    assert _dev_shm(shm_name).stat().st_uid == nobody.uid
    for role in ("subscriber", "publisher", None):
        with pytest.raises(PermissionError) as info:
            memspace.Broadcast.open(shm_name, role=role)
        assert f"uid {nobody.uid}" in str(info.value)
        assert "trust=" in str(info.value)
    with pytest.raises(memspace.RoleTakenError):  # the squatter publishes
        memspace.Broadcast.open(shm_name, role="publisher", trust=nobody.uid)
    # Deliberate sharing: trusting that user subscribes (and sees its messages).
    with memspace.Broadcast.open(shm_name, trust=nobody.uid) as sub:
        assert sub.get(timeout=10) == b"forged"


def test_a_squatted_private_segment_is_refused_too(nobody: OtherUser, shm_name: str) -> None:
    # Not writable by anyone else, but made by someone else: its contents are theirs.
    nobody.run(
        "import sys, os, memspace\n"
        "memspace.SharedMemory.create(sys.argv[1], 64, mode=0o644).write(0, b'theirs')\n",
        shm_name,
    )
    with pytest.raises(PermissionError, match=f"uid {nobody.uid}"):
        memspace.SharedMemory.open(shm_name)
    assert memspace.SharedMemory.open(shm_name, trust=nobody.uid).read(0, 6) == b"theirs"


# --- symlinks -------------------------------------------------------------------------------


def test_a_planted_symlink_is_not_followed(
    nobody: OtherUser, shared_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim-secret"
    victim.write_bytes(b"the victim's own data")
    victim.chmod(0o600)
    link = shared_dir / "jobs.seg"
    nobody.run("import os, sys\nos.symlink(sys.argv[1], sys.argv[2])\n", str(victim), str(link))
    assert link.is_symlink()
    assert link.lstat().st_uid == nobody.uid
    with pytest.raises(memspace.LayoutError, match="symbolic link"):
        memspace.SharedMemory.open(path=link).write(0, b"OVERWRITTEN")
    with pytest.raises(memspace.LayoutError, match="symbolic link"):
        memspace.Queue.open(path=link)
    with pytest.raises(FileExistsError):
        memspace.SharedMemory.create(path=link, size=4096)
    assert victim.read_bytes() == b"the victim's own data"


def test_a_planted_file_at_a_path_is_refused(nobody: OtherUser, shared_dir: Path) -> None:
    path = shared_dir / "state.rec"
    nobody.run(
        "import sys, memspace\nmemspace.View.create(path=sys.argv[1], size=64, mode=0o600)\n",
        str(path),
    )
    with pytest.raises(PermissionError):
        memspace.View.open(path=path)


# --- read-only openers ----------------------------------------------------------------------


def _hold_read(name: str, ready: Any) -> None:
    lock = memspace.RwLock.open(name)
    lock.read()
    ready.set()
    time.sleep(3600)


def test_a_reader_cannot_block_attachment_or_fake_liveness(
    nobody: OtherUser, shm_name: str, attackers: list[subprocess.Popen[Any]]
) -> None:
    lock = memspace.RwLock.create(shm_name, mode=0o644)
    ready = ctx.Event()
    p = ctx.Process(target=_hold_read, args=(shm_name, ready), daemon=True)
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    seg = _dev_shm(shm_name)
    lock_file = seg.with_name(seg.name + ".memspace-lock")
    attacker = nobody.start(READ_LOCKER, str(seg), str(lock_file))
    attackers.append(attacker)
    lines = _wait_ready(attacker)
    assert f"LOCKED {seg}" in lines  # 0644: it may read the segment and lock it...
    assert not [ln for ln in lines if ln.startswith(f"LOCKED {lock_file}")]  # ...not this
    # The killed reader is seen dead: its share is released and a writer gets in.
    with lock.write(timeout=10) as g:
        assert g.owner_died
    # Attaching still works (a new attachment may take the dead reader's slot over).
    handles = [memspace.RwLock.open(shm_name) for _ in range(4)]
    assert memspace._memspace._staleness(shm_name) is False  # we are attached
    del handles, lock, g
    assert memspace._memspace._staleness(shm_name) is True  # the reader does not count


def test_a_reader_cannot_take_a_ring_role(
    nobody: OtherUser, shm_name: str, attackers: list[subprocess.Popen[Any]]
) -> None:
    memspace.Ring.create(shm_name, 4096, mode=0o644)
    attacker = nobody.start(READ_LOCKER, str(_dev_shm(shm_name)))
    attackers.append(attacker)
    _wait_ready(attacker)
    tx = memspace.Ring.open(shm_name, role="producer")
    rx = memspace.Ring.open(shm_name, role="consumer")
    tx.put(b"still works")
    assert rx.get(timeout=5) == b"still works"


def test_a_reader_cannot_take_the_broadcast_publisher_role_or_fake_a_subscriber(
    nobody: OtherUser, shm_name: str, attackers: list[subprocess.Popen[Any]]
) -> None:
    owner = memspace.Broadcast.create(shm_name, 4096, mode=0o644)  # holds no role
    seg = _dev_shm(shm_name)
    lock_file = seg.with_name(seg.name + ".memspace-lock")
    # A subscriber of ours that dies without reading: block mode must not wait for it.
    ready = ctx.Event()
    dead = ctx.Process(target=_subscribe_and_sleep, args=(shm_name, ready), daemon=True)
    dead.start()
    assert ready.wait(30)
    attacker = nobody.start(READ_LOCKER, str(seg), str(lock_file))
    attackers.append(attacker)
    lines = _wait_ready(attacker)
    assert f"LOCKED {seg}" in lines  # 0644: it may read the segment and lock it...
    assert not [ln for ln in lines if ln.startswith(f"LOCKED {lock_file}")]  # ...not this
    os.kill(dead.pid, signal.SIGKILL)
    dead.join(10)
    info = owner.inspect()
    assert info["dead_subscribers"] == 1  # not faked alive by the reader's locks
    assert info["subscribers"] == []
    pub = memspace.Broadcast.open(shm_name, role="publisher")  # not blocked by the reader
    sub = memspace.Broadcast.open(shm_name)
    for i in range(200):  # 200 records of 48 bytes: twice round the 4096-byte ring
        pub.put(i.to_bytes(4, "little") * 8, timeout=10)
        assert sub.get(timeout=10) == i.to_bytes(4, "little") * 8


def _subscribe_and_sleep(name: str, ready: Any) -> None:
    sub = memspace.Broadcast.open(name)
    ready.set()
    time.sleep(3600)
    sub.close()  # never reached: keeps the subscription until the kill


# --- truncation -----------------------------------------------------------------------------


def _victim(code: str, *args: str) -> subprocess.Popen[str]:
    """The victim's side in a child of ours (a SIGBUS there fails the test, not the run)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_writer_that_truncates_is_detected_where_it_can_be(
    nobody: OtherUser, shared_dir: Path
) -> None:
    # A peer you let write (mode 0o666, opened with trust=) can shrink the file. That cannot
    # be prevented; memspace refuses the shrunken segment at open and reports it from
    # `inspect()` instead of reading past the end of the file.
    path = shared_dir / "q"
    victim = _victim(
        "import sys, memspace\n"
        "q = memspace.Queue.create(path=sys.argv[1], capacity=1 << 16, mode=0o666)\n"
        "q.put(b'x')\n"
        "print('CREATED', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    q.inspect()\n"
        "except memspace.CorruptSegmentError as e:\n"
        "    print('DETECTED', 'truncated' in str(e), flush=True)\n"
        "try:\n"
        "    memspace.Queue.open(path=sys.argv[1], trust='any')\n"
        "except memspace.LayoutError as e:\n"
        "    print('REFUSED', flush=True)\n",
        str(path),
    )
    assert victim.stdout is not None
    assert victim.stdin is not None
    assert victim.stdout.readline().strip() == "CREATED"
    nobody.run("import os, sys\nos.truncate(sys.argv[1], 4096)\n", str(path))
    victim.stdin.write("go\n")
    victim.stdin.flush()
    out, _ = victim.communicate(timeout=60)
    assert victim.returncode == 0, (victim.returncode, out)
    assert out.split("\n")[:2] == ["DETECTED True", "REFUSED"], out
    memspace.Queue.remove(path=path)


def test_a_writer_that_truncates_a_broadcast_is_detected(
    nobody: OtherUser, shared_dir: Path
) -> None:
    # As for the queue: a peer allowed to write (mode 0o666, trust=) shrinks the file; the
    # live handle's inspect() and a new open refuse it instead of reading past the end.
    path = shared_dir / "b"
    victim = _victim(
        "import sys, memspace\n"
        "b = memspace.Broadcast.create(path=sys.argv[1], capacity=1 << 16, mode=0o666)\n"
        "b.put(b'x')\n"
        "print('CREATED', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    b.inspect()\n"
        "except memspace.CorruptSegmentError as e:\n"
        "    print('DETECTED', 'truncated' in str(e), flush=True)\n"
        "try:\n"
        "    memspace.Broadcast.open(path=sys.argv[1], trust='any')\n"
        "except memspace.LayoutError as e:\n"
        "    print('REFUSED', flush=True)\n",
        str(path),
    )
    assert victim.stdout is not None
    assert victim.stdin is not None
    assert victim.stdout.readline().strip() == "CREATED"
    nobody.run("import os, sys\nos.truncate(sys.argv[1], 4096)\n", str(path))
    victim.stdin.write("go\n")
    victim.stdin.flush()
    out, _ = victim.communicate(timeout=60)
    assert victim.returncode == 0, (victim.returncode, out)
    assert out.split("\n")[:2] == ["DETECTED True", "REFUSED"], out
    memspace.Broadcast.remove(path=path)


def test_a_writer_that_truncates_a_raw_segment_kills_its_mapper_with_sigbus(
    nobody: OtherUser, shm_name: str
) -> None:
    # The documented caveat, checked: a raw segment is plain bytes; a peer allowed to write
    # it can shrink it, and touching a lost page is SIGBUS. (It runs in a child.)
    memspace.SharedMemory.create(shm_name, 1 << 20, mode=0o666).close()
    child = _victim(
        "import sys, memspace\n"
        "shm = memspace.SharedMemory.open(sys.argv[1], trust='any')\n"
        "print('MAPPED', flush=True)\n"
        "sys.stdin.readline()\n"
        "shm.write((1 << 20) - 1, b'x')\n"
        "print('SURVIVED', flush=True)\n",
        shm_name,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    assert child.stdout.readline().strip() == "MAPPED"
    nobody.run("import os, sys\nos.truncate(sys.argv[1], 4096)\n", str(_dev_shm(shm_name)))
    child.stdin.write("go\n")
    child.stdin.flush()
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGBUS, (child.returncode, out)
