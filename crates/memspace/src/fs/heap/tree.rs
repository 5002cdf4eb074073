//! The heap filesystem's tree: a node arena, directories as sorted maps, and resolving paths
//! (already split into components by [`crate::fs::path`]) to nodes.
//!
//! Nodes live in a `Vec` of slots; freed slots are reused. A directory maps names to node
//! ids. The tree knows nothing about locking: the filesystem holds its mutex around every
//! use, and each file's data sits behind the file's own locks ([`FileNode`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::FileNode;
use super::lock::FileLock;
use super::storage::Data;
use crate::fs::error::{FsError, FsResult};
use crate::fs::options::{now, StorageKind};
use crate::fs::{glob, path};

pub(super) struct DirNode {
    pub(super) children: BTreeMap<String, usize>,
    pub(super) created: f64,
}

pub(super) enum Node {
    Dir(DirNode),
    File(Arc<FileNode>),
}

/// The root directory's id.
pub(super) const ROOT: usize = 0;

pub(super) struct Tree {
    pub(super) slots: Vec<Option<Node>>,
    free: Vec<usize>,
    pub(super) files: u64,
    pub(super) dirs: u64,
}

/// How far a list of components exists as a chain of directories from the root.
pub(super) enum Reach {
    /// `parts[..depth]` are directories (the last is `id`); `parts[depth]`, if any, is
    /// missing.
    Dirs { id: usize, depth: usize },
    /// `parts[..depth]` are directories and `parts[depth]` is a file.
    File { depth: usize },
}

impl Tree {
    pub(super) fn new() -> Self {
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

    pub(super) fn node(&self, id: usize) -> &Node {
        self.slots[id].as_ref().expect("live node id")
    }

    pub(super) fn dir(&self, id: usize) -> Option<&DirNode> {
        match self.node(id) {
            Node::Dir(d) => Some(d),
            Node::File(_) => None,
        }
    }

    pub(super) fn dir_mut(&mut self, id: usize) -> &mut DirNode {
        match self.slots[id].as_mut() {
            Some(Node::Dir(d)) => d,
            _ => panic!("node {id} is not a directory"),
        }
    }

    pub(super) fn file(&self, id: usize) -> Option<&Arc<FileNode>> {
        match self.node(id) {
            Node::File(f) => Some(f),
            Node::Dir(_) => None,
        }
    }

    /// The node at `parts` (from the root).
    pub(super) fn lookup<S: AsRef<str>>(&self, parts: &[S]) -> Option<usize> {
        let mut id = ROOT;
        for p in parts {
            id = *self.dir(id)?.children.get(p.as_ref())?;
        }
        Some(id)
    }

    /// `name` in directory `parent`, if `parent` is a directory and has it.
    pub(super) fn child(&self, parent: usize, name: &str) -> Option<usize> {
        self.dir(parent)?.children.get(name).copied()
    }

    /// How far `parts` exists as directories (see [`Reach`]).
    pub(super) fn reach<S: AsRef<str>>(&self, parts: &[S]) -> Reach {
        let mut id = ROOT;
        for (depth, p) in parts.iter().enumerate() {
            let Some(c) = self.child(id, p.as_ref()) else {
                return Reach::Dirs { id, depth };
            };
            if self.dir(c).is_none() {
                return Reach::File { depth };
            }
            id = c;
        }
        Reach::Dirs {
            id,
            depth: parts.len(),
        }
    }

    /// Resolves `dst`'s parent for a new node: it must be an existing directory and `dst`
    /// must not exist.
    pub(super) fn new_entry_parent(&self, dst: &str) -> FsResult<(usize, String)> {
        let (dparent, dname) = path::split(dst)?;
        let Some(dname) = dname else {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            });
        };
        let Some(pid) = self.lookup(&dparent).filter(|&p| self.dir(p).is_some()) else {
            return Err(FsError::NoSuchPath {
                path: dst.to_owned(),
            });
        };
        if self.child(pid, &dname).is_some() {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            });
        }
        Ok((pid, dname))
    }

    /// Files and directories, the root included.
    pub(super) fn count(&self) -> u64 {
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

    pub(super) fn insert(&mut self, parent: usize, name: &str, node: Node) -> usize {
        let id = self.alloc(node);
        self.dir_mut(parent).children.insert(name.to_owned(), id);
        id
    }

    pub(super) fn new_dir(&mut self, parent: usize, name: &str) -> usize {
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
    pub(super) fn free_subtree(&mut self, id: usize) {
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
    pub(super) fn files_below(
        &self,
        id: usize,
        path: &str,
        out: &mut Vec<(String, Arc<FileNode>)>,
    ) {
        match self.node(id) {
            Node::File(f) => out.push((path.to_owned(), Arc::clone(f))),
            Node::Dir(d) => {
                for (name, &c) in &d.children {
                    self.files_below(c, &path::child(path, name), out);
                }
            }
        }
    }

    /// Nodes at and below `id`.
    pub(super) fn count_below(&self, id: usize) -> u64 {
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

    /// Paths below `id` (at `path`) that match the pattern components `parts`.
    pub(super) fn glob(&self, id: usize, path: &str, parts: &[String], out: &mut Vec<String>) {
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

    /// The shape of the subtree at `id` with a copy of every file's bytes (for `copy_tree`).
    pub(super) fn shape(&self, id: usize) -> Shape {
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

    /// Inserts the built copies below directory `dir`.
    pub(super) fn graft(&mut self, dir: usize, built: Built) {
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

/// A directory's shape with its files' bytes, copied out of the tree (for `copy_tree`).
pub(super) enum Shape {
    Dir(Vec<(String, Shape)>),
    File(Vec<u8>),
}

/// The same shape with the copies' data built.
pub(super) enum Built {
    Dir(Vec<(String, Built)>),
    File(Data),
}

impl Shape {
    pub(super) fn file_sizes(&self, out: &mut Vec<u64>) {
        match self {
            Shape::File(b) => out.push(b.len() as u64),
            Shape::Dir(c) => c.iter().for_each(|(_, s)| s.file_sizes(out)),
        }
    }

    pub(super) fn copy(&self, kind: StorageKind) -> FsResult<Built> {
        Ok(match self {
            Shape::File(b) => Built::File(Data::from_bytes(kind, b)?),
            Shape::Dir(c) => Built::Dir(
                c.iter()
                    .map(|(n, s)| Ok((n.clone(), s.copy(kind)?)))
                    .collect::<FsResult<_>>()?,
            ),
        })
    }
}
