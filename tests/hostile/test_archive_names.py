"""Archive member names are hostile input (issue #11): whatever names a zip or tar holds,
`expand_archive` and `expand_archive_streaming` write only below `dest`, with clean paths, or
raise a clean exception. Hypothesis drives the names; ``MEMSPACE_FUZZ_EXAMPLES`` (default 150)
sets how many archives each test tries (``make fuzz`` runs more)."""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import warnings
import zipfile

import hypothesis.strategies as st
import memspace
from hypothesis import HealthCheck, given, settings
from memspace import MemoryFileSystem, expand_archive, expand_archive_streaming

EXAMPLES = int(os.environ.get("MEMSPACE_FUZZ_EXAMPLES", "150"))

# What an archive may make an expansion raise: a name that collides after sanitising, a file
# where a directory must go (or the reverse), a quota; never anything else.
CLEAN = (OSError, ValueError, memspace.MemspaceError)

# Names built from the pieces that matter (separators, dots, drive letters, NUL, non-ASCII),
# and from any text at all.
_piece = st.sampled_from(
    ["", ".", "..", "...", "/", "//", "\\", "a", "b", "C:", "~", "\x00", "é", " ", "a/..", "..\\"]
)
names = st.one_of(
    st.lists(_piece, min_size=1, max_size=8).map("".join),
    st.lists(_piece, min_size=1, max_size=6).map("/".join),
    st.text(max_size=40),
)
dests = st.sampled_from(["/", "/dest", "/dest/", "dest/sub", "/a/../dest"])


def _zip(members: list[str]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, n in enumerate(members):
            zf.writestr(zipfile.ZipInfo(n), f"{i}".encode())
    buf.seek(0)
    return buf


def _tar(members: list[str]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i, n in enumerate(members):
            data = f"{i}".encode()
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _files(mfs: MemoryFileSystem) -> list[str]:
    return [p for p in mfs.glob("/**") if mfs.is_file(p)]


def _check_below(mfs: MemoryFileSystem, dest: str) -> None:
    base = "/" + posixpath.normpath("/" + dest).strip("/")  # normpath keeps a leading "//"
    base = base.rstrip("/")
    for path in _files(mfs):
        parts = path.split("/")[1:]
        assert all(p not in ("", ".", "..") for p in parts), path
        assert path.startswith(base + "/"), (path, dest)


def _archive(fmt: str, members: list[str]) -> io.BytesIO | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about duplicate names
            return _zip(members) if fmt == "zip" else _tar(members)
    except (ValueError, UnicodeEncodeError):
        return None  # the format cannot hold such a name (e.g. NUL in a zip name)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=st.lists(names, min_size=1, max_size=8),
    dest=dests,
    fmt=st.sampled_from(["zip", "tar"]),
)
def test_expand_archive_writes_only_below_dest(members: list[str], dest: str, fmt: str) -> None:
    src = _archive(fmt, members)
    if src is None:
        return
    mfs = MemoryFileSystem()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overwrite" warns about duplicate names
            expand_archive(mfs, src, dest, on_conflict="overwrite")
    except CLEAN:
        assert _files(mfs) == [], "expand_archive is all or nothing"
    _check_below(mfs, dest)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=st.lists(names, min_size=1, max_size=8),
    dest=dests,
    fmt=st.sampled_from(["zip", "tar"]),
    on_conflict=st.sampled_from(["raise", "overwrite", "skip"]),
)
def test_streaming_expansion_writes_only_below_dest(
    members: list[str], dest: str, fmt: str, on_conflict: str
) -> None:
    src = _archive(fmt, members)
    if src is None:
        return
    mfs = MemoryFileSystem()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overwrite" warns about duplicate names
            n = expand_archive_streaming(mfs, src, dest, on_conflict=on_conflict)  # type: ignore[arg-type]
    except CLEAN:
        pass  # partial results stay; they must be below dest too
    else:
        assert n >= len(_files(mfs))
    _check_below(mfs, dest)


def test_an_empty_member_name_is_skipped() -> None:
    """Found by the test above: a zip member named "" made both expansions raise IndexError
    (from zipfile.ZipInfo.is_dir) instead of skipping it like any name that is no path."""
    buf = _zip(["", "a"])
    mfs = MemoryFileSystem()
    expand_archive(mfs, buf, "/d")
    assert _files(mfs) == ["/d/a"]
    buf.seek(0)
    mfs = MemoryFileSystem()
    assert expand_archive_streaming(mfs, buf, "/e") == 1
    assert _files(mfs) == ["/e/a"]
