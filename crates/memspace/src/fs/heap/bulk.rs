//! Operations on many files at once: copying a directory tree, listing and exporting the
//! files below a path, importing many files. Those that change the tree check everything
//! first (paths, open files, the node limit, the quota) and are all-or-nothing.

use std::collections::HashMap;
use std::sync::Arc;

use super::file::{FileNode, FileSnapshot};
use super::lock::FileLock;
use super::storage::Data;
use super::tree::{Node, Tree, ROOT};
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
        // List the subtree before creating anything (the destination may lie inside it).
        let flat = tree.flatten(sid);
        sh.check_nodes(&tree, flat.len() as u64 + 1)?;
        let kind = sh.opts.storage;
        // Charge what the copies will hold, for the whole subtree at once; a file that a
        // writer resizes meanwhile (writers do not take the tree lock) is charged the
        // difference when it is copied.
        let charge = |f: &FileNode| Data::charge_for(kind, f.read().data.size(), sh.cfg);
        let planned: Vec<u64> = flat
            .iter()
            .map(|e| e.file.as_deref().map_or(0, charge))
            .collect();
        let mut reserved: u64 = planned.iter().sum();
        sh.quota.reserve(reserved)?;
        let mut data = Vec::with_capacity(flat.len());
        for (entry, &plan) in flat.iter().zip(&planned) {
            let Some(f) = &entry.file else {
                data.push(None);
                continue;
            };
            let d = f.read();
            let now = Data::charge_for(kind, d.data.size(), sh.cfg);
            let copied = if now > plan {
                sh.quota
                    .reserve(now - plan)
                    .map(|()| reserved += now - plan)
            } else {
                sh.quota.release(plan - now);
                reserved -= plan - now;
                Ok(())
            }
            .and_then(|()| Data::copy_of(kind, &d.data));
            match copied {
                Ok(c) => data.push(Some(c)),
                Err(e) => {
                    sh.quota.release(reserved);
                    return Err(e.into());
                }
            }
        }
        let new_root = tree.new_dir(pid, &dname);
        tree.graft(new_root, flat, data);
        Ok(())
    }

    /// Paths of the files below `prefix` (or `prefix` itself if it is a file), sorted;
    /// with `only_dirty`, only those written since creation or import.
    pub fn file_paths(&self, prefix: &str, only_dirty: bool) -> Result<Vec<String>> {
        let parts = path::normalize(prefix)?;
        let tree = self.shared.tree();
        let files = match tree.lookup(&parts) {
            Some(id) => tree.files_below(id, &path::join(&parts))?,
            None => Vec::new(),
        };
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
            .map(|r| r.and_then(|(p, snap)| Ok((p, snap.to_vec()?))))
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
        let mut data: HashMap<Vec<String>, &[u8]> = HashMap::new();
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
        let Placement {
            placed,
            new_dirs,
            new_index,
        } = place(&tree, &order)?;
        let mut old: Vec<(String, Arc<FileNode>)> = Vec::new();
        let mut new_files = 0u64;
        let mut new_charge = 0u64;
        for (parts, &(at, name)) in order.iter().zip(&placed) {
            // A target that another target needs as a directory.
            if new_index.contains_key(&(at, name)) {
                return Err(FsError::PathExists {
                    path: path::join(parts),
                }
                .into());
            }
            let existing = match at {
                Place::Old(pid) => tree.child(pid, name),
                Place::New(_) => None,
            };
            match existing.map(|id| tree.node(id)) {
                Some(Node::Dir(_)) => {
                    return Err(FsError::IsADirectory {
                        path: path::join(parts),
                    }
                    .into())
                }
                Some(Node::File(f)) => old.push((path::join(parts), Arc::clone(f))),
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
        // Nothing below can fail. A new directory's parent comes before it in the list.
        let mut dir_ids: Vec<usize> = Vec::with_capacity(new_dirs.len());
        let id_of = |at: Place, dir_ids: &[usize]| match at {
            Place::Old(id) => id,
            Place::New(i) => dir_ids[i],
        };
        for &(at, name) in &new_dirs {
            let pid = id_of(at, &dir_ids);
            dir_ids.push(tree.new_dir(pid, name));
        }
        for (&(at, name), node) in placed.iter().zip(built) {
            let pid = id_of(at, &dir_ids);
            if let Some(oldid) = tree.child(pid, name) {
                tree.dir_mut(pid).children.remove(name);
                tree.free_subtree(oldid);
            }
            tree.insert(pid, name, Node::File(Arc::new(node)));
        }
        Ok(())
    }
}

/// Where each of `import_tree`'s targets goes: its parent (an existing directory, or one of
/// the new ones, which are listed once each with their own parent) and its name; and the new
/// directories. Each component of each path is looked at once, so this is linear in the
/// paths' lengths. A file in the way of a parent is [`FsError::PathExists`].
fn place<'a>(tree: &Tree, order: &'a [Vec<String>]) -> Result<Placement<'a>> {
    let mut new_dirs: Vec<(Place, &str)> = Vec::new();
    let mut new_index: HashMap<(Place, &str), usize> = HashMap::new();
    let mut placed: Vec<(Place, &str)> = Vec::with_capacity(order.len());
    for parts in order {
        let (name, parents) = parts.split_last().expect("not the root");
        let mut at = Place::Old(ROOT);
        for (depth, comp) in parents.iter().enumerate() {
            at = match at {
                Place::Old(id) => match tree.child(id, comp) {
                    Some(c) if tree.dir(c).is_some() => Place::Old(c),
                    Some(_) => {
                        return Err(FsError::PathExists {
                            path: path::join(&parts[..=depth]),
                        }
                        .into())
                    }
                    None => Place::New(new_dir(&mut new_dirs, &mut new_index, at, comp)),
                },
                Place::New(_) => Place::New(new_dir(&mut new_dirs, &mut new_index, at, comp)),
            };
        }
        placed.push((at, name.as_str()));
    }
    Ok(Placement {
        placed,
        new_dirs,
        new_index,
    })
}

/// What [`place`] found: each target's parent and name, the new directories in creation
/// order, and each new directory's index by its parent and name.
struct Placement<'a> {
    placed: Vec<(Place, &'a str)>,
    new_dirs: Vec<(Place, &'a str)>,
    new_index: HashMap<(Place, &'a str), usize>,
}

/// Where a file of [`MemoryFileSystem::import_tree`] goes: below an existing directory, or
/// below the `i`-th new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Place {
    Old(usize),
    New(usize),
}

/// The index of the new directory `name` below `at`, listed once.
fn new_dir<'a>(
    dirs: &mut Vec<(Place, &'a str)>,
    index: &mut HashMap<(Place, &'a str), usize>,
    at: Place,
    name: &'a str,
) -> usize {
    *index.entry((at, name)).or_insert_with(|| {
        dirs.push((at, name));
        dirs.len() - 1
    })
}
