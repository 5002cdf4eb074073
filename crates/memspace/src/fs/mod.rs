//! A bounded in-memory filesystem: directories, files, a hard byte quota and a node limit.
//!
//! It owns a tree of directories and files on the heap and the quota they are charged to. It
//! never touches the operating system's filesystem and never calls back into its caller.
//!
//! - **Tree.** Nodes live in an arena (`Vec` of slots, freed slots reused); a directory maps
//!   names to node ids in a sorted map. One mutex guards the tree and is held only for the
//!   length of one operation; it is never held while waiting for a file lock.
//! - **Files.** Each file has a logical reader/writer lock that an open [`FileHandle`] holds
//!   for its life (writers preferred, timeouts), and its data behind a separate `RwLock` taken
//!   only for one copy. A file's bytes are one contiguous buffer, plus, for a sequential file,
//!   any large immutable buffers a caller handed over ([`FileHandle::write_shared`], so they
//!   are kept instead of copied). Quota is charged per logical chunk as D-MemFS does, whatever
//!   the physical layout; see [`StorageKind`] for promotion.
//! - **Quota.** Reserved before any allocation and given back on every failure path: `used`
//!   is exact at every step and returns to 0 when everything is deleted. Operations on several
//!   files at once ([`MemoryFileSystem::import_tree`], [`MemoryFileSystem::copy_tree`]) check
//!   everything first and are all-or-nothing.
//!
//! # Example
//!
//! ```
//! use memspace::fs::{FsOptions, MemoryFileSystem, OpenMode};
//!
//! let fs = MemoryFileSystem::new(FsOptions::new().max_quota(1 << 20));
//! fs.mkdir("/data", false)?;
//! let mut f = fs.open("/data/a.bin", OpenMode::Write, 0, None)?;
//! f.write(b"hello")?;
//! f.close();
//! let mut f = fs.open("/data/a.bin", OpenMode::Read, 0, None)?;
//! assert_eq!(f.read_to_end()?, b"hello");
//! assert_eq!(fs.stats().used_bytes, 5 + 128);
//! # Ok::<(), memspace::Error>(())
//! ```

mod glob;
mod lock;
mod path;
mod storage;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use path::normalize;
pub use storage::{ByteSink, SharedBytes, StorageKind};

use lock::{AcquireError, FileLock, LockKind};
use storage::{Cfg, Data, Quota};

use crate::{Error, Result};

/// Default `max_quota`: 256 MiB.
pub const DEFAULT_MAX_QUOTA: u64 = 256 * 1024 * 1024;
/// Default per-chunk overhead charged for sequential files (D-MemFS's estimate).
pub const DEFAULT_CHUNK_OVERHEAD: u64 = 128;
/// Default largest size at which a sequential file may be promoted: 512 MiB.
pub const DEFAULT_PROMOTION_HARD_LIMIT: u64 = 512 * 1024 * 1024;
/// Default lock timeout of `open`: 30 s.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a [`MemoryFileSystem`] (a builder).
///
/// ```
/// use memspace::fs::{FsOptions, StorageKind};
/// let opts = FsOptions::new().max_quota(1024).max_nodes(Some(10)).storage(StorageKind::Sequential);
/// assert_eq!(opts.get_max_quota(), 1024);
/// ```
#[derive(Clone, Debug)]
pub struct FsOptions {
    max_quota: u64,
    chunk_overhead: u64,
    promotion_hard_limit: u64,
    max_nodes: Option<u64>,
    storage: StorageKind,
    default_lock_timeout: Option<Duration>,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            max_quota: DEFAULT_MAX_QUOTA,
            chunk_overhead: DEFAULT_CHUNK_OVERHEAD,
            promotion_hard_limit: DEFAULT_PROMOTION_HARD_LIMIT,
            max_nodes: None,
            storage: StorageKind::Auto,
            default_lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
        }
    }
}

impl FsOptions {
    /// The defaults (those of D-MemFS).
    pub fn new() -> Self {
        Self::default()
    }
    /// The byte quota.
    #[must_use]
    pub fn max_quota(mut self, bytes: u64) -> Self {
        self.max_quota = bytes;
        self
    }
    /// The quota overhead charged per chunk of a sequential file.
    #[must_use]
    pub fn chunk_overhead(mut self, bytes: u64) -> Self {
        self.chunk_overhead = bytes;
        self
    }
    /// The largest sequential file that may be promoted to random-access.
    #[must_use]
    pub fn promotion_hard_limit(mut self, bytes: u64) -> Self {
        self.promotion_hard_limit = bytes;
        self
    }
    /// The most nodes (files and directories, the root included); `None`: unlimited.
    #[must_use]
    pub fn max_nodes(mut self, limit: Option<u64>) -> Self {
        self.max_nodes = limit;
        self
    }
    /// How new files store their data.
    #[must_use]
    pub fn storage(mut self, kind: StorageKind) -> Self {
        self.storage = kind;
        self
    }
    /// How long `open` waits for a file lock by default; `None`: forever.
    #[must_use]
    pub fn default_lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_lock_timeout = timeout;
        self
    }
    /// The configured quota.
    pub fn get_max_quota(&self) -> u64 {
        self.max_quota
    }
    /// The configured per-chunk overhead.
    pub fn get_chunk_overhead(&self) -> u64 {
        self.chunk_overhead
    }
    /// The configured default lock timeout (`None`: wait forever).
    pub fn get_default_lock_timeout(&self) -> Option<Duration> {
        self.default_lock_timeout
    }
}

/// How a file is opened (the binary modes of Python's `open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// `rb`: read; the file must exist; shared lock.
    Read,
    /// `wb`: write; created or truncated; exclusive lock.
    Write,
    /// `ab`: append; created if missing; every write goes to the end.
    Append,
    /// `r+b`: read and write; the file must exist; not truncated.
    ReadWrite,
    /// `xb`: write; the file must not exist.
    CreateNew,
}

impl OpenMode {
    /// Parses `rb`, `wb`, `ab`, `r+b`, `xb`.
    pub fn parse(mode: &str) -> Option<Self> {
        Some(match mode {
            "rb" => Self::Read,
            "wb" => Self::Write,
            "ab" => Self::Append,
            "r+b" => Self::ReadWrite,
            "xb" => Self::CreateNew,
            _ => return None,
        })
    }
    /// The mode string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "rb",
            Self::Write => "wb",
            Self::Append => "ab",
            Self::ReadWrite => "r+b",
            Self::CreateNew => "xb",
        }
    }
    /// Whether a handle in this mode may read.
    pub fn readable(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }
    /// Whether a handle in this mode may write.
    pub fn writable(self) -> bool {
        !matches!(self, Self::Read)
    }
    fn lock_kind(self) -> LockKind {
        if self == Self::Read {
            LockKind::Read
        } else {
            LockKind::Write
        }
    }
}

/// Metadata of one path ([`MemoryFileSystem::stat`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: f64,
    /// Last data change, seconds since the Unix epoch.
    pub modified_at: f64,
    /// Count of data changes since creation or import (0 for a directory).
    pub generation: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// Usage of a whole filesystem ([`MemoryFileSystem::stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Bytes charged to the quota.
    pub used_bytes: u64,
    /// The quota.
    pub quota_bytes: u64,
    /// `quota_bytes - used_bytes`.
    pub free_bytes: u64,
    /// Number of files.
    pub file_count: u64,
    /// Number of directories, the root included.
    pub dir_count: u64,
    /// Chunks held by sequential files.
    pub chunk_count: u64,
    /// The per-chunk overhead charged.
    pub overhead_per_chunk_estimate: u64,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct FileData {
    data: Data,
    generation: u64,
    created: f64,
    modified: f64,
}

struct FileNode {
    lock: FileLock,
    data: RwLock<FileData>,
}

impl FileNode {
    fn new(data: Data, generation: u64, lock: FileLock) -> Self {
        let t = now();
        Self {
            lock,
            data: RwLock::new(FileData {
                data,
                generation,
                created: t,
                modified: t,
            }),
        }
    }
    // A panic while the data lock is held can only come from a bug (all sizes are checked
    // before copying); the data is still valid memory, so poisoning is not propagated.
    fn read(&self) -> RwLockReadGuard<'_, FileData> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write(&self) -> RwLockWriteGuard<'_, FileData> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }
}

struct DirNode {
    children: BTreeMap<String, usize>,
    created: f64,
}

enum Node {
    Dir(DirNode),
    File(Arc<FileNode>),
}

const ROOT: usize = 0;

struct Tree {
    slots: Vec<Option<Node>>,
    free: Vec<usize>,
    files: u64,
    dirs: u64,
}

impl Tree {
    fn new() -> Self {
        Self {
            slots: vec![Some(Node::Dir(DirNode {
                children: BTreeMap::new(),
                created: now(),
            }))],
            free: Vec::new(),
            files: 0,
            dirs: 1,
        }
    }

    fn node(&self, id: usize) -> &Node {
        self.slots[id].as_ref().expect("live node id")
    }

    fn dir(&self, id: usize) -> Option<&DirNode> {
        match self.node(id) {
            Node::Dir(d) => Some(d),
            Node::File(_) => None,
        }
    }

    fn dir_mut(&mut self, id: usize) -> &mut DirNode {
        match self.slots[id].as_mut() {
            Some(Node::Dir(d)) => d,
            _ => panic!("node {id} is not a directory"),
        }
    }

    fn file(&self, id: usize) -> Option<&Arc<FileNode>> {
        match self.node(id) {
            Node::File(f) => Some(f),
            Node::Dir(_) => None,
        }
    }

    fn lookup<S: AsRef<str>>(&self, parts: &[S]) -> Option<usize> {
        let mut id = ROOT;
        for p in parts {
            id = *self.dir(id)?.children.get(p.as_ref())?;
        }
        Some(id)
    }

    fn count(&self) -> u64 {
        self.files + self.dirs
    }

    fn alloc(&mut self, node: Node) -> usize {
        match &node {
            Node::Dir(_) => self.dirs += 1,
            Node::File(_) => self.files += 1,
        }
        if let Some(id) = self.free.pop() {
            self.slots[id] = Some(node);
            id
        } else {
            self.slots.push(Some(node));
            self.slots.len() - 1
        }
    }

    fn insert(&mut self, parent: usize, name: &str, node: Node) -> usize {
        let id = self.alloc(node);
        self.dir_mut(parent).children.insert(name.to_owned(), id);
        id
    }

    fn new_dir(&mut self, parent: usize, name: &str) -> usize {
        self.insert(
            parent,
            name,
            Node::Dir(DirNode {
                children: BTreeMap::new(),
                created: now(),
            }),
        )
    }

    /// Frees `id` and everything below it (already detached from its parent).
    fn free_subtree(&mut self, id: usize) {
        let node = self.slots[id].take().expect("live node id");
        self.free.push(id);
        match node {
            Node::File(_) => self.files -= 1,
            Node::Dir(d) => {
                self.dirs -= 1;
                for (_, c) in d.children {
                    self.free_subtree(c);
                }
            }
        }
    }

    /// Every file below `id` (or `id` itself), with its path.
    fn files_below(&self, id: usize, path: &str, out: &mut Vec<(String, Arc<FileNode>)>) {
        match self.node(id) {
            Node::File(f) => out.push((path.to_owned(), Arc::clone(f))),
            Node::Dir(d) => {
                for (name, &c) in &d.children {
                    self.files_below(c, &path::child(path, name), out);
                }
            }
        }
    }

    fn count_below(&self, id: usize) -> u64 {
        match self.node(id) {
            Node::File(_) => 1,
            Node::Dir(d) => {
                1 + d
                    .children
                    .values()
                    .map(|&c| self.count_below(c))
                    .sum::<u64>()
            }
        }
    }

    fn glob(&self, id: usize, path: &str, parts: &[String], out: &mut Vec<String>) {
        let Some((first, rest)) = parts.split_first() else {
            if id != ROOT {
                out.push(path.to_owned());
            }
            return;
        };
        let Some(dir) = self.dir(id) else { return };
        if first == "**" {
            if rest.is_empty() {
                // A trailing `**` is every descendant (not the directory itself).
                for (name, &c) in &dir.children {
                    let p = path::child(path, name);
                    out.push(p.clone());
                    self.glob(c, &p, parts, out);
                }
                return;
            }
            self.glob(id, path, rest, out);
            for (name, &c) in &dir.children {
                if self.dir(c).is_some() {
                    self.glob(c, &path::child(path, name), parts, out);
                }
            }
        } else if glob::is_literal(first) {
            if let Some(&c) = dir.children.get(first) {
                self.glob(c, &path::child(path, first), rest, out);
            }
        } else {
            for (name, &c) in &dir.children {
                if glob::fnmatch(name, first) {
                    self.glob(c, &path::child(path, name), rest, out);
                }
            }
        }
    }
}

/// A directory's shape with its files' bytes, copied out of the tree (for `copy_tree`).
enum Shape {
    Dir(Vec<(String, Shape)>),
    File(Vec<u8>),
}

/// The same shape with the copies' data built.
enum Built {
    Dir(Vec<(String, Built)>),
    File(Data),
}

impl Shape {
    fn file_sizes(&self, out: &mut Vec<u64>) {
        match self {
            Shape::File(b) => out.push(b.len() as u64),
            Shape::Dir(c) => c.iter().for_each(|(_, s)| s.file_sizes(out)),
        }
    }

    fn copy(&self, kind: StorageKind) -> Result<Built> {
        Ok(match self {
            Shape::File(b) => Built::File(Data::from_bytes(kind, b)?),
            Shape::Dir(c) => Built::Dir(
                c.iter()
                    .map(|(n, s)| Ok((n.clone(), s.copy(kind)?)))
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

impl Tree {
    fn shape(&self, id: usize) -> Shape {
        match self.node(id) {
            Node::File(f) => {
                let d = f.read();
                let mut b = vec![0u8; d.data.size() as usize];
                d.data.read_at(0, b.as_mut_slice());
                Shape::File(b)
            }
            Node::Dir(d) => Shape::Dir(
                d.children
                    .iter()
                    .map(|(n, &c)| (n.clone(), self.shape(c)))
                    .collect(),
            ),
        }
    }

    fn graft(&mut self, dir: usize, built: Built) {
        let Built::Dir(children) = built else {
            unreachable!("graft of a file")
        };
        for (name, b) in children {
            match b {
                Built::File(data) => {
                    self.insert(
                        dir,
                        &name,
                        Node::File(Arc::new(FileNode::new(data, 0, FileLock::default()))),
                    );
                }
                d @ Built::Dir(_) => {
                    let nd = self.new_dir(dir, &name);
                    self.graft(nd, d);
                }
            }
        }
    }
}

struct Shared {
    opts: FsOptions,
    cfg: Cfg,
    quota: Quota,
    tree: Mutex<Tree>,
}

impl Shared {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        // Every tree mutation validates first and then applies steps that cannot fail, so a
        // panic cannot leave the tree half-changed; poisoning carries no information.
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_nodes(&self, tree: &Tree, extra: u64) -> Result<()> {
        match self.opts.max_nodes {
            Some(limit) if tree.count() + extra > limit => Err(Error::NodeLimitExceeded {
                current: tree.count(),
                limit,
            }),
            _ => Ok(()),
        }
    }
}

/// Splits a path into (parent components, name); the root has no name.
fn split(path: &str) -> Result<(Vec<String>, Option<String>)> {
    let mut parts = normalize(path)?;
    let name = parts.pop();
    Ok((parts, name))
}

/// A bounded in-memory filesystem. Cloning gives another handle to the same filesystem.
///
/// See the [module documentation](self) for the design and an example.
#[derive(Clone)]
pub struct MemoryFileSystem {
    shared: Arc<Shared>,
}

impl Default for MemoryFileSystem {
    fn default() -> Self {
        Self::new(FsOptions::default())
    }
}

impl std::fmt::Debug for MemoryFileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (max, used) = self.shared.quota.snapshot();
        f.debug_struct("MemoryFileSystem")
            .field("max_quota", &max)
            .field("used", &used)
            .finish()
    }
}

impl MemoryFileSystem {
    /// An empty filesystem (just the root directory).
    pub fn new(opts: FsOptions) -> Self {
        let cfg = Cfg {
            overhead: opts.chunk_overhead,
            hard_limit: opts.promotion_hard_limit,
        };
        Self {
            shared: Arc::new(Shared {
                quota: Quota::new(opts.max_quota),
                cfg,
                opts,
                tree: Mutex::new(Tree::new()),
            }),
        }
    }

    /// The settings it was created with.
    pub fn options(&self) -> &FsOptions {
        &self.shared.opts
    }

    /// Opens a file. `lock_timeout` `None` uses the default; zero tries once.
    ///
    /// The lock is waited for without holding the tree lock. `preallocate` extends the file
    /// with zeros to that size (charged to the quota now).
    pub fn open(
        &self,
        path: &str,
        mode: OpenMode,
        preallocate: u64,
        lock_timeout: Option<Duration>,
    ) -> Result<FileHandle> {
        let mut parent = path::components(path)?;
        let normalized = path::join(&parent);
        let name = parent.pop();
        let timeout = lock_timeout.or(self.shared.opts.default_lock_timeout);
        let sh = &self.shared;
        let (node, created) = loop {
            let (node, created) = {
                let mut tree = sh.tree();
                let Some(name) = &name else {
                    return Err(Error::IsADirectory {
                        path: path.to_owned(),
                    });
                };
                let pid = tree.lookup(&parent);
                let existing = pid.and_then(|p| tree.dir(p)?.children.get(*name).copied());
                if let Some(id) = existing {
                    match tree.node(id) {
                        Node::Dir(_) => {
                            return Err(Error::IsADirectory {
                                path: path.to_owned(),
                            })
                        }
                        Node::File(_) if mode == OpenMode::CreateNew => {
                            return Err(Error::PathExists {
                                path: path.to_owned(),
                            })
                        }
                        Node::File(f) => (Arc::clone(f), false),
                    }
                } else {
                    if matches!(mode, OpenMode::Read | OpenMode::ReadWrite) {
                        return Err(Error::NoSuchPath {
                            path: path.to_owned(),
                        });
                    }
                    let Some(pid) = pid.filter(|&p| tree.dir(p).is_some()) else {
                        return Err(Error::NoSuchPath {
                            path: path::join(&parent),
                        });
                    };
                    sh.check_nodes(&tree, 1)?;
                    let f = Arc::new(FileNode::new(
                        Data::new(sh.opts.storage),
                        0,
                        FileLock::new_write_locked(),
                    ));
                    tree.insert(pid, name, Node::File(Arc::clone(&f)));
                    (f, true)
                }
            };
            if created {
                break (node, true);
            }
            match node.lock.acquire(mode.lock_kind(), timeout) {
                Ok(()) => break (node, false),
                // Removed or replaced while we waited: look the path up again.
                Err(AcquireError::Unlinked) => {}
                Err(AcquireError::Timeout) => {
                    return Err(Error::LockTimeout {
                        path: path.to_owned(),
                        kind: mode.lock_kind().name(),
                    })
                }
            }
        };
        let mut handle = FileHandle {
            shared: Arc::clone(sh),
            node,
            mode,
            pos: 0,
            closed: false,
            path: normalized,
        };
        {
            let mut d = handle.node.write();
            if mode == OpenMode::Write && !created {
                d.data.truncate(0, sh.cfg, &sh.quota)?;
                d.generation += 1;
                d.modified = now();
            }
            let size = d.data.size();
            if preallocate > size {
                // Growing appends one zero-filled chunk, charged exactly like writing zeros
                // at the end (D-MemFS's preallocation), without building them first.
                d.data.truncate(preallocate, sh.cfg, &sh.quota)?;
                d.generation += 1;
                d.modified = now();
            }
            if mode == OpenMode::Append {
                handle.pos = d.data.size();
            }
        }
        Ok(handle)
    }

    /// Creates a directory and every missing parent (like `os.makedirs`). All-or-nothing
    /// against `max_nodes`.
    pub fn mkdir(&self, path: &str, exist_ok: bool) -> Result<()> {
        let parts = normalize(path)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let mut id = ROOT;
        let mut depth = 0;
        while depth < parts.len() {
            let Some(&c) = tree.dir(id).and_then(|d| d.children.get(&parts[depth])) else {
                break;
            };
            if tree.dir(c).is_none() {
                return Err(Error::PathExists {
                    path: path::join(&parts[..=depth]),
                });
            }
            id = c;
            depth += 1;
        }
        if depth == parts.len() {
            return if exist_ok {
                Ok(())
            } else {
                Err(Error::PathExists {
                    path: path.to_owned(),
                })
            };
        }
        sh.check_nodes(&tree, (parts.len() - depth) as u64)?;
        for p in &parts[depth..] {
            id = tree.new_dir(id, p);
        }
        Ok(())
    }

    /// Deletes a file (not open, not a directory).
    pub fn remove(&self, path: &str) -> Result<()> {
        let (parent, name) = split(path)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let Some(name) = name else {
            return Err(Error::IsADirectory {
                path: path.to_owned(),
            });
        };
        let pid = tree.lookup(&parent).filter(|&p| tree.dir(p).is_some());
        let Some((pid, id)) = pid.and_then(|p| Some((p, *tree.dir(p)?.children.get(&name)?)))
        else {
            return Err(Error::NoSuchPath {
                path: path.to_owned(),
            });
        };
        let Some(f) = tree.file(id).cloned() else {
            return Err(Error::IsADirectory {
                path: path.to_owned(),
            });
        };
        if !f.lock.try_unlink() {
            return Err(Error::FileBusy {
                path: path.to_owned(),
            });
        }
        tree.dir_mut(pid).children.remove(&name);
        tree.free_subtree(id);
        let charge = f.read().data.charge(sh.cfg);
        sh.quota.release(charge);
        Ok(())
    }

    /// Marks every file as removed, or none if one of them is open.
    fn unlink_all(files: &[(String, Arc<FileNode>)]) -> Result<()> {
        for (i, (p, f)) in files.iter().enumerate() {
            if !f.lock.try_unlink() {
                for (_, g) in &files[..i] {
                    g.lock.relink();
                }
                return Err(Error::FileBusy { path: p.clone() });
            }
        }
        Ok(())
    }

    /// Deletes a directory and everything below it; refused if any file below is open.
    pub fn rmtree(&self, path: &str) -> Result<()> {
        let (parent, name) = split(path)?;
        let Some(name) = name else {
            return Err(Error::InvalidArgument(
                "Cannot remove the root directory.".to_owned(),
            ));
        };
        let sh = &self.shared;
        let mut tree = sh.tree();
        let found = tree
            .lookup(&parent)
            .and_then(|p| Some((p, *tree.dir(p)?.children.get(&name)?)));
        let Some((pid, id)) = found else {
            return Err(Error::NoSuchPath {
                path: path.to_owned(),
            });
        };
        if tree.dir(id).is_none() {
            return Err(Error::NotADirectory {
                path: path.to_owned(),
            });
        }
        let mut files = Vec::new();
        tree.files_below(id, &path::join(&normalize(path)?), &mut files);
        Self::unlink_all(&files)?;
        tree.dir_mut(pid).children.remove(&name);
        tree.free_subtree(id);
        let charge: u64 = files
            .iter()
            .map(|(_, f)| f.read().data.charge(sh.cfg))
            .sum();
        sh.quota.release(charge);
        Ok(())
    }

    /// Renames a file or directory; the destination's parent must exist.
    pub fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.relocate(src, dst, false)
    }

    /// Like [`MemoryFileSystem::rename`], creating the destination's missing parents.
    pub fn move_path(&self, src: &str, dst: &str) -> Result<()> {
        self.relocate(src, dst, true)
    }

    fn relocate(&self, src: &str, dst: &str, make_parents: bool) -> Result<()> {
        let (sparent, sname) = split(src)?;
        let (dparent, dname) = split(dst)?;
        let Some(sname) = sname else {
            let verb = if make_parents { "move" } else { "rename" };
            return Err(Error::InvalidArgument(format!(
                "Cannot {verb} the root directory."
            )));
        };
        let sh = &self.shared;
        let mut tree = sh.tree();
        let found = tree
            .lookup(&sparent)
            .and_then(|p| Some((p, *tree.dir(p)?.children.get(&sname)?)));
        let Some((src_parent, src_id)) = found else {
            return Err(Error::NoSuchPath {
                path: src.to_owned(),
            });
        };
        let Some(dname) = dname else {
            return Err(Error::PathExists {
                path: dst.to_owned(),
            });
        };
        let mut dfull = dparent.clone();
        dfull.push(dname.clone());
        if tree.lookup(&dfull).is_some() {
            return Err(Error::PathExists {
                path: dst.to_owned(),
            });
        }
        let mut sfull = sparent.clone();
        sfull.push(sname.clone());
        if dfull.len() > sfull.len() && dfull[..sfull.len()] == sfull[..] {
            return Err(Error::InvalidArgument(format!(
                "Cannot move '{src}' into its own subtree '{dst}'."
            )));
        }
        // Find the existing part of the destination's parent chain.
        let mut id = ROOT;
        let mut depth = 0;
        while depth < dparent.len() {
            let Some(&c) = tree.dir(id).and_then(|d| d.children.get(&dparent[depth])) else {
                break;
            };
            if tree.dir(c).is_none() {
                return Err(if make_parents {
                    Error::PathExists {
                        path: path::join(&dparent[..=depth]),
                    }
                } else {
                    Error::NoSuchPath {
                        path: dst.to_owned(),
                    }
                });
            }
            id = c;
            depth += 1;
        }
        if depth < dparent.len() && !make_parents {
            return Err(Error::NoSuchPath {
                path: dst.to_owned(),
            });
        }
        let mut files = Vec::new();
        tree.files_below(src_id, &path::join(&sfull), &mut files);
        if let Some((p, _)) = files.iter().find(|(_, f)| f.lock.is_locked()) {
            return Err(Error::FileBusy { path: p.clone() });
        }
        sh.check_nodes(&tree, (dparent.len() - depth) as u64)?;
        for p in &dparent[depth..] {
            id = tree.new_dir(id, p);
        }
        tree.dir_mut(src_parent).children.remove(&sname);
        tree.dir_mut(id).children.insert(dname, src_id);
        Ok(())
    }

    /// Resolves `dst`'s parent for a new node: it must be an existing directory and `dst`
    /// must not exist.
    fn new_entry_parent(tree: &Tree, dst: &str) -> Result<(usize, String)> {
        let (dparent, dname) = split(dst)?;
        let Some(dname) = dname else {
            return Err(Error::PathExists {
                path: dst.to_owned(),
            });
        };
        let Some(pid) = tree.lookup(&dparent).filter(|&p| tree.dir(p).is_some()) else {
            return Err(Error::NoSuchPath {
                path: dst.to_owned(),
            });
        };
        if tree
            .dir(pid)
            .is_some_and(|d| d.children.contains_key(&dname))
        {
            return Err(Error::PathExists {
                path: dst.to_owned(),
            });
        }
        Ok((pid, dname))
    }

    /// Copies one file to a new path (whose parent must exist). All-or-nothing.
    pub fn copy(&self, src: &str, dst: &str) -> Result<()> {
        let sparts = normalize(src)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let Some(sid) = tree.lookup(&sparts) else {
            return Err(Error::NoSuchPath {
                path: src.to_owned(),
            });
        };
        let Some(f) = tree.file(sid).cloned() else {
            return Err(Error::IsADirectory {
                path: src.to_owned(),
            });
        };
        if tree.lookup(&normalize(dst)?).is_some() {
            return Err(Error::PathExists {
                path: dst.to_owned(),
            });
        }
        let (pid, dname) = Self::new_entry_parent(&tree, dst)?;
        sh.check_nodes(&tree, 1)?;
        let node = {
            let d = f.read();
            let len = d.data.size();
            let kind = sh.opts.storage;
            let charge = Data::charge_for(kind, len, sh.cfg);
            sh.quota.reserve(charge)?;
            let mut buf = vec![0u8; len as usize];
            d.data.read_at(0, buf.as_mut_slice());
            let data = Data::from_bytes(kind, &buf).inspect_err(|_| sh.quota.release(charge))?;
            FileNode::new(data, u64::from(len > 0), FileLock::default())
        };
        tree.insert(pid, &dname, Node::File(Arc::new(node)));
        Ok(())
    }

    /// Copies a directory and everything below it to a new path. All-or-nothing: the quota
    /// and node limit are checked for the whole subtree before anything is created.
    pub fn copy_tree(&self, src: &str, dst: &str) -> Result<()> {
        let sparts = normalize(src)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let Some(sid) = tree.lookup(&sparts) else {
            return Err(Error::NoSuchPath {
                path: src.to_owned(),
            });
        };
        if tree.dir(sid).is_none() {
            return Err(Error::NotADirectory {
                path: src.to_owned(),
            });
        }
        if tree.lookup(&normalize(dst)?).is_some() {
            return Err(Error::PathExists {
                path: dst.to_owned(),
            });
        }
        let (pid, dname) = Self::new_entry_parent(&tree, dst)?;
        sh.check_nodes(&tree, tree.count_below(sid))?;
        let kind = sh.opts.storage;
        // Snapshot the shape and every file's bytes first (the destination may lie inside
        // the source), then charge exactly what the copies will hold.
        let shape = tree.shape(sid);
        let mut sizes = Vec::new();
        shape.file_sizes(&mut sizes);
        let charge: u64 = sizes
            .iter()
            .map(|&n| Data::charge_for(kind, n, sh.cfg))
            .sum();
        sh.quota.reserve(charge)?;
        let built = match shape.copy(kind) {
            Ok(b) => b,
            Err(e) => {
                sh.quota.release(charge);
                return Err(e);
            }
        };
        let new_root = tree.new_dir(pid, &dname);
        tree.graft(new_root, built);
        Ok(())
    }

    /// Names in a directory, sorted.
    pub fn listdir(&self, path: &str) -> Result<Vec<String>> {
        let (dirs, files) = self.scandir(path)?;
        let mut all: Vec<String> = dirs.into_iter().chain(files).collect();
        all.sort();
        Ok(all)
    }

    /// A directory's subdirectory names and file names, each sorted.
    pub fn scandir(&self, path: &str) -> Result<(Vec<String>, Vec<String>)> {
        let parts = path::components(path)?;
        let tree = self.shared.tree();
        let Some(id) = tree.lookup(&parts) else {
            return Err(Error::NoSuchPath {
                path: path.to_owned(),
            });
        };
        let Some(d) = tree.dir(id) else {
            return Err(Error::NotADirectory {
                path: path.to_owned(),
            });
        };
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        for (name, &c) in &d.children {
            if tree.dir(c).is_some() {
                dirs.push(name.clone());
            } else {
                files.push(name.clone());
            }
        }
        Ok((dirs, files))
    }

    fn kind_of(&self, path: &str) -> Option<bool> {
        let parts = path::components(path).ok()?;
        let tree = self.shared.tree();
        let id = tree.lookup(&parts)?;
        Some(tree.dir(id).is_some())
    }

    /// Whether `path` exists (never fails; a bad path does not exist).
    pub fn exists(&self, path: &str) -> bool {
        self.kind_of(path).is_some()
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.kind_of(path) == Some(true)
    }

    /// Whether `path` is a file.
    pub fn is_file(&self, path: &str) -> bool {
        self.kind_of(path) == Some(false)
    }

    /// Metadata of a file or directory.
    pub fn stat(&self, path: &str) -> Result<Stat> {
        let parts = path::components(path)?;
        let tree = self.shared.tree();
        let Some(id) = tree.lookup(&parts) else {
            return Err(Error::NoSuchPath {
                path: path.to_owned(),
            });
        };
        Ok(match tree.node(id) {
            Node::Dir(d) => Stat {
                size: 0,
                created_at: d.created,
                modified_at: d.created,
                generation: 0,
                is_dir: true,
            },
            Node::File(f) => {
                let d = f.read();
                Stat {
                    size: d.data.size(),
                    created_at: d.created,
                    modified_at: d.modified,
                    generation: d.generation,
                    is_dir: false,
                }
            }
        })
    }

    /// Usage of the whole filesystem.
    pub fn stats(&self) -> Stats {
        let sh = &self.shared;
        let tree = sh.tree();
        let chunk_count = tree
            .slots
            .iter()
            .filter_map(|s| match s {
                Some(Node::File(f)) => Some(f.read().data.chunk_count()),
                _ => None,
            })
            .sum();
        let (max, used) = sh.quota.snapshot();
        Stats {
            used_bytes: used,
            quota_bytes: max,
            free_bytes: max.saturating_sub(used),
            file_count: tree.files,
            dir_count: tree.dirs,
            chunk_count,
            overhead_per_chunk_estimate: sh.opts.chunk_overhead,
        }
    }

    fn file_node(&self, path: &str) -> Result<Arc<FileNode>> {
        let parts = path::components(path)?;
        let tree = self.shared.tree();
        let Some(id) = tree.lookup(&parts) else {
            return Err(Error::NoSuchPath {
                path: path.to_owned(),
            });
        };
        tree.file(id).cloned().ok_or_else(|| Error::IsADirectory {
            path: path.to_owned(),
        })
    }

    /// Size of a file.
    pub fn get_size(&self, path: &str) -> Result<u64> {
        Ok(self.file_node(path)?.read().data.size())
    }

    /// A reference to a file's data for copying it out ([`FileSnapshot`]). It does not take
    /// the file's lock, so it works (and never waits) while the file is open.
    pub fn snapshot(&self, path: &str) -> Result<FileSnapshot> {
        Ok(FileSnapshot {
            node: self.file_node(path)?,
        })
    }

    /// A copy of a file's bytes (a consistent state between two writes).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self.snapshot(path)?.to_vec())
    }

    /// Paths of the files below `prefix` (or `prefix` itself if it is a file), sorted;
    /// with `only_dirty`, only those written since creation or import.
    pub fn file_paths(&self, prefix: &str, only_dirty: bool) -> Result<Vec<String>> {
        let parts = normalize(prefix)?;
        let tree = self.shared.tree();
        let mut files = Vec::new();
        if let Some(id) = tree.lookup(&parts) {
            tree.files_below(id, &path::join(&parts), &mut files);
        }
        Ok(files
            .into_iter()
            .filter(|(_, f)| !only_dirty || f.read().generation > 0)
            .map(|(p, _)| p)
            .collect())
    }

    /// Every file below `prefix` with its bytes.
    pub fn export_tree(&self, prefix: &str, only_dirty: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for p in self.file_paths(prefix, only_dirty)? {
            match self.read_file(&p) {
                Ok(b) => out.push((p, b)),
                Err(Error::NoSuchPath { .. } | Error::IsADirectory { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Writes many files at once, creating missing parents and replacing existing files.
    /// All-or-nothing: paths, open files, the node limit and the quota are all checked
    /// before anything changes. Imported files have generation 0.
    pub fn import_tree<'a, I>(&self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        // Normalise all paths first; a later duplicate replaces an earlier one.
        let mut order: Vec<Vec<String>> = Vec::new();
        let mut data: BTreeMap<Vec<String>, &[u8]> = BTreeMap::new();
        for (p, d) in entries {
            let parts = normalize(p)?;
            if parts.is_empty() {
                return Err(Error::IsADirectory { path: p.to_owned() });
            }
            if data.insert(parts.clone(), d).is_none() {
                order.push(parts);
            }
        }
        if order.is_empty() {
            return Ok(());
        }
        let sh = &self.shared;
        let kind = sh.opts.storage;
        let mut tree = sh.tree();
        let targets: BTreeSet<&Vec<String>> = order.iter().collect();
        let mut new_dirs: BTreeSet<Vec<String>> = BTreeSet::new();
        let mut old: Vec<(String, Arc<FileNode>)> = Vec::new();
        let mut new_files = 0u64;
        let mut new_charge = 0u64;
        for parts in &order {
            // Every parent must be (or become) a directory.
            for depth in 1..parts.len() {
                let prefix = &parts[..depth];
                if targets.contains(&prefix.to_vec()) {
                    return Err(Error::PathExists {
                        path: path::join(prefix),
                    });
                }
                match tree.lookup(prefix) {
                    Some(id) if tree.dir(id).is_none() => {
                        return Err(Error::PathExists {
                            path: path::join(prefix),
                        })
                    }
                    Some(_) => {}
                    None => {
                        new_dirs.insert(prefix.to_vec());
                    }
                }
            }
            match tree.lookup(parts) {
                Some(id) => match tree.node(id) {
                    Node::Dir(_) => {
                        return Err(Error::IsADirectory {
                            path: path::join(parts),
                        })
                    }
                    Node::File(f) => old.push((path::join(parts), Arc::clone(f))),
                },
                None => new_files += 1,
            }
            new_charge += Data::charge_for(kind, data[parts].len() as u64, sh.cfg);
        }
        sh.check_nodes(&tree, new_dirs.len() as u64 + new_files)?;
        Self::unlink_all(&old)?;
        let old_charge: u64 = old.iter().map(|(_, f)| f.read().data.charge(sh.cfg)).sum();
        if let Err(e) = sh.quota.exchange(old_charge, new_charge) {
            for (_, f) in &old {
                f.lock.relink();
            }
            return Err(e);
        }
        let mut built = Vec::with_capacity(order.len());
        for parts in &order {
            match Data::from_bytes(kind, data[parts]) {
                Ok(d) => built.push(FileNode::new(d, 0, FileLock::default())),
                Err(e) => {
                    sh.quota.undo_exchange(old_charge, new_charge);
                    for (_, f) in &old {
                        f.lock.relink();
                    }
                    return Err(e);
                }
            }
        }
        // Nothing below can fail.
        for d in &new_dirs {
            let pid = tree
                .lookup(&d[..d.len() - 1])
                .expect("parents created in order");
            tree.new_dir(pid, &d[d.len() - 1]);
        }
        for (parts, node) in order.iter().zip(built) {
            let pid = tree
                .lookup(&parts[..parts.len() - 1])
                .expect("parent exists");
            let name = &parts[parts.len() - 1];
            if let Some(oldid) = tree.dir(pid).and_then(|d| d.children.get(name).copied()) {
                tree.dir_mut(pid).children.remove(name);
                tree.free_subtree(oldid);
            }
            tree.insert(pid, name, Node::File(Arc::new(node)));
        }
        Ok(())
    }

    /// Paths matching a glob pattern (`*`, `?`, `[seq]`, `[!seq]` within a component, `**`
    /// for any number of components), sorted, each once.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let parts: Vec<String> = pattern
            .split(['/', '\\'])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let tree = self.shared.tree();
        let mut out = Vec::new();
        if !parts.is_empty() {
            tree.glob(ROOT, "/", &parts, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// A file's data, for copying out without the file's lock (see
/// [`MemoryFileSystem::snapshot`]).
///
/// ```
/// use memspace::fs::{MemoryFileSystem, OpenMode};
///
/// let fs = MemoryFileSystem::default();
/// let mut w = fs.open("/f", OpenMode::Write, 0, None)?;
/// w.write(b"abc")?;
/// // The writer still holds the file; a snapshot copies what it has written so far.
/// let snap = fs.snapshot("/f")?;
/// let mut buf = [0u8; 3];
/// assert_eq!(snap.read_into(&mut buf[..]), (3, 3));
/// assert_eq!(&buf, b"abc");
/// # Ok::<(), memspace::Error>(())
/// ```
pub struct FileSnapshot {
    node: Arc<FileNode>,
}

impl FileSnapshot {
    /// The current size.
    pub fn len(&self) -> u64 {
        self.node.read().data.size()
    }
    /// Whether the file is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies from the start into `buf` (initialised or not); returns `(copied, size at the
    /// time of the copy)`.
    pub fn read_into<B: ByteSink + ?Sized>(&self, buf: &mut B) -> (usize, u64) {
        let d = self.node.read();
        (d.data.read_at(0, buf), d.data.size())
    }
    /// All the bytes, as one consistent state.
    pub fn to_vec(&self) -> Vec<u8> {
        let d = self.node.read();
        let mut v = vec![0u8; d.data.size() as usize];
        d.data.read_at(0, v.as_mut_slice());
        v
    }
}

/// An open file: a cursor plus the file's lock (shared for `rb`, exclusive otherwise), held
/// until [`FileHandle::close`] or drop.
///
/// ```
/// use memspace::fs::{MemoryFileSystem, OpenMode};
/// use std::time::Duration;
///
/// let fs = MemoryFileSystem::default();
/// let mut f = fs.open("/f", OpenMode::Write, 0, None)?;
/// f.write(b"hello world")?;
/// f.seek(0, 0)?;
/// f.write(b"J")?; // a random write: the file becomes contiguous random-access storage
/// // While `f` is open for writing, others wait (here: not at all) and time out.
/// assert!(fs.open("/f", OpenMode::Read, 0, Some(Duration::ZERO)).is_err());
/// f.close();
/// let mut r = fs.open("/f", OpenMode::Read, 0, None)?;
/// assert_eq!(r.read_to_end()?, b"Jello world");
/// # Ok::<(), memspace::Error>(())
/// ```
pub struct FileHandle {
    shared: Arc<Shared>,
    node: Arc<FileNode>,
    mode: OpenMode,
    pos: u64,
    closed: bool,
    path: String,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHandle")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("pos", &self.pos)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn closed_err() -> Error {
    Error::InvalidArgument("I/O operation on closed file.".to_owned())
}

impl FileHandle {
    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(closed_err())
        } else {
            Ok(())
        }
    }
    fn check_readable(&self) -> Result<()> {
        self.check_open()?;
        if self.mode.readable() {
            Ok(())
        } else {
            Err(Error::UnsupportedOperation(format!(
                "not readable in mode '{}'",
                self.mode.as_str()
            )))
        }
    }
    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.mode.writable() {
            Ok(())
        } else {
            Err(Error::UnsupportedOperation(format!(
                "not writable in mode '{}'",
                self.mode.as_str()
            )))
        }
    }

    /// The normalised path it was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The mode it was opened with.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }
    /// Whether it has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    /// The file's current size.
    pub fn size(&self) -> Result<u64> {
        self.check_open()?;
        Ok(self.node.read().data.size())
    }
    /// Bytes between the cursor and the end (what `read(-1)` would return), for readable
    /// handles.
    pub fn remaining(&self) -> Result<u64> {
        self.check_readable()?;
        Ok(self.node.read().data.size().saturating_sub(self.pos))
    }

    /// Reads into `buf` (a `[u8]` or a `[MaybeUninit<u8>]`) from the cursor; returns the count
    /// (0 at the end).
    pub fn read_into<B: ByteSink + ?Sized>(&mut self, buf: &mut B) -> Result<usize> {
        self.check_readable()?;
        let n = self.node.read().data.read_at(self.pos, buf);
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads everything from the cursor to the end.
    pub fn read_to_end(&mut self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.remaining()? as usize];
        let n = self.read_into(&mut v[..])?;
        v.truncate(n);
        Ok(v)
    }

    /// Writes at the cursor (at the end in `ab` mode); returns `data.len()`.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        self.check_writable()?;
        if data.is_empty() {
            return Ok(0);
        }
        let sh = &self.shared;
        let mut d = self.node.write();
        if self.mode == OpenMode::Append {
            self.pos = d.data.size();
        }
        d.data.write_at(self.pos, data, sh.cfg, &sh.quota)?;
        d.generation += 1;
        d.modified = now();
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    /// Like [`FileHandle::write`], but an append to a sequential file keeps `data` itself
    /// instead of copying it (the quota is charged the same). Other writes copy it.
    pub fn write_shared(&mut self, data: Arc<dyn SharedBytes>) -> Result<usize> {
        self.check_writable()?;
        let n = data.bytes().len();
        if n == 0 {
            return Ok(0);
        }
        let sh = &self.shared;
        let mut d = self.node.write();
        if self.mode == OpenMode::Append {
            self.pos = d.data.size();
        }
        d.data.write_shared_at(self.pos, data, sh.cfg, &sh.quota)?;
        d.generation += 1;
        d.modified = now();
        self.pos += n as u64;
        Ok(n)
    }

    /// Moves the cursor: `whence` 0 (start, `offset >= 0`), 1 (current), 2 (end,
    /// `offset <= 0`). Returns the new position.
    pub fn seek(&mut self, offset: i64, whence: i32) -> Result<u64> {
        self.check_open()?;
        let base: i128 = match whence {
            0 => {
                if offset < 0 {
                    return Err(Error::InvalidArgument(
                        "seek offset must be >= 0 for SEEK_SET".to_owned(),
                    ));
                }
                0
            }
            1 => i128::from(self.pos),
            2 => {
                if offset > 0 {
                    return Err(Error::InvalidArgument(
                        "Seeking past end-of-file (SEEK_END with positive offset) is not \
                         supported in MFS."
                            .to_owned(),
                    ));
                }
                i128::from(self.node.read().data.size())
            }
            w => {
                return Err(Error::InvalidArgument(format!(
                    "Invalid whence value: {w}. Must be 0, 1, or 2."
                )))
            }
        };
        let new = base + i128::from(offset);
        if new < 0 {
            return Err(Error::InvalidArgument(format!(
                "Resulting cursor position {new} is negative."
            )));
        }
        self.pos = u64::try_from(new)
            .map_err(|_| Error::InvalidArgument(format!("seek position {new} is too large")))?;
        Ok(self.pos)
    }

    /// The cursor.
    pub fn tell(&self) -> Result<u64> {
        self.check_open()?;
        Ok(self.pos)
    }

    /// Resizes the file to `size` (the cursor if `None`); returns the new size.
    pub fn truncate(&mut self, size: Option<u64>) -> Result<u64> {
        self.check_writable()?;
        let target = size.unwrap_or(self.pos);
        let sh = &self.shared;
        let mut d = self.node.write();
        let before = d.data.size();
        d.data.truncate(target, sh.cfg, &sh.quota)?;
        if before != target {
            d.generation += 1;
            d.modified = now();
        }
        self.pos = self.pos.min(target);
        Ok(target)
    }

    /// Releases the file's lock. Idempotent.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            if self.mode.writable() {
                self.node.write().data.shrink_slack();
            }
            self.node.lock.release(self.mode.lock_kind());
        }
    }
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
