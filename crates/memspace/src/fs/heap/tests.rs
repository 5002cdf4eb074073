use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::fs::{FsError, SharedBytes};
use crate::Error;

struct Shared(Vec<u8>);

impl SharedBytes for Shared {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn fs_with(quota: u64) -> MemoryFileSystem {
    MemoryFileSystem::new(FsOptions::new().max_quota(quota))
}

fn put(fs: &MemoryFileSystem, path: &str, data: &[u8]) -> Result<()> {
    let mut f = fs.open(path, OpenMode::Write, 0, None)?;
    f.write(data)?;
    Ok(())
}

fn fs_err<T: std::fmt::Debug>(r: Result<T>) -> FsError {
    match r {
        Err(Error::Fs(e)) => e,
        other => panic!("expected a filesystem error, got {other:?}"),
    }
}

fn get(fs: &MemoryFileSystem, path: &str) -> Vec<u8> {
    fs.open(path, OpenMode::Read, 0, None)
        .unwrap()
        .read_to_end()
        .unwrap()
}

#[test]
fn tree_basics() {
    let fs = fs_with(1 << 20);
    fs.mkdir("/a/b/c", false).unwrap();
    assert!(matches!(
        fs.mkdir("/a/b", false),
        Err(Error::Fs(FsError::PathExists { .. }))
    ));
    fs.mkdir("/a/b", true).unwrap();
    put(&fs, "/a/b/f.txt", b"x").unwrap();
    assert!(matches!(
        fs.mkdir("/a/b/f.txt/d", true),
        Err(Error::Fs(FsError::PathExists { .. }))
    ));
    assert_eq!(fs.listdir("/a/b").unwrap(), ["c", "f.txt"]);
    assert!(fs.is_dir("/a") && fs.is_file("/a/b/f.txt") && !fs.exists("/../x"));
    assert!(matches!(
        fs.remove("/a"),
        Err(Error::Fs(FsError::IsADirectory { .. }))
    ));
    assert!(matches!(
        fs.rmtree("/a/b/f.txt"),
        Err(Error::Fs(FsError::NotADirectory { .. }))
    ));
    assert!(matches!(
        fs.rmtree("/"),
        Err(Error::Fs(FsError::RootOperation { .. }))
    ));
    fs.rename("/a/b", "/a/z").unwrap();
    assert_eq!(get(&fs, "/a/z/f.txt"), b"x");
    assert!(matches!(
        fs.rename("/a", "/a/z/q"),
        Err(Error::Fs(FsError::IntoOwnSubtree { .. }))
    ));
    assert!(matches!(
        fs.rename("/a/z", "/n/m"),
        Err(Error::Fs(FsError::NoSuchPath { .. }))
    ));
    fs.move_path("/a/z", "/n/m").unwrap();
    assert!(fs.is_file("/n/m/f.txt"));
    fs.rmtree("/n").unwrap();
    fs.rmtree("/a").unwrap();
    assert_eq!(fs.stats().used_bytes, 0);
    assert_eq!(fs.stats().dir_count, 1);
}

#[test]
fn quota_boundary_is_exact() {
    let fs = fs_with(1000);
    put(&fs, "/a", &[7; 1000 - 128]).unwrap();
    assert_eq!(fs.stats().free_bytes, 0);
    let mut f = fs.open("/a", OpenMode::Append, 0, None).unwrap();
    let err = f.write(b"y").unwrap_err();
    assert!(matches!(
        err,
        Error::Fs(FsError::QuotaExceeded {
            requested: 129,
            available: 0
        })
    ));
    drop(f);
    assert_eq!(fs.get_size("/a").unwrap(), 872);
    fs.remove("/a").unwrap();
    assert_eq!(fs.stats().used_bytes, 0);
}

#[test]
fn node_limit_nested_mkdir_leaves_nothing() {
    let fs = MemoryFileSystem::new(FsOptions::new().max_nodes(Some(3)));
    assert!(matches!(
        fs.mkdir("/a/b/c", false),
        Err(Error::Fs(FsError::NodeLimitExceeded { .. }))
    ));
    assert!(!fs.exists("/a"));
    fs.mkdir("/a/b", false).unwrap();
    assert!(matches!(
        put(&fs, "/a/x", b""),
        Err(Error::Fs(FsError::NodeLimitExceeded { .. }))
    ));
}

#[test]
fn import_tree_is_all_or_nothing() {
    let fs = fs_with(1000);
    put(&fs, "/keep", b"k").unwrap();
    let before = fs.stats();
    let big = vec![0u8; 900];
    let r = fs.import_tree([("/x/a", &b"1"[..]), ("/x/b", &big[..])]);
    assert!(matches!(r, Err(Error::Fs(FsError::QuotaExceeded { .. }))));
    assert!(!fs.exists("/x"));
    assert_eq!(fs.stats(), before);
    fs.import_tree([("/x/a", &b"1"[..]), ("/keep", &b"new"[..])])
        .unwrap();
    assert_eq!(get(&fs, "/keep"), b"new");
    assert_eq!(fs.stat("/keep").unwrap().generation, 0);
    let _h = fs.open("/keep", OpenMode::Read, 0, None).unwrap();
    assert!(matches!(
        fs.import_tree([("/keep", &b"z"[..])]),
        Err(Error::Fs(FsError::FileBusy { .. }))
    ));
}

#[test]
fn copy_tree_into_own_subtree_and_exact_used() {
    let fs = fs_with(1 << 20);
    fs.mkdir("/s", false).unwrap();
    put(&fs, "/s/a", b"hello").unwrap();
    {
        let mut f = fs.open("/s/b", OpenMode::Write, 0, None).unwrap();
        f.write(b"xx").unwrap();
        f.write(b"yy").unwrap();
    }
    fs.copy_tree("/s", "/s/copy").unwrap();
    assert_eq!(get(&fs, "/s/copy/b"), b"xxyy");
    assert!(!fs.exists("/s/copy/copy"));
    fs.copy("/s/a", "/c").unwrap();
    fs.rmtree("/s").unwrap();
    fs.remove("/c").unwrap();
    assert_eq!(fs.stats().used_bytes, 0);
}

#[test]
fn glob_matches_once_sorted() {
    let fs = fs_with(1 << 20);
    for p in [
        "/a.txt",
        "/d/b.txt",
        "/d/e/c.txt",
        "/d/e/x.bin",
        "/d/q1",
        "/d/q2",
    ] {
        fs.mkdir(&p[..p.rfind('/').unwrap().max(1)], true).unwrap();
        put(&fs, p, b"").unwrap();
    }
    assert_eq!(
        fs.glob("/**/*.txt").unwrap(),
        ["/a.txt", "/d/b.txt", "/d/e/c.txt"]
    );
    assert_eq!(
        fs.glob("/d/*").unwrap(),
        ["/d/b.txt", "/d/e", "/d/q1", "/d/q2"]
    );
    assert_eq!(fs.glob("/d/q?").unwrap(), ["/d/q1", "/d/q2"]);
    assert_eq!(fs.glob("/d/q[1]").unwrap(), ["/d/q1"]);
    assert_eq!(fs.glob("/d/**").unwrap().len(), 6);
}

#[test]
fn lock_timeout_does_not_block_other_operations() {
    let fs = fs_with(1 << 20);
    put(&fs, "/f", b"1").unwrap();
    let w = fs.open("/f", OpenMode::Write, 0, None).unwrap();
    let fs2 = fs.clone();
    let t =
        thread::spawn(move || fs2.open("/f", OpenMode::Read, 0, Some(Duration::from_millis(300))));
    thread::sleep(Duration::from_millis(50));
    // The tree is free while the other thread waits.
    fs.mkdir("/other", false).unwrap();
    put(&fs, "/other/g", b"2").unwrap();
    assert!(matches!(
        t.join().unwrap(),
        Err(Error::Fs(FsError::LockTimeout { .. }))
    ));
    assert!(matches!(
        fs.remove("/f"),
        Err(Error::Fs(FsError::FileBusy { .. }))
    ));
    // The snapshot does not wait for the writer.
    assert_eq!(fs.read_file("/f").unwrap(), b"");
    drop(w);
    fs.remove("/f").unwrap();
}

/// Holds `path` open in `mode` on another thread until the returned sender is dropped.
fn hold(
    fs: &MemoryFileSystem,
    path: &str,
    mode: OpenMode,
) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (fs, path) = (fs.clone(), path.to_owned());
    let t = thread::spawn(move || {
        let _h = fs.open(&path, mode, 0, None).unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    (release_tx, t)
}

#[test]
fn interrupting_a_blocked_open() {
    let fs = fs_with(1 << 20);
    put(&fs, "/f", b"1").unwrap();
    // `ab` takes the exclusive lock without emptying the file.
    let (release, holder) = hold(&fs, "/f", OpenMode::Append);
    let mut calls = 0;
    // A long timeout as a watchdog: if the check were never run, this fails, not hangs.
    let r = fs.open_with(
        "/f",
        OpenMode::Read,
        0,
        Some(Duration::from_secs(30)),
        &mut || {
            calls += 1;
            calls == 2
        },
    );
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    assert_eq!(calls, 2);
    // Nothing changed: the writer still holds the file; once it lets go, a reader gets in.
    assert!(matches!(
        fs.open("/f", OpenMode::Read, 0, Some(Duration::ZERO)),
        Err(Error::Fs(FsError::LockTimeout { .. }))
    ));
    drop(release);
    holder.join().unwrap();
    assert_eq!(
        fs.open_with("/f", OpenMode::Read, 0, None, &mut || true)
            .unwrap()
            .read_to_end()
            .unwrap(),
        b"1"
    );
}

#[test]
fn an_interrupted_writer_stops_holding_readers_back() {
    let fs = fs_with(1 << 20);
    put(&fs, "/f", b"1").unwrap();
    let (release, holder) = hold(&fs, "/f", OpenMode::Read);
    let r = fs.open_with(
        "/f",
        OpenMode::Write,
        0,
        Some(Duration::from_secs(30)),
        &mut || true,
    );
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    // The writer no longer waits, so a new reader is not held back behind it.
    let r2 = fs
        .open("/f", OpenMode::Read, 0, Some(Duration::ZERO))
        .unwrap();
    drop(r2);
    drop(release);
    holder.join().unwrap();
    // The write was never applied: the file is as it was.
    assert_eq!(get(&fs, "/f"), b"1");
}

#[test]
fn handle_modes_and_seek() {
    let fs = fs_with(1 << 20);
    assert!(matches!(
        fs.open("/nope", OpenMode::Read, 0, None),
        Err(Error::Fs(FsError::NoSuchPath { .. }))
    ));
    let mut f = fs.open("/f", OpenMode::CreateNew, 4, None).unwrap();
    assert!(matches!(
        f.read_into(&mut [0u8; 1][..]),
        Err(Error::Fs(FsError::NotReadable { .. }))
    ));
    f.seek(2, 0).unwrap();
    f.write(b"ab").unwrap();
    assert!(f.seek(1, 2).is_err());
    f.close();
    assert!(f.write(b"x").is_err());
    assert_eq!(get(&fs, "/f"), b"\0\0ab");
    assert!(matches!(
        fs.open("/f", OpenMode::CreateNew, 0, None),
        Err(Error::Fs(FsError::PathExists { .. }))
    ));
    let mut f = fs.open("/f", OpenMode::ReadWrite, 0, None).unwrap();
    f.truncate(Some(1)).unwrap();
    f.seek(0, 2).unwrap();
    f.write(b"Z").unwrap();
    drop(f);
    assert_eq!(get(&fs, "/f"), b"\0Z");
}

#[derive(Debug, Clone)]
enum Op {
    Write(u8, Vec<u8>),
    Append(u8, Vec<u8>),
    AppendShared(u8, Vec<u8>),
    Patch(u8, u16, Vec<u8>),
    Truncate(u8, u16),
    Remove(u8),
    CopyDir,
    Import(Vec<(u8, Vec<u8>)>),
    RmDir,
}

fn op() -> impl Strategy<Value = Op> {
    let data = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (0..6u8, data.clone()).prop_map(|(i, d)| Op::Write(i, d)),
        (0..6u8, data.clone()).prop_map(|(i, d)| Op::Append(i, d)),
        (0..6u8, data.clone()).prop_map(|(i, d)| Op::AppendShared(i, d)),
        (0..6u8, 0..400u16, data.clone()).prop_map(|(i, o, d)| Op::Patch(i, o, d)),
        (0..6u8, 0..400u16).prop_map(|(i, n)| Op::Truncate(i, n)),
        (0..6u8).prop_map(Op::Remove),
        Just(Op::CopyDir),
        proptest::collection::vec((0..6u8, data), 0..4).prop_map(Op::Import),
        Just(Op::RmDir),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Against a plain map: contents agree, `used` never exceeds the quota, and deleting
    /// everything brings `used` back to exactly 0.
    #[test]
    fn model_with_quota(ops in proptest::collection::vec(op(), 1..40), quota in 500u64..4000) {
        let fs = fs_with(quota);
        fs.mkdir("/d", false).unwrap();
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let path = |i: u8| format!("/d/f{i}");
        for op in ops {
            match op {
                Op::Write(i, d) => {
                    if put(&fs, &path(i), &d).is_ok() {
                        model.insert(path(i), d);
                    } else {
                        // `wb` truncated before the write failed.
                        model.insert(path(i), Vec::new());
                    }
                }
                Op::Append(i, d) => {
                    let mut f = fs.open(&path(i), OpenMode::Append, 0, None).unwrap();
                    let e = model.entry(path(i)).or_default();
                    if f.write(&d).is_ok() { e.extend_from_slice(&d); }
                }
                Op::AppendShared(i, d) => {
                    let mut f = fs.open(&path(i), OpenMode::Append, 0, None).unwrap();
                    let e = model.entry(path(i)).or_default();
                    if f.write_shared(Arc::new(Shared(d.clone()))).is_ok() { e.extend_from_slice(&d); }
                }
                Op::Patch(i, o, d) => {
                    if let Ok(mut f) = fs.open(&path(i), OpenMode::ReadWrite, 0, None) {
                        f.seek(i64::from(o), 0).unwrap();
                        if f.write(&d).is_ok() && !d.is_empty() {
                            let e = model.get_mut(&path(i)).unwrap();
                            let end = usize::from(o) + d.len();
                            if e.len() < end { e.resize(end, 0); }
                            e[usize::from(o)..end].copy_from_slice(&d);
                        }
                    }
                }
                Op::Truncate(i, n) => {
                    if let Ok(mut f) = fs.open(&path(i), OpenMode::ReadWrite, 0, None) {
                        if f.truncate(Some(u64::from(n))).is_ok() {
                            model.get_mut(&path(i)).unwrap().resize(usize::from(n), 0);
                        }
                    }
                }
                Op::Remove(i) => {
                    prop_assert_eq!(fs.remove(&path(i)).is_ok(), model.remove(&path(i)).is_some());
                }
                Op::CopyDir => {
                    if fs.copy_tree("/d", "/e").is_ok() {
                        let copy = fs.export_tree("/e", false).unwrap();
                        prop_assert_eq!(copy.len(), model.len());
                        fs.rmtree("/e").unwrap();
                    }
                }
                Op::Import(entries) => {
                    let owned: Vec<(String, Vec<u8>)> =
                        entries.into_iter().map(|(i, d)| (path(i), d)).collect();
                    let r = fs.import_tree(owned.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
                    if r.is_ok() {
                        for (p, d) in owned { model.insert(p, d); }
                    }
                }
                Op::RmDir => {
                    fs.rmtree("/d").unwrap();
                    fs.mkdir("/d", false).unwrap();
                    model.clear();
                }
            }
            let st = fs.stats();
            prop_assert!(st.used_bytes <= quota);
            prop_assert_eq!(st.used_bytes + st.free_bytes, quota);
            let exported: BTreeMap<String, Vec<u8>> = fs.export_tree("/", false).unwrap().into_iter().collect();
            prop_assert_eq!(&exported, &model);
        }
        fs.rmtree("/d").unwrap();
        prop_assert_eq!(fs.stats().used_bytes, 0);
    }
}

#[test]
fn a_new_file_needs_a_directory_for_parent() {
    let fs = fs_with(1 << 20);
    fs.open("/f", OpenMode::CreateNew, 0, None).unwrap();
    assert!(matches!(
        fs.open("/f/g", OpenMode::CreateNew, 0, None),
        Err(Error::Fs(FsError::NoParentDirectory { parent_is_file: true, ref parent, .. })) if parent == "/f"
    ));
    assert!(matches!(
        fs.open("/d/g", OpenMode::CreateNew, 0, None),
        Err(Error::Fs(FsError::NoParentDirectory { parent_is_file: false, ref parent, .. })) if parent == "/d"
    ));
}

/// The old recursive glob, kept as the reference for what the automaton must return.
fn glob_reference(fs: &MemoryFileSystem, pattern: &str) -> Vec<String> {
    fn rec(fs: &MemoryFileSystem, path: &str, parts: &[String], root: bool, out: &mut Vec<String>) {
        let Some((first, rest)) = parts.split_first() else {
            if !root {
                out.push(path.to_owned());
            }
            return;
        };
        let Ok((dirs, files)) = fs.scandir(path) else {
            return;
        };
        let join = |n: &str| format!("{}/{n}", path.trim_end_matches('/'));
        let mut all: Vec<(String, bool)> = dirs.iter().map(|d| (d.clone(), true)).collect();
        all.extend(files.iter().map(|f| (f.clone(), false)));
        if first == "**" {
            if rest.is_empty() {
                for (n, is_dir) in &all {
                    out.push(join(n));
                    if *is_dir {
                        rec(fs, &join(n), parts, false, out);
                    }
                }
                return;
            }
            rec(fs, path, rest, root, out);
            for d in &dirs {
                rec(fs, &join(d), parts, false, out);
            }
        } else {
            for (n, _) in &all {
                if glob::fnmatch(n, first) {
                    rec(fs, &join(n), rest, false, out);
                }
            }
        }
    }
    let parts = glob::pattern_components(pattern);
    let mut out = Vec::new();
    if !parts.is_empty() {
        rec(fs, "/", &parts, true, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// The automaton returns what trying every split returns (sorted, each once), for names
    /// that sort around `/` (`a` < `a-` < `a/...` < `a0`).
    #[test]
    fn glob_matches_the_recursive_definition(
        paths in proptest::collection::vec(
            proptest::collection::vec(
                proptest::sample::select(vec!["a", "a-", "a0", "b", "ab"]), 1..5),
            1..12),
        pattern in proptest::collection::vec(
            proptest::sample::select(vec!["**", "a", "a*", "*", "?", "a[-0]", "b", "*b"]), 1..6),
    ) {
        let fs = fs_with(1 << 20);
        for p in &paths {
            let (name, parents) = p.split_last().unwrap();
            let dir = format!("/{}", parents.join("/"));
            if fs.mkdir(&dir, true).is_ok() && !fs.exists(&format!("{dir}/{name}")) {
                let _ = put(&fs, &format!("{}/{name}", dir.trim_end_matches('/')), b"");
            }
        }
        let pattern = format!("/{}", pattern.join("/"));
        prop_assert_eq!(fs.glob(&pattern).unwrap(), glob_reference(&fs, &pattern));
        let files = fs.file_paths("/", false).unwrap();
        let mut sorted = files.clone();
        sorted.sort();
        prop_assert_eq!(files, sorted);
    }
}

/// Deep trees: nothing recurses (a test thread's stack is 2 MiB, which the old recursive
/// walks overflowed long before this depth) and nothing is quadratic in the depth.
#[test]
fn a_deep_chain_survives_every_operation() {
    const DEPTH: usize = 100_000;
    let fs = fs_with(1 << 20);
    let chain = "/a".repeat(DEPTH);
    fs.mkdir(&chain, false).unwrap();
    put(&fs, &format!("{chain}/f"), b"deep").unwrap();
    assert_eq!(fs.glob("/**/f").unwrap(), [format!("{chain}/f")]);
    assert_eq!(
        fs.glob(&format!("{}/f", "/**".repeat(20))).unwrap(),
        [format!("{chain}/f")]
    );
    assert_eq!(fs.file_paths("/a", false).unwrap(), [format!("{chain}/f")]);
    fs.copy_tree("/a", "/b").unwrap();
    assert_eq!(fs.stats().dir_count, 2 * DEPTH as u64 + 1);
    {
        let _open = fs
            .open(&format!("{chain}/f"), OpenMode::Read, 0, None)
            .unwrap();
        assert_eq!(
            fs_err(fs.rmtree("/a")),
            FsError::FileBusy {
                path: format!("{chain}/f")
            }
        );
        assert!(matches!(
            fs.rename("/a", "/c"),
            Err(Error::Fs(FsError::FileBusy { .. }))
        ));
    }
    fs.rename("/b", "/c").unwrap();
    fs.move_path("/c", "/d/e").unwrap();
    let exported = fs.export_tree("/d", false).unwrap();
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].1, b"deep");
    fs.rmtree("/d").unwrap();
    fs.rmtree("/a").unwrap();
    let st = fs.stats();
    assert_eq!((st.used_bytes, st.dir_count, st.file_count), (0, 1, 0));
    // Importing a deep path (as an archive would) is linear too, and so is dropping it all.
    let deep = format!("{}/f", "/x".repeat(DEPTH));
    fs.import_tree([(deep.as_str(), &b"1"[..])]).unwrap();
    assert_eq!(fs.read_file(&deep).unwrap(), b"1");
    drop(fs);
}

#[test]
fn import_tree_refuses_a_target_that_another_needs_as_a_directory() {
    let fs = fs_with(1 << 20);
    for entries in [
        [("/n/a", &b"1"[..]), ("/n/a/b", b"2")],
        [("/n/a/b", b"2"), ("/n/a", b"1")],
    ] {
        assert_eq!(
            fs_err(fs.import_tree(entries)),
            FsError::PathExists {
                path: "/n/a".to_owned()
            }
        );
        assert!(!fs.exists("/n"));
    }
    fs.import_tree([("/n/a/b", &b"2"[..]), ("/n/a/c", b"3"), ("/n/d", b"4")])
        .unwrap();
    assert_eq!(fs.stats().dir_count, 3);
    assert_eq!(fs.listdir("/n/a").unwrap(), ["b", "c"]);
}

#[test]
fn scandir_tokens_go_stale_when_the_shape_changes() {
    let fs = fs_with(1 << 20);
    fs.mkdir("/a/b", false).unwrap();
    fs.mkdir("/z", false).unwrap();
    let (a, dirs, _) = fs.scandir_from(None, "/a").unwrap();
    assert_eq!(dirs, ["b"]);
    // Adding nodes keeps the token.
    fs.mkdir("/a/c", false).unwrap();
    let (b, ..) = fs.scandir_from(Some((a, "b")), "/a/b").unwrap();
    // After a rename, the token is stale and the path decides.
    fs.rename("/a", "/q").unwrap();
    assert!(matches!(
        fs.scandir_from(Some((a, "b")), "/a/b"),
        Err(Error::Fs(FsError::NoSuchPath { .. }))
    ));
    assert!(fs.scandir_from(Some((b, "x")), "/q/b").is_ok());
    // A made-up token is no panic.
    let junk = DirToken::from_parts(u64::MAX, 0);
    assert!(fs.scandir_from(Some((junk, "b")), "/q").is_ok());
}

#[test]
fn copy_tree_copies_data_once_and_charges_exactly() {
    let fs = MemoryFileSystem::new(
        FsOptions::new()
            .max_quota(10_000)
            .storage(crate::fs::StorageKind::RandomAccess),
    );
    fs.import_tree([("/s/a", &[1u8; 3000][..]), ("/s/d/b", &[2u8; 2000][..])])
        .unwrap();
    fs.copy_tree("/s", "/t").unwrap();
    assert_eq!(fs.stats().used_bytes, 10_000);
    assert_eq!(
        fs_err(fs.copy_tree("/s", "/u")),
        FsError::QuotaExceeded {
            requested: 5000,
            available: 0
        }
    );
    assert!(!fs.exists("/u"));
    assert_eq!(fs.read_file("/t/d/b").unwrap(), vec![2u8; 2000]);
    fs.rmtree("/t").unwrap();
    fs.rmtree("/s").unwrap();
    assert_eq!(fs.stats().used_bytes, 0);
}

#[test]
fn keeps_shared_only_for_an_append_to_a_sequential_file() {
    let fs = fs_with(1 << 20);
    let mut f = fs.open("/f", OpenMode::Write, 0, None).unwrap();
    assert!(f.keeps_shared());
    f.write_shared(Arc::new(Shared(vec![1; 100]))).unwrap();
    assert!(f.keeps_shared());
    f.seek(0, 0).unwrap();
    assert!(!f.keeps_shared()); // not at the end: a copy
    f.write(b"x").unwrap(); // promoted: random-access from now on
    f.seek(0, 2).unwrap();
    assert!(!f.keeps_shared());
    f.close();
    assert!(!f.keeps_shared());
    let mut a = fs.open("/g", OpenMode::Append, 0, None).unwrap();
    a.write(b"abc").unwrap();
    a.seek(0, 0).unwrap();
    assert!(a.keeps_shared()); // `ab` writes at the end wherever the cursor is
    drop(a);
    let r = fs.open("/g", OpenMode::Read, 0, None).unwrap();
    assert!(!r.keeps_shared());
}
