"""Who may have made a segment: `open()` refuses, by default, a segment that is not owned by
the caller's effective uid or that group or other may write (issue #11, finding 3), unless the
caller opts in with `trust=`. The same rule for every kind, through one core path.

The tests that need a segment owned by another uid change its owner with `fchown`, which
needs root; tests/hostile/ has the same scenarios with a real second user."""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memspace
import pytest

from tests.helpers import linux_only, run_child

NOBODY = 65534

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="changing a file's owner needs root"
)

Record = memspace.Record.define("TrustRec", a="i64")

# kind -> (create(name, mode), open(name, **kw))
KINDS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "SharedMemory": (
        lambda n, mode: memspace.SharedMemory.create(n, 64, mode=mode),
        memspace.SharedMemory.open,
    ),
    "Mutex": (lambda n, mode: memspace.Mutex.create(n, mode=mode), memspace.Mutex.open),
    "RwLock": (lambda n, mode: memspace.RwLock.create(n, mode=mode), memspace.RwLock.open),
    "View": (lambda n, mode: memspace.View.create(n, 64, mode=mode), memspace.View.open),
    "Record": (lambda n, mode: Record.create(n, mode=mode), Record.open),
    "Ring": (lambda n, mode: memspace.Ring.create(n, 4096, mode=mode), memspace.Ring.open),
    "Queue": (lambda n, mode: memspace.Queue.create(n, 4096, mode=mode), memspace.Queue.open),
    "Broadcast": (
        lambda n, mode: memspace.Broadcast.create(n, 4096, mode=mode),
        memspace.Broadcast.open,
    ),
}


def _file_of(name: str) -> Path:
    return Path("/dev/shm") / name.lstrip("/")


def _chmod(path: Path, mode: int) -> None:
    """chmod `path` and its lock file, if any (modes without group/other read-only bits, for
    which the lock file's mode is the same)."""
    os.chmod(path, mode)
    lock_file = path.with_name(path.name + ".memspace-lock")
    if lock_file.exists():
        os.chmod(lock_file, mode)


def _chown(path: Path, uid: int) -> None:
    """Give `path` (and its lock file, if it is a structured segment) to `uid`."""
    os.chown(path, uid, -1)
    lock_file = path.with_name(path.name + ".memspace-lock")
    if lock_file.exists():
        os.chown(lock_file, uid, -1)


@linux_only
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", [0o666, 0o660, 0o620, 0o602])
def test_writable_by_group_or_other_is_refused_by_default(
    kind: str, mode: int, shm_name: str
) -> None:
    create, open_ = KINDS[kind]
    create(shm_name, mode)
    with pytest.raises(PermissionError) as info:
        open_(shm_name)
    msg = str(info.value)
    assert "writable by" in msg, msg
    assert "trust=" in msg, msg  # says how to opt in
    # The opt-in: the caller's own uid, a collection of uids, or anyone.
    open_(shm_name, trust=os.geteuid())
    open_(shm_name, trust=[os.geteuid(), NOBODY])
    open_(shm_name, trust="any")


@linux_only
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_private_segment_opens_without_opt_in(kind: str, shm_name: str) -> None:
    create, open_ = KINDS[kind]
    create(shm_name, 0o600)
    open_(shm_name)
    open_(shm_name, trust=None)
    # A read-only grant for group/other is not a write grant: still ours to trust.
    os.chmod(_file_of(shm_name), 0o644)
    open_(shm_name)


@needs_root
@linux_only
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_owned_by_another_uid_is_refused_by_default(kind: str, shm_name: str) -> None:
    create, open_ = KINDS[kind]
    create(shm_name, 0o600)
    _chown(_file_of(shm_name), NOBODY)
    with pytest.raises(PermissionError) as info:
        open_(shm_name)
    msg = str(info.value)
    assert f"uid {NOBODY}" in msg, msg
    assert "trust=" in msg, msg
    with pytest.raises(PermissionError):
        open_(shm_name, trust=NOBODY + 1)  # trusting someone else is not trusting the owner
    open_(shm_name, trust=NOBODY)
    open_(shm_name, trust={NOBODY})
    open_(shm_name, trust="any")


@needs_root
def test_file_backed_owner_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "seg"
    memspace.Queue.create(path=path, capacity=4096).close()
    _chown(path, NOBODY)
    with pytest.raises(PermissionError):
        memspace.Queue.open(path=path)
    memspace.Queue.open(path=path, trust=NOBODY).close()


@needs_root
@linux_only
def test_a_lock_file_of_another_owner_is_refused(shm_name: str) -> None:
    memspace.Queue.create(shm_name, 4096).close()
    seg = _file_of(shm_name)
    os.chown(seg.with_name(seg.name + ".memspace-lock"), NOBODY, -1)
    with pytest.raises(PermissionError, match="lock file"):
        memspace.Queue.open(shm_name, trust="any")


def test_file_backed_mode_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "seg"
    memspace.SharedMemory.create(path=path, size=16).close()
    os.chmod(path, 0o606)
    with pytest.raises(PermissionError):
        memspace.SharedMemory.open(path=path)
    memspace.SharedMemory.open(path=path, trust=os.geteuid()).close()


@pytest.mark.parametrize(
    ("trust", "exc"),
    [
        (True, TypeError),
        (1.5, TypeError),
        (b"any", TypeError),
        ("anyone", ValueError),
        (-1, ValueError),
        (1 << 40, ValueError),
        ([0, "x"], TypeError),
    ],
)
def test_bad_trust_is_refused_before_opening(trust: Any, exc: type[Exception]) -> None:
    # The name does not exist: a bad trust value must be refused before the segment is looked at.
    with pytest.raises(exc):
        memspace.SharedMemory.open("/mst-no-such-segment-trust", trust=trust)
    with pytest.raises(exc):
        memspace.Queue.open("/mst-no-such-segment-trust", trust=trust)


@linux_only
def test_open_or_create_path_applies_the_rule_to_an_existing_segment(shm_name: str) -> None:
    # A creator that finds a segment already there (created by "someone" with a shared mode)
    # does not silently adopt it: multiprocessing-style create-or-open goes through open().
    memspace.SharedMemory.create(shm_name, 16, mode=0o666).close()
    with pytest.raises(FileExistsError):
        memspace.SharedMemory.create(shm_name, 16)
    with pytest.raises(PermissionError):
        memspace.SharedMemory.open(shm_name)


def _reseal_uid(name: str, uid: int) -> None:
    """Write `uid` as the header's creator uid and fix the checksum (FNV-1a over 0..112)."""
    shm = memspace.SharedMemory.open(name)
    shm.write(92, struct.pack("=I", uid))
    h = 0xCBF29CE484222325
    for b in shm.read(0, 112):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    shm.write(112, struct.pack("=Q", h))
    shm.close()


@linux_only
def test_the_headers_creator_uid_plays_no_part(shm_name: str) -> None:
    # The owner is the file's st_uid compared with geteuid(): a header's creator uid is
    # written by whoever made the segment, so it proves nothing either way.
    memspace.RwLock.create(shm_name)
    _reseal_uid(shm_name, 12345)
    memspace.RwLock.open(shm_name)


@needs_root
@linux_only
def test_a_squatter_cannot_pass_by_writing_the_victims_uid(shm_name: str) -> None:
    memspace.RwLock.create(shm_name)
    _reseal_uid(shm_name, os.geteuid())
    _chown(_file_of(shm_name), NOBODY)
    with pytest.raises(PermissionError, match=f"uid {NOBODY}"):
        memspace.RwLock.open(shm_name)


@linux_only
@pytest.mark.parametrize("kind", sorted(set(KINDS) - {"Record"}))
def test_a_pickled_handle_reopens_with_the_trust_that_accepted_it(kind: str, shm_name: str) -> None:
    # A segment created with a shared mode on purpose, or opened with trust=, is passed to
    # another process by pickling: it re-opens there with the same trust, not the default
    # (which would refuse it).
    create, open_ = KINDS[kind]
    created = create(shm_name, 0o660)
    opened = open_(shm_name, trust=os.geteuid())
    for handle in (created, opened):
        again = pickle.loads(pickle.dumps(handle))
        assert again.name == shm_name
    run_child(
        "import pickle, sys\npickle.loads(bytes.fromhex(sys.argv[1]))\n",
        pickle.dumps(created).hex(),
    )
    # The default trust still refuses it, and a handle opened by default pickles as such.
    with pytest.raises(PermissionError):
        open_(shm_name)
    _chmod(_file_of(shm_name), 0o600)
    private = open_(shm_name)
    _chmod(_file_of(shm_name), 0o660)
    with pytest.raises(PermissionError):
        pickle.loads(pickle.dumps(private))
