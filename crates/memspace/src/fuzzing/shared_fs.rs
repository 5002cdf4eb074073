//! The shared filesystem's core (`fs::shared`) over a region that another process, or a
//! hostile user with write access, has scribbled on.
//!
//! A small valid filesystem is built on a heap region (the same `Region` code that maps a
//! segment in production), populated by two "processes" (two `Core`s with their own
//! attachment slots over the one region: files, directories, an open writer with a private
//! extent, a reader, a pinned view), then the input's corruptions (offset/value pairs aimed
//! at the superblock, the commit log, the slot records, either metadata copy or the data,
//! optionally with the checksums recomputed as a hostile writer would) are applied, and a
//! script of operations runs: attaching a third process (layout validation, identity,
//! reaping), snapshot reads (`stat`, `scandir`, `read_file`, `glob`, `file_paths` and a
//! walk of every path), transactions (import, mkdir, rename, remove, rmtree, copy), write
//! handles, pins, `fsck`, reaping, a process dying and more corruption in between.
//!
//! Properties checked on every input: nothing panics or overflows, every access stays in the
//! region (its bounds checks), every call returns (a snapshot read of a corrupt copy is an
//! error, never a retry loop without end), no allocation beyond what the region's size
//! allows, and while no corruption happened, no operation reports corruption and `fsck`
//! finds the state consistent.

// Short names for the values of one run side by side, as in `fs::shared` (`r` the region,
// `l` its layout, `p` its parameters, `k` an operation's argument byte).
#![allow(clippy::many_single_char_names, clippy::similar_names)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Input;
use crate::fs::handle::FileAccess;
use crate::fs::shared::core::{init_region, Core, Env};
use crate::fs::shared::file::SFile;
use crate::fs::shared::layout::{Layout, Params, LOG_GEN, LOG_LEN, ROOT, SEQ0, SEQ1};
use crate::fs::shared::meta::{Fail, Meta, Res};
use crate::fs::shared::region::Region;
use crate::fs::OpenMode;
use crate::shm::error::SegmentError;
use crate::shm::header::fnv1a64;
use crate::Location;

/// Attachment slots of the model (the region has as many slot records).
const SLOTS: u32 = 4;

/// What the processes of one region share: the commit lock and who is alive.
#[derive(Default)]
struct World {
    locked: bool,
    /// The next `lock` reports that its previous holder died.
    died: bool,
    alive: [bool; SLOTS as usize],
    /// Whether slots the model does not know (a corrupt lock entry may name any) are alive.
    strangers_alive: bool,
    /// What `slots_in_use` reports (a corrupt attachment table could say anything).
    in_use: u32,
}

/// One process's view of the world.
struct FuzzEnv {
    world: Arc<Mutex<World>>,
    slot: u32,
}

impl FuzzEnv {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Env for FuzzEnv {
    fn lock(&self, _interrupt: crate::lock::Interrupt<'_>) -> crate::Result<bool> {
        let mut w = self.world();
        // One thread drives every process in turn: a lock still held here would be a
        // transaction that never ended (or one nested in another), a deadlock in production.
        assert!(!w.locked, "the commit lock was taken twice");
        w.locked = true;
        Ok(std::mem::take(&mut w.died))
    }
    fn unlock(&self) {
        self.world().locked = false;
    }
    fn slot(&self) -> crate::Result<u32> {
        Ok(self.slot)
    }
    fn alive(&self, slot: u32) -> crate::Result<bool> {
        let w = self.world();
        Ok(w.alive
            .get(slot as usize)
            .copied()
            .unwrap_or(w.strangers_alive))
    }
    fn slots_in_use(&self) -> u32 {
        self.world().in_use
    }
    fn corrupt(&self, reason: String) -> crate::Error {
        crate::Error::Segment(SegmentError::Corrupt {
            location: Location::Name("/fuzz-shared-fs".into()),
            reason,
        })
    }
}

/// Zeroed, 8-aligned heap memory standing in for the segment's filesystem area.
struct Arena {
    words: Vec<u64>,
    ptr: *mut u8,
}

impl Arena {
    fn new(len: u64) -> Arena {
        let mut words = vec![0u64; len.div_ceil(8) as usize];
        // The one pointer every access derives from (the Vec is not touched until it drops).
        let ptr = words.as_mut_ptr().cast::<u8>();
        Arena { words, ptr }
    }

    fn region(&self) -> Region {
        // SAFETY: the buffer is 8-aligned and `len` bytes long, outlives every region made
        // from it (each target call drops its cores before the arena), and is accessed only
        // through regions.
        unsafe { Region::new(self.ptr, self.words.len() as u64 * 8) }
    }
}

type FsCore = Core<FuzzEnv>;

/// Whether a result is the corruption error (as opposed to a filesystem error).
fn is_bad<T>(r: &Res<T>) -> bool {
    matches!(r, Err(Fail::Bad(_) | Fail::Err(crate::Error::Segment(_))))
}

/// The state of one run: the region, its processes and what the script knows.
struct Run<'a> {
    arena: &'a Arena,
    world: Arc<Mutex<World>>,
    /// The processes: slots 0..SLOTS, `None` once dead or never attached.
    procs: Vec<Option<Arc<FsCore>>>,
    /// Open write handles (with the process that opened them).
    writers: Vec<(usize, SFile<FuzzEnv>)>,
    /// Open read handles.
    readers: Vec<(usize, SFile<FuzzEnv>)>,
    /// Paths the script names (created or not).
    paths: Vec<String>,
    /// No byte was corrupted: every operation must work as on a healthy filesystem.
    intact: bool,
}

impl Run<'_> {
    fn attach(&mut self, slot: u32) -> Res<Arc<FsCore>> {
        let env = FuzzEnv {
            world: Arc::clone(&self.world),
            slot,
        };
        let core = FsCore::new(env, self.arena.region())?;
        {
            let mut w = self.world.lock().unwrap_or_else(PoisonError::into_inner);
            w.alive[slot as usize] = true;
            w.in_use = w.in_use.max(slot + 1);
        }
        let core = Arc::new(core);
        core.me()?;
        // As `SharedFileSystem::open` does.
        core.tx(&mut || false, |tx| tx.reap().map(|_| ()))?;
        self.procs[slot as usize] = Some(Arc::clone(&core));
        Ok(core)
    }

    /// Fails unless a corruption error is expected (something was corrupted).
    fn expect<T>(&self, what: &str, r: &Res<T>) {
        if self.intact {
            if let Err(e) = r {
                assert!(
                    !is_bad(r),
                    "shared_fs: {what} on an intact filesystem reported corruption: {e:?}"
                );
            }
        }
    }

    fn proc(&self, k: u8) -> Option<(usize, Arc<FsCore>)> {
        let n = self.procs.len();
        (0..n)
            .map(|i| (usize::from(k) + i) % n)
            .find_map(|i| self.procs[i].as_ref().map(|c| (i, Arc::clone(c))))
    }

    fn path(&self, k: u8) -> &str {
        &self.paths[usize::from(k) % self.paths.len()]
    }

    /// Opens `path` for writing (no wait: a live holder is a timeout, not a hang).
    fn open_write(&mut self, p: usize, core: &Arc<FsCore>, path: &str, mode: OpenMode) {
        let r = core.open_file(path, mode, Some(Duration::ZERO), &mut || false);
        self.expect("open for writing", &r);
        if let Ok((o, _)) = r {
            let f = SFile::new(Arc::clone(core), o.ino, o.entry, o.off, o.size, o.chunks);
            self.writers.push((p, f));
        }
    }

    fn open_read(&mut self, p: usize, core: &Arc<FsCore>, path: &str) {
        let r = core.open_file(path, OpenMode::Read, Some(Duration::ZERO), &mut || false);
        self.expect("open for reading", &r);
        if let Ok((o, _)) = r {
            let mut f = SFile::new(Arc::clone(core), o.ino, o.entry, o.off, o.size, o.chunks);
            f.read_gen = o.gen;
            self.readers.push((p, f));
        }
    }

    fn file_err(&self, what: &str, f: &SFile<FuzzEnv>) {
        let e = f.err.borrow_mut().take();
        if self.intact {
            assert!(
                e.is_none(),
                "shared_fs: {what} on an intact filesystem: {e:?}"
            );
        }
    }

    /// Every snapshot query on every path the script knows (`only`: on that one path, and
    /// the walk only sometimes, which keeps a run quick), and a walk from the root.
    fn read_all(&self, core: &FsCore, only: Option<u8>) {
        let r = core.stats();
        self.expect("stats", &r);
        let paths: Vec<&String> = match only {
            Some(k) => vec![&self.paths[usize::from(k) % self.paths.len()]],
            None => self.paths.iter().collect(),
        };
        for p in paths {
            self.expect("stat", &core.stat(p));
            self.expect("scandir", &core.scandir(p));
            self.expect("get_size", &core.get_size(p));
            let r = core.read_file(p);
            self.expect("read_file", &r);
            if let Ok(bytes) = r {
                assert!(
                    bytes.len() as u64 <= core.l.p.data,
                    "a file larger than the data area"
                );
            }
            let _ = core.kind_of(p);
        }
        self.expect("glob", &core.glob("/**"));
        self.expect("glob", &core.glob("/d/*/c*"));
        self.expect("file_paths", &core.file_paths("/", false));
        if only.is_some_and(|k| k & 0x30 != 0) {
            return;
        }
        // A walk by listing: bounded by the node limit, whatever the lists say.
        let mut stack = vec!["/".to_owned()];
        let mut steps = 0;
        while let Some(d) = stack.pop() {
            steps += 1;
            if steps > core.l.p.nodes {
                break;
            }
            let r = core.scandir(&d);
            self.expect("scandir (walk)", &r);
            let Ok((dirs, files)) = r else { continue };
            for f in files {
                let p = format!("{}/{f}", d.trim_end_matches('/'));
                self.expect("read_file (walk)", &core.read_file(&p));
            }
            for s in dirs {
                stack.push(format!("{}/{s}", d.trim_end_matches('/')));
            }
        }
    }

    /// `fsck` as `SharedFileSystem::fsck` runs it.
    fn fsck(&self, core: &FsCore, reap: bool) {
        if reap {
            let r = core.tx(&mut || false, |tx| {
                tx.reap()?;
                tx.reclaim()
            });
            self.expect("reap", &r);
        }
        let r = core.tx(&mut || false, |tx| {
            let m = Meta::new(&core.r, &core.l, ((tx.gen - 1) & 1) as usize);
            let alive = |slot: u32, epoch: u64| -> Res<bool> {
                Ok(core.slot_epoch(slot)? == epoch && core.env.alive(slot)?)
            };
            core.check(&m, &alive)
        });
        self.expect("fsck", &r);
        if self.intact {
            if let Ok(rep) = r {
                assert!(
                    rep.is_ok(),
                    "shared_fs: fsck of an intact filesystem: {:?}",
                    rep.problems
                );
            }
        }
    }
}

/// The parameters of a small filesystem, from the input.
fn params(inp: &mut Input<'_>) -> Params {
    let nodes = 6 + u32::from(inp.u8() % 26);
    let data = 4096 * (2 + u64::from(inp.u8() % 4));
    let names = if inp.u8() % 4 == 0 {
        48
    } else {
        u64::from(nodes) * 12
    };
    let quota = data / 2 + u64::from(inp.u16());
    Params {
        nodes,
        locks: 3 + u32::from(inp.u8() % 8),
        slots: SLOTS,
        names,
        log: 16,
        data,
        max_quota: quota,
        chunk_overhead: u64::from(inp.u8()) * 2,
        promotion_hard_limit: data,
        storage: u32::from(inp.u8() % 3),
        lock_timeout_ns: u64::MAX,
    }
}

/// One corruption of the region, from the input.
fn corrupt(inp: &mut Input<'_>, r: &Region, l: &Layout) {
    let area = inp.u8();
    // Where: an area of the layout, then an offset in it.
    let (base, len) = match area % 8 {
        0 => (0, 1024),                        // the superblock's fields and live words
        1 => (l.log, u64::from(l.p.log) * 16), // the commit log
        2 => (l.slots, u64::from(l.p.slots) * 1024),
        3 | 4 => (l.copies[0], l.copy_size),
        5 | 6 => (l.copies[1], l.copy_size),
        _ => (l.data, l.p.data),
    };
    let off = base + u64::from(inp.u16()) % len.max(1);
    match (area >> 3) % 8 {
        0 => {
            let _ = r.write(off, &[inp.u8()]);
        }
        1 => {
            let _ = r.put_u64(off & !7, inp.u64());
        }
        2 => {
            let v = u32::from(inp.u16());
            let _ = r.write(off & !3, &v.to_ne_bytes());
        }
        3 => {
            // Near the current value (counts and indices off by a little).
            let at = off & !3;
            let mut b = [0u8; 4];
            let _ = r.read(at, &mut b);
            let d = i32::from(inp.u8() as i8);
            let v = u32::from_ne_bytes(b).wrapping_add_signed(d);
            let _ = r.write(at, &v.to_ne_bytes());
        }
        4 => {
            let at = off & !7;
            let d = i64::from(inp.u8() as i8);
            let v = r.u64(at).unwrap_or(0).wrapping_add_signed(d);
            let _ = r.put_u64(at, v);
        }
        5 => {
            // A live word of the superblock.
            let words = [ROOT, SEQ0, SEQ1, LOG_GEN, LOG_LEN];
            let w = words[usize::from(inp.u8()) % words.len()];
            let v = match inp.u8() % 3 {
                0 => inp.u64(),
                1 => r.u64(w).unwrap_or(0).wrapping_add(1),
                _ => r.u64(w).unwrap_or(0).wrapping_sub(1),
            };
            let _ = r.put_u64(w, v);
        }
        6 => {
            // A metadata header's checksum recomputed, as a hostile writer would.
            let c = l.copies[usize::from(inp.u8() & 1)];
            let mut b = [0u8; 256];
            if r.read(c, &mut b).is_ok() {
                let h = crate::fs::shared::layout::Header::decode(&b);
                let _ = r.write(c, &h.encode());
            }
        }
        _ => {
            // A superblock parameter changed with its checksum recomputed.
            let field = 16 + 8 * u64::from(inp.u8() % 11);
            let v = match inp.u8() % 2 {
                0 => inp.u64(),
                _ => r.u64(field).unwrap_or(0).wrapping_add(u64::from(inp.u8())),
            };
            let _ = r.put_u64(field, v);
            let mut b = [0u8; 248];
            if r.read(0, &mut b).is_ok() {
                let _ = r.put_u64(248, fnv1a64(&b));
            }
        }
    }
}

const PATHS: &[&str] = &[
    "/", "/a", "/d", "/d/b", "/d/e", "/d/e/c", "/d/w", "/r", "/n", "/d/e/n", "/m/x", "/z",
];

/// The target: see the module documentation.
#[allow(clippy::too_many_lines)] // one script interpreter reads best in one place
pub fn shared_fs(data: &[u8]) {
    let mut inp = Input::new(data);
    let p = params(&mut inp);
    let l = Layout::plan(p).expect("small parameters plan");
    let arena = Arena::new(l.total);
    let region = arena.region();
    init_region(&region, p).expect("a fresh region initialises");
    let world = Arc::new(Mutex::new(World {
        strangers_alive: inp.u8() & 1 == 1,
        ..World::default()
    }));
    let mut run = Run {
        arena: &arena,
        world,
        procs: vec![None, None, None, None],
        writers: Vec::new(),
        readers: Vec::new(),
        paths: PATHS.iter().map(|&s| s.to_owned()).collect(),
        intact: true,
    };

    // A healthy filesystem, made by processes 0 and 1.
    let a = run.attach(0).expect("attach to a fresh filesystem");
    let b = run.attach(1).expect("a second process attaches");
    let fill = inp.u8();
    let body: Vec<u8> = (0..600u32).map(|i| (i as u8).wrapping_mul(fill)).collect();
    let made = a
        .import_tree(&[
            ("/a", &body[..100]),
            ("/d/b", &body[..5]),
            ("/d/e/c", &body),
        ])
        .and_then(|()| b.mkdir("/n", false))
        .and_then(|()| a.relocate("/d/b", "/d/e/b2", false))
        .and_then(|()| a.relocate("/d/e/b2", "/d/b", false));
    // Tiny quotas or name heaps may refuse some of it; never with a corruption error.
    run.expect("populating", &made);
    let populate = inp.u8();
    if populate & 1 != 0 {
        // A writer with a private extent (process 1), never closed.
        run.open_write(1, &b, "/d/w", OpenMode::Write);
        if let Some((_, f)) = run.writers.last() {
            let _ = f.write_at(0, &body[..300]);
            run.file_err("writing", f);
        }
    }
    if populate & 2 != 0 {
        run.open_read(0, &a, "/a");
    }
    // Pinned generations (a view's pin), with the process that holds them.
    let mut views: Vec<(usize, Arc<FsCore>, u64)> = Vec::new();
    if populate & 4 != 0 {
        if let Ok((pin, _)) = a.pinned(|m| FsCore::file_extent(m, &["d", "e", "c"], "/d/e/c")) {
            views.push((0, Arc::clone(&a), pin.gen()));
            std::mem::forget(pin);
        }
    }
    if populate & 8 != 0 {
        // Replace a file a pin still sees: an old version.
        let r = b.import_tree(&[("/d/e/c", &body[..64])]);
        run.expect("replacing", &r);
    }
    drop((a, b));

    // The corruptions, all at rest.
    let n = inp.u8() % 24;
    for _ in 0..n {
        corrupt(&mut inp, &region, &l);
        run.intact = false;
    }

    // The script.
    let mut steps = 0;
    while !inp.is_empty() && steps < 64 {
        steps += 1;
        let op = inp.u8();
        let k = inp.u8();
        let Some((pi, core)) = run.proc(op >> 4) else {
            // Everyone died: a new process attaches (a corrupt layout refuses it).
            let r = run.attach(2);
            run.expect("attach", &r);
            if r.is_err() {
                break;
            }
            continue;
        };
        match op % 20 {
            0 => run.read_all(&core, Some(k)),
            1 => {
                let p = run.path(k).to_owned();
                let r = core.import_tree(&[(&p, &body[..usize::from(k) * 2])]);
                run.expect("import", &r);
            }
            2 => {
                let p = run.path(k).to_owned();
                run.expect("mkdir", &core.mkdir(&p, k & 0x80 != 0));
            }
            3 => {
                let (s, d) = (run.path(k).to_owned(), run.path(k >> 4).to_owned());
                run.expect("rename", &core.relocate(&s, &d, k & 1 != 0));
            }
            4 => {
                let p = run.path(k).to_owned();
                run.expect("remove", &core.remove(&p));
            }
            5 => {
                let p = run.path(k).to_owned();
                run.expect("rmtree", &core.rmtree(&p));
            }
            6 => {
                let (s, d) = (run.path(k).to_owned(), run.path(k >> 4).to_owned());
                let r = if k & 1 != 0 {
                    core.copy(&s, &d)
                } else {
                    core.copy_tree(&s, &d)
                };
                run.expect("copy", &r);
            }
            7 => {
                let p = run.path(k).to_owned();
                let mode = [OpenMode::Write, OpenMode::Append, OpenMode::ReadWrite]
                    [usize::from(k >> 6) % 3];
                run.open_write(pi, &core, &p, mode);
            }
            8 | 9 => {
                if !run.writers.is_empty() {
                    let i = usize::from(k) % run.writers.len();
                    let f = &run.writers[i].1;
                    let at = if k & 1 != 0 { f.size() } else { u64::from(k) };
                    let _ = f.write_at(at, &body[..=usize::from(k)]);
                    run.file_err("write", f);
                    if k & 2 != 0 {
                        let _ = f.set_len(u64::from(k) * 3, crate::fs::handle::Touch::IfChanged);
                        run.file_err("truncate", f);
                    }
                }
            }
            10 => {
                if !run.writers.is_empty() {
                    let i = usize::from(k) % run.writers.len();
                    let keep = k & 1 != 0;
                    let r = run.writers[i].1.commit(keep);
                    run.expect("commit", &r.map_err(Fail::from));
                    if !keep {
                        run.writers.swap_remove(i);
                    }
                }
            }
            11 => {
                let p = run.path(k).to_owned();
                run.open_read(pi, &core, &p);
            }
            12 => {
                if !run.readers.is_empty() {
                    let i = usize::from(k) % run.readers.len();
                    let (_, f) = run.readers.swap_remove(i);
                    let mut buf = [0u8; 64];
                    let _ = f.read_at(u64::from(k), &mut buf[..]);
                    let r = f.release();
                    run.expect("release", &r.map_err(Fail::from));
                }
            }
            13 => {
                let p = run.path(k).to_owned();
                if let Ok(parts) = crate::fs::path::components(&p) {
                    let r = core.pinned(|m| FsCore::file_extent(m, &parts, &p));
                    run.expect("view", &r);
                    if let Ok((pin, (off, size))) = r {
                        // What `SharedFileSystem::view` checks before it hands out a pointer.
                        let _ = core.r.check(core.l.data + off, size);
                        if k & 1 != 0 {
                            views.push((pi, Arc::clone(&core), pin.gen()));
                            std::mem::forget(pin);
                        }
                    }
                }
            }
            14 => {
                for (_, c, g) in views.drain(..) {
                    c.unpin(g);
                }
            }
            15 => run.fsck(&core, k & 1 != 0),
            16 => {
                let r = core.tx(&mut || false, |tx| {
                    tx.reap()?;
                    tx.reclaim()
                });
                run.expect("reap", &r);
            }
            17 => {
                // A process dies: its handles and pins stay behind in the region.
                let victim = usize::from(k) % run.procs.len();
                if run.procs[victim].take().is_some() {
                    run.world
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .alive[victim] = false;
                    for list in [&mut run.writers, &mut run.readers] {
                        for (p, f) in std::mem::take(list) {
                            if p == victim {
                                // Dropped unclosed (an SFile does nothing when
                                // dropped): what a SIGKILL leaves.
                                drop(f);
                            } else {
                                list.push((p, f));
                            }
                        }
                    }
                    // Its pins stay in its slot record, never withdrawn.
                    views.retain(|v| v.0 != victim);
                }
                if k & 1 != 0 {
                    // ... holding the commit lock.
                    run.world
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .died = true;
                }
            }
            18 => {
                let slot = u32::from(k) % SLOTS;
                if run.procs[slot as usize].is_none() {
                    let r = run.attach(slot);
                    run.expect("attach", &r);
                }
            }
            _ => {
                corrupt(&mut inp, &region, &l);
                run.intact = false;
            }
        }
    }
    // Everything closes (as the handles' drops would), then a last check.
    for (_, f) in std::mem::take(&mut run.writers) {
        let r = f.commit(false);
        run.expect("final commit", &r.map_err(Fail::from));
    }
    for (_, f) in std::mem::take(&mut run.readers) {
        let r = f.release();
        run.expect("final release", &r.map_err(Fail::from));
    }
    for (_, c, g) in views.drain(..) {
        c.unpin(g);
    }
    if let Some((_, core)) = run.proc(0) {
        run.read_all(&core, None);
        run.fsck(&core, true);
    }
}
