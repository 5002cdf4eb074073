"""The ``memspace`` command: list and remove segments, run the demo."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import memspace

__all__ = ["main"]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _age(modified: datetime.datetime | None) -> str:
    if modified is None:
        return "-"
    secs = (datetime.datetime.now(datetime.timezone.utc) - modified).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit}"
    return f"{max(secs, 0):.0f}s"


def _cmd_ls(args: argparse.Namespace) -> int:
    segs = memspace.segments()
    if not args.all:
        uid = os.geteuid() if hasattr(os, "geteuid") else None
        segs = [s for s in segs if uid is None or s.uid == uid]
    if args.json:
        rows = [
            {
                "name": s.name,
                "size": s.size,
                "kind": s.kind,
                "modified": s.modified.isoformat() if s.modified else None,
                "uid": s.uid,
                "mode": oct(s.mode),
            }
            for s in segs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not segs:
        print("no segments")
        return 0
    width = max(len(s.name) for s in segs)
    print(f"{'NAME':<{width}}  {'SIZE':>10}  {'KIND':<8}  {'MODE':<5}  AGE")
    for s in segs:
        print(
            f"{s.name:<{width}}  {_human(s.size):>10}  {s.kind:<8}  "
            f"{s.mode:04o}  {_age(s.modified)}"
        )
    return 0


def _cmd_rm_stale(args: argparse.Namespace) -> int:
    status = 0
    if args.names:
        targets = [(n if args.path or n.startswith("/") else "/" + n) for n in args.names]
    else:
        uid = os.geteuid() if hasattr(os, "geteuid") else None
        targets = [s.name for s in memspace.segments() if uid is None or s.uid == uid]
    removed = 0
    for target in targets:
        where = {"path": target} if args.path else {"name": target}
        try:
            stale = memspace._memspace._staleness(**where)
        except (OSError, ValueError) as e:
            if args.names:
                print(f"memspace rm: {e}", file=sys.stderr)
                status = 1
            continue
        if stale is None:
            if args.names:
                print(f"memspace rm: {target} is not a memspace structured segment; kept")
            continue
        if not stale:
            if args.names:
                print(f"memspace rm: {target} is in use by a live process; kept")
            continue
        if args.dry_run:
            print(f"would remove {target}")
            continue
        try:
            memspace.SharedMemory.remove(**where)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            print(f"memspace rm: {e}", file=sys.stderr)
            status = 1
            continue
        removed += 1
        print(f"removed {target}")
    if not args.names and removed == 0 and not args.dry_run:
        print("no stale segments")
    return status


def _cmd_rm(args: argparse.Namespace) -> int:
    if args.stale:
        return _cmd_rm_stale(args)
    if not args.names:
        print("memspace rm: give segment names, or --stale", file=sys.stderr)
        return 2
    status = 0
    for target in args.names:
        try:
            if args.path:
                memspace.SharedMemory.remove(path=target)
            else:
                memspace.SharedMemory.remove(target if target.startswith("/") else "/" + target)
        except (OSError, ValueError) as e:
            print(f"memspace rm: {e}", file=sys.stderr)
            status = 1
    return status


class _BroadcastInspector:
    """Opens a broadcast without subscribing (inspecting must not hold its publisher back)."""

    @staticmethod
    def open(**where: Any) -> memspace.Broadcast:
        return memspace.Broadcast.open(role=None, **where)


def _inspectable() -> dict[str, Any]:
    """Kinds with a detailed `inspect()`, by the name `memspace ls` shows."""
    return {"ring": memspace.Ring, "queue": memspace.Queue, "broadcast": _BroadcastInspector}


def _cmd_inspect(args: argparse.Namespace) -> int:
    target = args.name if args.path or args.name.startswith("/") else "/" + args.name
    where: dict[str, str] = {"path": target} if args.path else {"name": target}
    info: dict[str, Any] | None = None
    kind = None
    if not args.path:
        found = [s for s in memspace.segments() if s.name == target]
        if not found:
            print(f"memspace inspect: segment {target!r} does not exist", file=sys.stderr)
            return 1
        kind = found[0].kind
        info = {"name": target, "kind": kind, "size": found[0].size, "mode": oct(found[0].mode)}
    try:
        openers = _inspectable()
        candidates = (
            [openers[kind]] if kind in openers else ([] if kind else list(openers.values()))
        )
        for opener in candidates:
            try:
                handle = opener.open(**where)
            except memspace.LayoutError:
                continue
            try:
                info = dict(handle.inspect())
            finally:
                handle.close()
            break
    except (OSError, ValueError) as e:
        print(f"memspace inspect: {e}", file=sys.stderr)
        return 1
    if info is None:
        print(
            f"memspace inspect: {target!r} is not a ring (or another inspectable kind)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            if isinstance(v, list) and all(isinstance(row, dict) for row in v):
                # A table (a broadcast's subscribers): one line per entry.
                print(f"{k:<{width}}  {len(v)}")
                for row in v:
                    print(" " * (width + 4) + ", ".join(f"{a}={b}" for a, b in row.items()))
            else:
                print(f"{k:<{width}}  {v}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from memspace import demo

    return demo.run(
        frames=args.frames,
        width=args.width,
        height=args.height,
        baseline=not args.no_baseline,
        ticks=args.ticks,
        tasks=args.tasks,
        workers=args.workers,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memspace", description=memspace.__doc__.splitlines()[0] if memspace.__doc__ else None
    )
    p.add_argument("--version", action="version", version=f"memspace {memspace.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("ls", help="list shared-memory segments")
    ls.add_argument("-a", "--all", action="store_true", help="include other users' segments")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_cmd_ls)

    rm = sub.add_parser("rm", help="remove segments by name (or by path with --path)")
    rm.add_argument("names", nargs="*", metavar="NAME")
    rm.add_argument("--path", action="store_true", help="the arguments are file paths")
    rm.add_argument(
        "--stale",
        action="store_true",
        help="remove only structured segments no live process is attached to "
        "(all of your own when no NAME is given)",
    )
    rm.add_argument("-n", "--dry-run", action="store_true", help="with --stale: only list them")
    rm.set_defaults(func=_cmd_rm)

    insp = sub.add_parser(
        "inspect", help="show a ring's, queue's or broadcast's fill level, roles and liveness"
    )
    insp.add_argument("name", metavar="NAME")
    insp.add_argument("--path", action="store_true", help="NAME is a file path")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    insp.set_defaults(func=_cmd_inspect)

    demo = sub.add_parser("demo", help="stream video frames between two processes, zero-copy")
    demo.add_argument("--frames", type=int, default=600, help="frames to send (default 600)")
    demo.add_argument("--width", type=int, default=1920)
    demo.add_argument("--height", type=int, default=1080)
    demo.add_argument(
        "--ticks", type=int, default=2_000_000, help="64-byte records for the ring stage (0: skip)"
    )
    demo.add_argument(
        "--tasks",
        type=int,
        default=400_000,
        help="tasks of 1 KiB for the worker-pool stage (0: skip)",
    )
    demo.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes for the pool stage (default: one per CPU, at least 2)",
    )
    demo.add_argument(
        "--no-baseline", action="store_true", help="skip the multiprocessing.Queue runs"
    )
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``memspace`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.func(args)
    return status
