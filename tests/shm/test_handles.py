"""What every structured handle shares (issue #13 §1): close() releases the attachment slot
and the mapping at once, `with` closes (Mutex: `with` acquires, contextlib.closing closes),
instance unlink(), and handles opened and closed while still referenced never exhaust the
attachment table (issue #11, finding 9)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memspace
import pytest

from tests.helpers import run_child

pytestmark = pytest.mark.timeout(120)

Foo = memspace.Record.define("Foo", bar="i32", baz="i32")

# name -> (create(name), open(name), an operation that touches the segment)
KINDS: dict[str, tuple[Callable[[str], Any], Callable[[str], Any], Callable[[Any], Any]]] = {
    "Mutex": (memspace.Mutex.create, memspace.Mutex.open, lambda m: m.acquire(0).release()),
    "RwLock": (memspace.RwLock.create, memspace.RwLock.open, lambda lk: lk.read(0).release()),
    "View": (lambda n: memspace.View.create(n, 64), memspace.View.open, lambda v: v.read_all()),
    "Record": (lambda n: Foo.create(n, bar=1), Foo.open, lambda f: f.bar),
    "Ring": (lambda n: memspace.Ring.create(n, 4096), memspace.Ring.open, len),
    "Queue": (lambda n: memspace.Queue.create(n, 4096), memspace.Queue.open, lambda q: q.qsize()),
    "Broadcast": (
        lambda n: memspace.Broadcast.create(n, 4096),
        memspace.Broadcast.open,
        lambda b: b.max_message_size,
    ),
}


def live_attachments(name: str) -> int:
    """Live attachments of the queue `name`, the handle used to look excluded."""
    with memspace.Queue.open(name) as q:
        return sum(1 for a in q.inspect()["attached"] if a["alive"]) - 1


@pytest.mark.parametrize("kind", KINDS)
def test_close_detaches_and_later_use_is_a_value_error(
    kind: str, make_name: Callable[[str], str]
) -> None:
    create, open_, use = KINDS[kind]
    name = make_name(kind.lower())
    owner = create(name)
    h = open_(name)
    use(h)
    assert not h.closed
    h.close()
    assert h.closed
    h.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        use(h)
    assert h.name == name  # the location outlives the handle
    use(owner)  # other handles are not affected
    owner.close()


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "Mutex"])
def test_with_closes(kind: str, make_name: Callable[[str], str]) -> None:
    create, open_, use = KINDS[kind]
    name = make_name(kind.lower())
    with create(name) as owner:
        with open_(name) as h:
            use(h)
        assert h.closed
        assert not owner.closed
    assert owner.closed
    open_(name).close()  # closing never removes the segment


def test_mutex_with_acquires_and_closing_closes(shm_name: str) -> None:
    m = memspace.Mutex.create(shm_name)
    with m as g:  # threading.Lock style: the block holds the mutex
        assert g.held
        run_child(
            """
            import sys, memspace
            try:
                memspace.Mutex.open(sys.argv[1]).acquire(0)
            except TimeoutError:
                pass
            else:
                raise SystemExit("acquired a mutex another process holds")
            """,
            shm_name,
        )
    m.acquire(0).release()  # the block's end released it
    with contextlib.closing(memspace.Mutex.open(shm_name)) as m2, m2(timeout=1):
        pass
    assert m2.closed
    assert not m.closed


@pytest.mark.parametrize("kind", KINDS)
def test_instance_unlink(kind: str, make_name: Callable[[str], str]) -> None:
    create, open_, use = KINDS[kind]
    name = make_name(kind.lower())
    h = create(name)
    h.unlink()
    use(h)  # the handle keeps its mapping
    with pytest.raises(FileNotFoundError):
        open_(name)
    with pytest.raises(FileNotFoundError):
        h.unlink()
    h.close()


@pytest.mark.parametrize("kind", KINDS)
def test_handles_closed_while_referenced_do_not_exhaust_the_table(
    kind: str, make_name: Callable[[str], str]
) -> None:
    # 200 is more slots than any kind has (32 to 128): without close() releasing the slot,
    # the handles kept in `kept` would exhaust the table.
    create, open_, use = KINDS[kind]
    name = make_name(kind.lower())
    owner = create(name)
    kept = []
    for _ in range(200):
        h = open_(name)
        use(h)
        h.close()
        kept.append(h)
    # Without close() releasing the slot, this open would raise "all N attachment slots
    # ... are in use".
    h = open_(name)
    use(h)
    h.close()
    owner.close()
    del kept


def test_close_releases_the_slot_at_once(shm_name: str) -> None:
    owner = memspace.Queue.create(shm_name, 4096)
    kept = [memspace.Queue.open(shm_name) for _ in range(3)]
    assert live_attachments(shm_name) == 4
    for h in kept:
        h.close()
    assert live_attachments(shm_name) == 1  # only `owner`, though `kept` still references all
    owner.close()
    assert live_attachments(shm_name) == 0


def test_a_closed_handle_frees_its_slot_for_other_processes(shm_name: str) -> None:
    q = memspace.Queue.create(shm_name, 4096)
    qs = [memspace.Queue.open(shm_name) for _ in range(127)]  # the table's 128 slots
    with pytest.raises(OSError, match="attachment slots"):
        memspace.Queue.open(shm_name)
    for h in qs:
        h.close()
    run_child(
        """
        import sys, memspace
        memspace.Queue.open(sys.argv[1]).put(b"from a child")
        """,
        shm_name,
    )
    assert q.get(timeout=5) == b"from a child"
    q.close()


def test_views_and_guards_keep_the_mapping_after_close(shm_name: str, make_name: Any) -> None:
    q = memspace.Queue.create(shm_name, 4096)
    q.put(b"in place")
    with q.get_view() as mv:
        q.close()
        assert bytes(mv) == b"in place"  # still mapped: the view holds its own reference
        assert live_attachments(shm_name) == 1  # and its attachment: the message is held
    assert live_attachments(shm_name) == 0

    ring_name = make_name("ring")
    r = memspace.Ring.create(ring_name, 4096)
    r.put(b"abc")
    view = r.get_view()
    mv = view.__enter__()
    r.close()
    assert bytes(mv) == b"abc"
    with pytest.raises(ValueError, match="closed"):
        view.__exit__(None, None, None)  # the ring is closed: the message stays unconsumed
    mv.release()
    del view, mv
    gc.collect()
    with memspace.Ring.open(ring_name) as r2:  # the consumer role was given back
        assert r2.get(timeout=1) == b"abc"

    m = memspace.Mutex.create(make_name("mutex"))
    g = m.acquire()
    m.close()
    g.release()  # the guard keeps the mutex attached until released


def test_closed_handles_still_pickle_and_repr(shm_name: str) -> None:
    import pickle

    r = memspace.RwLock.create(shm_name)
    r.close()
    assert "closed" in repr(r)
    again = pickle.loads(pickle.dumps(r))
    assert not again.closed
    again.close()


def test_file_backed_handles_close(tmp_path: Path) -> None:
    p = tmp_path / "v.seg"
    with memspace.View.create(path=p, size=64) as v:
        v.write(7, 0)
    assert v.closed
    assert v.path == p
    with memspace.View.open(path=p) as v2:
        assert v2.read(int, 0) == 7
        v2.unlink()
    assert not p.exists()
