"""MemoryFileSystem companions: text handle, async facade, archives, pytest plugin, fsspec
(with pandas), and a SQLite database kept in the filesystem."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from memspace import (
    ArchiveAdapter,
    AsyncMemoryFileSystem,
    MemoryFileSystem,
    MFSQuotaExceededError,
    MFSTextHandle,
    expand_archive,
    expand_archive_streaming,
)

# --- text handle --------------------------------------------------------------------------
from tests.fs.conftest import FsFactory


def test_text_multibyte_round_trip(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1 << 20)
    text = "こんにちは世界\nnaïve café ☕\n𝄞 clef\n"
    with mfs.open("/t.txt", "wb") as f:
        th = MFSTextHandle(f)
        assert th.write(text) == len(text)
        assert (th.encoding, th.errors) == ("utf-8", "strict")
    assert mfs.get_size("/t.txt") == len(text.encode())
    with mfs.open("/t.txt", "rb") as f, MFSTextHandle(f) as th:
        assert th.read(3) == "こんに"
        assert f.tell() == 9  # read no further than the characters it returned
        assert th.readline() == "ちは世界\n"
        assert th.read(5) == "naïve"
        assert list(th) == [" café ☕\n", "𝄞 clef\n"]
        assert th.read() == ""
        assert th.readline() == ""
    assert f.closed  # leaving the text handle's block did not close it; the `with` did


def test_text_line_endings(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1 << 20)
    with mfs.open("/e.txt", "wb") as f:
        f.write(b"a\r\nb\rc\nd\r")
    with mfs.open("/e.txt", "rb") as f:
        assert list(MFSTextHandle(f)) == ["a\r\n", "b\r", "c\n", "d\r"]
    with mfs.open("/e.txt", "rb") as f:
        th = MFSTextHandle(f)
        assert th.readline(1) == "a"
        assert th.readline() == "\r\n"
        assert th.read() == "b\rc\nd\r"


@pytest.mark.parametrize("encoding", ["utf-16", "shift_jis", "latin-1"])
def test_text_other_encodings(fs_factory: FsFactory, encoding: str) -> None:
    mfs = fs_factory(max_quota=1 << 20)
    lines = (
        ["première\r\n", "ligne\r", "end\n"]
        if encoding == "latin-1"
        else ["日本\r\n", "語\r", "x\n"]
    )
    with mfs.open("/x.txt", "wb") as f:
        MFSTextHandle(f, encoding=encoding).write("".join(lines))
    with mfs.open("/x.txt", "rb") as f:
        assert list(MFSTextHandle(f, encoding=encoding)) == lines
    with mfs.open("/x.txt", "rb") as f:
        assert MFSTextHandle(f, encoding=encoding).read() == "".join(lines)


def test_text_write_respects_quota(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=200)
    with mfs.open("/q.txt", "wb") as f:
        th = MFSTextHandle(f)
        th.write("é" * 30)  # 60 bytes + 128 overhead
        with pytest.raises(MFSQuotaExceededError):
            th.write("x")


# --- async ------------------------------------------------------------------------------


def test_async_round_trip_and_gather() -> None:
    async def main() -> None:
        afs = AsyncMemoryFileSystem(max_quota=8 << 20)
        await afs.mkdir("/w")

        async def writer(i: int) -> None:
            async with await afs.open(f"/w/{i}.bin", "wb") as f:
                for _ in range(10):
                    await f.write(bytes([i]) * 1000)
                assert await f.tell() == 10_000

        await asyncio.gather(*(writer(i) for i in range(20)))
        assert sorted(await afs.listdir("/w")) == sorted(f"{i}.bin" for i in range(20))
        async with await afs.open("/w/7.bin") as f:
            assert await f.readable()
            assert not await f.writable()
            assert await f.seekable()
            await f.seek(5)
            assert await f.read(3) == b"\x07" * 3
        exported = await afs.export_tree("/w")
        assert all(v == bytes([int(k[3:-4])]) * 10_000 for k, v in exported.items())
        assert (await afs.stat("/w/1.bin"))["size"] == 10_000
        assert (await afs.stats())["file_count"] == 20
        assert await afs.get_size("/w/2.bin") == 10_000
        assert await afs.exists("/w")
        assert await afs.is_dir("/w")
        assert await afs.is_file("/w/3.bin")
        assert (await afs.export_as_bytesio("/w/4.bin")).read(1) == b"\x04"
        await afs.copy("/w/1.bin", "/c.bin")
        await afs.copy_tree("/w", "/w2")
        await afs.rename("/c.bin", "/d.bin")
        await afs.move("/d.bin", "/m/d.bin")
        await afs.remove("/m/d.bin")
        await afs.rmtree("/w2")
        await afs.import_tree({"/i/a": b"1"})
        assert await afs.glob("/i/*") == ["/i/a"]
        assert (await afs.walk("/i")) == [("/i", [], ["a"])]
        async with await afs.open("/i/a", "r+b") as f:
            assert await f.truncate(0) == 0
            await f.flush()

    asyncio.run(main())


# --- archives -----------------------------------------------------------------------------


def _zip(entries: dict[str, bytes]) -> io.BytesIO:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w") as zf:
        zf.writestr("dir/", b"")
        for name, data in entries.items():
            zf.writestr(name, data)
    bio.seek(0)
    return bio


def _tar(entries: dict[str, bytes]) -> io.BytesIO:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    bio.seek(0)
    return bio


@pytest.mark.parametrize("make", [_zip, _tar])
def test_expand_archive(make: object, fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    src = make({"a.txt": b"A", "sub/b.txt": b"B", "../../evil": b"E", "/abs/c": b"C"})  # type: ignore[operator]
    expand_archive(mfs, src, "/out")
    assert mfs.export_tree() == {
        "/out/a.txt": b"A",
        "/out/sub/b.txt": b"B",
        "/out/evil": b"E",
        "/out/abs/c": b"C",
    }
    src.seek(0)
    with pytest.raises(FileExistsError):
        expand_archive(mfs, src, "/out")
    src.seek(0)
    with pytest.warns(UserWarning, match="overwritten"):
        expand_archive(mfs, src, "/out", on_conflict="overwrite")
    with pytest.raises(ValueError, match="on_conflict"):
        expand_archive(mfs, src, "/out", on_conflict="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="No registered adapter"):
        expand_archive(mfs, io.BytesIO(b"not an archive"))


def test_expand_archive_is_atomic_on_quota(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1000)
    with pytest.raises(MFSQuotaExceededError):
        expand_archive(mfs, _zip({"a": b"a" * 100, "b": b"b" * 900}))
    assert mfs.listdir("/") == []
    assert mfs.stats()["used_bytes"] == 0


def test_expand_archive_streaming(fs_factory: FsFactory) -> None:
    mfs = fs_factory()
    mfs.mkdir("/out")
    with mfs.open("/out/a.txt", "wb") as f:
        f.write(b"old")
    assert (
        expand_archive_streaming(
            mfs, _tar({"a.txt": b"A", "b/c": b"C"}), "/out", on_conflict="skip"
        )
        == 1
    )
    assert mfs.export_tree("/out") == {"/out/a.txt": b"old", "/out/b/c": b"C"}
    with pytest.raises(FileExistsError):
        expand_archive_streaming(mfs, _zip({"a.txt": b"A"}), "/out")
    mfs.mkdir("/out/d")
    with pytest.raises(IsADirectoryError):
        expand_archive_streaming(mfs, _zip({"d": b"D"}), "/out", on_conflict="overwrite")
    with pytest.raises(ValueError, match="on_conflict"):
        expand_archive_streaming(mfs, _zip({}), on_conflict="merge")  # type: ignore[arg-type]


def test_custom_adapter_and_path_source(tmp_path: Path, fs_factory: FsFactory) -> None:
    class Listing(ArchiveAdapter):
        def __init__(self, source: str | io.BytesIO) -> None:
            self.source = source

        def members(self):  # type: ignore[no-untyped-def]
            yield "x/y.txt", b"Y"

        @classmethod
        def _can_handle_impl(cls, source: str | io.BytesIO) -> bool:
            raise RuntimeError("detection errors mean 'no'")

    assert Listing.can_handle(io.BytesIO(b"")) is False
    mfs = fs_factory()
    expand_archive(mfs, io.BytesIO(b""), adapter=Listing(io.BytesIO(b"")))
    assert mfs.export_tree() == {"/x/y.txt": b"Y"}
    p = tmp_path / "a.zip"
    p.write_bytes(_zip({"z": b"Z"}).getvalue())
    expand_archive(mfs, str(p), "/fromfile")
    assert mfs.export_tree("/fromfile") == {"/fromfile/z": b"Z"}


# --- pytest plugin --------------------------------------------------------------------------


def test_plugin_fixture(mfs: MemoryFileSystem) -> None:
    assert isinstance(mfs, MemoryFileSystem)
    assert mfs.stats()["quota_bytes"] == 1024 * 1024


def test_plugin_is_opt_in_through_pytest_plugins(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["memspace.pytest_plugin"]\n')
    (tmp_path / "test_it.py").write_text(
        textwrap.dedent(
            """
            def test_uses_fixture(mfs):
                with mfs.open("/a", "wb") as f:
                    f.write(b"x")
                assert mfs.export_tree() == {"/a": b"x"}
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


# --- SQLite ---------------------------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(sqlite3.Connection, "serialize"), reason="sqlite3 serialize() needs Python 3.11"
)
def test_sqlite_serialize_deserialize_round_trip(fs_factory: FsFactory) -> None:
    mfs = fs_factory(max_quota=1 << 20)
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text)")
    db.executemany("insert into t (v) values (?)", [(f"value {i} ü",) for i in range(500)])
    db.commit()
    image = db.serialize()
    db.close()
    mfs.mkdir("/db")
    with mfs.open("/db/app.sqlite", "wb") as f:
        f.write(image)
    restored = sqlite3.connect(":memory:")
    restored.deserialize(mfs.export_as_bytesio("/db/app.sqlite").getvalue())
    rows = restored.execute("select count(*), min(v), max(k) from t").fetchone()
    assert rows == (500, "value 0 ü", 500)
    restored.execute("insert into t (v) values ('new')")
    restored.commit()
    with mfs.open("/db/app.sqlite", "wb") as f:
        f.write(restored.serialize())
    restored.close()
    again = sqlite3.connect(":memory:")
    with mfs.open("/db/app.sqlite", "rb") as f:
        again.deserialize(f.read())
    assert again.execute("select count(*) from t").fetchone() == (501,)
    again.close()


# --- fsspec + pandas ------------------------------------------------------------------------


def test_fsspec_protocol_is_registered_and_instances_are_separate(fs_factory: FsFactory) -> None:
    fsspec = pytest.importorskip("fsspec")
    from memspace.fs._fsspec import MemspaceFileSystem

    assert fsspec.get_filesystem_class("memspace") is MemspaceFileSystem
    a = fs_factory()
    b = fs_factory()
    fa = fsspec.filesystem("memspace", mfs=a)
    fb = fsspec.filesystem("memspace", mfs=b)
    fa.pipe("/x/y.bin", b"data")
    assert a.export_tree() == {"/x/y.bin": b"data"}
    assert b.export_tree() == {}
    assert not fb.exists("/x/y.bin")
    assert fa.cat("memspace:///x/y.bin") == b"data"
    assert fa.info("/x/y.bin")["size"] == 4
    assert fa.ls("/x", detail=False) == ["/x/y.bin"]
    assert fa.isdir("/x")
    assert fa.isfile("/x/y.bin")
    fa.cp_file("/x/y.bin", "/x/z.bin")
    fa.mv("/x/z.bin", "/w/z.bin")
    assert sorted(fa.find("/")) == ["/w/z.bin", "/x/y.bin"]
    fa.rm("/w", recursive=True)
    assert not fa.exists("/w")
    with fa.open("/t.txt", "w") as f:
        f.write("text ü\n")
    with fa.open("/t.txt", "r") as f:
        assert f.read() == "text ü\n"
    assert fa.modified("/t.txt").year >= 2024


def test_pandas_through_fsspec(fs_factory: FsFactory) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("fsspec")
    mfs = fs_factory()
    df = pd.DataFrame({"a": range(100), "b": [f"s{i}" for i in range(100)]})
    df.to_csv("memspace://data/frame.csv", index=False, storage_options={"mfs": mfs})
    assert mfs.is_file("/data/frame.csv")
    back = pd.read_csv("memspace://data/frame.csv", storage_options={"mfs": mfs})
    pd.testing.assert_frame_equal(back, df)
    df.to_json("memspace://data/frame.json", storage_options={"mfs": mfs})
    back = pd.read_json("memspace://data/frame.json", storage_options={"mfs": mfs})
    pd.testing.assert_frame_equal(back, df)
