"""A hypothesis state machine: MemoryFileSystem against a plain-dict model that charges the
quota exactly as dmemfs does (size + 128 per chunk for sequential files, size once promoted).
After every step the contents, ``used`` and the quota invariants must agree with the model;
deleting everything must bring ``used`` back to exactly 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from memspace import MemoryFileSystem, MFSQuotaExceededError, SharedFileSystem

from tests.helpers import unique_name

OH = 128
QUOTA = 3000
DIRS = ["/d0", "/d1"]
PATHS = [f"{d}/f{i}" for d in DIRS for i in range(3)]

paths = st.sampled_from(PATHS)
data = st.binary(max_size=700)


@dataclass
class Model:
    data: bytearray
    chunks: int | None  # None once promoted to random access

    def charge(self) -> int:
        return len(self.data) + (self.chunks or 0) * OH


class FsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = self._make_fs()
        for d in DIRS:
            self.fs.mkdir(d)
        self.model: dict[str, Model] = {}

    def _make_fs(self) -> Any:
        return MemoryFileSystem(max_quota=QUOTA)

    @property
    def used(self) -> int:
        return sum(m.charge() for m in self.model.values())

    def _grow_seq(self, m: Model, n: int) -> bool:
        """Append n bytes to a sequential file: one new chunk."""
        return self.used + n + OH <= QUOTA

    @rule(path=paths, payload=data)
    def write(self, path: str, payload: bytes) -> None:
        m = self.model.setdefault(path, Model(bytearray(), 0))
        # "wb" truncates first (a promoted file stays promoted).
        m.data.clear()
        if m.chunks is not None:
            m.chunks = 0
        fits = (
            not payload
            or (m.chunks is not None and self._grow_seq(m, len(payload)))
            or (m.chunks is None and self.used + len(payload) <= QUOTA)
        )
        with self.fs.open(path, "wb") as f:
            if fits:
                f.write(payload)
                if payload:
                    m.data += payload
                    if m.chunks is not None:
                        m.chunks += 1
            else:
                try:
                    f.write(payload)
                except MFSQuotaExceededError:
                    pass
                else:
                    raise AssertionError("write over the quota succeeded")

    @rule(path=paths, payload=data)
    def append(self, path: str, payload: bytes) -> None:
        m = self.model.get(path)
        if m is None:
            m = Model(bytearray(), 0)
        cost = len(payload) + (OH if m.chunks is not None else 0)
        ok = not payload or self.used + cost <= QUOTA
        with self.fs.open(path, "ab") as f:
            self.model[path] = m
            try:
                f.write(payload)
                assert ok, "append over the quota succeeded"
                if payload:
                    m.data += payload
                    if m.chunks is not None:
                        m.chunks += 1
            except MFSQuotaExceededError:
                assert not ok

    @rule(path=paths, offset=st.integers(0, 800), payload=data)
    def patch(self, path: str, offset: int, payload: bytes) -> None:
        m = self.model.get(path)
        if m is None:
            return
        size = len(m.data)
        end = offset + len(payload)
        if not payload:
            ok = True
        elif m.chunks is not None and offset == size:
            ok = self.used + len(payload) + OH <= QUOTA
        elif m.chunks is not None:
            # Promotion: the copy is reserved while both exist, then the chunk overhead is
            # exchanged for the growth.
            ext = max(0, end - size)
            ok = self.used + size <= QUOTA and self.used + size - m.chunks * OH + ext <= QUOTA
        else:
            ok = self.used + max(0, end - size) <= QUOTA
        with self.fs.open(path, "r+b") as f:
            f.seek(offset)
            try:
                f.write(payload)
            except MFSQuotaExceededError:
                assert not ok
                return
        assert ok, "patch over the quota succeeded"
        if not payload:
            return
        if m.chunks is not None and offset == size:
            m.chunks += 1
        else:
            m.chunks = None
        if len(m.data) < end:
            m.data.extend(bytes(end - len(m.data)))
        m.data[offset:end] = payload

    @rule(path=paths, n=st.integers(0, 900))
    def truncate(self, path: str, n: int) -> None:
        m = self.model.get(path)
        if m is None:
            return
        size = len(m.data)
        if n > size:
            ok = self.used + (n - size) + (OH if m.chunks is not None else 0) <= QUOTA
        else:
            ok = True
        with self.fs.open(path, "r+b") as f:
            try:
                f.truncate(n)
            except MFSQuotaExceededError:
                assert not ok
                return
        assert ok
        if n == size:
            return
        if n > size:
            m.data.extend(bytes(n - size))
            if m.chunks is not None:
                m.chunks += 1
        else:
            del m.data[n:]
            if m.chunks is not None:
                m.chunks = 1 if n > 0 else 0

    @rule(path=paths)
    def remove(self, path: str) -> None:
        if path in self.model:
            self.fs.remove(path)
            del self.model[path]
        else:
            try:
                self.fs.remove(path)
            except FileNotFoundError:
                pass
            else:
                raise AssertionError("removed a file that does not exist")

    @rule(src=paths, dst=paths)
    def copy(self, src: str, dst: str) -> None:
        if src not in self.model or dst in self.model:
            return
        n = len(self.model[src].data)
        ok = self.used + (n + OH if n else 0) <= QUOTA
        try:
            self.fs.copy(src, dst)
        except MFSQuotaExceededError:
            assert not ok
            assert not self.fs.exists(dst)
            return
        assert ok
        self.model[dst] = Model(bytearray(self.model[src].data), 1 if n else 0)

    @rule(entries=st.dictionaries(paths, data, max_size=3))
    def import_tree(self, entries: dict[str, bytes]) -> None:
        old = sum(self.model[p].charge() for p in entries if p in self.model)
        new = sum(len(b) + OH for b in entries.values() if b)
        ok = self.used - old + new <= QUOTA
        try:
            self.fs.import_tree(entries)
        except MFSQuotaExceededError:
            assert not ok
            return
        assert ok
        for p, b in entries.items():
            self.model[p] = Model(bytearray(b), 1 if b else 0)

    @rule(d=st.sampled_from(DIRS))
    def rmtree(self, d: str) -> None:
        self.fs.rmtree(d)
        self.fs.mkdir(d)
        for p in [p for p in self.model if p.startswith(d + "/")]:
            del self.model[p]

    @invariant()
    def agrees_with_model(self) -> None:
        s = self.fs.stats()
        assert s["used_bytes"] == self.used
        assert s["used_bytes"] <= QUOTA
        assert s["used_bytes"] + s["free_bytes"] == QUOTA
        assert s["file_count"] == len(self.model)
        assert self.fs.export_tree() == {p: bytes(m.data) for p, m in self.model.items()}

    def teardown(self) -> None:
        for d in DIRS:
            self.fs.rmtree(d)
        assert self.fs.stats()["used_bytes"] == 0


TestFsMachine = FsMachine.TestCase
TestFsMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class SharedFsMachine(FsMachine):
    """The same model against a SharedFileSystem, with a full fsck at the end of each run."""

    def _make_fs(self) -> Any:
        self.name = unique_name("sfs-state")
        return SharedFileSystem.create(self.name, max_quota=QUOTA, max_nodes=64)

    def teardown(self) -> None:
        try:
            super().teardown()
            report = self.fs.fsck()
            assert report["ok"], report["problems"]
        finally:
            self.fs.close()
            SharedFileSystem.remove(self.name)


TestSharedFsMachine = SharedFsMachine.TestCase
TestSharedFsMachine.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
