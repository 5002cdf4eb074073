"""A corruption fuzzer for every structured kind (issue #11): random damage to a segment's header,
attachment table, lock area, control block and data, at rest and while two processes use it.

Every case runs in a child process (a pool of long-lived workers, corruption_worker.py, each
running many cases and answering per case; a worker that dies is replaced). A case passes when
its child ends with a result or one of the clean exceptions memspace promises for a corrupt or
hostile segment (corruption_worker.CLEAN); it fails on any other exception (a Rust panic
surfaces as ``PanicException``), on a signal (the worker dies: SIGSEGV, SIGBUS, SIGABRT) and on
a case that outlives its deadline (the worker is killed).

- at rest: create an object, use it a little, close it, corrupt its segment once or a few
  times, then open and use it again (``MEMSPACE_FUZZ_CASES`` cases per kind, default 400);
- live: two workers use the object (for a ring: its producer and its consumer; for a broadcast:
  its publisher and a subscriber) while a third corrupts it over and over
  (``MEMSPACE_FUZZ_LIVE`` cases per kind, default 20, each ``MEMSPACE_FUZZ_SECONDS`` long,
  default 0.05).

Seeded: ``MEMSPACE_FUZZ_SEED`` replays a whole run (the seed is in the summary line, which
``pytest -s`` shows, and in every failure; live cases also depend on timing), and
``MEMSPACE_FUZZ_REPLAY=ring:12345`` runs the one at-rest case a failure names. ``make fuzz``
runs a longer version.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import memspace
import pytest

from tests.helpers import PREFIX, remove_quietly, unique_name
from tests.hostile import corruption_worker as cw

pytestmark = pytest.mark.skipif(
    not Path("/dev/shm").is_dir(), reason="needs POSIX shared memory (/dev/shm)"
)

CASES = int(os.environ.get("MEMSPACE_FUZZ_CASES", "400"))
LIVE = int(os.environ.get("MEMSPACE_FUZZ_LIVE", "20"))
LIVE_SECONDS = float(os.environ.get("MEMSPACE_FUZZ_SECONDS", "0.05"))
SEED = int(os.environ.get("MEMSPACE_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
REPLAY = os.environ.get("MEMSPACE_FUZZ_REPLAY", "")
WORKERS = 3
# A case's deadline: far beyond what its waits add up to (each is a few milliseconds, an open
# of a segment left INITIALIZING waits 0.5 s), so that only a real hang reaches it.
CASE_DEADLINE = 20.0
WORKER = Path(__file__).with_name("corruption_worker.py")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    """One long-lived child running cases; its stderr (panic messages) goes to a file."""

    log: Path
    proc: subprocess.Popen[str] = field(init=False)

    def __post_init__(self) -> None:
        with self.log.open("a") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=REPO,
            )

    def send(self, case: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stderr_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class Pool:
    """Workers that run cases concurrently, replaced when one dies or hangs."""

    logs: Path
    deadline: float = CASE_DEADLINE
    workers: list[Worker] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    cases: int = 0
    spawned: int = 0
    # Segment name -> cases running on it; the last to end removes it.
    users: Counter[str] = field(default_factory=Counter)

    def spawn(self) -> Worker:
        self.spawned += 1
        return Worker(self.logs / f"worker-{self.spawned}.log")

    def __post_init__(self) -> None:
        self.workers = [self.spawn() for _ in range(WORKERS)]

    def close(self) -> None:
        for w in self.workers:
            w.stop()

    def run(self, batches: Iterator[list[dict[str, Any]]]) -> None:
        """Runs each batch (cases that must run at once, on distinct workers) to its end
        before the next; a batch of one case runs beside other such batches."""
        sel = selectors.DefaultSelector()
        busy: dict[int, tuple[dict[str, Any], float]] = {}  # worker index -> case, deadline
        pending: list[dict[str, Any]] = []
        done_batches = False

        def idle() -> list[int]:
            return [i for i in range(len(self.workers)) if i not in busy]

        try:
            while True:
                # Start whatever fits: a batch starts when it has enough idle workers, and a
                # batch of several starts only when nothing else runs.
                while not done_batches and not pending:
                    try:
                        pending = next(batches)
                    except StopIteration:
                        done_batches = True
                assert len(pending) <= len(self.workers)
                if pending and len(idle()) >= len(pending) and (len(pending) == 1 or not busy):
                    for i, case in zip(idle(), pending, strict=False):
                        w = self.workers[i]
                        try:
                            w.send(case)
                        except OSError:  # it died since its last case
                            self.users[case["name"]] += 1
                            self.finish(i, case, "")
                            continue
                        busy[i] = (case, time.monotonic() + self.deadline)
                        self.users[case["name"]] += 1
                        assert w.proc.stdout is not None
                        sel.register(w.proc.stdout, selectors.EVENT_READ, i)
                    pending = []
                    continue
                if not busy:
                    if done_batches and not pending:
                        return
                    continue
                timeout = max(0.0, min(d for _, d in busy.values()) - time.monotonic())
                for key, _ in sel.select(timeout):
                    i = key.data
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    sel.unregister(key.fileobj)
                    case, _ = busy.pop(i)
                    self.finish(i, case, line)
                now = time.monotonic()
                for i, (case, deadline) in list(busy.items()):
                    if now >= deadline:
                        stdout = self.workers[i].proc.stdout
                        assert stdout is not None
                        sel.unregister(stdout)
                        busy.pop(i)
                        self.cases += 1
                        self.fail(i, case, f"still running after {self.deadline} s (killed)")
                        self.done(case)
        finally:
            sel.close()

    def done(self, case: dict[str, Any]) -> None:
        self.users[case["name"]] -= 1
        if self.users[case["name"]] == 0:
            del self.users[case["name"]]
            remove_quietly(case["name"])

    def finish(self, i: int, case: dict[str, Any], line: str) -> None:
        self.cases += 1
        self.done(case)
        if not line:
            rc = self.workers[i].proc.wait()
            self.fail(i, case, f"the worker died (returncode {rc})")
            return
        answer = json.loads(line)
        assert answer["id"] == case["id"], (answer, case)
        if "bad" in answer:
            self.findings.append(f"{describe(case)}: unclean exception\n{answer['bad']}")
            self.outcomes["bad"] += 1
        else:
            self.outcomes[f"{case['mode']}:{answer['ok']}"] += 1

    def fail(self, i: int, case: dict[str, Any], why: str) -> None:
        w = self.workers[i]
        w.stop()
        self.findings.append(f"{describe(case)}: {why}\nworker stderr:\n{w.stderr_tail()}")
        self.outcomes["crash"] += 1
        self.workers[i] = self.spawn()


def describe(case: dict[str, Any]) -> str:
    mode, kind = case["mode"], case.get("kind", "?")
    replay = f"; MEMSPACE_FUZZ_REPLAY={kind}:{case['seed']}" if mode == "rest" else ""
    return f"{kind} {mode} case {case['id']} (MEMSPACE_FUZZ_SEED={SEED}{replay})"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    p = Pool(tmp_path_factory.mktemp("fuzz-workers"))
    t0 = time.monotonic()
    yield p
    p.close()
    print(
        f"\ncorruption fuzz: seed {SEED}, {p.cases} cases in {time.monotonic() - t0:.1f} s, "
        f"{p.spawned - WORKERS} workers replaced, outcomes {dict(sorted(p.outcomes.items()))}"
    )


def _rest_cases(kind: str, n: int, rng: random.Random) -> Iterator[list[dict[str, Any]]]:
    for k in range(n):
        seed = rng.randrange(2**32)
        name = unique_name(f"fz{kind[:2]}")
        yield [{"id": k, "mode": "rest", "kind": kind, "name": name, "seed": seed}]


def _assert_clean(pool: Pool, before: int) -> None:
    new = pool.findings[before:]
    assert not new, f"{len(new)} finding(s):\n\n" + "\n\n".join(new[:5])


def _leftovers() -> None:
    for p in Path("/dev/shm").glob(f"{PREFIX}fz*"):
        remove_quietly("/" + p.name)


@pytest.mark.parametrize("kind", cw.KINDS)
def test_corrupt_at_rest(pool: Pool, kind: str) -> None:
    """Damaged while nobody used it, then opened and used: a result or a clean exception."""
    rng = random.Random(f"{SEED}-rest-{kind}")
    before = len(pool.findings)
    cases = _rest_cases(kind, CASES, rng)
    if REPLAY:
        rkind, rseed = REPLAY.split(":")
        if rkind != kind:
            pytest.skip(f"replaying {REPLAY}")
        name = unique_name("fzre")
        cases = iter([[{"id": 0, "mode": "rest", "kind": kind, "name": name, "seed": int(rseed)}]])
    try:
        pool.run(cases)
    finally:
        _leftovers()
    _assert_clean(pool, before)


def _live_cases(kind: str, n: int, rng: random.Random) -> Iterator[list[dict[str, Any]]]:
    for k in range(n):
        seed = rng.randrange(2**32)
        name = unique_name(f"fz{kind[:2]}")
        local = random.Random(seed)
        obj = cw._create(kind, name, local)
        for _ in range(local.randrange(0, 6)):
            with contextlib.suppress(*cw.CLEAN):
                cw._one_op(kind, obj, local, "")
        cw._close(obj)
        del obj
        common = {"kind": kind, "name": name, "seed": seed, "seconds": LIVE_SECONDS}
        yield [
            {"id": 3 * k, "mode": "use", "who": "a", **common},
            {"id": 3 * k + 1, "mode": "use", "who": "b", **common, "seed": seed + 1},
            {"id": 3 * k + 2, "mode": "corrupt", **common, "seed": seed + 2},
        ]


@pytest.mark.parametrize("kind", cw.KINDS)
def test_corrupt_while_in_use(pool: Pool, kind: str) -> None:
    """Two processes use it while a third damages it: each ends with a result or a clean
    exception, within its deadline."""
    if REPLAY:
        pytest.skip(f"replaying {REPLAY}")
    rng = random.Random(f"{SEED}-live-{kind}")
    before = len(pool.findings)
    try:
        pool.run(_live_cases(kind, LIVE, rng))
    finally:
        _leftovers()
    _assert_clean(pool, before)


def test_the_harness_sees_unclean_exceptions_deaths_and_hangs(tmp_path: Path) -> None:
    """The fuzzer can fail: an unclean exception, a dead worker and a hang are findings."""
    p = Pool(tmp_path)
    name = unique_name("fzself")
    try:
        memspace.Mutex.create(name)
        use = {"mode": "use", "kind": "mutex", "name": name, "seed": 1, "who": "a"}
        # A kind the worker does not know: AssertionError in the child, not a clean exception.
        p.run(iter([[{"id": 0, "mode": "rest", "kind": "nonsense", "name": name, "seed": 1}]]))
        assert len(p.findings) == 1
        assert "unclean exception" in p.findings[0]
        assert "AssertionError" in p.findings[0]
        memspace.Mutex.create(name)  # the finished case removed it
        # A worker that died since its last case.
        p.workers[0].proc.kill()
        p.workers[0].proc.wait()
        p.run(iter([[{"id": 1, **use, "seconds": 0.01}]]))
        assert "the worker died" in p.findings[1], p.findings
        # A case that outlives its deadline (a use of 60 s against a deadline of 2 s; the
        # worker is started and idle by now, so only the case counts).
        memspace.Mutex.create(name)
        p.run(iter([[{"id": 2, **use, "seconds": 0.01}]]))
        memspace.Mutex.create(name)
        p.deadline = 2.0
        p.run(iter([[{"id": 3, **use, "seconds": 60.0}]]))
        assert "still running" in p.findings[2], p.findings
        assert len(p.findings) == 3
        assert p.spawned == WORKERS + 2
        assert p.outcomes["use:done"] == 1
    finally:
        p.close()
        remove_quietly(name)
