"""Run the side-by-side benchmarks and update their sections of BENCHMARKS.md.

Usage: python benchmarks/run.py [--quick] [NAME ...]      (default: every bench_*.py here)

Each benchmark module `bench_NAME.py` has a `main() -> str` returning markdown. Its section of
BENCHMARKS.md (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`) is replaced; the
other sections are kept, so one benchmark can be re-run alone. Run it on an otherwise idle
machine: two-process cases use both cores.

`--quick` (the same as MEMSPACE_BENCH_QUICK=1 in the environment) is a smoke run: every
benchmark with tiny counts and one repetition, in about two minutes, to check that every
driver works. Its figures mean nothing, so it prints the tables and leaves BENCHMARKS.md alone.
"""

from __future__ import annotations

import datetime
import importlib
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

OUT = HERE.parent / "BENCHMARKS.md"
PEERS = [
    "numpy",
    "d-memfs",
    "fsspec",
    "membridge",
    "faster-fifo",
    "posix_ipc",
    "iceoryx2",
    "pyzmq",
]


def _load(avg: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in avg)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    if quick:
        os.environ["MEMSPACE_BENCH_QUICK"] = "1"  # read by the modules (and their children)
    # Imported only now: the modules read MEMSPACE_BENCH_QUICK when they are imported.
    from _harness import QUICK as quick
    from _harness import git_revision, machine, version_of

    known = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    unknown = [a for a in argv if a not in known]
    if unknown:
        raise SystemExit(f"no such benchmark: {', '.join(unknown)} (known: {', '.join(known)})")
    names = argv or known
    text = OUT.read_text() if OUT.exists() else "# Benchmarks\n"
    t0 = time.monotonic()
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        load_before = os.getloadavg()
        body = module.main()
        load_after = os.getloadavg()
        versions = ", ".join(
            f"{p} {version_of(p)}" for p in PEERS if version_of(p) != "not installed"
        )
        doc = (module.__doc__ or "").strip().splitlines()[0]
        # A module whose report starts with its own heading keeps it.
        if body.lstrip().startswith("## "):
            title, _, body = body.lstrip().partition("\n")
        else:
            title = f"## {doc}"
        section = (
            f"<!-- bench:{name} -->\n{title}\n\n"
            f"Command: `python benchmarks/run.py {name}` (or `make bench`), "
            f"{datetime.date.today().isoformat()}, "
            f"memspace {version_of('memspace')} at {git_revision()}.  \n"
            f"Machine: {machine()}.  \nPeers: {versions}.  \n"
            f"Load average (1, 5, 15 min) before: {_load(load_before)}; after: {_load(load_after)}."
            f"\n\n{body}\n<!-- /bench:{name} -->"
        )
        pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _m, s=section: s, text)  # type: ignore[misc]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        print(body)
    if quick:
        print(
            f"quick run: {time.monotonic() - t0:.0f} s; BENCHMARKS.md left as it was",
            file=sys.stderr,
        )
    else:
        OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
