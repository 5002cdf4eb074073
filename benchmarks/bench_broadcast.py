"""One publisher process to N subscriber processes: messages per second to each subscriber.

Every subscriber receives every message, losslessly: the publisher waits for the slowest
subscriber (memspace.Broadcast in blocking mode; pyzmq through an XPUB socket with
XPUB_NODROP, which also lets the publisher wait until every subscriber has joined before the
clock starts; iceoryx2 with RetryUntilDelivered). Each process is spawned afresh per
repetition and runs the same generated loop as the 1P/1C tables (benchmarks/channels.py
states the rule): the publisher sends N messages of one size, each subscriber receives N and
checks each length. The parent stamps the release on CLOCK_MONOTONIC; figure = N / (the last
subscriber's last message - the release), the rate at which every subscriber got everything.
Ratios are to pyzmq in the same table.

N = 1 and 4 subscribers, 64 B and 1 MiB; 100,000 messages at 64 B and 500 at 1 MiB per
repetition (`--quick`: a hundredth, one repetition). With 4 subscribers there are five
processes on this 2-core machine: busy-polling subscribers (iceoryx2) compete with the
publisher for the cores, blocking ones sleep.

A transport that is not there yet (memspace.Broadcast, until memspace has it) is named under
the table instead of a row.

The last table is memspace alone: an overwrite-mode publisher's rate (64 B, the same inline
`put(m)` loop in this process) with no subscriber, with one subscriber process that has
stopped reading (it sleeps), and with one that is SIGSTOPped, three broadcasts measured in
turn within each of 10 repetitions. The goal is that a stalled subscriber costs the
publisher nothing.

Run: python benchmarks/run.py broadcast
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import drivers
from _harness import QUICK, Result, measure, rate_table
from channels import BROADCASTS, ZmqPubSub

SIZES = [64, 1 << 20]
SUBSCRIBERS = [1, 4]
REPS = 1 if QUICK else 5
COUNTS = {64: 100_000, 1 << 20: 500}


def section(size: int, subscribers: int) -> str:
    n = drivers.quick_count(COUNTS[size], least=5)
    rows: list[Result] = []
    notes: list[str] = []
    for t in BROADCASTS:
        if not t.available():
            notes.append(f"{t.label}: not available (no row)")
            continue
        what = f"{t.label} {size} B x {subscribers}"
        print(f"  {what}", file=sys.stderr, flush=True)
        try:
            rows.append(
                measure(
                    t.label,
                    lambda t=t: drivers.broadcast(t, size, n, subscribers),
                    REPS,
                    warmup=0,
                )
            )
        except (TimeoutError, drivers.EndpointFailed, OSError) as e:
            print(f"  {what}: {e}", file=sys.stderr, flush=True)
            notes.append(f"{t.label}: failed or stalled ({e})")
    ref = next((r for r in rows if r.label == ZmqPubSub.label), None)
    who = "1 subscriber" if subscribers == 1 else f"{subscribers} subscribers"
    title = f"{drivers.size_label(size)} messages, 1 publisher -> {who}"
    out = rate_table(title, "msg/s per subscriber", rows, ref, "pyzmq")
    return out + ("\n\n" + "; ".join(notes) + "." if notes else "")


STALLED_SUBSCRIBER = """
import sys, time, memspace
b = memspace.Broadcast.open(sys.argv[1])
print("subscribed", flush=True)
time.sleep(600)
"""


def _publish_rate(name: str, n: int, size: int) -> float:
    import memspace

    pub = memspace.Broadcast.open(name, role="publisher")
    put = pub.put
    m = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        put(m)
    dt = time.perf_counter() - t0
    pub.close()
    return n / dt


def overwrite_section() -> str:
    """The overwrite publisher's rate with and without a stalled subscriber: three broadcasts
    side by side (none, a sleeping subscriber process, a SIGSTOPped one), measured in turn
    within each repetition so that a drift of the machine hits all three alike."""
    import memspace

    size, n = 64, drivers.quick_count(2_000_000, least=1000)
    cases = ("no subscriber", "a subscriber that stopped reading", "a SIGSTOPped subscriber")
    names = [f"/msbench-bc-ow{i}-{os.getpid()}" for i in range(len(cases))]
    children: list[subprocess.Popen[str]] = []
    figures: list[list[float]] = [[] for _ in cases]
    try:
        for name, case in zip(names, cases, strict=True):
            memspace.Broadcast.create(name, 1 << 20, overflow="overwrite").close()
            if case == "no subscriber":
                continue
            child = subprocess.Popen(
                [sys.executable, "-c", STALLED_SUBSCRIBER, name], stdout=subprocess.PIPE, text=True
            )
            children.append(child)
            assert child.stdout is not None
            if child.stdout.readline().strip() != "subscribed":
                raise RuntimeError("the stalled subscriber did not start")
            if "SIGSTOP" in case:
                child.send_signal(signal.SIGSTOP)
        for name in names:  # warm-up
            _publish_rate(name, n, size)
        for rep in range(REPS * 2):
            print(f"  overwrite publisher, repetition {rep + 1}", file=sys.stderr, flush=True)
            for i, name in enumerate(names):
                figures[i].append(_publish_rate(name, n, size))
    finally:
        for child in children:
            child.kill()
            child.wait()
        for name in names:
            memspace.Broadcast.remove(name)
    rows = [
        Result(f"memspace.Broadcast overwrite put, {case}", xs)
        for case, xs in zip(cases, figures, strict=True)
    ]
    return rate_table(
        "64 B overwrite-mode publisher, one process (memspace only; "
        f"{REPS * 2} interleaved repetitions)",
        "msg/s",
        rows,
        rows[0],
        "no subscriber",
    )


def main() -> str:
    sections = []
    for size in SIZES:
        for subscribers in SUBSCRIBERS:
            sections.append(section(size, subscribers))
            print(sections[-1] + "\n", file=sys.stderr, flush=True)  # progress
    sections.append(overwrite_section())
    print(sections[-1] + "\n", file=sys.stderr, flush=True)
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
