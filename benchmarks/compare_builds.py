"""The same memspace channel rows measured under two (or more) builds of memspace, interleaved.

Usage: python benchmarks/compare_builds.py [--reps N] LABEL=PYTHON LABEL=PYTHON ...

Each PYTHON is an interpreter with a build of memspace installed (a venv of another checkout,
for instance `git worktree add /tmp/old REV && python -m venv /tmp/old/.venv && pip install
/tmp/old`). For each repetition every build runs every row once, in turn (so that a change in
the machine's load hits every build alike), in a fresh child process running this file's
`--child` mode with the drivers and loops of *this* checkout (benchmarks/channels.py,
drivers.py): only memspace differs between the columns. Rows: the ring's and the queue's
single put/get and batched put_many/get_many at 64 B and 1 KiB, one producer process and one
consumer process, the figure being messages per second as in the ring and queue tables.

Prints a markdown table: each build's median (min..max) and each build's ratio to the first.
Not part of `make bench` (it needs the other builds); issue #11 uses it to show that the
hardening kept the hot paths as fast as they were.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = [
    ("memspace.Ring put/get", 64, 200_000),
    ("memspace.Ring put/get", 1024, 100_000),
    ("memspace.Ring put_many/get_many", 64, 200_000),
    ("memspace.Queue put/get", 64, 200_000),
    ("memspace.Queue put/get", 1024, 100_000),
    ("memspace.Queue put_many/get_many", 64, 200_000),
]


def child() -> None:
    """One repetition of every row under this interpreter's memspace: JSON on stdout."""
    sys.path.insert(0, str(HERE))
    import channels
    import drivers

    by_label = {t.label: t for t in [*channels.RINGS, *channels.QUEUES]}
    out = [drivers.throughput(by_label[label], size, n) for label, size, n in ROWS]
    print(json.dumps(out))


def main(argv: list[str]) -> int:
    reps = 5
    if argv[:1] == ["--reps"]:
        reps, argv = int(argv[1]), argv[2:]
    builds = [a.split("=", 1) for a in argv]
    if len(builds) < 2 or any(len(b) != 2 for b in builds):
        raise SystemExit(__doc__)
    figures: dict[str, list[list[float]]] = {label: [] for label, _ in builds}
    for rep in range(reps):
        for label, python in builds:
            print(f"  repetition {rep + 1}/{reps}: {label}", file=sys.stderr, flush=True)
            r = subprocess.run(
                [python, __file__, "--child"], capture_output=True, text=True, check=False
            )
            if r.returncode != 0:
                raise SystemExit(f"{label} ({python}) failed:\n{r.stderr}")
            figures[label].append(json.loads(r.stdout.strip().splitlines()[-1]))
    first = builds[0][0]
    head = "| row | " + " | ".join(f"{b} msg/s (min..max)" for b, _ in builds)
    head += " | " + " | ".join(f"{b} vs {first}" for b, _ in builds[1:]) + " |"
    lines = [head, "|---|" + "---:|" * (2 * len(builds) - 1)]
    for i, (row, size, _) in enumerate(ROWS):
        meds = []
        cells = []
        for b, _ in builds:
            xs = [f[i] for f in figures[b]]
            m = statistics.median(xs)
            meds.append(m)
            cells.append(f"{m:.3g} ({min(xs):.3g}..{max(xs):.3g})")
        ratios = [f"{m / meds[0]:.2f}x" for m in meds[1:]]
        lines.append(f"| {row}, {size} B | " + " | ".join(cells + ratios) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        sys.exit(main(sys.argv[1:]))
