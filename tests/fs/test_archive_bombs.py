"""Hostile archives (issue #11, finding 2): expanding one is bounded by the quota, not by what
the archive claims, and a failed expansion leaves nothing behind.

Each bomb is built here (cheaply: a deflate stream of zeros repeats after a full flush, so
gigabytes of zeros are a few hundred kilobytes made without compressing them) and expanded in
a child process with its address space capped (so that a regression cannot take the machine's
memory and a crash is a failed test); the child reports how much its peak RSS (VmHWM) grew
during the expansion, which must stay far below what the archive expands to. Linux only."""

from __future__ import annotations

import bz2
import io
import json
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.helpers import run_child

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="measures memory through /proc (Linux)"
)

MiB = 1 << 20
# Peak RSS may grow this much while expanding (the bombs expand to 128 MiB .. 4 GiB).
MAX_GROWTH_MB = 40


def _deflated_zeros(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of `mib` MiB of zeros and their CRC-32."""
    zeros = bytes(MiB)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts over: every further MiB is the same block.
    assert c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH) == block
    stream = block * mib + c.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return stream, crc


def _zip_raw(members: list[tuple[str, int, int, bytes, int]]) -> bytes:
    """A zip of already-compressed members: (name, declared size, CRC, data, method)."""
    out, central = bytearray(), bytearray()
    for name, size, crc, data, method in members:
        n = name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0
        )
        out += n + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            *(0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size, len(n)),
            *(0, 0, 0, 0, 0, offset),
        )
        central += n
    cd = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd, 0
    )
    return bytes(out)


def _tar_gz(name: str, data: bytes = b"x", fmt: int = tarfile.PAX_FORMAT) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz", format=fmt) as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return bio.getvalue()


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bombs(tmp_path_factory.mktemp("bombs"))


def build_bombs(d: Path) -> Path:
    """Writes every bomb into directory `d`."""
    gib, crc = _deflated_zeros(1024)
    # The bomb: 4 x 1 GiB of zeros, honestly declared (4 MB of zip).
    (d / "zeros.zip").write_bytes(
        _zip_raw([(f"z{i}.bin", 1 << 30, crc, gib, zipfile.ZIP_DEFLATED) for i in range(4)])
    )
    # A member that declares 1,000 bytes and holds 1 GiB, deflated and bzip2-ed.
    (d / "liar.zip").write_bytes(_zip_raw([("liar.bin", 1000, 0, gib, zipfile.ZIP_DEFLATED)]))
    bz = bz2.compress(bytes(128 * MiB), 1)
    (d / "liar-bz2.zip").write_bytes(_zip_raw([("liar.bin", 1000, 0, bz, zipfile.ZIP_BZIP2)]))
    # Names 20,000 directories deep, in a 200-byte tar.gz and in a zip.
    (d / "deep.tar.gz").write_bytes(_tar_gz("a/" * 20_000 + "f"))
    zbio = io.BytesIO()
    with zipfile.ZipFile(zbio, "w") as zf:
        zf.writestr("a/" * 20_000 + "f", b"x")
    (d / "deep.zip").write_bytes(zbio.getvalue())
    # A tar whose pax header (a 64 MiB name) is far larger than the quota.
    (d / "pax.tar.gz").write_bytes(_tar_gz("a" * (64 * MiB)))
    return d


_CHILD = """
import errno, json, resource, sys, tarfile, zipfile, warnings
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
import memspace
from memspace import MemoryFileSystem, MFSQuotaExceededError
path, fn, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mfs = MemoryFileSystem(max_quota=1 << 20)
mfs.mkdir("/keep")
with mfs.open("/keep/k", "wb") as f:
    f.write(b"k" * 1000)
before = mfs.stats()
source = open(path, "rb").read()
import io
src = io.BytesIO(source)
def peak_kb():
    # VmHWM, not getrusage's ru_maxrss: that one keeps the high-water mark of the parent
    # (pytest) across fork and exec.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # start the high-water mark from the RSS now
base = peak_kb()
out = {}
try:
    out["result"] = getattr(memspace, fn)(mfs, src, "/out", **kwargs)
except Exception as e:
    out["error"] = type(e).__name__
    out["errno"] = getattr(e, "errno", None)
    out["requested"] = getattr(e, "requested", None)
    out["available"] = getattr(e, "available", None)
peak = peak_kb()
out["growth_mb"], out["rss_mb"] = (peak - base) // 1024, peak // 1024
out["unchanged"] = mfs.stats() == before and mfs.listdir("/") == ["keep"]
out["files"] = sorted(len(p) for p in mfs.export_tree("/out"))
print(json.dumps(out))
"""


def _expand(bombs: Path, name: str, fn: str, **kwargs: object) -> dict[str, object]:
    proc = run_child(_CHILD, str(bombs / name), fn, json.dumps(kwargs), timeout=240)
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


FUNCTIONS = ["expand_archive", "expand_archive_streaming"]


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_zip_of_zeros_is_refused_before_it_is_decompressed(bombs: Path, fn: str) -> None:
    out = _expand(bombs, "zeros.zip", fn)
    assert out["error"] == "MFSQuotaExceededError", out
    # The first member's declared size is refused before any of it is read.
    assert out["requested"] == 1 << 30, out
    assert out["available"] == (1 << 20) - 1000 - 128, out
    assert out["unchanged"] is True, out
    assert out["growth_mb"] < MAX_GROWTH_MB, out


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("name", ["liar.zip", "liar-bz2.zip"])
def test_a_member_larger_than_declared_is_never_decompressed_whole(
    bombs: Path, fn: str, name: str
) -> None:
    out = _expand(bombs, name, fn)
    assert out["error"] == "BadZipFile", out
    assert out["unchanged"] is True, out
    assert out["growth_mb"] < MAX_GROWTH_MB, out


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("name", ["deep.tar.gz", "deep.zip"])
def test_a_deep_member_is_refused_by_max_depth(bombs: Path, fn: str, name: str) -> None:
    out = _expand(bombs, name, fn)
    assert out["error"] == "OSError", out
    assert out["errno"] == 36, out  # ENAMETOOLONG
    assert out["unchanged"] is True, out
    assert out["growth_mb"] < MAX_GROWTH_MB, out


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_a_deep_member_without_a_depth_limit_expands_in_linear_memory(bombs: Path, fn: str) -> None:
    # Was SIGABRT ("memory allocation of ... failed"): importing the path was quadratic.
    out = _expand(bombs, "deep.tar.gz", fn, max_depth=None)
    assert "error" not in out, out
    assert out["files"] == [len("/out/" + "a/" * 20_000 + "f")], out
    assert out["growth_mb"] < MAX_GROWTH_MB, out


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_a_tar_header_larger_than_the_quota_is_refused(bombs: Path, fn: str) -> None:
    out = _expand(bombs, "pax.tar.gz", fn)
    assert out["error"] == "MFSQuotaExceededError", out
    assert out["unchanged"] is True, out
    assert out["growth_mb"] < MAX_GROWTH_MB, out


def test_an_honest_archive_that_fits_still_expands(tmp_path: Path) -> None:
    # The bounds refuse nothing that fits: the quota's last byte, a member read in several
    # chunks, bzip2 and LZMA members, and a replaced file whose bytes are given back.
    from memspace import MemoryFileSystem, expand_archive, expand_archive_streaming

    big = bytes(range(256)) * (3 * MiB // 256 + 7)
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w") as zf:
        zf.writestr("d/big", big, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("b", b"B" * 5000, compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("l", b"L" * 5000, compress_type=zipfile.ZIP_LZMA)
    for fn in (expand_archive, expand_archive_streaming):
        quota = len(big) + 10_000 + 3 * 128
        mfs = MemoryFileSystem(max_quota=quota)
        bio.seek(0)
        fn(mfs, bio, "/x")
        assert mfs.export_tree() == {"/x/d/big": big, "/x/b": b"B" * 5000, "/x/l": b"L" * 5000}
        assert mfs.stats()["free_bytes"] == 0
        bio.seek(0)
        with pytest.warns(UserWarning, match="overwritten"):
            fn(mfs, bio, "/x", on_conflict="overwrite")
        assert mfs.stats()["free_bytes"] == 0
