"""Locks and typed views, side by side with the peers, in one run.

    python benchmarks/bench_locks.py            # prints Markdown tables

Cases:
1. uncontended lock + unlock from Python: ``threading.Lock``, ``multiprocessing.Lock``,
   ``memspace.Mutex``, ``memspace.RwLock`` (write and read);
2. the same from Rust (``cargo run --release -p memspace --example bench_locks``), if cargo
   is available;
3. contended: two processes each increment a shared counter under the lock;
4. typed writes and reads of ints and strs: ``memspace.View`` vs membridge ``MappedView``
   (if membridge is installed).

Every figure is the median of 7 runs with min..max; ratios are of medians in this run. Each
case is written inline as its user would write it (``with lock:``, ``with m:``,
``with rw.write():``), with no helper call per iteration for anyone. ``--quick``
(MEMSPACE_BENCH_QUICK=1): one run of small counts, and no Rust build.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import threading
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memspace
from _harness import QUICK

REPEAT = 1 if QUICK else 7
UNCONTENDED = 20_000 if QUICK else 300_000
ROOT = Path(__file__).resolve().parent.parent


def runs(fn: Callable[[], float]) -> tuple[float, float, float]:
    xs = sorted(fn() for _ in range(REPEAT))
    return statistics.median(xs), xs[0], xs[-1]


def fmt(r: tuple[float, float, float], unit: str = "ns") -> str:
    return f"{r[0]:.0f} {unit} ({r[1]:.0f}..{r[2]:.0f})"


def per_op_ns(stmt: str, g: dict[str, Any], number: int) -> Callable[[], float]:
    return lambda: timeit.timeit(stmt, globals=g, number=number) / number * 1e9


def uncontended(tag: str) -> list[tuple[str, tuple[float, float, float]]]:
    m = memspace.Mutex.create(f"/bench-locks-m-{tag}")
    rw = memspace.RwLock.create(f"/bench-locks-rw-{tag}")
    g = {"tl": threading.Lock(), "ml": mp.Lock(), "m": m, "rw": rw}
    cases = [
        ("threading.Lock: `with lock:`", "with tl: pass"),
        ("multiprocessing.Lock: `with lock:`", "with ml: pass"),
        ("memspace.Mutex: `with m:`", "with m: pass"),
        ("memspace.Mutex: `with m(timeout=None):`", "with m(): pass"),
        ("memspace.RwLock: `with lock.write():`", "with rw.write(): pass"),
        ("memspace.RwLock: `with lock.read():`", "with rw.read(): pass"),
    ]
    out = [(label, runs(per_op_ns(stmt, g, UNCONTENDED))) for label, stmt in cases]
    memspace.Mutex.remove(f"/bench-locks-m-{tag}")
    memspace.RwLock.remove(f"/bench-locks-rw-{tag}")
    return out


def rust_uncontended() -> str | None:
    if QUICK or shutil.which("cargo") is None:
        return None
    r = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "memspace", "--example", "bench_locks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return r.stdout.strip() if r.returncode == 0 else None


# --- contended ----------------------------------------------------------------------------

N_CONTENDED = 5_000 if QUICK else 50_000


def _contend(kind: str, name: str, lock: Any, counter: Any, start: Any) -> None:
    # Each lock as its user writes it, inline: the same loop, no helper call for anyone.
    if kind == "mutex":
        m = memspace.Mutex.open(name)
        start.wait()
        for _ in range(N_CONTENDED):
            with m:
                counter.value += 1
    elif kind == "rwlock":
        rw = memspace.RwLock.open(name)
        start.wait()
        for _ in range(N_CONTENDED):
            with rw.write():
                counter.value += 1
    else:
        start.wait()
        for _ in range(N_CONTENDED):
            with lock:
                counter.value += 1


def contended_once(kind: str, tag: str) -> float:
    ctx = mp.get_context("fork")
    name = f"/bench-locks-c-{tag}-{kind}"
    lock = ctx.Lock()
    if kind == "mutex":
        memspace.Mutex.create(name)
    elif kind == "rwlock":
        memspace.RwLock.create(name)
    counter = ctx.Value("q", 0, lock=False)
    start = ctx.Event()
    procs = [
        ctx.Process(target=_contend, args=(kind, name, lock, counter, start)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    if kind != "mp":
        memspace.SharedMemory.remove(name)
    assert counter.value == 2 * N_CONTENDED, (kind, counter.value)
    return elapsed / (2 * N_CONTENDED) * 1e9


def contended(tag: str) -> list[tuple[str, tuple[float, float, float]]]:
    labels = {
        "mp": "multiprocessing.Lock",
        "mutex": "memspace.Mutex",
        "rwlock": "memspace.RwLock (write)",
    }
    return [(labels[k], runs(lambda k=k: contended_once(k, tag))) for k in labels]


# --- views --------------------------------------------------------------------------------

BATCH = 1000


def view_cases(
    tag: str,
) -> list[tuple[str, tuple[float, float, float], tuple[float, float, float] | None]]:
    v = memspace.View.create(f"/bench-locks-v-{tag}", 64 * 1024)
    try:
        import membridge

        mb_shm = membridge.SharedMemory.create(f"/bench-locks-mb-{tag}", 64 * 1024)
        mb: Any = mb_shm.map()
    except ImportError:
        mb = None
    words = [f"value-{i}" for i in range(BATCH)]

    def write_ints(obj: Any) -> Callable[[], float]:
        def run() -> float:
            obj.seek(0)
            t = time.perf_counter()
            for i in range(BATCH):
                obj.write(i)
            return (time.perf_counter() - t) / BATCH * 1e9

        return run

    def read_ints(obj: Any) -> Callable[[], float]:
        def run() -> float:
            obj.seek(0)
            t = time.perf_counter()
            for _ in range(BATCH):
                obj.read("int")
            return (time.perf_counter() - t) / BATCH * 1e9

        return run

    def write_strs(obj: Any) -> Callable[[], float]:
        def run() -> float:
            obj.seek(0)
            t = time.perf_counter()
            for w in words:
                obj.write(w)
            return (time.perf_counter() - t) / BATCH * 1e9

        return run

    def read_strs(obj: Any) -> Callable[[], float]:
        def run() -> float:
            obj.seek(0)
            t = time.perf_counter()
            for _ in range(BATCH):
                obj.read("str")
            return (time.perf_counter() - t) / BATCH * 1e9

        return run

    def mixed_roundtrip(obj: Any) -> Callable[[], float]:
        items = [[1, 2, 3, 4], [0.5, 1.5], ["a", "bb"], True]
        schema = [("int", 4), ("float", 2), ("str", 2), ("bool", 1)]

        def run() -> float:
            t = time.perf_counter()
            for _ in range(BATCH):
                obj.write_mixed(items, 0)
                obj.read_mixed(schema, 0)
            return (time.perf_counter() - t) / BATCH * 1e9

        return run

    def write_int_at0(obj: Any) -> Callable[[], float]:
        def run() -> float:
            t = time.perf_counter()
            for i in range(BATCH):
                obj.write(i, 0)
            return (time.perf_counter() - t) / BATCH * 1e9

        return run

    out = []
    for label, mk, prep in [
        ("write(int, offset=0)", write_int_at0, None),
        ("write(int) at the cursor", write_ints, None),
        ("read('int') at the cursor", read_ints, write_ints),
        ("write(str) at the cursor", write_strs, None),
        ("read('str') at the cursor", read_strs, write_strs),
        ("write_mixed + read_mixed (9 values)", mixed_roundtrip, None),
    ]:
        if prep is not None:
            prep(v)()
            if mb is not None:
                prep(mb)()
        ms = runs(mk(v))
        mbr = runs(mk(mb)) if mb is not None else None
        out.append((label, ms, mbr))
    memspace.View.remove(f"/bench-locks-v-{tag}")
    if mb is not None:
        del mb
        with contextlib.suppress(Exception):
            membridge.SharedMemory.remove(f"/bench-locks-mb-{tag}")
    return out


def _report() -> None:
    tag = str(os.getpid())
    print(f"Each figure: median of {REPEAT} runs (min..max).\n")

    print("### Uncontended lock + unlock from Python (ns per round trip)\n")
    rows = uncontended(tag)
    base = rows[0][1][0]
    print("| case | time | ratio to threading.Lock |\n|---|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {fmt(r)} | {r[0] / base:.2f}x |")

    rust = rust_uncontended()
    print("\n### Uncontended lock + unlock from Rust\n")
    if rust:
        print("```\n" + rust + "\n```")
    else:
        print("(skipped: cargo not available, or a quick run)")

    print(f"\n### Contended: 2 processes x {N_CONTENDED} increments under the lock\n")
    print("ns per increment (lock, `counter += 1`, unlock), both processes together.\n")
    rows = contended(tag)
    base = rows[0][1][0]
    print("| lock | time | ratio to multiprocessing.Lock |\n|---|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {fmt(r)} | {r[0] / base:.2f}x |")

    print("\n### Typed values: memspace.View vs membridge MappedView\n")
    print(f"ns per call, in loops of {BATCH} calls.\n")
    print("| operation | memspace.View | membridge MappedView | memspace speed-up |")
    print("|---|---:|---:|---:|")
    for label, ms, mbr in view_cases(tag):
        if mbr is None:
            print(f"| {label} | {fmt(ms)} | n/a | n/a |")
        else:
            print(f"| {label} | {fmt(ms)} | {fmt(mbr)} | {mbr[0] / ms[0]:.2f}x |")


def main() -> str:
    """The report as markdown (benchmarks/run.py adds the command and the machine)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _report()
    return "## Locks and typed views, side by side\n\n" + buf.getvalue()


if __name__ == "__main__":
    print(main())
