"""Small shared helpers for the side-by-side benchmarks: timing, statistics, tables, machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# MEMSPACE_BENCH_QUICK=1 (or `run.py --quick`): a smoke run that checks every driver works, with
# tiny counts and one repetition. Its figures mean nothing.
QUICK = os.environ.get("MEMSPACE_BENCH_QUICK") == "1"


@dataclass
class Result:
    """Repeated measurements of one case, in the unit the case reports (bigger is better)."""

    label: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        return f"{min(self.values):.3g}..{max(self.values):.3g}"


def measure(label: str, fn: Callable[[], float], reps: int = 7, warmup: int = 1) -> Result:
    """Run `fn` (which returns the measured figure of one repetition) warmup + reps times."""
    for _ in range(warmup):
        fn()
    return Result(label, [fn() for _ in range(reps)])


def rate(nbytes: int, fn: Callable[[], object]) -> Callable[[], float]:
    """Wrap `fn` so that it returns GB/s for moving `nbytes`."""

    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return nbytes / (time.perf_counter() - t0) / 1e9

    return run


def table(
    title: str, unit: str, rows: Sequence[Result], ref: Result | None = None, ref_name: str = ""
) -> str:
    """A markdown table: median, min..max and (optionally) the ratio to a reference row."""
    head = f"| {title} | median {unit} | min..max |" + (f" vs {ref_name} |" if ref else "")
    sep = "|---|---:|---:|" + ("---:|" if ref else "")
    lines = [head, sep]
    for r in rows:
        line = f"| {r.label} | {r.median:.3g} | {r.spread} |"
        if ref:
            line += f" {r.median / ref.median:.2f}x |"
        lines.append(line)
    return "\n".join(lines)


def rate_table(
    title: str,
    unit: str,
    rows: Sequence[Result],
    ref: Result | None = None,
    ref_name: str = "",
    floors: Sequence[tuple[str, Result]] = (),
) -> str:
    """A markdown table of rates (items per second): median, min..max, nanoseconds per item,
    the ratio to a reference row, and each row's cost per item as a multiple of each floor
    (floor rate / row rate: 3.0x means three times what the floor costs)."""
    head = f"| {title} | median {unit} | min..max | ns each |"
    sep = "|---|---:|---:|---:|"
    if ref:
        head += f" vs {ref_name} |"
        sep += "---:|"
    for name, _ in floors:
        head += f" cost / {name} |"
        sep += "---:|"
    lines = [head, sep]
    for r in rows:
        line = f"| {r.label} | {r.median:.3g} | {r.spread} | {1e9 / r.median:.3g} |"
        if ref:
            line += f" {r.median / ref.median:.2f}x |"
        for _, f in floors:
            line += f" {f.median / r.median:.1f}x |"
        lines.append(line)
    return "\n".join(lines)


def machine() -> str:
    """One paragraph describing the machine and interpreter."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({sys.implementation.name})"
    )


def version_of(package: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
