"""A filesystem shared between processes: memspace.SharedFileSystem side by side with the peers

Peers, each driven by the same inline loops (open, write/read, close per file):

- tmpfs: plain files under /dev/shm with Python's open/read/write;
- sqlite: SQLite in WAL mode on /dev/shm used as a file store (path -> blob, one statement,
  autocommitted, per file operation);
- lmdb: the `lmdb` package, one transaction per file operation;
- memspace (in-process): memspace.MemoryFileSystem, where "another process" is the same one
  (the floor a second process is compared with);
- memspace: memspace.SharedFileSystem.

Cases (every cross-process case really runs in separate processes):

1. small files: 300 x 4 KiB written by one process, then read by another (ms, lower is better);
2. random reads: 10,000 files of 1 KiB read at random by two reader processes while a writer
   keeps rewriting random files (reads per second of the two readers, higher is better);
3. stream: a 256 MiB file written by one process and read by another, with read() and (for
   memspace) through a zero-copy view copied into a preallocated buffer, beside a plain
   memcpy of 256 MiB (GB/s, higher is better).

Usage: python benchmarks/bench_shared_fs.py [--quick] [--reps N] [--out FILE]
(normally through `python benchmarks/run.py shared_fs`, which writes BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import QUICK, git_revision, machine, version_of  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
SHM = Path("/dev/shm")


# --- the peers: create in the parent, attach in a child, the same four operations -----------


class Peer:
    name = "?"
    cross_process = True

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    @classmethod
    def create(cls, tag: str, quota: int) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def destroy(cls, spec: dict[str, Any]) -> None:
        raise NotImplementedError

    def write(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Tmpfs(Peer):
    name = "tmpfs files"

    @classmethod
    def create(cls, tag: str, quota: int) -> dict[str, Any]:
        d = SHM / f"bench-sfs-{tag}-{os.getpid()}"
        d.mkdir()
        return {"dir": str(d)}

    @classmethod
    def destroy(cls, spec: dict[str, Any]) -> None:
        shutil.rmtree(spec["dir"], ignore_errors=True)

    def write(self, path: str, data: bytes) -> None:
        with open(self.spec["dir"] + path, "wb") as f:
            f.write(data)

    def read(self, path: str) -> bytes:
        with open(self.spec["dir"] + path, "rb") as f:
            return f.read()


class Sqlite(Peer):
    name = "sqlite (WAL)"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.db = sqlite3.connect(spec["db"], isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")

    @classmethod
    def create(cls, tag: str, quota: int) -> dict[str, Any]:
        db = str(SHM / f"bench-sfs-{tag}-{os.getpid()}.db")
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB)")
        c.close()
        return {"db": db}

    @classmethod
    def destroy(cls, spec: dict[str, Any]) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(spec["db"] + suffix).unlink(missing_ok=True)

    def write(self, path: str, data: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (path, data))

    def read(self, path: str) -> bytes:
        row = self.db.execute("SELECT data FROM files WHERE path = ?", (path,)).fetchone()
        data: bytes = row[0]
        return data

    def close(self) -> None:
        self.db.close()


class Lmdb(Peer):
    name = "lmdb"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import lmdb

        self.env = lmdb.open(spec["dir"], map_size=spec["map"], max_readers=64, sync=False)

    @classmethod
    def create(cls, tag: str, quota: int) -> dict[str, Any]:
        d = SHM / f"bench-sfs-lmdb-{tag}-{os.getpid()}"
        d.mkdir()
        return {"dir": str(d), "map": max(4 * quota, 64 * MiB)}

    @classmethod
    def destroy(cls, spec: dict[str, Any]) -> None:
        shutil.rmtree(spec["dir"], ignore_errors=True)

    def write(self, path: str, data: bytes) -> None:
        with self.env.begin(write=True) as t:
            t.put(path.encode(), data)

    def read(self, path: str) -> bytes:
        with self.env.begin() as t:
            data: bytes = t.get(path.encode())
            return data

    def close(self) -> None:
        self.env.close()


class Shared(Peer):
    name = "memspace SharedFileSystem"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import memspace

        self.fs = memspace.SharedFileSystem.open(spec["name"])

    @classmethod
    def create(cls, tag: str, quota: int) -> dict[str, Any]:
        import memspace

        name = f"/bench-sfs-{tag}-{os.getpid()}"
        memspace.SharedFileSystem.create(name, max_quota=quota, max_nodes=20_000).close()
        return {"name": name}

    @classmethod
    def destroy(cls, spec: dict[str, Any]) -> None:
        import memspace

        memspace.SharedFileSystem.remove(spec["name"])

    def write(self, path: str, data: bytes) -> None:
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def read(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as f:
            data: bytes = f.read()
            return data

    def close(self) -> None:
        self.fs.close()


class InProcess(Peer):
    name = "memspace MemoryFileSystem (in-process)"
    cross_process = False
    _fs: Any = None

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import memspace

        if InProcess._fs is None:
            InProcess._fs = memspace.MemoryFileSystem(max_quota=spec["quota"])
        self.fs = InProcess._fs

    @classmethod
    def create(cls, tag: str, quota: int) -> dict[str, Any]:
        InProcess._fs = None
        return {"quota": quota}

    @classmethod
    def destroy(cls, spec: dict[str, Any]) -> None:
        InProcess._fs = None

    write = Shared.write
    read = Shared.read


PEERS: dict[str, type[Peer]] = {
    "tmpfs": Tmpfs,
    "sqlite": Sqlite,
    "lmdb": Lmdb,
    "inproc": InProcess,
    "shared": Shared,
}


# --- the roles a process plays (each returns one number) ------------------------------------


def role_small_write(p: Peer, n: int, size: int) -> float:
    data = [os.urandom(size) for _ in range(n)]
    t0 = time.perf_counter()
    for i in range(n):
        p.write(f"/f{i}", data[i])
    return time.perf_counter() - t0


def role_small_read(p: Peer, n: int, size: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        if len(p.read(f"/f{i}")) != size:
            raise AssertionError("short read")
    return time.perf_counter() - t0


def role_rand_read(p: Peer, n: int, secs: float) -> float:
    rng = random.Random(os.getpid())
    count = 0
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        for _ in range(100):
            p.read(f"/f{rng.randrange(n)}")
        count += 100
    return count / secs


def role_rand_write(p: Peer, n: int, secs: float) -> float:
    rng = random.Random(1)
    data = os.urandom(KiB)
    count = 0
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        p.write(f"/f{rng.randrange(n)}", data)
        count += 1
    return count / secs


def role_stream_write(p: Peer, size: int, chunk: int) -> float:
    block = os.urandom(chunk)
    t0 = time.perf_counter()
    if isinstance(p, Tmpfs):
        with open(p.spec["dir"] + "/big", "wb") as f:
            for _ in range(size // chunk):
                f.write(block)
    elif isinstance(p, (Shared, InProcess)):
        with p.fs.open("/big", "wb") as f:
            for _ in range(size // chunk):
                f.write(block)
    else:  # one value per key store: the whole file at once
        p.write("/big", block * (size // chunk))
    return size / (time.perf_counter() - t0) / 1e9


def role_stream_read(p: Peer, size: int) -> float:
    t0 = time.perf_counter()
    n = len(p.read("/big"))
    if n != size:
        raise AssertionError("short read")
    return size / (time.perf_counter() - t0) / 1e9


def role_stream_view(p: Peer, size: int) -> float:
    buf = bytearray(size)
    fs = p.fs  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    with fs.view("/big") as mv:
        buf[:] = mv
    return size / (time.perf_counter() - t0) / 1e9


def role_memcpy(size: int) -> float:
    src = os.urandom(size)
    dst = bytearray(size)
    t0 = time.perf_counter()
    dst[:] = src
    return size / (time.perf_counter() - t0) / 1e9


ROLES: dict[str, Any] = {
    "small_write": role_small_write,
    "small_read": role_small_read,
    "rand_read": role_rand_read,
    "rand_write": role_rand_write,
    "stream_write": role_stream_write,
    "stream_read": role_stream_read,
    "stream_view": role_stream_view,
}


def child_main(peer: str, spec: str, role: str, args: list[str]) -> None:
    p = PEERS[peer](json.loads(spec))
    value = ROLES[role](p, *(float(a) if "." in a else int(a) for a in args))
    p.close()
    print(json.dumps(value), flush=True)


def start(peer: str, spec: dict[str, Any], role: str, *args: object) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--child", peer, json.dumps(spec), role, *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> float:
    out, _ = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode})")
    value: float = json.loads(out.strip().splitlines()[-1])
    return value


def run(peer: str, spec: dict[str, Any], role: str, *args: object) -> float:
    """One role in another process (or here, for the in-process peer)."""
    if not PEERS[peer].cross_process:
        p = PEERS[peer](spec)
        value: float = ROLES[role](p, *args)
        return value
    return result(start(peer, spec, role, *args))


# --- the cases --------------------------------------------------------------------------------


def case_small(peer: str, n: int, size: int) -> tuple[float, float]:
    cls = PEERS[peer]
    spec = cls.create("small", 64 * MiB)
    try:
        w = run(peer, spec, "small_write", n, size)
        r = run(peer, spec, "small_read", n, size)
        return w * 1e3, r * 1e3
    finally:
        cls.destroy(spec)


def case_random(peer: str, n: int, secs: float) -> float:
    cls = PEERS[peer]
    spec = cls.create("rand", 64 * MiB)
    try:
        filler = PEERS[peer](spec)
        data = os.urandom(KiB)
        for i in range(n):
            filler.write(f"/f{i}", data)
        if not cls.cross_process:
            # One process: the reads alone (no second process can read it).
            return run(peer, spec, "rand_read", n, secs)
        filler.close()
        procs = [start(peer, spec, "rand_write", n, secs)]
        procs += [start(peer, spec, "rand_read", n, secs) for _ in range(2)]
        values = [result(p) for p in procs]
        return values[1] + values[2]
    finally:
        cls.destroy(spec)


def case_stream(peer: str, size: int) -> dict[str, float]:
    cls = PEERS[peer]
    spec = cls.create("stream", size + 16 * MiB)
    try:
        out = {"write": run(peer, spec, "stream_write", size, MiB)}
        out["read"] = run(peer, spec, "stream_read", size)
        if peer in ("shared",):
            out["view"] = run(peer, spec, "stream_view", size)
        return out
    finally:
        cls.destroy(spec)


def available_peers() -> list[str]:
    peers = []
    for name in PEERS:
        if name == "lmdb":
            try:
                import lmdb  # noqa: F401
            except ImportError:
                continue
        peers.append(name)
    return peers


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv if argv is not None else [])
    a.quick = a.quick or QUICK
    reps = a.reps or (1 if QUICK else 2 if a.quick else 5)
    n_small, size_small = 300, 4 * KiB
    n_rand, secs = (2000, 1.0) if a.quick else (10_000, 3.0)
    stream = 64 * MiB if a.quick else 256 * MiB
    peers = available_peers()
    med = statistics.median
    small: dict[str, list[tuple[float, float]]] = {p: [] for p in peers}
    rand: dict[str, list[float]] = {p: [] for p in peers}
    streams: dict[str, list[dict[str, float]]] = {p: [] for p in peers}
    memcpy = [role_memcpy(stream) for _ in range(reps)]
    for _ in range(reps):
        for p in peers:
            small[p].append(case_small(p, n_small, size_small))
            rand[p].append(case_random(p, n_rand, secs))
            streams[p].append(case_stream(p, stream))
    ref = "shared"
    lines = [
        "## SharedFileSystem across processes",
        "",
        machine(),
        "",
        f"memspace {version_of('memspace')} ({git_revision()}), "
        f"lmdb {version_of('lmdb')}, sqlite {sqlite3.sqlite_version}; "
        f"`python benchmarks/bench_shared_fs.py{' --quick' if a.quick else ''}`, "
        f"{reps} repetitions, medians (min..max).",
        "",
        f"### {n_small} x {size_small // KiB} KiB files: written by one process, read by another",
        "",
        "| peer | write ms | read ms | peer / memspace (write, read) |",
        "|---|---:|---:|---:|",
    ]
    sw, sr = med(x[0] for x in small[ref]), med(x[1] for x in small[ref])
    for p in peers:
        w = [x[0] for x in small[p]]
        r = [x[1] for x in small[p]]
        lines.append(
            f"| {PEERS[p].name} | {med(w):.1f} ({min(w):.1f}..{max(w):.1f}) | "
            f"{med(r):.1f} ({min(r):.1f}..{max(r):.1f}) | {med(w) / sw:.2f}x, {med(r) / sr:.2f}x |"
        )
    lines += [
        "",
        f"### {n_rand:,} files of 1 KiB read at random by two processes while a third writes",
        "",
        "| peer | reads/s (both readers) | memspace / peer |",
        "|---|---:|---:|",
    ]
    rr = med(rand[ref])
    for p in peers:
        v = rand[p]
        note = " (one process, no writer)" if not PEERS[p].cross_process else ""
        lines.append(
            f"| {PEERS[p].name}{note} | {med(v):,.0f} ({min(v):,.0f}..{max(v):,.0f}) | "
            f"{rr / med(v):.2f}x |"
        )
    lines += [
        "",
        f"### a {stream // MiB} MiB file from one process to another (GB/s)",
        "",
        "| peer | write | read | read through a view |",
        "|---|---:|---:|---:|",
    ]
    for p in peers:
        s = streams[p]
        view = f"{med(x['view'] for x in s):.2f}" if "view" in s[0] else "-"
        lines.append(
            f"| {PEERS[p].name} | {med(x['write'] for x in s):.2f} | "
            f"{med(x['read'] for x in s):.2f} | {view} |"
        )
    lines.append(f"| memcpy (one process, the limit) | | {med(memcpy):.2f} | |")
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    return text


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        print(main(sys.argv[1:]))
