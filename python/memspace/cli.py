"""The ``memspace`` command: list, inspect and remove segments, run the demo.

Only ``rm`` changes anything: ``ls`` reads file metadata and headers, ``inspect`` (and the dry
run of ``rm --stale``) attaches for a moment as any opener does, takes no message, role or lock,
and leaves itself out of what it reports; ``rm`` removes, and ``rm --stale`` removes only
what holds nothing (see :func:`_holds`) unless ``--force`` is given. A closed output pipe
(``memspace ls --json | head``) ends the output quietly, never the command's work.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import memspace
from memspace import _memspace

__all__ = ["main"]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _printable(name: str) -> str:
    """`name` with control characters (and backslashes) escaped, so that a name chosen by
    another user cannot move the cursor, retitle the terminal or fake lines of output."""
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _age(modified: datetime.datetime | None) -> str:
    if modified is None:
        return "-"
    secs = (datetime.datetime.now(datetime.timezone.utc) - modified).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit}"
    return f"{max(secs, 0):.0f}s"


def _say(*parts: object, err: bool = False) -> None:
    """print(), except that a reader who closed the pipe only stops the output: the command
    goes on (an `rm` is never cut short by `| head`), and nothing is printed about it."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(*parts, file=stream, flush=True)
    except BrokenPipeError:
        # Later writes (and the flush at exit) go nowhere instead of failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


# --- the segments and what is in them ---------------------------------------------------------


_COMPANION_SUFFIXES = (".memspace-lock",)


def _segments(all_users: bool = False) -> list[memspace.SegmentInfo]:
    """The segments every command works on (the one place that lists them): this user's,
    or everyone's with ``all_users``."""
    # A liveness lock file that sits next to a segment is part of it, not a segment.
    segs = [s for s in memspace.segments() if not s.name.endswith(_COMPANION_SUFFIXES)]
    if all_users or not hasattr(os, "geteuid"):
        return segs
    uid = os.geteuid()
    return [s for s in segs if s.uid == uid]


@dataclasses.dataclass(frozen=True)
class _Header:
    kind: str
    state: str
    data_size: int
    creator_pid: int | None
    created: datetime.datetime | None


def _read_header(where: dict[str, Any]) -> _Header | None:
    """The segment's memspace header, as the core reads and validates it (without attaching);
    None if it has none (a raw segment). A header that does not validate is reported with the
    kind ``"corrupt"`` and nothing else trusted."""
    r = _memspace._header_report(**where)
    if r is None:
        return None
    if r["invalid"] is not None:
        return _Header("corrupt", "unknown", 0, None, None)
    created = r["created_ns"]
    return _Header(
        r["kind"],
        r["state"],
        r["data_size"],
        r["creator_pid"],
        None
        if created is None
        else datetime.datetime.fromtimestamp(created / 1e9, tz=datetime.timezone.utc),
    )


@dataclasses.dataclass
class _Holds:
    """What a segment holds: ``empty`` (nothing a new segment would not hold too) and a
    phrase for people."""

    empty: bool
    text: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


def _channel(opener: Any, where: dict[str, Any]) -> _Holds:
    with opener.open(**where) as handle:
        info = dict(handle.inspect())
    details: dict[str, Any] = {
        k: info[k] for k in ("capacity", "max_message_size", "messages", "used_bytes")
    }
    details["free_bytes"] = info.get("free_bytes", info["capacity"] - info["used_bytes"])
    if "producer_alive" in info:
        details["producer_alive"] = info["producer_alive"]
        details["consumer_alive"] = info["consumer_alive"]
    if "attached" in info:
        me = os.getpid()
        details["attached"] = [
            {"pid": a["pid"], "alive": a["alive"]} for a in info["attached"] if a["pid"] != me
        ]
    n = details["messages"]
    if n == 0:
        return _Holds(True, "no messages", details)
    word = "message" if n == 1 else "messages"
    return _Holds(False, f"{n} {word} ({_human(details['used_bytes'])})", details)


def _holds_broadcast(where: dict[str, Any], header: _Header) -> _Holds:
    # role=None: subscribing would hold a block-mode publisher back; the inspector is in no
    # subscriber list.
    with memspace.Broadcast.open(role=None, **where) as b:
        info = dict(b.inspect())
    details: dict[str, Any] = {
        k: info[k]
        for k in (
            "capacity",
            "max_message_size",
            "overflow",
            "published",
            "publisher_alive",
            "dead_subscribers",
        )
    }
    subs = [
        {k: s[k] for k in ("pid", "slot", "lag_messages", "lag_bytes", "missed")}
        for s in info["subscribers"]
    ]
    details["subscribers"] = subs
    # What a broadcast holds is what its live subscribers have not read: a new subscriber
    # sees only what is published after it subscribes.
    unread = sum(s["lag_messages"] for s in subs)
    if unread == 0:
        return _Holds(True, "no unread messages", details)
    word = "message" if unread == 1 else "messages"
    who = "subscriber" if len(subs) == 1 else "subscribers"
    return _Holds(False, f"{unread} unread {word} (for {len(subs)} {who})", details)


def _holds_view(where: dict[str, Any], header: _Header) -> _Holds:
    view = memspace.View.open(**where)
    data = view.read_bytes(0, view.size)
    nonzero = len(data) - data.count(0)
    details = {"data_size": view.size, "nonzero_bytes": nonzero}
    return _Holds(False, f"a {_human(view.size)} value area ({nonzero} bytes non-zero)", details)


def _holds_record(where: dict[str, Any], header: _Header) -> _Holds:
    # Its fields can be read only with the record's definition; whatever they are, they are
    # values someone set.
    details = {"data_size": header.data_size}
    return _Holds(False, f"record fields ({_human(header.data_size)})", details)


def _holds_rwlock(where: dict[str, Any], header: _Header) -> _Holds:
    lock = memspace.RwLock.open(**where)
    details = {"write_locked": lock.write_locked, "readers": lock.reader_count}
    return _Holds(True, "nothing (a lock)", details)


def _holds_fs(where: dict[str, Any], header: _Header) -> _Holds:
    fs = memspace.SharedFileSystem.open(**where)
    try:
        info = fs.inspect()
    finally:
        fs.close()
    me = os.getpid()
    info["attached_processes"] = [p for p in info["attached_processes"] if p != me]
    details = {k: v for k, v in info.items() if k != "kind"}
    files, dirs = info["files"], info["dirs"]
    if files == 0 and dirs == 1:
        return _Holds(True, "no files", details)
    word = "file" if files == 1 else "files"
    return _Holds(
        False, f"{files} {word} in {dirs} directories ({_human(info['used_bytes'])})", details
    )


_HOLDS: dict[str, Callable[[dict[str, Any], _Header], _Holds]] = {
    "ring": lambda where, _h: _channel(memspace.Ring, where),
    "queue": lambda where, _h: _channel(memspace.Queue, where),
    "broadcast": _holds_broadcast,
    "view": _holds_view,
    "record": _holds_record,
    "mutex": lambda _w, _h: _Holds(True, "nothing (a lock)"),
    "rwlock": _holds_rwlock,
    "fs": _holds_fs,
}


def _holds(where: dict[str, Any], header: _Header | None, in_use: bool | None) -> _Holds:
    """What the segment holds. The rule ``rm --stale`` follows: a lock holds nothing; a ring
    or queue holds its messages; a broadcast what its live subscribers have not read; a view
    or record always holds its values (a zero is a value too); a segment whose creator died
    before it was ready holds nothing; anything memspace cannot read (corrupt, poisoned,
    another version, a kind it does not know) counts as holding data."""
    if header is None:
        return _Holds(False, "raw bytes (not a memspace structure)")
    if header.state == "initializing":
        if in_use:
            return _Holds(False, "nothing yet: its creator is still setting it up")
        return _Holds(True, "nothing: its creator died before it was ready")
    if header.kind == "corrupt":
        return _Holds(False, "unknown data (its header is corrupt)")
    if header.state != "ready":
        return _Holds(False, f"unknown data (its state is {header.state})")
    if header.kind not in _HOLDS:
        return _Holds(False, f"unknown data (a {header.kind} segment)")
    try:
        return _HOLDS[header.kind](where, header)
    except (OSError, ValueError) as e:
        return _Holds(False, f"unknown data (it cannot be read: {e})")


@dataclasses.dataclass(frozen=True)
class _Target:
    """A segment named on the command line: a POSIX name or (``--path``) a file."""

    name: str | None
    path: str | None

    @staticmethod
    def of(arg: str, is_path: bool) -> _Target:
        if is_path:
            return _Target(None, arg)
        return _Target(arg if arg.startswith("/") else "/" + arg, None)

    @property
    def where(self) -> dict[str, Any]:
        return {"path": self.path} if self.path is not None else {"name": str(self.name)}

    @property
    def label(self) -> str:
        return str(self.name if self.name is not None else self.path)


def _in_use(target: _Target) -> bool | None:
    """Whether a live process is attached (None: not a structured segment). Asked before
    this process attaches for a look, so it never counts itself."""
    result: bool | None = memspace._memspace._staleness(**target.where)
    return None if result is None else not result


def _report(target: _Target, seg: memspace.SegmentInfo | None) -> dict[str, Any]:
    """One report, the same keys for every kind where the concept is shared: name, path,
    kind, size, mode, uid, modified, state, created, creator_pid, in_use, empty, holds;
    then the kind's own (for rings and queues: capacity, max_message_size, messages,
    used_bytes, free_bytes; the ring's roles; the queue's other attached processes; a
    broadcast's publisher and live subscribers with their lag)."""
    if seg is not None:
        size, mode, uid, modified = seg.size, seg.mode, seg.uid, seg.modified
    else:
        st = os.stat(str(target.path))
        size, mode, uid = st.st_size, st.st_mode & 0o7777, st.st_uid
        modified = datetime.datetime.fromtimestamp(st.st_mtime, tz=datetime.timezone.utc)
    header = _read_header(target.where)
    in_use = _in_use(target) if header is not None else None
    holds = _holds(target.where, header, in_use)
    report: dict[str, Any] = {
        "name": target.name,
        "path": target.path,
        "kind": header.kind if header else "raw",
        "size": size,
        "mode": f"{mode:04o}",
        "uid": uid,
        "modified": modified.isoformat() if modified else None,
        "state": header.state if header else None,
        "created": header.created.isoformat() if header and header.created else None,
        "creator_pid": header.creator_pid if header else None,
        "in_use": in_use,
        "empty": holds.empty if header else None,
        "holds": holds.text,
    }
    report.update(holds.details)
    return report


# --- commands ---------------------------------------------------------------------------------


def _cmd_ls(args: argparse.Namespace) -> int:
    segs = _segments(args.all)
    if args.json:
        rows = [
            {
                "name": s.name,
                "size": s.size,
                "kind": s.kind,
                "modified": s.modified.isoformat() if s.modified else None,
                "uid": s.uid,
                "mode": f"{s.mode:04o}",
            }
            for s in segs
        ]
        _say(json.dumps(rows, indent=2))
        return 0
    if not segs:
        _say("no segments")
        return 0
    names = [_printable(s.name) for s in segs]
    width = max(len(n) for n in names)
    _say(f"{'NAME':<{width}}  {'SIZE':>10}  {'KIND':<8}  {'MODE':<5}  AGE")
    for s, name in zip(segs, names, strict=True):
        _say(
            f"{name:<{width}}  {_human(s.size):>10}  {s.kind:<8}  {s.mode:04o}  {_age(s.modified)}"
        )
    return 0


def _cmd_rm_stale(args: argparse.Namespace) -> int:
    status = 0
    if args.names:
        targets = [_Target.of(n, args.path) for n in args.names]
    else:
        targets = [_Target(s.name, None) for s in _segments()]
    removed = 0
    for target in targets:
        try:
            in_use = _in_use(target)
        except (OSError, ValueError) as e:
            if args.names:
                _say(f"memspace rm: {e}", err=True)
                status = 1
            continue
        if in_use is None:
            if args.names:
                _say(f"memspace rm: {target.label} is not a memspace structured segment; kept")
            continue
        if in_use:
            if args.names:
                _say(f"memspace rm: {target.label} is in use by a live process; kept")
            continue
        try:
            header = _read_header(target.where)
        except FileNotFoundError:
            continue
        holds = _holds(target.where, header, False)
        kind = header.kind if header else "raw"
        if not holds.empty and not args.force:
            verb = "would keep" if args.dry_run else "kept"
            _say(f"{verb} {target.label} ({kind}, holds {holds.text}; --force removes it)")
            continue
        if args.dry_run:
            _say(f"would remove {target.label} ({kind}, holds {holds.text})")
            continue
        # Looked at with this process attached: ask again now that it is not.
        if _in_use(target):
            _say(f"memspace rm: {target.label} came into use; kept")
            continue
        try:
            memspace.SharedMemory.remove(**target.where)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            _say(f"memspace rm: {e}", err=True)
            status = 1
            continue
        removed += 1
        _say(f"removed {target.label} ({kind}, held {holds.text})")
    if not args.names and removed == 0 and not args.dry_run:
        _say("no stale segments removed")
    return status


def _cmd_rm(args: argparse.Namespace) -> int:
    if args.stale:
        return _cmd_rm_stale(args)
    if args.force:
        _say("memspace rm: --force goes with --stale (rm NAME always removes)", err=True)
        return 2
    if not args.names:
        _say("memspace rm: give segment names, or --stale", err=True)
        return 2
    status = 0
    for arg in args.names:
        target = _Target.of(arg, args.path)
        try:
            memspace.SharedMemory.remove(**target.where)
        except (OSError, ValueError) as e:
            _say(f"memspace rm: {e}", err=True)
            status = 1
    return status


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return "none"
        return ", ".join(
            " ".join(f"{k} {_format(v)}" for k, v in item.items())
            if isinstance(item, dict)
            else _format(item)
            for item in value
        )
    return str(value)


def _cmd_inspect(args: argparse.Namespace) -> int:
    target = _Target.of(args.name, args.path)
    seg = None
    if target.path is None:
        found = [s for s in _segments(all_users=True) if s.name == target.name]
        if not found:
            _say(f"memspace inspect: segment {target.name!r} does not exist", err=True)
            return 1
        seg = found[0]
    elif not pathlib.Path(target.path).exists():
        _say(f"memspace inspect: file {target.path!r} does not exist", err=True)
        return 1
    try:
        report = _report(target, seg)
    except (OSError, ValueError) as e:
        _say(f"memspace inspect: {e}", err=True)
        return 1
    if args.json:
        _say(json.dumps(report, indent=2))
    else:
        width = max(len(k) for k in report)
        for k, v in report.items():
            _say(f"{k:<{width}}  {_format(v)}")
    return 0


def _cmd_fsck(args: argparse.Namespace) -> int:
    target = args.name if args.path or args.name.startswith("/") else "/" + args.name
    where: dict[str, str] = {"path": target} if args.path else {"name": target}
    try:
        fs = memspace.SharedFileSystem.open(**where)
    except (OSError, ValueError) as e:
        _say(f"memspace fsck: {e}", err=True)
        return 2
    try:
        report = fs.fsck(reap=args.reap)
    except (OSError, ValueError) as e:
        _say(f"memspace fsck: {target}: {e}", err=True)
        return 1
    finally:
        fs.close()
    if args.json:
        _say(json.dumps(report, indent=2))
    elif report["ok"]:
        _say(
            f"{target}: consistent (generation {report['generation']}, {report['files']} files, "
            f"{report['dirs']} directories, {_human(report['used_bytes'])} used, "
            f"{report['dead_entries']} entries of dead processes)"
        )
    else:
        _say(f"{target}: {len(report['problems'])} problems", err=True)
        for problem in report["problems"]:
            _say(f"  {problem}", err=True)
    return 0 if report["ok"] else 1


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
        help="remove only structured segments that no live process is attached to and that "
        "hold nothing: locks, empty rings and queues, broadcasts, ones whose creator died while "
        "creating them (all of your own when no NAME is given)",
    )
    rm.add_argument(
        "-n", "--dry-run", action="store_true", help="with --stale: show what it would do"
    )
    rm.add_argument(
        "--force",
        action="store_true",
        help="with --stale: also remove unattached segments that hold data "
        "(messages, values, anything unreadable)",
    )
    rm.set_defaults(func=_cmd_rm)

    insp = sub.add_parser(
        "inspect", help="show a segment's kind, state, liveness and what it holds"
    )
    insp.add_argument("name", metavar="NAME")
    insp.add_argument("--path", action="store_true", help="NAME is a file path")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    insp.set_defaults(func=_cmd_inspect)

    fsck = sub.add_parser("fsck", help="check every invariant of a shared filesystem")
    fsck.add_argument("name", metavar="NAME")
    fsck.add_argument("--path", action="store_true", help="NAME is a file path")
    fsck.add_argument(
        "--reap", action="store_true", help="first remove what dead processes left behind"
    )
    fsck.add_argument("--json", action="store_true", help="machine-readable output")
    fsck.set_defaults(func=_cmd_fsck)

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
    try:
        args = _parser().parse_args(argv)
        status: int = args.func(args)
    except BrokenPipeError:  # argparse's own output (--help) to a closed pipe
        _say()
        return 0
    return status
