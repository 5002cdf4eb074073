//! The filesystem on the Rust heap ([`MemoryFileSystem`]): its operations on single paths
//! here, those on many files at once in `bulk`, the tree in `tree`, one file and its handle
//! in `file`, the per-file lock in `lock`, file data and the quota in `storage`.
//!
//! One mutex guards the tree and is held only for the length of one operation; it is never
//! held while waiting for a file lock, and nothing here calls out (to an interrupt check or
//! any caller code) while holding it.

mod bulk;
mod file;
mod lock;
mod storage;
mod tree;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use bulk::ExportIter;
pub use file::{FileHandle, FileSnapshot};

use file::{FileNode, HeapFile};
use lock::{AcquireError, FileLock};
use storage::{Cfg, Data, Quota};
use tree::{Node, Reach, Tree};

use super::error::{FsError, FsResult};
use super::handle::Cursor;
use super::options::{FsOptions, OpenMode, Stat, Stats};
use super::{glob, path};
use crate::lock::Interrupt;
use crate::{Error, Result};

/// What every handle of one filesystem shares: its settings, quota and tree.
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

    /// Refuses `extra` more nodes beyond `max_nodes`.
    fn check_nodes(&self, tree: &Tree, extra: u64) -> FsResult<()> {
        match self.opts.max_nodes {
            Some(limit) if tree.count() + extra > limit => Err(FsError::NodeLimitExceeded {
                current: tree.count(),
                limit,
            }),
            _ => Ok(()),
        }
    }
}

/// Marks every file as removed, or none if one of them is open.
fn unlink_all(files: &[(String, Arc<FileNode>)]) -> FsResult<()> {
    for (i, (p, f)) in files.iter().enumerate() {
        if !f.lock.try_unlink() {
            for (_, g) in &files[..i] {
                g.lock.relink();
            }
            return Err(FsError::FileBusy { path: p.clone() });
        }
    }
    Ok(())
}

/// A directory found by [`MemoryFileSystem::scandir_from`]: a way back to it that stays
/// valid while the tree's shape (what was removed or moved) has not changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirToken {
    id: usize,
    epoch: u64,
}

impl DirToken {
    /// The token as two integers (to hand it to code that cannot hold a Rust value).
    pub fn to_parts(self) -> (u64, u64) {
        (self.id as u64, self.epoch)
    }

    /// A token from [`DirToken::to_parts`]. A made-up one is harmless (it may name another
    /// directory, or none, and then the path is looked up), never a panic.
    pub fn from_parts(id: u64, epoch: u64) -> Self {
        Self {
            id: usize::try_from(id).unwrap_or(usize::MAX),
            epoch,
        }
    }
}

/// A bounded in-memory filesystem. Cloning gives another handle to the same filesystem.
///
/// See the [module documentation](crate::fs) for the design and an example.
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
        self.open_with(path, mode, preallocate, lock_timeout, &mut || false)
    }

    /// [`MemoryFileSystem::open`] that runs `interrupt` between the slices of a wait for the
    /// file's lock (with no lock held); when it returns `true` the wait is abandoned with
    /// [`Error::Interrupted`] and nothing has changed.
    ///
    /// ```
    /// use memspace::fs::{MemoryFileSystem, OpenMode};
    ///
    /// let fs = MemoryFileSystem::default();
    /// let _writer = fs.open("/f", OpenMode::Write, 0, None)?;
    /// let r = fs.open_with("/f", OpenMode::Read, 0, None, &mut || true);
    /// assert!(matches!(r, Err(memspace::Error::Interrupted)));
    /// # Ok::<(), memspace::Error>(())
    /// ```
    pub fn open_with(
        &self,
        path: &str,
        mode: OpenMode,
        preallocate: u64,
        lock_timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<FileHandle> {
        let mut parent = path::components(path)?;
        let normalized = path::join(&parent);
        let Some(name) = parent.pop() else {
            return Err(FsError::IsADirectory {
                path: path.to_owned(),
            }
            .into());
        };
        let timeout = self.shared.opts.lock_timeout(lock_timeout);
        let deadline = timeout.map(|t| Instant::now() + t);
        let sh = &self.shared;
        let (node, created) = loop {
            let (node, created) = self.find_or_create(path, &parent, name, mode)?;
            if created {
                break (node, true);
            }
            // After a retry, only what is left of the timeout.
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match node.lock.acquire(mode.lock_kind(), left, interrupt) {
                Ok(()) => break (node, false),
                // Removed or replaced while we waited: look the path up again.
                Err(AcquireError::Unlinked) => {}
                Err(AcquireError::Timeout) => {
                    return Err(FsError::LockTimeout {
                        path: path.to_owned(),
                        kind: mode.lock_kind(),
                    }
                    .into())
                }
                Err(AcquireError::Interrupted) => return Err(Error::Interrupted),
            }
        };
        let mut handle = FileHandle {
            cursor: Cursor::new(normalized, mode),
            file: HeapFile {
                shared: Arc::clone(sh),
                node,
            },
        };
        // On failure the handle is dropped, which releases the lock.
        handle.cursor.prepare(&handle.file, created, preallocate)?;
        Ok(handle)
    }

    /// The file `name` in directory `parent` for `open`: the existing one, or a new one
    /// (created already locked for writing) if the mode allows. `true` if created.
    fn find_or_create(
        &self,
        path: &str,
        parent: &[&str],
        name: &str,
        mode: OpenMode,
    ) -> FsResult<(Arc<FileNode>, bool)> {
        let sh = &self.shared;
        let mut tree = sh.tree();
        let pid = tree.lookup(parent);
        if let Some(id) = pid.and_then(|p| tree.child(p, name)) {
            return match tree.node(id) {
                Node::Dir(_) => Err(FsError::IsADirectory {
                    path: path.to_owned(),
                }),
                Node::File(_) if mode == OpenMode::CreateNew => Err(FsError::PathExists {
                    path: path.to_owned(),
                }),
                Node::File(f) => Ok((Arc::clone(f), false)),
            };
        }
        if mode.must_exist() {
            return Err(FsError::NoSuchPath {
                path: path.to_owned(),
            });
        }
        let Some(pid) = pid.filter(|&p| tree.dir(p).is_some()) else {
            return Err(FsError::NoParentDirectory {
                path: path.to_owned(),
                parent: path::join(parent),
                parent_is_file: pid.is_some(),
            });
        };
        sh.check_nodes(&tree, 1)?;
        let f = Arc::new(FileNode::new(
            Data::new(sh.opts.storage),
            0,
            FileLock::new_write_locked(),
        ));
        tree.insert(pid, name, Node::File(Arc::clone(&f)));
        Ok((f, true))
    }

    /// Creates a directory and every missing parent (like `os.makedirs`). All-or-nothing
    /// against `max_nodes`.
    pub fn mkdir(&self, path: &str, exist_ok: bool) -> Result<()> {
        let parts = path::normalize(path)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let (mut id, depth) = match tree.reach(&parts) {
            Reach::File { depth } => {
                return Err(FsError::PathExists {
                    path: path::join(&parts[..=depth]),
                }
                .into())
            }
            Reach::Dirs { id, depth } => (id, depth),
        };
        if depth == parts.len() {
            return if exist_ok {
                Ok(())
            } else {
                Err(FsError::PathExists {
                    path: path.to_owned(),
                }
                .into())
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
        let (parent, name) = path::split(path)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let Some(name) = name else {
            return Err(FsError::IsADirectory {
                path: path.to_owned(),
            }
            .into());
        };
        let pid = tree.lookup(&parent).filter(|&p| tree.dir(p).is_some());
        let Some((pid, id)) = pid.and_then(|p| Some((p, tree.child(p, &name)?))) else {
            return Err(FsError::NoSuchPath {
                path: path.to_owned(),
            }
            .into());
        };
        let Some(f) = tree.file(id).cloned() else {
            return Err(FsError::IsADirectory {
                path: path.to_owned(),
            }
            .into());
        };
        if !f.lock.try_unlink() {
            return Err(FsError::FileBusy {
                path: path.to_owned(),
            }
            .into());
        }
        tree.dir_mut(pid).children.remove(&name);
        tree.free_subtree(id);
        let charge = f.read().data.charge(sh.cfg);
        sh.quota.release(charge);
        Ok(())
    }

    /// Deletes a directory and everything below it; refused if any file below is open.
    pub fn rmtree(&self, path: &str) -> Result<()> {
        let (parent, name) = path::split(path)?;
        let Some(name) = name else {
            return Err(FsError::RootOperation { op: "remove" }.into());
        };
        let sh = &self.shared;
        let mut tree = sh.tree();
        let found = tree
            .lookup(&parent)
            .and_then(|p| Some((p, tree.child(p, &name)?)));
        let Some((pid, id)) = found else {
            return Err(FsError::NoSuchPath {
                path: path.to_owned(),
            }
            .into());
        };
        if tree.dir(id).is_none() {
            return Err(FsError::NotADirectory {
                path: path.to_owned(),
            }
            .into());
        }
        let files = tree.unlink_below(id, &path::join(&path::normalize(path)?))?;
        tree.dir_mut(pid).children.remove(&name);
        tree.free_subtree(id);
        let charge: u64 = files.iter().map(|f| f.read().data.charge(sh.cfg)).sum();
        sh.quota.release(charge);
        Ok(())
    }

    /// Renames a file or directory; the destination's parent must exist.
    pub fn rename(&self, src: &str, dst: &str) -> Result<()> {
        Ok(self.relocate(src, dst, false)?)
    }

    /// Like [`MemoryFileSystem::rename`], creating the destination's missing parents.
    pub fn move_path(&self, src: &str, dst: &str) -> Result<()> {
        Ok(self.relocate(src, dst, true)?)
    }

    fn relocate(&self, src: &str, dst: &str, make_parents: bool) -> FsResult<()> {
        let (sparent, sname) = path::split(src)?;
        let (dparent, dname) = path::split(dst)?;
        let Some(sname) = sname else {
            let op = if make_parents { "move" } else { "rename" };
            return Err(FsError::RootOperation { op });
        };
        let sh = &self.shared;
        let mut tree = sh.tree();
        let found = tree
            .lookup(&sparent)
            .and_then(|p| Some((p, tree.child(p, &sname)?)));
        let Some((src_parent, src_id)) = found else {
            return Err(FsError::NoSuchPath {
                path: src.to_owned(),
            });
        };
        let Some(dname) = dname else {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            });
        };
        let mut dfull = dparent.clone();
        dfull.push(dname.clone());
        if tree.lookup(&dfull).is_some() {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            });
        }
        let mut sfull = sparent.clone();
        sfull.push(sname.clone());
        if dfull.len() > sfull.len() && dfull[..sfull.len()] == sfull[..] {
            return Err(FsError::IntoOwnSubtree {
                src: src.to_owned(),
                dst: dst.to_owned(),
            });
        }
        // The existing part of the destination's parent chain.
        let (mut id, depth) = match tree.reach(&dparent) {
            Reach::File { depth } if make_parents => {
                return Err(FsError::PathExists {
                    path: path::join(&dparent[..=depth]),
                })
            }
            Reach::File { .. } => {
                return Err(FsError::NoSuchPath {
                    path: dst.to_owned(),
                })
            }
            Reach::Dirs { id, depth } => (id, depth),
        };
        if depth < dparent.len() && !make_parents {
            return Err(FsError::NoSuchPath {
                path: dst.to_owned(),
            });
        }
        if let Some(path) =
            tree.find_file_below(src_id, &path::join(&sfull), |f| f.lock.is_locked())
        {
            return Err(FsError::FileBusy { path: path? });
        }
        sh.check_nodes(&tree, (dparent.len() - depth) as u64)?;
        for p in &dparent[depth..] {
            id = tree.new_dir(id, p);
        }
        tree.dir_mut(src_parent).children.remove(&sname);
        tree.dir_mut(id).children.insert(dname, src_id);
        tree.moved();
        Ok(())
    }

    /// Copies one file to a new path (whose parent must exist). All-or-nothing.
    pub fn copy(&self, src: &str, dst: &str) -> Result<()> {
        let sparts = path::normalize(src)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let Some(sid) = tree.lookup(&sparts) else {
            return Err(FsError::NoSuchPath {
                path: src.to_owned(),
            }
            .into());
        };
        let Some(f) = tree.file(sid).cloned() else {
            return Err(FsError::IsADirectory {
                path: src.to_owned(),
            }
            .into());
        };
        if tree.lookup(&path::normalize(dst)?).is_some() {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            }
            .into());
        }
        let (pid, dname) = tree.new_entry_parent(dst)?;
        sh.check_nodes(&tree, 1)?;
        let node = {
            let d = f.read();
            let len = d.data.size();
            let kind = sh.opts.storage;
            let charge = Data::charge_for(kind, len, sh.cfg);
            sh.quota.reserve(charge)?;
            let data = Data::copy_of(kind, &d.data).inspect_err(|_| sh.quota.release(charge))?;
            FileNode::new(data, u64::from(len > 0), FileLock::default())
        };
        tree.insert(pid, &dname, Node::File(Arc::new(node)));
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
        let (_, dirs, files) = self.scandir_from(None, path)?;
        Ok((dirs, files))
    }

    /// [`MemoryFileSystem::scandir`] for a walk: also returns a [`DirToken`] for the
    /// directory, and, given the token of its parent and its name, finds it without looking
    /// its whole path up (while the tree's shape has not changed since the token was made;
    /// after that, or for a token that is not this filesystem's, by `path`). So walking a
    /// chain of directories costs each step its own names, not the depth.
    ///
    /// ```
    /// use memspace::fs::MemoryFileSystem;
    ///
    /// let fs = MemoryFileSystem::default();
    /// fs.mkdir("/a/b", false)?;
    /// let (top, dirs, _) = fs.scandir_from(None, "/a")?;
    /// assert_eq!(dirs, ["b"]);
    /// let (_, dirs, files) = fs.scandir_from(Some((top, "b")), "/a/b")?;
    /// assert!(dirs.is_empty() && files.is_empty());
    /// # Ok::<(), memspace::Error>(())
    /// ```
    pub fn scandir_from(
        &self,
        parent: Option<(DirToken, &str)>,
        path: &str,
    ) -> Result<(DirToken, Vec<String>, Vec<String>)> {
        let tree = self.shared.tree();
        let epoch = tree.epoch();
        let by_token = parent
            .filter(|(t, _)| t.epoch == epoch)
            .and_then(|(t, name)| Some(tree.dir_checked(t.id)?.children.get(name).copied()));
        let found = match by_token {
            Some(id) => id,
            None => tree.lookup(&path::components(path)?),
        };
        let Some(id) = found else {
            return Err(FsError::NoSuchPath {
                path: path.to_owned(),
            }
            .into());
        };
        let Some(d) = tree.dir(id) else {
            return Err(FsError::NotADirectory {
                path: path.to_owned(),
            }
            .into());
        };
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        for (name, &c) in &d.children {
            if tree.dir(c).is_some() {
                dirs.push(name.clone());
            } else {
                files.push(name.clone());
            }
        }
        Ok((DirToken { id, epoch }, dirs, files))
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
            return Err(FsError::NoSuchPath {
                path: path.to_owned(),
            }
            .into());
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

    /// Bytes of quota still free (what [`MemoryFileSystem::stats`] calls `free_bytes`,
    /// without walking the tree).
    pub fn free_bytes(&self) -> u64 {
        let (max, used) = self.shared.quota.snapshot();
        max.saturating_sub(used)
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

    fn file_node(&self, path: &str) -> FsResult<Arc<FileNode>> {
        let parts = path::components(path)?;
        let tree = self.shared.tree();
        let Some(id) = tree.lookup(&parts) else {
            return Err(FsError::NoSuchPath {
                path: path.to_owned(),
            });
        };
        tree.file(id).cloned().ok_or_else(|| FsError::IsADirectory {
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
        self.snapshot(path)?.to_vec()
    }

    /// Paths matching a glob pattern (`*`, `?`, `[seq]`, `[!seq]` within a component, `**`
    /// for any number of components), sorted, each once.
    ///
    /// The cost is the nodes looked at times the pattern's length, plus the output, however
    /// deep the tree and however many `**` the pattern has.
    ///
    /// ```
    /// use memspace::fs::MemoryFileSystem;
    ///
    /// let fs = MemoryFileSystem::default();
    /// fs.import_tree([("/a/x.txt", &b""[..]), ("/a-b/y.txt", b""), ("/a/c/z.txt", b"")])?;
    /// assert_eq!(fs.glob("/**/*.txt")?, ["/a-b/y.txt", "/a/c/z.txt", "/a/x.txt"]);
    /// assert_eq!(fs.glob("/a/**")?, ["/a/c", "/a/c/z.txt", "/a/x.txt"]);
    /// # Ok::<(), memspace::Error>(())
    /// ```
    ///
    /// The output itself can be large (every prefix of a deep chain): it is allocated
    /// fallibly, [`FsError::OutOfMemory`] if it does not fit.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>> {
        let parts = glob::pattern_components(pattern);
        Ok(self.shared.tree().glob(&parts)?)
    }
}

#[cfg(test)]
mod tests;
