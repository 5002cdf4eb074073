//! The public face: [`SharedFileSystem`] over a structured segment, its handles and views.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use super::core::{init_region, now_ns, Core, Env};
use super::file::SFile;
use super::fsck::{FsckReport, SharedFsInfo};
use super::layout::{Layout, Params, RANDOM};
use super::meta::{Fail, Meta};
use super::region::Region;
use crate::error::{Error, Result};
use crate::fs::bytes::ByteSink;
use crate::fs::error::{FsError, FsResult};
use crate::fs::handle::Cursor;
use crate::fs::options::{
    OpenMode, Stat, Stats, StorageKind, DEFAULT_CHUNK_OVERHEAD, DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_QUOTA, DEFAULT_PROMOTION_HARD_LIMIT,
};
use crate::location::Location;
use crate::lock::mutex::{init_area, RobustMutex, MUTEX_AREA};
use crate::lock::Interrupt;
use crate::shm::error::SegmentError;
use crate::shm::header::{Kind, LayoutRequest};
use crate::shm::segment::Segment;
use crate::shm::structured::Structured;

const WHAT: &str = "filesystem commit lock";

/// The commit lock and liveness of a segment-backed filesystem.
pub(crate) struct SegEnv {
    s: Structured,
    m: RobustMutex,
}

// SAFETY: the mutex area is shared memory designed for concurrent use; its pointer stays
// valid while `s` (which owns the mapping) lives.
unsafe impl Send for SegEnv {}
// SAFETY: as above.
unsafe impl Sync for SegEnv {}

impl Env for SegEnv {
    fn lock(&self, interrupt: Interrupt<'_>) -> Result<bool> {
        let slot = self.slot()?;
        self.m
            .lock(&self.s, slot, None, interrupt, self.s.location(), WHAT)
    }
    fn unlock(&self) {
        let _ = self.m.unlock(self.s.location(), WHAT);
    }
    fn slot(&self) -> Result<u32> {
        self.s.attachment().slot(&|_| {})
    }
    fn alive(&self, slot: u32) -> Result<bool> {
        self.s.attachment().is_alive(slot)
    }
    fn slots_in_use(&self) -> u32 {
        self.s.attachment().high_water_mark()
    }
    fn corrupt(&self, reason: String) -> Error {
        // Not poisoned: `fsck` must still be able to open it and say what is wrong.
        Error::Segment(SegmentError::Corrupt {
            location: self.s.location().clone(),
            reason,
        })
    }
}

/// How a shared filesystem is created (a builder; the defaults are D-MemFS's where it has
/// one).
#[derive(Clone, Debug)]
pub struct SharedFsOptions {
    max_quota: u64,
    max_nodes: u64,
    chunk_overhead: u64,
    promotion_hard_limit: u64,
    storage: StorageKind,
    lock_timeout: Option<Duration>,
    slots: u32,
    max_open: u32,
    name_bytes: u64,
    data_size: Option<u64>,
    mode: u32,
}

/// Default node limit of a shared filesystem (its metadata is reserved for that many).
pub const DEFAULT_SHARED_MAX_NODES: u64 = 16_384;

impl Default for SharedFsOptions {
    fn default() -> Self {
        Self {
            max_quota: DEFAULT_MAX_QUOTA,
            max_nodes: DEFAULT_SHARED_MAX_NODES,
            chunk_overhead: DEFAULT_CHUNK_OVERHEAD,
            promotion_hard_limit: DEFAULT_PROMOTION_HARD_LIMIT,
            storage: StorageKind::Auto,
            lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
            slots: 128,
            max_open: 4096,
            name_bytes: 0,
            data_size: None,
            mode: 0o600,
        }
    }
}

impl SharedFsOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// The byte quota.
    #[must_use]
    pub fn max_quota(mut self, bytes: u64) -> Self {
        self.max_quota = bytes;
        self
    }
    /// The most nodes, the root included (the metadata is reserved for them).
    #[must_use]
    pub fn max_nodes(mut self, n: u64) -> Self {
        self.max_nodes = n;
        self
    }
    /// The quota overhead per chunk of a sequential file.
    #[must_use]
    pub fn chunk_overhead(mut self, bytes: u64) -> Self {
        self.chunk_overhead = bytes;
        self
    }
    /// The largest sequential file that may be promoted to random access.
    #[must_use]
    pub fn promotion_hard_limit(mut self, bytes: u64) -> Self {
        self.promotion_hard_limit = bytes;
        self
    }
    /// How new files store their data.
    #[must_use]
    pub fn storage(mut self, kind: StorageKind) -> Self {
        self.storage = kind;
        self
    }
    /// How long `open` waits for a file lock by default (`None`: forever).
    #[must_use]
    pub fn default_lock_timeout(mut self, t: Option<Duration>) -> Self {
        self.lock_timeout = t;
        self
    }
    /// Processes attached at once.
    #[must_use]
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }
    /// Handles open at once, all processes together.
    #[must_use]
    pub fn max_open(mut self, n: u32) -> Self {
        self.max_open = n;
        self
    }
    /// Bytes of the name heap (0: 64 per node).
    #[must_use]
    pub fn name_bytes(mut self, n: u64) -> Self {
        self.name_bytes = n;
        self
    }
    /// Bytes of the data area (default: see "Sizing" in the module documentation).
    #[must_use]
    pub fn data_size(mut self, n: Option<u64>) -> Self {
        self.data_size = n;
        self
    }
    /// Permission bits of the segment (default `0o600`).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn params(&self) -> Result<Params> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.max_nodes < 1 || self.max_nodes > 1 << 28 {
            return bad(format!(
                "max_nodes must be in 1..=2**28, not {}",
                self.max_nodes
            ));
        }
        if self.max_open < 1 || self.max_open > 1 << 24 {
            return bad(format!(
                "max_open must be in 1..=2**24, not {}",
                self.max_open
            ));
        }
        let nodes = self.max_nodes as u32;
        let names = if self.name_bytes == 0 {
            self.max_nodes * 64
        } else {
            self.name_bytes
        };
        if names > u64::from(u32::MAX) {
            return bad("the name heap is limited to 4 GiB".into());
        }
        let data = match self.data_size {
            Some(d) => d,
            None => self
                .max_quota
                .checked_mul(2)
                .and_then(|d| d.checked_add(self.max_nodes * 64 + (1 << 20)))
                .ok_or_else(|| Error::InvalidArgument("max_quota is too large".into()))?,
        };
        Ok(Params {
            nodes,
            locks: self.max_open,
            slots: self.slots,
            names,
            log: 1024,
            data,
            max_quota: self.max_quota,
            chunk_overhead: self.chunk_overhead,
            promotion_hard_limit: self.promotion_hard_limit,
            storage: match self.storage {
                StorageKind::Auto => 0,
                StorageKind::Sequential => 1,
                StorageKind::RandomAccess => 2,
            },
            lock_timeout_ns: self.lock_timeout.map_or(u64::MAX, |t| {
                u64::try_from(t.as_nanos()).unwrap_or(u64::MAX - 1)
            }),
        })
    }
}

/// A bounded filesystem in a shared-memory segment, used by many processes at once. Cloning
/// gives another handle to the same mapping.
///
/// See the [module documentation](crate::fs::shared) for the design.
///
/// ```
/// use memspace::fs::{OpenMode, SharedFileSystem, SharedFsOptions};
/// use memspace::Location;
///
/// let loc = Location::Name(format!("/memspace-doc-sfs-{}", std::process::id()));
/// let fs = SharedFileSystem::create(loc.clone(), &SharedFsOptions::new().max_quota(1 << 20))?;
/// fs.mkdir("/data", false)?;
/// let mut f = fs.open_file("/data/a.bin", OpenMode::Write, 0, None)?;
/// f.write(b"hello")?;
/// f.close()?;
/// let other = SharedFileSystem::open(loc.clone())?; // as another process would
/// assert_eq!(other.read_file("/data/a.bin")?, b"hello");
/// drop((fs, other));
/// SharedFileSystem::remove(&loc)?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedFileSystem {
    core: Arc<Core<SegEnv>>,
}

impl std::fmt::Debug for SharedFileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFileSystem")
            .field("location", self.core.env.s.location())
            .finish_non_exhaustive()
    }
}

fn region_of(s: &Structured) -> Region {
    // SAFETY: the data area lies inside the mapping (validated geometry), is 64-aligned, and
    // the Structured (kept in the Core's env next to the region) outlives the region.
    unsafe { Region::new(s.data_ptr(), s.geometry().data_size) }
}

impl SharedFileSystem {
    /// Creates a new shared filesystem at `location` (refused if anything exists there). Its
    /// whole size is reserved now: a full `/dev/shm` fails here, never later.
    pub fn create(location: Location, opts: &SharedFsOptions) -> Result<SharedFileSystem> {
        let p = opts.params()?;
        let Some(l) = Layout::plan(p) else {
            return Err(Error::InvalidArgument(
                "the requested sizes overflow".into(),
            ));
        };
        let req = LayoutRequest {
            kind: Kind::FileSystem,
            attach_slots: p.slots,
            lock_size: MUTEX_AREA,
            data_size: l.total,
            kind_param: Layout::fingerprint(),
        };
        let s = Structured::create(
            location,
            opts.mode,
            &req,
            &|seg: &Segment, geo| {
                init_area(seg, geo.lock_off)?;
                // SAFETY: the data area lies inside `seg`'s mapping (just planned), 64-aligned;
                // the region is used only within this call.
                let r =
                    unsafe { Region::new(seg.as_ptr().add(geo.data_off as usize), geo.data_size) };
                init_region(&r, p).map_err(|b| Error::InvalidArgument(b.0))?;
                Ok(())
            },
            &|_| {},
        )?;
        Self::wrap(s)
    }

    /// Opens the shared filesystem at `target` (any number of processes may): a
    /// [`Location`], or one with a [`Trust`](crate::Trust) (`location.trusting(trust)`).
    pub fn open(target: impl Into<crate::shm::OpenTarget>) -> Result<SharedFileSystem> {
        let s = Structured::open(
            target,
            Kind::FileSystem,
            Some(Layout::fingerprint()),
            &|_| {},
        )?;
        let fs = Self::wrap(s)?;
        // Reap what dead processes left (their locks, private extents and pins).
        fs.reap()?;
        Ok(fs)
    }

    fn wrap(s: Structured) -> Result<SharedFileSystem> {
        if s.geometry().lock_size < MUTEX_AREA {
            return Err(s.corrupt("the lock area is too small".into()));
        }
        // SAFETY: the lock area is 64-aligned, at least MUTEX_AREA bytes, inside the mapping
        // that the Structured (stored next to it) keeps alive.
        let m = unsafe { RobustMutex::at(s.lock_ptr()) };
        m.validate().map_err(|r| s.corrupt(r))?;
        let r = region_of(&s);
        let env = SegEnv { s, m };
        let core = Core::new(env, r).map_err(|b| {
            Error::Segment(SegmentError::Corrupt {
                location: Location::Name(String::new()),
                reason: b.0,
            })
        })?;
        let fs = SharedFileSystem {
            core: Arc::new(core),
        };
        fs.core.me().map_err(|f| fs.core.fail(f))?;
        Ok(fs)
    }

    /// Removes the segment (processes that have it mapped keep using it until they close).
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.core.env.s.location()
    }

    /// The trust that opens it again (for pickling a handle to another process).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.core.env.s.reopen_trust()
    }

    fn run<T>(&self, r: std::result::Result<T, Fail>) -> Result<T> {
        r.map_err(|f| self.core.fail(f))
    }

    /// The quota.
    pub fn max_quota(&self) -> u64 {
        self.core.l.p.max_quota
    }

    /// The node limit (the root included).
    pub fn max_nodes(&self) -> u64 {
        u64::from(self.core.l.p.nodes)
    }

    /// The per-chunk quota overhead.
    pub fn chunk_overhead(&self) -> u64 {
        self.core.l.p.chunk_overhead
    }

    /// Opens a file (see [`MemoryFileSystem::open`](crate::fs::MemoryFileSystem::open)).
    pub fn open_file(
        &self,
        path: &str,
        mode: OpenMode,
        preallocate: u64,
        lock_timeout: Option<Duration>,
    ) -> Result<SharedFileHandle> {
        self.open_with(path, mode, preallocate, lock_timeout, &mut || false)
    }

    /// [`SharedFileSystem::open_file`] whose wait for the file's lock runs `interrupt` between
    /// slices.
    pub fn open_with(
        &self,
        path: &str,
        mode: OpenMode,
        preallocate: u64,
        lock_timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<SharedFileHandle> {
        let (o, normalized) = self.run(self.core.open_arc(path, mode, lock_timeout, interrupt))?;
        let mut file = SFile::new(
            Arc::clone(&self.core),
            o.ino,
            o.entry,
            o.off,
            o.size,
            o.chunks,
        );
        file.read_gen = o.gen;
        let mut h = SharedFileHandle {
            cursor: Cursor::new(normalized, mode),
            file,
        };
        if let Err(e) = h.cursor.prepare(&h.file, o.created, preallocate) {
            let e = h.take_err(e);
            let _ = h.close();
            return Err(e);
        }
        // What `open` itself does to the file (`wb` empties it, `preallocate` extends it) is
        // visible at once, as with `O_TRUNC`; later writes at flush or close.
        if mode.writable() && ((mode == OpenMode::Write && !o.created) || preallocate > o.size) {
            if let Err(e) = h.file.commit(true) {
                let _ = h.close();
                return Err(e);
            }
        }
        Ok(h)
    }

    /// Creates a directory and its missing parents.
    pub fn mkdir(&self, path: &str, exist_ok: bool) -> Result<()> {
        self.run(self.core.mkdir(path, exist_ok))
    }
    /// Deletes a file.
    pub fn remove_file(&self, path: &str) -> Result<()> {
        self.run(self.core.remove(path))
    }
    /// Deletes a directory tree.
    pub fn rmtree(&self, path: &str) -> Result<()> {
        self.run(self.core.rmtree(path))
    }
    /// Renames (the destination's parent must exist).
    pub fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.run(self.core.relocate(src, dst, false))
    }
    /// Moves, creating the destination's parents.
    pub fn move_path(&self, src: &str, dst: &str) -> Result<()> {
        self.run(self.core.relocate(src, dst, true))
    }
    /// Copies a file.
    pub fn copy(&self, src: &str, dst: &str) -> Result<()> {
        self.run(self.core.copy(src, dst))
    }
    /// Copies a directory tree, all-or-nothing.
    pub fn copy_tree(&self, src: &str, dst: &str) -> Result<()> {
        self.run(self.core.copy_tree(src, dst))
    }
    /// Writes many files at once, all-or-nothing (see `MemoryFileSystem::import_tree`).
    pub fn import_tree(&self, entries: &[(&str, &[u8])]) -> Result<()> {
        self.run(self.core.import_tree(entries))
    }
    /// Names in a directory, sorted.
    pub fn listdir(&self, path: &str) -> Result<Vec<String>> {
        let (d, f) = self.scandir(path)?;
        let mut all: Vec<String> = d.into_iter().chain(f).collect();
        all.sort();
        Ok(all)
    }
    /// Subdirectory names and file names, each sorted.
    pub fn scandir(&self, path: &str) -> Result<(Vec<String>, Vec<String>)> {
        self.run(self.core.scandir(path))
    }
    /// Whether `path` exists.
    pub fn exists(&self, path: &str) -> bool {
        self.core.kind_of(path).is_some()
    }
    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.core.kind_of(path) == Some(true)
    }
    /// Whether `path` is a file.
    pub fn is_file(&self, path: &str) -> bool {
        self.core.kind_of(path) == Some(false)
    }
    /// Metadata of a path.
    pub fn stat(&self, path: &str) -> Result<Stat> {
        self.run(self.core.stat(path))
    }
    /// Usage of the whole filesystem.
    pub fn stats(&self) -> Result<Stats> {
        self.run(self.core.stats())
    }
    /// Size of a file.
    pub fn get_size(&self, path: &str) -> Result<u64> {
        self.run(self.core.get_size(path))
    }
    /// Paths matching a glob pattern, sorted.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>> {
        self.run(self.core.glob(pattern))
    }
    /// Paths of the files below `prefix`, sorted.
    pub fn file_paths(&self, prefix: &str, only_dirty: bool) -> Result<Vec<String>> {
        self.run(self.core.file_paths(prefix, only_dirty))
    }
    /// A copy of a file's committed bytes.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        self.run(self.core.read_file(path))
    }

    /// A zero-copy read-only view of a file's committed bytes: the version current now, for
    /// as long as the view lives (its memory is never reused meanwhile).
    pub fn view(&self, path: &str) -> Result<SharedView> {
        let parts = crate::fs::path::components(path)?;
        let (pin, (off, size)) = self.run(
            self.core
                .pinned(|m| Core::<SegEnv>::file_extent(m, &parts, path)),
        )?;
        let gen = pin.gen();
        std::mem::forget(pin);
        let core = &self.core;
        let start = core.l.data + off;
        let ptr = match core.r.check(start, size) {
            // SAFETY: inside the region (checked).
            Ok(o) => unsafe { core.r.ptr().add(o) },
            Err(b) => {
                core.unpin(gen);
                return Err(core.fail(Fail::Bad(b)));
            }
        };
        Ok(SharedView {
            core: Arc::clone(&self.core),
            gen,
            ptr,
            len: size as usize,
        })
    }

    /// Reaps what dead processes left: their file locks, private extents (their quota comes
    /// back) and pins. Returns how many lock entries were removed.
    pub fn reap(&self) -> Result<u32> {
        self.run(self.core.tx(&mut || false, |tx| {
            let n = tx.reap()?;
            tx.reclaim()?;
            Ok(n)
        }))
    }

    /// Checks every invariant of the committed state (after reaping the dead, with `reap`).
    pub fn fsck(&self, reap: bool) -> Result<FsckReport> {
        if reap {
            self.reap()?;
        }
        let core = &self.core;
        self.run(core.tx(&mut || false, |tx| {
            let m = Meta::new(&core.r, &core.l, ((tx.gen - 1) & 1) as usize);
            let alive = |slot: u32, epoch: u64| -> std::result::Result<bool, Fail> {
                Ok(core.slot_epoch(slot)? == epoch && core.env.alive(slot)?)
            };
            core.check(&m, &alive)
        }))
    }

    /// Usage and health, for `memspace inspect`.
    pub fn info(&self) -> Result<SharedFsInfo> {
        let core = &self.core;
        let p = core.l.p;
        let mut info = self.run(core.read(|m| {
            let h = m.hdr()?;
            let mut free = 0;
            let mut largest = 0;
            for i in 0..h.free_len {
                let (_, l) = m.free_at(i)?;
                free += l;
                largest = largest.max(l);
            }
            let mut old = 0;
            for i in 0..h.limbo_len {
                old += m.limbo_at(i)?.len;
            }
            Ok(SharedFsInfo {
                used_bytes: h.used,
                quota_bytes: p.max_quota,
                files: h.files,
                dirs: h.dirs,
                max_nodes: u64::from(p.nodes),
                data_bytes: p.data,
                free_data_bytes: free,
                free_extents: u64::from(h.free_len),
                largest_free_extent: largest,
                old_version_bytes: old,
                open_handles: u64::from(h.lt_used),
                generation: h.gen,
                attached: Vec::new(),
                oldest_snapshot_age: None,
            })
        }))?;
        for s in core.env.s.attachment().snapshot()? {
            if s.alive {
                info.attached.push((s.slot, s.pid));
            }
        }
        if let Some((_, since)) = self.run(core.oldest_pin())? {
            info.oldest_snapshot_age = Some(now_ns().saturating_sub(since) as f64 / 1e9);
        }
        Ok(info)
    }
}

/// An open file of a [`SharedFileSystem`]. It holds the file's lock until closed; a writable
/// handle's changes become visible to other processes at [`SharedFileHandle::flush`] or
/// [`SharedFileHandle::close`] (dropping it closes it too).
pub struct SharedFileHandle {
    cursor: Cursor,
    file: SFile<SegEnv>,
}

impl std::fmt::Debug for SharedFileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFileHandle")
            .field("path", &self.cursor.path())
            .field("mode", &self.cursor.mode())
            .finish_non_exhaustive()
    }
}

impl SharedFileHandle {
    fn take_err(&self, e: FsError) -> Error {
        match self.file.err.borrow_mut().take() {
            Some(other) => other,
            None => Error::Fs(e),
        }
    }

    fn done<T>(&self, r: FsResult<T>) -> Result<T> {
        r.map_err(|e| self.take_err(e))
    }

    /// The normalised path.
    pub fn path(&self) -> &str {
        self.cursor.path()
    }
    /// The mode.
    pub fn mode(&self) -> OpenMode {
        self.cursor.mode()
    }
    /// Whether it is closed.
    pub fn is_closed(&self) -> bool {
        self.cursor.is_closed()
    }
    /// [`FsError::Closed`] if closed.
    pub fn ensure_open(&self) -> Result<()> {
        self.done(self.cursor.check_open())
    }
    /// The file's size as this handle sees it.
    pub fn size(&self) -> Result<u64> {
        self.done(self.cursor.size(&self.file))
    }
    /// Bytes from the cursor to the end.
    pub fn remaining(&self) -> Result<u64> {
        self.done(self.cursor.remaining(&self.file))
    }
    /// Reads into `buf` at the cursor.
    pub fn read_into<B: ByteSink + ?Sized>(&mut self, buf: &mut B) -> Result<usize> {
        let r = self.cursor.read_into(&self.file, buf);
        self.done(r)
    }
    /// Reads to the end.
    pub fn read_to_end(&mut self) -> Result<Vec<u8>> {
        let r = self.cursor.read_to_end(&self.file);
        self.done(r)
    }
    /// One line.
    pub fn read_line(&mut self, limit: Option<u64>) -> Result<Vec<u8>> {
        let r = self.cursor.read_line(&self.file, limit);
        self.done(r)
    }
    /// The remaining lines.
    pub fn read_lines(&mut self, hint: Option<u64>) -> Result<Vec<Vec<u8>>> {
        let r = self.cursor.read_lines(&self.file, hint);
        self.done(r)
    }
    /// Writes at the cursor.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        let r = self.cursor.write(&self.file, data);
        self.done(r)
    }
    /// Moves the cursor.
    pub fn seek(&mut self, offset: i64, whence: i32) -> Result<u64> {
        let r = self.cursor.seek(&self.file, offset, whence);
        self.done(r)
    }
    /// The cursor.
    pub fn tell(&self) -> Result<u64> {
        self.done(self.cursor.tell())
    }
    /// Resizes the file.
    pub fn truncate(&mut self, size: Option<u64>) -> Result<u64> {
        let r = self.cursor.truncate(&self.file, size);
        self.done(r)
    }
    /// Commits what was written so far (visible to every process when this returns); the
    /// handle stays open with its lock.
    pub fn flush(&mut self) -> Result<()> {
        self.ensure_open()?;
        if self.cursor.mode().writable() {
            self.file.commit(true)?;
        }
        Ok(())
    }
    /// Commits (a writable handle) and releases the lock. Idempotent.
    pub fn close(&mut self) -> Result<()> {
        if self.cursor.is_closed() {
            return Ok(());
        }
        let r = if self.cursor.mode().writable() {
            self.file.commit(false)
        } else {
            self.file.release()
        };
        self.cursor.close(&self.file);
        r
    }
}

impl Drop for SharedFileHandle {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A read-only view of one committed version of a file, in place in the shared mapping. Its
/// bytes never change and are never reused while it lives (it pins its generation).
pub struct SharedView {
    core: Arc<Core<SegEnv>>,
    gen: u64,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the bytes are immutable while the pin lives and the mapping is kept by `core`.
unsafe impl Send for SharedView {}
// SAFETY: as above; the view only reads.
unsafe impl Sync for SharedView {}

impl std::fmt::Debug for SharedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedView")
            .field("len", &self.len)
            .field("generation", &self.gen)
            .finish_non_exhaustive()
    }
}

impl SharedView {
    /// Start of the bytes (valid for [`SharedView::len`] bytes while the view lives).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the file was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The generation it shows.
    pub fn generation(&self) -> u64 {
        self.gen
    }
    /// Copies the bytes into `buf` (which must be `len()` long or longer); returns `len()`.
    pub fn copy_into(&self, buf: &mut [MaybeUninit<u8>]) -> usize {
        let n = self.len.min(buf.len());
        // SAFETY: `ptr..ptr+len` lies in the live mapping (see the type docs); `buf` is a
        // private buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, buf.as_mut_ptr().cast::<u8>(), n) };
        n
    }
    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        // SAFETY: as in `copy_into`.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, v.as_mut_ptr(), self.len) };
        v
    }
}

impl Drop for SharedView {
    fn drop(&mut self) {
        self.core.unpin(self.gen);
    }
}

/// `chunks` as the public stats count them (unused: kept for the binding's repr).
pub(crate) fn _is_random(chunks: u64) -> bool {
    chunks == RANDOM
}
