"""The smaller findings of issue #11 (finding 9): modes with special bits, control characters
in names, corrupt counters, a record over a too-small data area, a zero max_message_size, and
what `put_object` really sends out of band."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import memspace
import pytest

from tests.helpers import linux_only, run_cli, unique_name

REPO = Path(__file__).resolve().parents[2]

Rec = memspace.Record.define("SmallRec", a="i64", b="i64", c="i64")


def _creators(name: str, mode: int) -> list[Any]:
    return [
        lambda: memspace.SharedMemory.create(name, 64, mode=mode),
        lambda: memspace.SharedMemory.create(path=name, size=64, mode=mode),
        lambda: memspace.Mutex.create(name, mode=mode),
        lambda: memspace.RwLock.create(name, mode=mode),
        lambda: memspace.View.create(name, 64, mode=mode),
        lambda: Rec.create(name, mode=mode),
        lambda: memspace.Ring.create(name, 4096, mode=mode),
        lambda: memspace.Queue.create(name, 4096, mode=mode),
    ]


@pytest.mark.parametrize("mode", [0o4600, 0o2600, 0o1600, 0o6777, 0o7000])
@pytest.mark.parametrize("which", range(8))
def test_setuid_setgid_sticky_modes_are_refused(
    mode: int, which: int, shm_name: str, tmp_path: Path
) -> None:
    name = str(tmp_path / "f") if which == 1 else shm_name
    create = _creators(name, mode)[which]
    with pytest.raises(ValueError, match="mode"):
        create()
    if which == 1:
        assert not Path(name).exists()
    else:
        with pytest.raises(FileNotFoundError):
            memspace.SharedMemory.open(shm_name)


@linux_only
def test_ls_escapes_control_characters_in_names() -> None:
    name = unique_name("esc") + "\x1b[2J\x1b]0;pwned\x07\r\nfake-line\x7f"
    memspace.SharedMemory.create(name, 16).close()
    try:
        out = run_cli("ls").stdout
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "\r" not in out
        assert "\x7f" not in out
        assert "fake-line" in out
        lines = [ln for ln in out.splitlines() if "fake-line" in ln]
        assert len(lines) == 1, out  # the embedded newline did not start a line of its own
        assert unique_name("x").split("-")[0] in lines[0]
        assert "\\x1b" in lines[0]
        assert "\\n" in lines[0]
        # --json is JSON: control characters come out \u-escaped there anyway.
        js = run_cli("ls", "--json").stdout
        assert "\x1b" not in js
    finally:
        memspace.SharedMemory.remove(name)


def test_len_of_a_ring_with_corrupt_counters_is_corrupt_segment_error(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    ring = memspace.Ring.create(path=path, capacity=4096)
    raw = memspace.SharedMemory.open(path=path)
    header = raw.read(0, 128)
    lock_off = struct.unpack_from("=Q", header, 48)[0]
    raw.write_uint(lock_off + 8, 1 << 63)  # `sent`: an impossible message count
    with pytest.raises(memspace.CorruptSegmentError):
        len(ring)
    raw.write_uint(lock_off + 8, 0)
    raw.write_uint(lock_off + 136, 5)  # `received` > `sent`
    with pytest.raises(memspace.CorruptSegmentError):
        len(ring)
    raw.close()


def test_record_over_a_too_small_data_area_is_layout_error(shm_name: str) -> None:
    # A segment that claims to be a SmallRec (same fingerprint) with an 8-byte data area
    # instead of 24: refused at open, not an IndexError (or worse) at the first field access.
    memspace.View._create_record(shm_name, None, 0o600, 8, Rec._fingerprint)
    with pytest.raises(memspace.LayoutError, match="too small"):
        Rec.open(shm_name)


@pytest.mark.parametrize("cls", [memspace.Ring, memspace.Queue])
def test_max_message_size_zero_is_refused(cls: Any, shm_name: str) -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        cls.create(shm_name, 4096, max_message_size=0)
    with pytest.raises(FileNotFoundError):
        memspace.SharedMemory.open(shm_name)


def _parts_of(q: memspace.Queue) -> int:
    with q.get_view(timeout=5) as mv:
        head = bytes(mv[:8])
    assert head[:4] == b"\x89msp"
    return int(struct.unpack_from("<I", head, 4)[0])


def test_what_put_object_sends_out_of_band_is_what_the_readme_says(shm_name: str) -> None:
    q = memspace.Queue.create(shm_name, 1 << 16)
    q.put_object(bytearray(b"x" * 1000))
    assert _parts_of(q) == 1  # a bytearray is pickled in band (pickle's own choice)
    q.put_object(pickle.PickleBuffer(bytearray(b"x" * 1000)))
    assert _parts_of(q) == 2  # a PickleBuffer travels out of band
    q.put_object(bytearray(b"y" * 10))
    got = q.get_object(timeout=5)
    assert type(got) is bytearray
    assert got == bytearray(b"y" * 10)
    readme = (REPO / "README.md").read_text()
    start = readme.index("**Objects and numpy arrays.**")
    para = readme[start : readme.index("\n\n", start)]
    oob = para[para.index("out-of-band buffer") : para.index("never goes")]
    assert "bytearray" not in oob, oob
