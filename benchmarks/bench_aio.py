"""asyncio: one producer process, one consumer that awaits every message in an event loop.

The consumer runs `asyncio.run()` and receives N messages in the same generated loop as the
other tables (benchmarks/channels.py states the rule), its statement awaiting each one:
`k = len(await get())` with memspace.aio.Queue, and for the peer what an asyncio user has
today, `multiprocessing.Queue.get` in the loop's default thread pool
(`k = len(await run_in_executor(None, get))`). The producer process sends with the
transport's plain synchronous `put(m)`. Clocked as in the 1P/1C tables: from the consumer's
release to its last message. Ratios are to the multiprocessing.Queue row.

64 B and 1 KiB; 20,000 messages per repetition (`--quick`: a hundredth, one repetition).
Until memspace has `memspace.aio`, its row is named under the table instead.

Run: python benchmarks/run.py aio
"""

from __future__ import annotations

import sys

import drivers
from _harness import QUICK, Result, measure, rate_table
from channels import AIO, AioMpQueue

SIZES = [64, 1024]
REPS = 1 if QUICK else 5
COUNT = 20_000  # multiprocessing.Queue through the thread pool: about 0.5-1 s


def section(size: int) -> str:
    n = drivers.quick_count(COUNT)
    rows: list[Result] = []
    notes: list[str] = []
    for t in AIO:
        if not t.available():
            notes.append(f"{t.label}: not available (no row)")
            continue
        print(f"  {t.label} {size} B", file=sys.stderr, flush=True)
        try:
            rows.append(
                measure(t.label, lambda t=t: drivers.aio_throughput(t, size, n), REPS, warmup=0)
            )
        except (TimeoutError, drivers.EndpointFailed, OSError) as e:
            notes.append(f"{t.label}: failed or stalled ({e})")
    ref = next((r for r in rows if r.label == AioMpQueue.label), None)
    title = f"{drivers.size_label(size)} messages, 1P/1C, consumer in asyncio"
    out = rate_table(title, "msg/s", rows, ref, "multiprocessing.Queue")
    return out + ("\n\n" + "; ".join(notes) + "." if notes else "")


def main() -> str:
    sections = []
    for size in SIZES:
        sections.append(section(size))
        print(sections[-1] + "\n", file=sys.stderr, flush=True)  # progress
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
