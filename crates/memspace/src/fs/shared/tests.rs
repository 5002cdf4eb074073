//! Unit tests of the shared filesystem on real segments of this process (two opens of one
//! segment stand for two processes: each has its own attachment slot).

use std::time::Duration;

use super::*;
use crate::fs::{FsError, OpenMode};
use crate::Location;

struct Tmp(Location);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = SharedFileSystem::remove(&self.0);
    }
}

fn fresh(opts: &SharedFsOptions) -> (SharedFileSystem, Tmp) {
    let loc = Location::Name(crate::testing::unique_name("sfs", "t"));
    let fs = SharedFileSystem::create(loc.clone(), opts).unwrap();
    (fs, Tmp(loc))
}

fn small() -> SharedFsOptions {
    SharedFsOptions::new()
        .max_quota(1 << 20)
        .max_nodes(256)
        .max_open(64)
}

fn put(fs: &SharedFileSystem, p: &str, data: &[u8]) {
    let mut f = fs.open_file(p, OpenMode::Write, 0, None).unwrap();
    f.write(data).unwrap();
    f.close().unwrap();
}

fn check(fs: &SharedFileSystem) {
    let r = fs.fsck(true).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
}

fn fs_err(r: crate::Result<impl std::fmt::Debug>) -> FsError {
    match r {
        Err(crate::Error::Fs(e)) => e,
        other => panic!("expected a filesystem error, got {other:?}"),
    }
}

#[test]
fn write_read_across_attachments() {
    let (a, tmp) = fresh(&small());
    let b = SharedFileSystem::open(tmp.0.clone()).unwrap();
    a.mkdir("/d/e", false).unwrap();
    put(&a, "/d/e/x", b"hello");
    assert_eq!(b.read_file("/d/e/x").unwrap(), b"hello");
    assert_eq!(b.listdir("/d").unwrap(), ["e"]);
    assert!(b.is_dir("/d/e") && b.is_file("/d/e/x") && !b.exists("/nope"));
    let mut r = b.open_file("/d/e/x", OpenMode::Read, 0, None).unwrap();
    assert_eq!(r.read_to_end().unwrap(), b"hello");
    r.close().unwrap();
    assert_eq!(a.stats().unwrap().used_bytes, 5 + 128);
    check(&a);
}

#[test]
fn a_write_is_invisible_until_flushed_or_closed() {
    let (a, tmp) = fresh(&small());
    let b = SharedFileSystem::open(tmp.0.clone()).unwrap();
    put(&a, "/f", b"old");
    let mut w = a.open_file("/f", OpenMode::Write, 0, None).unwrap();
    // `wb` empties the file at open (as O_TRUNC does), visibly; the writes wait for a flush.
    assert_eq!(b.read_file("/f").unwrap(), b"");
    w.write(b"new content").unwrap();
    assert_eq!(b.read_file("/f").unwrap(), b"");
    w.flush().unwrap();
    assert_eq!(b.read_file("/f").unwrap(), b"new content");
    w.write(b"!").unwrap();
    assert_eq!(b.read_file("/f").unwrap(), b"new content");
    w.close().unwrap();
    assert_eq!(b.read_file("/f").unwrap(), b"new content!");
    assert_eq!(b.stat("/f").unwrap().generation, 4);
    check(&b);
}

#[test]
fn file_locks_hold_across_attachments() {
    let (a, tmp) = fresh(&small());
    let b = SharedFileSystem::open(tmp.0.clone()).unwrap();
    put(&a, "/f", b"x");
    let r1 = a.open_file("/f", OpenMode::Read, 0, None).unwrap();
    let r2 = b.open_file("/f", OpenMode::Read, 0, None).unwrap();
    let t = std::time::Instant::now();
    let e = fs_err(b.open_file("/f", OpenMode::Write, 0, Some(Duration::from_millis(120))));
    assert!(matches!(e, FsError::LockTimeout { .. }), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(120));
    assert!(matches!(
        fs_err(a.remove_file("/f")),
        FsError::FileBusy { .. }
    ));
    drop(r1);
    drop(r2);
    let mut w = b
        .open_file("/f", OpenMode::Append, 0, Some(Duration::ZERO))
        .unwrap();
    w.write(b"y").unwrap();
    let e = fs_err(a.open_file("/f", OpenMode::Read, 0, Some(Duration::ZERO)));
    assert!(matches!(e, FsError::LockTimeout { .. }));
    w.close().unwrap();
    assert_eq!(a.read_file("/f").unwrap(), b"xy");
    check(&a);
}

#[test]
fn quota_and_node_limits_are_exact() {
    let (fs, _t) = fresh(&SharedFsOptions::new().max_quota(1000).max_nodes(3));
    let mut f = fs.open_file("/a", OpenMode::Write, 0, None).unwrap();
    f.write(&[1u8; 872]).unwrap(); // 872 + 128 = 1000
    let e = fs_err(f.write(b"z"));
    assert!(
        matches!(
            e,
            FsError::QuotaExceeded {
                requested: 129,
                available: 0
            }
        ),
        "{e:?}"
    );
    f.close().unwrap();
    assert_eq!(fs.stats().unwrap().used_bytes, 1000);
    fs.mkdir("/d", false).unwrap();
    let e = fs_err(fs.mkdir("/e", false));
    assert!(
        matches!(
            e,
            FsError::NodeLimitExceeded {
                current: 3,
                limit: 3
            }
        ),
        "{e:?}"
    );
    fs.remove_file("/a").unwrap();
    assert_eq!(fs.stats().unwrap().used_bytes, 0);
    check(&fs);
}

#[test]
fn rename_move_copy_rmtree_import() {
    let (fs, _t) = fresh(&small());
    fs.mkdir("/a/b", false).unwrap();
    put(&fs, "/a/b/f", b"1234");
    fs.rename("/a", "/z").unwrap();
    assert_eq!(fs.read_file("/z/b/f").unwrap(), b"1234");
    fs.move_path("/z/b", "/n/e/w").unwrap();
    assert_eq!(fs.glob("/n/**").unwrap(), ["/n/e", "/n/e/w", "/n/e/w/f"]);
    fs.copy("/n/e/w/f", "/c").unwrap();
    fs.copy_tree("/n", "/m").unwrap();
    assert_eq!(fs.read_file("/m/e/w/f").unwrap(), b"1234");
    assert!(matches!(
        fs_err(fs.rename("/n", "/n/x")),
        FsError::IntoOwnSubtree { .. }
    ));
    fs.rmtree("/n").unwrap();
    assert!(!fs.exists("/n"));
    fs.import_tree(&[("/i/x", b"abc"), ("/c", b"replaced")])
        .unwrap();
    assert_eq!(fs.read_file("/c").unwrap(), b"replaced");
    assert_eq!(
        fs.file_paths("/", false).unwrap(),
        ["/c", "/i/x", "/m/e/w/f"]
    );
    check(&fs);
    fs.rmtree("/m").unwrap();
    fs.rmtree("/i").unwrap();
    fs.remove_file("/c").unwrap();
    fs.rmtree("/z").unwrap();
    let st = fs.stats().unwrap();
    assert_eq!((st.used_bytes, st.file_count, st.dir_count), (0, 0, 1));
    check(&fs);
}

#[test]
fn rmtree_leaves_nothing_in_the_name_index() {
    let (fs, _t) = fresh(&small());
    for round in 0..3 {
        fs.mkdir("/d/e", false).unwrap();
        for i in 0..40 {
            put(&fs, &format!("/d/e/f{i}"), b"x");
            fs.mkdir(&format!("/d/s{i}"), false).unwrap();
        }
        fs.rmtree("/d").unwrap();
        check(&fs);
        for i in 0..40 {
            put(&fs, &format!("/f{round}-{i}"), b"y");
        }
        assert!(!fs.exists("/d/e/f3"));
        check(&fs);
    }
}

#[test]
fn a_full_name_heap_is_compacted_in_place() {
    let (fs, _t) = fresh(&small().name_bytes(600));
    fs.mkdir("/src", false).unwrap();
    for i in 0..8 {
        put(&fs, &format!("/src/a-rather-long-file-name-{i:02}"), b"z");
    }
    for round in 0..40 {
        let a = format!("/src/a-rather-long-file-name-{:02}", round % 8);
        let b = format!("/src/b-another-long-file-name-{:02}", round % 8);
        let (from, to) = if round % 16 < 8 { (&a, &b) } else { (&b, &a) };
        fs.rename(from, to).unwrap();
        if round % 10 == 9 {
            let _ = fs.rmtree("/copy");
            fs.copy_tree("/src", "/copy").unwrap();
        }
        check(&fs);
    }
    let mut src = fs.listdir("/src").unwrap();
    let mut copy = fs.listdir("/copy").unwrap();
    src.sort();
    copy.sort();
    assert_eq!(src.len(), 8);
    assert!(src
        .iter()
        .all(|n| n.ends_with(|c: char| c.is_ascii_digit())));
    assert_eq!(copy.len(), 8);
    let e = fs_err(fs.mkdir(&format!("/{}", "n".repeat(700)), false));
    assert!(matches!(e, FsError::MetadataFull { .. }), "{e:?}");
}

#[test]
fn a_view_keeps_its_version_while_the_file_is_replaced() {
    let (fs, _t) = fresh(&small());
    put(&fs, "/f", &[7u8; 5000]);
    let v = fs.view("/f").unwrap();
    for i in 0..20u8 {
        put(&fs, "/f", &[i; 6000]);
    }
    // SAFETY: the view's bytes are valid while it lives.
    let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr(), v.len()) };
    assert!(bytes.iter().all(|&b| b == 7));
    assert!(fs.info().unwrap().old_version_bytes >= 5000);
    drop(v);
    put(&fs, "/f", b"x");
    // The version that last put replaced is freed by the next commit.
    fs.reap().unwrap();
    let info = fs.info().unwrap();
    assert_eq!(info.old_version_bytes, 0, "{info:?}");
    check(&fs);
}

#[test]
fn random_writes_promote_and_truncate_like_dmemfs() {
    let (fs, _t) = fresh(&small());
    let mut f = fs.open_file("/r", OpenMode::Write, 0, None).unwrap();
    f.write(b"hello").unwrap();
    f.write(b" world").unwrap();
    assert_eq!(fs.stats().unwrap().used_bytes, 11 + 2 * 128); // charged as written
    f.seek(0, 0).unwrap();
    f.write(b"J").unwrap();
    f.truncate(Some(3)).unwrap();
    f.close().unwrap();
    assert_eq!(fs.read_file("/r").unwrap(), b"Jel");
    assert_eq!(fs.stats().unwrap().used_bytes, 3);
    check(&fs);
}

/// The metadata structures on a heap region (no segment: the same code Miri can run).
mod heap {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::core::init_region;
    use super::super::layout::{Inode, Params, KIND_FILE, ROOT_INO};
    use super::super::meta::Meta;
    use super::super::region::HeapRegion;

    fn params(nodes: u32, data: u64) -> Params {
        Params {
            nodes,
            locks: 16,
            slots: 4,
            names: u64::from(nodes) * 8,
            log: 64,
            data,
            max_quota: data,
            chunk_overhead: 128,
            promotion_hard_limit: data,
            storage: 0,
            lock_timeout_ns: u64::MAX,
        }
    }

    fn heap(p: Params) -> HeapRegion {
        let l = super::super::layout::Layout::plan(p).unwrap();
        HeapRegion::new(l.total)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(u64),
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..5000).prop_map(Op::Alloc),
            any::<usize>().prop_map(Op::Free),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Allocations never overlap and stay inside the data area; the free set stays
        /// sorted and coalesced; free + allocated is always the whole area.
        #[test]
        fn allocator_matches_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            let p = params(64, 64 * 1024);
            let mut hr = heap(p);
            let r = hr.region();
            let l = init_region(&r, p).unwrap();
            let mut m = Meta::new(&r, &l, 1);
            let mut h = m.hdr().unwrap();
            let mut live: Vec<(u64, u64)> = Vec::new();
            for o in ops {
                match o {
                    Op::Alloc(n) => {
                        let len = n.div_ceil(64) * 64;
                        if let Some(off) = m.alloc_extent(&mut h, len).unwrap() {
                            prop_assert!(off + len <= p.data);
                            for &(a, b) in &live {
                                prop_assert!(off + len <= a || a + b <= off, "overlap");
                            }
                            live.push((off, len));
                        }
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let (off, len) = live.swap_remove(i % live.len());
                        m.free_extent(&mut h, off, len).unwrap();
                    }
                    Op::Free(_) => {}
                }
                let mut free = 0;
                let mut prev_end = None;
                for i in 0..h.free_len {
                    let (o, n) = m.free_at(i).unwrap();
                    if let Some(e) = prev_end {
                        prop_assert!(o > e, "free extents unsorted or not coalesced");
                    }
                    prev_end = Some(o + n);
                    free += n;
                }
                let used: u64 = live.iter().map(|x| x.1).sum();
                prop_assert_eq!(free + used, p.data);
            }
            // A double free is refused, never silently accepted.
            if let Some(&(off, len)) = live.first() {
                m.free_extent(&mut h, off, len).unwrap();
                prop_assert!(m.free_extent(&mut h, off, len).is_err());
            }
        }

        /// The name index and the child lists agree with a map after any sequence of
        /// creations and removals (backward-shift deletion keeps every probe run intact).
        #[test]
        fn name_index_matches_a_model(ops in proptest::collection::vec((0u8..3, 0u16..40, any::<bool>()), 1..300)) {
            let p = params(128, 4096);
            let mut hr = heap(p);
            let r = hr.region();
            let l = init_region(&r, p).unwrap();
            let mut m = Meta::new(&r, &l, 1);
            let mut h = m.hdr().unwrap();
            // Three directories under the root, then files in them.
            let mut dirs = Vec::new();
            for d in 0..3 {
                let n = Inode { kind: super::super::layout::KIND_DIR, ..Inode::default() };
                dirs.push(m.create(&mut h, ROOT_INO, &format!("d{d}"), n).unwrap());
            }
            let mut model: BTreeMap<(u32, String), u32> = BTreeMap::new();
            for (d, k, add) in ops {
                let parent = dirs[usize::from(d)];
                let name = format!("f{k}");
                match (add, model.get(&(parent, name.clone())).copied()) {
                    (true, None) if h.nodes < u64::from(p.nodes) => {
                        let n = Inode { kind: KIND_FILE, ..Inode::default() };
                        let ino = m.create(&mut h, parent, &name, n).unwrap();
                        model.insert((parent, name), ino);
                    }
                    (false, Some(ino)) => {
                        m.detach(ino).unwrap();
                        m.free_inode(&mut h, ino).unwrap();
                        model.remove(&(parent, name));
                    }
                    _ => {}
                }
            }
            for (&(parent, ref name), &ino) in &model {
                prop_assert_eq!(m.lookup(parent, name).unwrap(), Some(ino));
            }
            for &d in &dirs {
                let dn = m.live(d).unwrap();
                let mut kids: Vec<u32> = m.children(&dn).unwrap().into_iter().map(|x| x.0).collect();
                kids.sort_unstable();
                let mut want: Vec<u32> = model.iter().filter(|((p, _), _)| *p == d).map(|(_, &i)| i).collect();
                want.sort_unstable();
                prop_assert_eq!(kids, want);
                for k in 0..40 {
                    let name = format!("f{k}");
                    prop_assert_eq!(m.lookup(d, &name).unwrap(), model.get(&(d, name.clone())).copied());
                }
            }
            prop_assert_eq!(h.files, model.len() as u64);
        }
    }
}
