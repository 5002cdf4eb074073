"""Producer and consumer processes for the queue tests, and the parsing of their logs.

Run as a script (``python queue_workers.py producer|consumer ...``, see `main`); the tests start
it through `spawn`. Every message says who sent it and its number, and is checked in full by
the consumer, so a damaged message fails the consumer (a non-zero exit).

A worker creates its log right after it opened the queue (so the log's existence says it is at
work). Logs are append-only and written with one ``os.write`` per line group, so a SIGKILL
leaves whole lines only (a torn last line is treated as not written):

- a producer logs ``first count time`` *before* it puts messages ``first .. first+count-1``: a
  kill between that line and the commit may lose those messages (never an earlier one);
- a consumer logs ``producer index time`` for each message *after* the get returned: a kill
  between the two loses what that one get returned (never more).

Times are `time.monotonic()`, one clock for every process on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_PATTERN = bytes(range(256)) * 3


def message(producer: int, index: int) -> bytes:
    """Message `index` of `producer`: its identity, a digest, and 0-299 bytes of body."""
    off = (index * 7) % 256
    body = _PATTERN[off : off + index % 300]
    return (
        struct.pack("<II", producer, index) + hashlib.blake2b(body, digest_size=8).digest() + body
    )


def identify(m: bytes) -> tuple[int, int]:
    """(producer, index) of a received message, which must be exactly what was sent."""
    producer, index = struct.unpack_from("<II", m)
    if m != message(producer, index):
        raise AssertionError(f"message {index} of producer {producer} arrived damaged: {m!r}")
    return producer, index


def _append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _produce(args: argparse.Namespace) -> None:
    import memspace

    q = memspace.Queue.open(args.name)
    fd = _append(args.log)
    i = 0
    while args.count is None or i < args.count:
        if args.stop is not None and os.path.exists(args.stop):
            break
        n = args.batch if args.count is None else min(args.batch, args.count - i)
        batch = [message(args.id, j) for j in range(i, i + n)]
        os.write(fd, f"{i} {n} {time.monotonic():.6f}\n".encode())
        if n == 1:
            q.put(batch[0], timeout=30)
        else:
            sent = q.put_many(batch, timeout=30)
            if sent != n:
                raise AssertionError(f"put_many sent {sent} of {n} messages")
        i += n


def _consume(args: argparse.Namespace) -> None:
    import memspace

    q = memspace.Queue.open(args.name)
    fd = _append(args.log)
    while True:
        try:
            if args.batch == 1:
                got = [q.get(timeout=args.wait)]
            else:
                got = q.get_many(args.batch, timeout=args.wait)
        except queue.Empty:
            if args.stop is None or os.path.exists(args.stop):
                return
            continue
        t = time.monotonic()
        os.write(fd, "".join(f"{p} {i} {t:.6f}\n" for p, i in map(identify, got)).encode())


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["producer", "consumer"])
    ap.add_argument("name", help="the queue's segment name")
    ap.add_argument("log", help="the log to append to")
    ap.add_argument("--id", type=int, default=0, help="producer: the id in its messages")
    ap.add_argument("--batch", type=int, default=1, help="messages per put_many / get_many")
    ap.add_argument("--count", type=int, help="producer: stop after this many messages")
    ap.add_argument("--wait", type=float, default=1.0, help="consumer: get timeout (s)")
    ap.add_argument(
        "--stop",
        help="stop once this file exists (a consumer: once it also found the queue empty); "
        "without it, a consumer stops at the first empty get",
    )
    args = ap.parse_args(argv)
    (_produce if args.role == "producer" else _consume)(args)


def spawn(role: str, name: str, log: Path, *options: str) -> subprocess.Popen[bytes]:
    """Start a producer or consumer process (its stderr goes to the test's)."""
    return subprocess.Popen([sys.executable, __file__, role, name, str(log), *options])


def _lines(path: Path, torn_ok: bool) -> list[list[str]]:
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    last = lines.pop()  # "" when the log ends with a newline
    if last and not torn_ok:
        raise AssertionError(f"{path} ends with a torn line {last!r} but its writer was not killed")
    return [line.split() for line in lines]


@dataclass
class Sent:
    """What one producer logged: batches as (first, count, time), in order."""

    batches: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def end(self) -> int:
        """One past the last index it may have sent."""
        return self.batches[-1][0] + self.batches[-1][1] if self.batches else 0


def read_sent(path: Path, torn_ok: bool = False) -> Sent:
    """A producer log; batches must follow each other from index 0."""
    sent = Sent()
    for first, count, t in _lines(path, torn_ok):
        if int(first) != sent.end:
            raise AssertionError(f"{path}: batch at {first} does not follow {sent.end}")
        sent.batches.append((int(first), int(count), float(t)))
    return sent


def read_received(path: Path, torn_ok: bool = False) -> list[tuple[int, int, float]]:
    """A consumer log: (producer, index, time) in the order it got them. Raises if, for some
    producer, the indices do not increase (FIFO per producer, no duplicate)."""
    out = []
    last: dict[int, int] = {}
    for p, i, t in _lines(path, torn_ok):
        producer, index = int(p), int(i)
        if last.get(producer, -1) >= index:
            raise AssertionError(
                f"{path}: producer {producer}'s message {index} came after {last[producer]}"
            )
        last[producer] = index
        out.append((producer, index, float(t)))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
