//! Operations on many files at once: copying a directory tree, listing and exporting the
//! files below a path, importing many files. Those that change the tree check everything
//! first (paths, open files, the node limit, the quota) and are all-or-nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::file::{FileNode, FileSnapshot};
use super::lock::FileLock;
use super::storage::Data;
use super::tree::Node;
use super::{unlink_all, MemoryFileSystem};
use crate::fs::error::FsError;
use crate::fs::path;
use crate::Result;

/// The files below a path with a [`FileSnapshot`] of each, from
/// [`MemoryFileSystem::export_iter`].
///
/// The paths are listed when it is made; each file is looked up when the iterator reaches it
/// (without waiting for its lock), and a file removed (or replaced by a directory) meanwhile
/// is skipped.
#[derive(Debug)]
pub struct ExportIter {
    fs: MemoryFileSystem,
    paths: std::vec::IntoIter<String>,
}

impl Iterator for ExportIter {
    type Item = Result<(String, FileSnapshot)>;

    fn next(&mut self) -> Option<Self::Item> {
        for p in self.paths.by_ref() {
            match self.fs.file_node(&p) {
                Ok(node) => return Some(Ok((p, FileSnapshot { node }))),
                Err(FsError::NoSuchPath { .. } | FsError::IsADirectory { .. }) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
        None
    }
}

impl MemoryFileSystem {
    /// Copies a directory and everything below it to a new path. All-or-nothing: the quota
    /// and node limit are checked for the whole subtree before anything is created.
    pub fn copy_tree(&self, src: &str, dst: &str) -> Result<()> {
        let sparts = path::normalize(src)?;
        let sh = &self.shared;
        let mut tree = sh.tree();
        let Some(sid) = tree.lookup(&sparts) else {
            return Err(FsError::NoSuchPath {
                path: src.to_owned(),
            }
            .into());
        };
        if tree.dir(sid).is_none() {
            return Err(FsError::NotADirectory {
                path: src.to_owned(),
            }
            .into());
        }
        if tree.lookup(&path::normalize(dst)?).is_some() {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            }
            .into());
        }
        let (pid, dname) = tree.new_entry_parent(dst)?;
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
                return Err(e.into());
            }
        };
        let new_root = tree.new_dir(pid, &dname);
        tree.graft(new_root, built);
        Ok(())
    }

    /// Paths of the files below `prefix` (or `prefix` itself if it is a file), sorted;
    /// with `only_dirty`, only those written since creation or import.
    pub fn file_paths(&self, prefix: &str, only_dirty: bool) -> Result<Vec<String>> {
        let parts = path::normalize(prefix)?;
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

    /// The files below `prefix` (see [`MemoryFileSystem::file_paths`]), each with a snapshot
    /// to copy it out, one at a time ([`ExportIter`]).
    pub fn export_iter(&self, prefix: &str, only_dirty: bool) -> Result<ExportIter> {
        Ok(ExportIter {
            fs: self.clone(),
            paths: self.file_paths(prefix, only_dirty)?.into_iter(),
        })
    }

    /// Every file below `prefix` with its bytes.
    pub fn export_tree(&self, prefix: &str, only_dirty: bool) -> Result<Vec<(String, Vec<u8>)>> {
        self.export_iter(prefix, only_dirty)?
            .map(|r| r.map(|(p, snap)| (p, snap.to_vec())))
            .collect()
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
            let parts = path::normalize(p)?;
            if parts.is_empty() {
                return Err(FsError::IsADirectory { path: p.to_owned() }.into());
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
                    return Err(FsError::PathExists {
                        path: path::join(prefix),
                    }
                    .into());
                }
                match tree.lookup(prefix) {
                    Some(id) if tree.dir(id).is_none() => {
                        return Err(FsError::PathExists {
                            path: path::join(prefix),
                        }
                        .into())
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
                        return Err(FsError::IsADirectory {
                            path: path::join(parts),
                        }
                        .into())
                    }
                    Node::File(f) => old.push((path::join(parts), Arc::clone(f))),
                },
                None => new_files += 1,
            }
            new_charge += Data::charge_for(kind, data[parts].len() as u64, sh.cfg);
        }
        sh.check_nodes(&tree, new_dirs.len() as u64 + new_files)?;
        unlink_all(&old)?;
        let old_charge: u64 = old.iter().map(|(_, f)| f.read().data.charge(sh.cfg)).sum();
        if let Err(e) = sh.quota.exchange(old_charge, new_charge) {
            for (_, f) in &old {
                f.lock.relink();
            }
            return Err(e.into());
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
                    return Err(e.into());
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
            if let Some(oldid) = tree.child(pid, name) {
                tree.dir_mut(pid).children.remove(name);
                tree.free_subtree(oldid);
            }
            tree.insert(pid, name, Node::File(Arc::new(node)));
        }
        Ok(())
    }
}
