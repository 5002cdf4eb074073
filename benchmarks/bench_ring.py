"""One producer process, one consumer process: messages per second and 64 B round trips.

Every transport runs the same generated loop (benchmarks/channels.py states the rule,
benchmarks/loops.py holds the loops): both ends in freshly spawned processes; the consumer
times the arrival of N messages of one size from its release, and checks each length. Batched
transports move lists of up to 256 messages per call (at most a quarter of the channel's
bytes). The ping-pong table times 64 B round trips through two channels (one each way).

The floor rows run the consumer's loop in this process with no transport: the loop alone
(`k = len(x)` and the compare every row pays), the loop plus one no-op native call (memspace's
`ring.capacity` getter; membridge's `ring.capacity()` method), and the loop plus a new `bytes`
of the message size (what every copying receive must at least do): by slicing a longer bytes,
the cheapest way, and by `bytes()` of a memoryview, through the buffer protocol. The limit row
copies the message into a buffer (memcpy through Python, one statement per message).
`cost / call floor` is a row's time per message divided by the no-op method row's (membridge's;
memspace's getter where membridge is not installed); `cost / bytes floor` the same against the
slicing row.

Counts per repetition: 200,000 at 64 B, 100,000 at 1 KiB, 8,000 at 64 KiB, 500 at 1 MiB.
`--quick` (MEMSPACE_BENCH_QUICK=1): a hundredth, 64 B and 1 MiB only, one repetition.

Run: python benchmarks/run.py ring
"""

from __future__ import annotations

import statistics
import sys

import drivers
from _harness import QUICK, Result, measure, rate_table
from channels import PEERS, RINGS, Membridge, Transport

SIZES = [64, 1 << 20] if QUICK else [64, 1024, 64 << 10, 1 << 20]
REPS = 1 if QUICK else 5
ROUND_TRIPS = 200 if QUICK else 20_000
COUNTS = {64: 200_000, 1024: 100_000, 64 << 10: 8_000, 1 << 20: 500}


def count_for(size: int) -> int:
    """Messages per repetition: about 0.1-1 s for the slower peers."""
    return drivers.quick_count(COUNTS[size], least=5)


def transports() -> tuple[list[type[Transport]], list[str]]:
    """The transports to measure, and a note for each one that is not installed."""
    have = [t for t in [*RINGS, *PEERS] if t.available()]
    missing = [f"{t.label} (not installed)" for t in [*RINGS, *PEERS] if not t.available()]
    return have, missing


def messages(size: int, ts: list[type[Transport]], stalled: list[str]) -> str:
    n = count_for(size)
    rows: list[Result] = drivers.floors(size, n, REPS)
    refs = drivers.floor_refs(rows)
    for t in ts:
        if t.max_size is not None and size > t.max_size:
            continue
        print(f"  {t.label} {size} B", file=sys.stderr, flush=True)
        try:
            rows.append(
                measure(t.label, lambda t=t: drivers.throughput(t, size, n), REPS, warmup=0)
            )
        except (TimeoutError, drivers.EndpointFailed) as e:  # reported, not waited for
            stalled.append(f"{t.label} at {size} B: {e}")
    ref = next((r for r in rows if r.label == Membridge.label), None)
    title = f"{drivers.size_label(size)} messages"
    return rate_table(title, "msg/s", rows, ref, "membridge", refs)


def round_trips(ts: list[type[Transport]], stalled: list[str]) -> str:
    lines = ["| 64 B round trip | median us | p99 us | min us |", "|---|---:|---:|---:|"]
    for t in ts:
        if t.zero_copy or t.batched:
            continue  # a round trip is one message each way: single put/get only
        print(f"  ping-pong {t.label}", file=sys.stderr, flush=True)
        try:
            rt = sorted(drivers.ping_pong(t, ROUND_TRIPS))
        except (TimeoutError, drivers.EndpointFailed) as e:
            stalled.append(f"{t.label} ping-pong: {e}")
            continue
        p99 = rt[int(len(rt) * 0.99)]
        lines.append(f"| {t.label} | {statistics.median(rt):.1f} | {p99:.1f} | {rt[0]:.1f} |")
    return "\n".join(lines)


def main() -> str:
    ts, missing = transports()
    stalled: list[str] = []
    sections = [messages(size, ts, stalled) for size in SIZES]
    sections.append(round_trips(ts, stalled))
    if stalled:
        sections.append("Stalled or failed (no row): " + "; ".join(stalled) + ".")
    if missing:
        sections.append("Not measured: " + "; ".join(missing) + ".")
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
