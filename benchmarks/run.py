"""Run the side-by-side benchmarks and update their sections of BENCHMARKS.md.

Usage: python benchmarks/run.py [NAME ...]      (default: every bench_*.py here)

Each benchmark module `bench_NAME.py` has a `main() -> str` returning markdown. Its section of
BENCHMARKS.md (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`) is replaced; the
other sections are kept, so one benchmark can be re-run alone. Run it on an otherwise idle
machine: two-process cases use both cores.
"""

from __future__ import annotations

import datetime
import importlib
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import git_revision, machine, version_of  # noqa: E402

OUT = HERE.parent / "BENCHMARKS.md"
PEERS = ["numpy", "d-memfs", "fsspec", "membridge", "faster-fifo", "posix_ipc", "iceoryx2"]


def _load(avg: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in avg)


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    text = OUT.read_text() if OUT.exists() else "# Benchmarks\n"
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
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
