"""The corruption fuzzer's kinds, corruptions and worker process (see test_corruption_fuzz.py).

Run as a script, this is a long-lived worker: it reads one JSON case per line on stdin, runs
it, and answers one JSON line on stdout, so that one process serves many cases. A case is

- ``rest``: create a structured object of ``kind``, use it a little, close it, corrupt its
  segment (header, attachment table, lock area, control block or data), then open it again
  and use it;
- ``use``: open an existing object and use it for ``seconds`` (a live case's two users);
- ``corrupt``: corrupt an existing segment again and again for ``seconds`` (the third).

Every operation uses a short timeout or none at all, so that a case ends in a bounded time
whatever the memory holds. The answer is ``{"ok": ...}`` when the case ran to its end or
stopped at a clean exception (one of ``CLEAN``: what memspace promises to raise for a corrupt
or hostile segment), and ``{"bad": traceback}`` for anything else (a ``PanicException``, a
``SystemError``, an assertion of ours). A signal or a hang is seen by the parent.

Everything is seeded: a case is replayed by its kind, mode and seed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import queue
import random
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import memspace

KINDS = ("mutex", "rwlock", "view", "record", "ring", "queue", "sharedfs", "broadcast")

# What a corrupt or hostile segment may make memspace raise (a result, not a finding).
CLEAN: tuple[type[BaseException], ...] = (
    memspace.MemspaceError,  # CorruptSegmentError, LayoutError, LockError, RoleTakenError
    OSError,  # TimeoutError, FileNotFoundError, PermissionError, ...
    ValueError,  # a bad length or offset found in memory; UnicodeDecodeError
    TypeError,  # a view value stored with another tag
    IndexError,
    queue.Empty,
    queue.Full,
)

# Short waits: a case must end fast, whatever the memory says. An operation whose waits are
# all WAIT long and that takes more than SLOW has not honoured its timeout (SLOW leaves room for
# a loaded machine and for a wait sliced at 50 ms).
WAIT = 0.005
SLOW = 5.0

Rec = memspace.Record.define("FuzzRec", a="i64", b="f64", c="u8", d="i32", e="u64")

HEADER = struct.Struct("=8sHHIIIQQIIQQQQQIIQQQII")
# The header's kind of a shared filesystem's segment.
_KIND_FILESYSTEM = 7
CHECKSUM_AT = 112


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# --- what each kind does ----------------------------------------------------------------------


def _create(kind: str, name: str, rng: random.Random) -> Any:
    if kind == "mutex":
        return memspace.Mutex.create(name)
    if kind == "rwlock":
        return memspace.RwLock.create(name)
    if kind == "view":
        return memspace.View.create(name, rng.choice((64, 200, 1024)))
    if kind == "record":
        return Rec.create(name, a=1, b=2.5, c=3, d=-4, e=5)
    if kind == "ring":
        return memspace.Ring.create(name, rng.choice((256, 1024, 4096)))
    if kind == "queue":
        return memspace.Queue.create(name, rng.choice((256, 1024, 4096)))
    if kind == "sharedfs":
        # Small, so that a corruption often lands in the metadata (superblock, commit log,
        # slot records, the two copies) rather than in file data.
        fs = memspace.SharedFileSystem.create(
            name,
            max_quota=1 << 15,
            max_nodes=rng.choice((8, 32)),
            max_open=8,
            slots=8,
            data_size=1 << 16,
            default_lock_timeout=WAIT,
            default_storage=rng.choice(("auto", "sequential", "random_access")),
        )
        fs.import_tree({"/a": b"a" * 100, "/d/b": b"bb", "/d/e/c": bytes(700)})
        return fs
    if kind == "broadcast":
        return _broadcast_create(name, rng)
    raise AssertionError(kind)


def _open(kind: str, name: str, rng: random.Random, who: str) -> Any:
    if kind == "mutex":
        return memspace.Mutex.open(name)
    if kind == "rwlock":
        return memspace.RwLock.open(name)
    if kind == "view":
        return memspace.View.open(name)
    if kind == "record":
        return Rec.open(name)
    if kind == "ring":
        role = {"a": "producer", "b": "consumer"}.get(who, rng.choice(("producer", "consumer")))
        return memspace.Ring.open(name, role=role)
    if kind == "queue":
        return memspace.Queue.open(name)
    if kind == "sharedfs":
        return memspace.SharedFileSystem.open(name)
    if kind == "broadcast":
        return _broadcast_open(name, who)
    raise AssertionError(kind)


_VALUES: list[tuple[str, Callable[[random.Random], Any]]] = [
    ("bool", lambda r: r.random() < 0.5),
    ("int", lambda r: r.randrange(-(2**63), 2**63)),
    ("float", lambda r: r.random() * 1e6),
    ("str", lambda r: "é" * r.randrange(0, 20)),
    ("bytes", lambda r: bytes(r.randrange(0, 40))),
    ("u8", lambda r: r.randrange(256)),
    ("i32", lambda r: r.randrange(-(2**31), 2**31)),
    ("u32", lambda r: r.randrange(2**32)),
    ("u64", lambda r: r.randrange(2**64)),
    ("f32", lambda r: 0.5),
]


def _one_op(kind: str, obj: Any, rng: random.Random, who: str) -> None:
    """One operation on an open object, which must end within SLOW seconds (every wait in it
    is at most WAIT): `who` is "a" or "b" in a live case, "" at rest."""
    t0 = time.monotonic()
    try:
        _op(kind, obj, rng, who)
    finally:
        took = time.monotonic() - t0
        if took > SLOW:
            raise AssertionError(f"one {kind} operation took {took:.1f} s (waits are {WAIT} s)")


def _op(kind: str, obj: Any, rng: random.Random, who: str) -> None:
    if kind == "mutex":
        g = obj.acquire(timeout=rng.choice((0, WAIT)))
        _ = g.owner_died
        g.release()
    elif kind == "rwlock":
        op = rng.randrange(4)
        if op == 0:
            with obj.read(timeout=rng.choice((0, WAIT))) as g:
                _ = g.owner_died
        elif op == 1:
            with obj.write(timeout=rng.choice((0, WAIT))) as g:
                _ = g.owner_died
        else:
            _ = (obj.write_locked, obj.reader_count)
    elif kind == "view":
        off = rng.randrange(0, obj.size + 2)
        tag, make = rng.choice(_VALUES)
        if rng.random() < 0.5 and who != "b":
            obj.write(make(rng), off, tag=tag, timeout=WAIT)
        elif rng.random() < 0.8:
            obj.read(tag, off, timeout=WAIT)
        elif rng.random() < 0.5:
            obj.read_bytes(off, rng.randrange(0, 64), timeout=WAIT)
        else:
            obj.read_mixed([(tag, rng.randrange(1, 4))], off, timeout=WAIT)
    elif kind == "record":
        op = rng.randrange(4)
        if op == 0 and who != "b":
            obj.a = rng.randrange(-(2**63), 2**63)
            obj.e = rng.randrange(2**64)
        elif op == 1:
            _ = (obj.a, obj.b, obj.c, obj.d, obj.e)
        elif op == 2:
            obj.asdict(timeout=WAIT)
        else:
            with obj.locked(timeout=WAIT, shared=rng.random() < 0.5):
                obj.c = rng.randrange(256)
    elif kind == "ring":
        _ring_op(obj, rng)
    elif kind == "queue":
        _queue_op(obj, rng)
    elif kind == "sharedfs":
        _sharedfs_op(obj, rng)
    elif kind == "broadcast":
        _broadcast_op(obj, rng, who)
    else:
        raise AssertionError(kind)


def _ring_op(ring: Any, rng: random.Random) -> None:
    if ring.role == "producer":
        op = rng.randrange(5)
        n = rng.randrange(0, ring.max_message_size + 1)
        if op == 0:
            ring.try_put(bytes(n))
        elif op == 1:
            ring.put(bytes(n), timeout=WAIT)
        elif op == 2:
            ring.put_many([bytes(rng.randrange(0, 32)) for _ in range(4)], timeout=WAIT)
        elif op == 3:
            with ring.reserve(n, timeout=WAIT) as mv:
                mv[:] = bytes(n)
        else:
            ring.put_value(rng.randrange(1000), timeout=WAIT)
    else:
        op = rng.randrange(6)
        if op == 0:
            m = ring.try_get()
            assert m is None or len(m) <= ring.max_message_size
        elif op == 1:
            m = ring.get(timeout=WAIT)
            assert len(m) <= ring.max_message_size
        elif op == 2:
            for m in ring.get_many(8, timeout=WAIT):
                assert len(m) <= ring.max_message_size
        elif op == 3:
            with ring.get_view(timeout=WAIT) as mv:
                assert len(mv) <= ring.max_message_size
                bytes(mv)
        elif op == 4:
            ring.get_value(timeout=WAIT)
        else:
            ring.clear()
    _ = (len(ring), ring.free, ring.used, ring.empty(), ring.full(), ring.inspect())


def _queue_op(q: Any, rng: random.Random) -> None:
    op = rng.randrange(9)
    n = rng.randrange(0, q.max_message_size + 1)
    if op == 0:
        q.try_put(bytes(n))
    elif op == 1:
        q.put(bytes(n), timeout=WAIT)
    elif op == 2:
        q.put_many([bytes(rng.randrange(0, 32)) for _ in range(4)], timeout=WAIT)
    elif op == 3:
        m = q.try_get()
        assert m is None or len(m) <= q.max_message_size
    elif op == 4:
        assert len(q.get(timeout=WAIT)) <= q.max_message_size
    elif op == 5:
        for m in q.get_many(8, timeout=WAIT):
            assert len(m) <= q.max_message_size
    elif op == 6:
        with q.get_view(timeout=WAIT) as mv:
            assert len(mv) <= q.max_message_size
            bytes(mv)
    elif op == 7:
        q.clear()
    else:
        _ = (q.qsize(), q.empty(), q.full(), q.inspect())


_FS_PATHS = ("/a", "/d", "/d/b", "/d/e", "/d/e/c", "/n", "/n/x", "/z")


def _sharedfs_op(fs: Any, rng: random.Random) -> None:
    p, q = rng.choice(_FS_PATHS), rng.choice(_FS_PATHS)
    op = rng.randrange(16)
    if op == 0:
        with fs.open(p, rng.choice(("wb", "ab", "r+b")), lock_timeout=WAIT) as f:
            f.write(bytes(rng.randrange(0, 3000)))
            if rng.random() < 0.3:
                f.flush()
                f.seek(rng.randrange(0, 100))
                f.write(b"x" * rng.randrange(0, 100))
    elif op == 1:
        with fs.open(p, "rb", lock_timeout=WAIT) as f:
            assert len(f.read()) <= 1 << 16
    elif op == 2:
        with fs.view(p) as mv:
            assert len(mv) <= 1 << 16
            bytes(mv)
    elif op == 3:
        fs.import_tree({p: bytes(rng.randrange(0, 2000))})
    elif op == 4:
        for path, data in fs.export_tree("/").items():
            assert isinstance(path, str)
            assert len(data) <= 1 << 16
    elif op == 5:
        fs.mkdir(p, exist_ok=rng.random() < 0.5)
    elif op == 6:
        fs.remove(p)
    elif op == 7:
        fs.rmtree(p)
    elif op == 8:
        (fs.rename if rng.random() < 0.5 else fs.move)(p, q)
    elif op == 9:
        (fs.copy if rng.random() < 0.5 else fs.copy_tree)(p, q)
    elif op == 10:
        _ = (fs.listdir(p), fs.exists(p), fs.is_dir(p), fs.is_file(p))
    elif op == 11:
        _ = (fs.stat(p), fs.get_size(p))
    elif op == 12:
        _ = (fs.glob("/**"), fs.glob("/d/*/c*"), list(fs.walk("/")))
    elif op == 13:
        report = fs.fsck(reap=rng.random() < 0.5)
        assert isinstance(report["ok"], bool)
    elif op == 14:
        fs.reap()
    else:
        _ = (fs.stats(), fs.info(), fs.inspect())


# --- the broadcast (its own block, beside the others' kinds) ----------------------------------


def _broadcast_create(name: str, rng: random.Random) -> Any:
    return memspace.Broadcast.create(
        name,
        rng.choice((256, 1024, 4096)),
        overflow=rng.choice(("block", "overwrite")),
        max_message_size=rng.choice((None, 8, 100)),
    )


def _broadcast_open(name: str, who: str) -> Any:
    # A live case's "a" publishes and its "b" subscribes; at rest one handle subscribes and
    # publishes too (its first put claims the role), so that it reads what the damage left.
    return memspace.Broadcast.open(name, role="publisher" if who == "a" else "subscriber")


def _broadcast_op(bc: Any, rng: random.Random, who: str) -> None:
    limit = bc.max_message_size
    publish = who == "a" or (who == "" and rng.random() < 0.5)
    if publish:
        op = rng.randrange(5)
        n = rng.randrange(0, limit + 1)
        if op == 0:
            bc.try_put(bytes(n))
        elif op == 1:
            bc.put(bytes(n), timeout=WAIT)
        elif op == 2:
            bc.put_many([bytes(rng.randrange(0, min(limit, 32) + 1)) for _ in range(4)], WAIT)
        elif op == 3:
            with bc.reserve(n, timeout=WAIT) as mv:
                mv[:] = bytes(n)
        else:
            bc.put(bytes(n), block=False)
    elif who == "b" or bc.role in ("subscriber", "both"):
        op = rng.randrange(4)
        if op == 0:
            m = bc.try_get()
            assert m is None or len(m) <= limit
        elif op == 1:
            assert len(bc.get(timeout=WAIT)) <= limit
        elif op == 2:
            for m in bc.get_many(8, timeout=WAIT):
                assert len(m) <= limit
        else:
            with bc.get_view(timeout=WAIT) as mv:
                assert len(mv) <= limit
                bytes(mv)
    _ = (bc.lag, bc.role, bc.inspect())


def _close(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if close is not None:
        close()


# --- corruption -------------------------------------------------------------------------------


def areas(raw: memspace.SharedMemory) -> list[tuple[str, int, int]]:
    """(name, offset, length) of the segment's parts, from its header as it is now (a corrupt
    header gives nonsense areas: they are clipped to the segment)."""
    size = raw.size
    out = [("header", 0, min(128, size))]
    if size >= 128:
        h = HEADER.unpack(raw.read(0, 128))
        attach_off, slots, lock_off, lock_size, data_off, data_size = (
            h[7],
            h[8],
            h[10],
            h[11],
            h[12],
            h[13],
        )
        # A ring's or a queue's control block; a broadcast's lines fill its lock area.
        control = {5: 256, 6: 384, 8: lock_size}.get(h[4], 0)
        for name, off, length in (
            ("attach", attach_off, 64 + 32 * min(slots, 1024)),
            ("lock", lock_off, lock_size),
            ("control", lock_off, min(control, lock_size)),
            ("data", data_off, data_size),
        ):
            if off < size and length > 0:
                out.append((name, off, min(length, size - off)))
        if h[4] == _KIND_FILESYSTEM and data_off < size:
            # A shared filesystem's metadata: its superblock, commit log, slot records and
            # the two copies lie in the first part of its data area (the file data after).
            out.append(("fsmeta", data_off, min(data_size, 1 << 15, size - data_off)))
    return out


def corrupt_once(raw: memspace.SharedMemory, rng: random.Random) -> str:
    """One random corruption of the segment behind `raw`; returns what it did."""
    parts = areas(raw)
    weights = {"header": 2, "attach": 2, "lock": 4, "control": 3, "data": 4, "fsmeta": 8}
    name, off, length = rng.choices(parts, [weights[p[0]] for p in parts])[0]
    if length <= 0:
        return "nothing"
    how = rng.randrange(6)
    if how == 0:  # flip bits
        at = off + rng.randrange(length)
        b = raw.read(at, 1)[0] ^ (1 << rng.randrange(8))
        raw.write(at, bytes([b]))
        what = f"flip {name}+{at - off}"
    elif how in (1, 2) and length >= 8:  # a word: special values or near its own value
        at = off + rng.randrange(length // 8) * 8
        cur = struct.unpack("=Q", raw.read(at, 8))[0]
        v = rng.choice(
            (
                0,
                2**64 - 1,
                2**63,
                rng.randrange(2**64),
                rng.randrange(256),
                (cur + 8 * rng.randrange(1, 512)) % 2**64,
                (cur - 8 * rng.randrange(1, 512)) % 2**64,
                cur ^ (1 << rng.randrange(64)),
            )
        )
        raw.write(at, struct.pack("=Q", v))
        what = f"word {name}+{at - off}={v:#x}"
    elif how == 3 and length >= 4:  # a 32-bit word (lock words, lengths, tags)
        at = off + rng.randrange(length // 4) * 4
        v = rng.choice((0, 1, 2, 2**31, 2**32 - 1, rng.randrange(2**32)))
        raw.write(at, struct.pack("=I", v))
        what = f"u32 {name}+{at - off}={v:#x}"
    elif how == 4:  # a range of random bytes
        at = off + rng.randrange(length)
        n = min(rng.randrange(1, 64), off + length - at)
        raw.write(at, rng.randbytes(n))
        what = f"bytes {name}+{at - off}:{n}"
    else:  # a range of zeros
        at = off + rng.randrange(length)
        n = min(rng.randrange(1, 256), off + length - at)
        raw.write(at, bytes(n))
        what = f"zero {name}+{at - off}:{n}"
    if name == "header" and rng.random() < 0.6:
        # Reseal the checksum, so that the corruption reaches the geometry checks.
        head = raw.read(0, CHECKSUM_AT)
        raw.write(CHECKSUM_AT, struct.pack("=Q", fnv1a64(head)))
        what += " resealed"
    elif name == "fsmeta" and at - off < 248 and rng.random() < 0.6:
        # Reseal the filesystem's superblock (FNV-1a over its first 248 bytes), so that a
        # changed parameter reaches the layout checks.
        raw.write(off + 248, struct.pack("=Q", fnv1a64(raw.read(off, 248))))
        what += " resealed"
    return what


# --- cases ------------------------------------------------------------------------------------


def run_rest(kind: str, name: str, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    obj = _create(kind, name, rng)
    try:
        for _ in range(rng.randrange(0, 6)):
            with contextlib.suppress(*CLEAN):
                _one_op(kind, obj, rng, "")
    finally:
        _close(obj)
        del obj
    did = []
    with memspace.SharedMemory.open(name) as raw:
        for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
            did.append(corrupt_once(raw, rng))
    ops = 0
    errors: dict[str, int] = {}
    try:
        obj = _open(kind, name, rng, "")
    except CLEAN as e:
        return {"ok": type(e).__name__, "ops": 0, "did": did}
    try:
        for _ in range(rng.randrange(1, 16)):
            try:
                _one_op(kind, obj, rng, "")
                ops += 1
            except CLEAN as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                if isinstance(e, memspace.CorruptSegmentError):
                    break  # poisoned: every later call raises the same
    finally:
        _close(obj)
    return {"ok": "done", "ops": ops, "errors": errors, "did": did}


def run_use(kind: str, name: str, seed: int, who: str, seconds: float) -> dict[str, Any]:
    rng = random.Random(seed)
    ops = 0
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    obj = None
    try:
        while time.monotonic() < deadline:
            try:
                if obj is None:
                    obj = _open(kind, name, rng, who)
                _one_op(kind, obj, rng, who)
                ops += 1
            except CLEAN as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                if isinstance(e, memspace.CorruptSegmentError | memspace.LayoutError):
                    # Poisoned or unusable: a new handle is refused too; stop here.
                    break
    finally:
        if obj is not None:
            _close(obj)
    return {"ok": "done", "ops": ops, "errors": errors}


def run_corrupt(name: str, seed: int, seconds: float) -> dict[str, Any]:
    rng = random.Random(seed)
    n = 0
    deadline = time.monotonic() + seconds
    with memspace.SharedMemory.open(name) as raw:
        while time.monotonic() < deadline:
            corrupt_once(raw, rng)
            n += 1
            time.sleep(rng.choice((0, 0.0005, 0.002)))
    return {"ok": "done", "corruptions": n}


def run(case: dict[str, Any]) -> dict[str, Any]:
    mode = case["mode"]
    if mode == "rest":
        return run_rest(case["kind"], case["name"], case["seed"])
    if mode == "use":
        return run_use(case["kind"], case["name"], case["seed"], case["who"], case["seconds"])
    if mode == "corrupt":
        return run_corrupt(case["name"], case["seed"], case["seconds"])
    raise AssertionError(mode)


def serve(lines: Iterator[str]) -> None:
    for line in lines:
        case = json.loads(line)
        try:
            answer = run(case)
        except BaseException:  # a PanicException is a BaseException
            answer = {"bad": traceback.format_exc()}
        answer["id"] = case["id"]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    faulthandler.enable()  # a fatal signal prints the Python stack to the worker's log
    serve(iter(sys.stdin.readline, ""))
