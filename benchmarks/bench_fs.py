"""In-memory filesystems: D-MemFS's benchmark cases, side by side

Each case runs, in one process and one run, on memspace.MemoryFileSystem, dmemfs (D-MemFS),
fsspec's memory filesystem, a dict of io.BytesIO, and tempfile files under /dev/shm. The cases
and sizes are those of D-MemFS's `benchmarks/compare_backends.py` (re-implemented here): the
time of one whole case in milliseconds, median and min..max over the repetitions, and each
peer's time divided by memspace's (above 1: memspace is faster).

Usage: python benchmarks/bench_fs.py [--reps N] [--quick] [--out FILE]
(normally through `python benchmarks/run.py fs`, which writes BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import QUICK, git_revision, machine, version_of  # noqa: E402

KiB = 1024
MiB = 1024 * KiB


# --- the peers, behind one small interface --------------------------------------------------


class Peer:
    """One filesystem under test: open(path, mode) -> file object, mkdir(path)."""

    name = "?"

    def setup(self) -> None:
        """Start from an empty filesystem."""

    def teardown(self) -> None:
        """Free everything."""

    def mkdir(self, path: str) -> None:
        raise NotImplementedError

    def open(self, path: str, mode: str) -> Any:
        raise NotImplementedError


class MemspacePeer(Peer):
    name = "memspace"

    def setup(self) -> None:
        import memspace

        self.fs = memspace.MemoryFileSystem(max_quota=4 * 1024 * MiB)

    def teardown(self) -> None:
        del self.fs

    def mkdir(self, path: str) -> None:
        self.fs.mkdir(path, exist_ok=True)

    def open(self, path: str, mode: str) -> Any:
        return self.fs.open(path, mode)


class DmemfsPeer(MemspacePeer):
    name = "dmemfs"

    def setup(self) -> None:
        import dmemfs

        self.fs = dmemfs.MemoryFileSystem(max_quota=4 * 1024 * MiB)


class FsspecPeer(Peer):
    name = "fsspec memory"

    def setup(self) -> None:
        from fsspec.implementations.memory import MemoryFileSystem

        self.fs = MemoryFileSystem()
        self.fs.store.clear()
        self.fs.pseudo_dirs.clear()
        self.fs.pseudo_dirs.append("")

    def teardown(self) -> None:
        self.fs.store.clear()
        self.fs.pseudo_dirs.clear()
        self.fs.pseudo_dirs.append("")

    def mkdir(self, path: str) -> None:
        self.fs.makedirs(path, exist_ok=True)

    def open(self, path: str, mode: str) -> Any:
        return self.fs.open(path, mode)


class BytesIOPeer(Peer):
    """A dict of io.BytesIO: the floor for a Python-level in-memory store."""

    name = "dict of BytesIO"

    def setup(self) -> None:
        self.files: dict[str, _KeptBytesIO] = {}

    def teardown(self) -> None:
        self.files.clear()

    def mkdir(self, path: str) -> None:
        pass

    def open(self, path: str, mode: str) -> Any:
        if mode == "wb":
            bio = self.files[path] = _KeptBytesIO()
            return bio
        bio = self.files[path]
        bio.seek(0)
        return bio


class _KeptBytesIO(io.BytesIO):
    """A BytesIO that `with` does not close (it is the stored file), without a Python frame
    per `with` (memspace's file has none either): BytesIO's C `__exit__` calls `close()`,
    here the C builtin `int`, whose 0 is falsy, so exceptions still propagate."""

    close = staticmethod(int)  # type: ignore[assignment]


class TempfilePeer(Peer):
    name = "tempfile /dev/shm"

    def setup(self) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.root = tempfile.mkdtemp(prefix="memspace-bench-", dir=base)

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def mkdir(self, path: str) -> None:
        os.makedirs(self.root + path, exist_ok=True)

    def open(self, path: str, mode: str) -> Any:
        return open(self.root + path, mode)


PEERS: list[type[Peer]] = [MemspacePeer, DmemfsPeer, FsspecPeer, BytesIOPeer, TempfilePeer]


# --- the cases (D-MemFS's, same sizes) --------------------------------------------------------


def small_files(p: Peer, count: int = 300, size: int = 4 * KiB) -> None:
    p.mkdir("/bench")
    payload = b"x" * size
    for i in range(count):
        with p.open(f"/bench/f{i:05d}.bin", "wb") as f:
            f.write(payload)
    total = 0
    for i in range(count):
        with p.open(f"/bench/f{i:05d}.bin", "rb") as f:
            total += len(f.read())
    assert total == count * size


def stream(p: Peer, total: int = 16 * MiB, chunk: int = 64 * KiB) -> None:
    data = b"y" * chunk
    with p.open("/stream.bin", "wb") as f:
        for _ in range(total // chunk):
            f.write(data)
    with p.open("/stream.bin", "rb") as f:
        assert len(f.read()) == total


def random_access(p: Peer, chunk: int, total: int = 16 * MiB) -> None:
    data = b"z" * chunk
    loops = total // chunk
    with p.open("/random.bin", "wb") as f:
        for _ in range(loops):
            f.write(data)
    gen = random.Random(42)
    mode = "r+b"
    with p.open("/random.bin", mode) as f:
        for _ in range(loops):
            f.seek(gen.randint(0, total - chunk))
            f.write(data)
    with p.open("/random.bin", "rb") as f:
        assert len(f.read()) == total


def large_stream(p: Peer, as_bytearray: bool, total: int = 512 * MiB, chunk: int = MiB) -> None:
    data: bytes | bytearray = bytearray(b"L" * chunk) if as_bytearray else b"L" * chunk
    with p.open("/large.bin", "wb") as f:
        for _ in range(total // chunk):
            f.write(data)
    got = 0
    with p.open("/large.bin", "rb") as f:
        while block := f.read(chunk):
            got += len(block)
    assert got == total


def many_files(p: Peer, size: int, count: int = 10_000) -> None:
    payload = b"m" * size
    p.mkdir("/many")
    for i in range(count):
        with p.open(f"/many/f{i:06d}.bin", "wb") as f:
            f.write(payload)
    gen = random.Random(42)
    total = 0
    for _ in range(count // 2):
        with p.open(f"/many/f{gen.randint(0, count - 1):06d}.bin", "rb") as f:
            total += len(f.read())
    assert total == count // 2 * size


def deep_tree(p: Peer, depth: int = 50) -> None:
    parts = [f"d{i}" for i in range(depth)]
    for d in range(1, depth + 1):
        p.mkdir("/" + "/".join(parts[:d]))
    path = "/" + "/".join(parts) + "/file.bin"
    with p.open(path, "wb") as f:
        f.write(b"d" * KiB)
    total = 0
    for _ in range(1000):
        with p.open(path, "rb") as f:
            total += len(f.read())
    assert total == 1000 * KiB


CASES: list[tuple[str, Callable[[Peer], None]]] = [
    ("300 x 4 KiB files written then read", small_files),
    ("16 MiB stream in 64 KiB chunks", stream),
    ("random 64 KiB read/write in 16 MiB", lambda p: random_access(p, 64 * KiB)),
    ("random 4 KiB read/write in 16 MiB", lambda p: random_access(p, 4 * KiB)),
    ("512 MiB stream (bytes chunks)", lambda p: large_stream(p, as_bytearray=False)),
    ("512 MiB stream (bytearray chunks)", lambda p: large_stream(p, as_bytearray=True)),
    ("10,000 x 4 KiB files, 5,000 random reads", lambda p: many_files(p, 4 * KiB)),
    ("10,000 x 1 KiB files, 5,000 random reads", lambda p: many_files(p, KiB)),
    ("depth-50 file read 1,000 times", deep_tree),
]

BIG_CASES = {"512 MiB stream (bytes chunks)", "512 MiB stream (bytearray chunks)"}


def memcpy_floor(reps: int) -> list[float]:
    """The physical limit of the 512 MiB case: copy 512 MiB in (into fresh memory, 1 MiB
    at a time) and out again, in C."""
    src = bytearray(b"L" * MiB)
    out = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        chunks = [bytes(src) for _ in range(512)]
        total = sum(len(bytes(c)) for c in chunks)
        out.append((time.perf_counter() - t0) * 1e3)
        assert total == 512 * MiB
        del chunks
    return out


def time_once(peer_cls: type[Peer], fn: Callable[[Peer], None]) -> float:
    p = peer_cls()
    p.setup()
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn(p)
        return (time.perf_counter() - t0) * 1e3
    finally:
        gc.enable()
        p.teardown()


def time_case(fn: Callable[[Peer], None], reps: int, seed: int) -> dict[str, list[float]]:
    """Round-robin over the peers in a shuffled order each round (one warm-up round), so that
    no peer always inherits the allocator state another one left behind."""
    order = random.Random(seed)
    results: dict[str, list[float]] = {p.name: [] for p in PEERS}
    for rnd in range(reps + 1):
        peers = list(PEERS)
        order.shuffle(peers)
        for peer in peers:
            dt = time_once(peer, fn)
            if rnd:
                results[peer.name].append(dt)
    return results


def fmt(ms: float) -> str:
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def run(reps: int, quick: bool) -> str:
    out: list[str] = []
    summary: list[str] = []
    for title, fn in CASES:
        if quick and title in BIG_CASES:
            continue
        print(f"  {title}", file=sys.stderr, flush=True)
        results = time_case(fn, reps, seed=len(title))
        if title.startswith("512 MiB stream (bytearray"):
            results["memcpy in + out (the limit)"] = memcpy_floor(reps)
        ours = statistics.median(results["memspace"])
        out.append(f"### {title}\n")
        out.append("| peer | median ms | min..max ms | peer / memspace |")
        out.append("|---|---:|---:|---:|")
        for name, ts in results.items():
            med = statistics.median(ts)
            out.append(
                f"| {name} | {fmt(med)} | {fmt(min(ts))}..{fmt(max(ts))} | {med / ours:.2f}x |"
            )
        out.append("")
        med = {k: statistics.median(v) for k, v in results.items()}
        summary.append(
            f"| {title} | {fmt(ours)} | {med['dmemfs'] / ours:.1f}x | "
            f"{med['fsspec memory'] / ours:.1f}x | {ours / med['dict of BytesIO']:.2f}x | "
            f"{med['tempfile /dev/shm'] / ours:.1f}x |"
        )
    head = [
        "| case | memspace ms | dmemfs / memspace | fsspec / memspace | "
        "memspace / BytesIO | tempfile / memspace |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    return "\n".join(["### Summary (medians)", "", *head, *summary, "", *out])


def main(reps: int | None = None, quick: bool | None = None) -> str:
    """Run every case; returns markdown. Under MEMSPACE_BENCH_QUICK=1 (`run.py --quick`) the
    defaults are one repetition without the two 512 MiB cases."""
    return run(reps or (1 if QUICK else 5), QUICK if quick is None else quick)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5; quick 1)")
    ap.add_argument("--quick", action="store_true", default=None, help="skip the two 512 MiB cases")
    ap.add_argument("--out", default="", help="write the report to this markdown file")
    args = ap.parse_args()
    body = main(args.reps, args.quick)
    peers = ", ".join(
        f"{p} {version_of(p)}" for p in ("memspace", "d-memfs", "fsspec") if version_of(p)
    )
    cmd = "python benchmarks/bench_fs.py " + " ".join(sys.argv[1:])
    report = (
        f"## {__doc__.splitlines()[0]}\n\n"
        f"Command: `{cmd.strip()}` at {git_revision()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  \n"
        f"Machine: {machine()}.  \nVersions: {peers}.\n\n{body}\n"
    )
    print(report)
    if args.out:
        Path(args.out).write_text(report)
