//! The heap filesystem's tree: a node arena, directories as sorted maps, and resolving paths
//! (already split into components by [`crate::fs::path`]) to nodes.
//!
//! Nodes live in a `Vec` of slots; freed slots are reused. A directory maps names to node
//! ids. The tree knows nothing about locking: the filesystem holds its mutex around every
//! use, and each file's data sits behind the file's own locks ([`FileNode`]).
//!
//! A tree is as deep as its caller makes it (one `mkdir` of a 100,000-component path), so
//! nothing here recurses over it: every walk keeps its own stack on the heap and costs time
//! and memory linear in the nodes it looks at, and a path string is built only for a node a
//! caller gets back ([`Tree::walk`]). The arena is flat, so dropping a tree is flat too.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;

use super::file::FileNode;
use super::lock::FileLock;
use super::storage::Data;
use crate::fs::error::{FsError, FsResult};
use crate::fs::options::now;
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
    /// See [`Tree::epoch`].
    epoch: u64,
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
            epoch: 0,
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
        // Node ids below may be reused from now on, so tokens of the old shape go stale.
        self.epoch += 1;
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let node = self.slots[id].take().expect("live node id");
            self.free.push(id);
            match node {
                Node::File(_) => self.files -= 1,
                Node::Dir(d) => {
                    self.dirs -= 1;
                    stack.extend(d.children.into_values());
                }
            }
        }
    }

    /// Records that a node moved (its path, and every path below it, changed).
    pub(super) fn moved(&mut self) {
        self.epoch += 1;
    }

    /// The tree's shape version: it changes whenever a node is freed or moved, so a node id
    /// taken under the same epoch still names the same node at the same path.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The directory `id` if it is one (an id that may be stale or made up: never panics).
    pub(super) fn dir_checked(&self, id: usize) -> Option<&DirNode> {
        match self.slots.get(id)?.as_ref()? {
            Node::Dir(d) => Some(d),
            Node::File(_) => None,
        }
    }

    /// Visits the nodes below directory `dir` (at `path`) in the sorted order of their
    /// paths, depth-first without recursion.
    ///
    /// `expand` lists, for a directory and its label, the children worth looking at (each
    /// with its own label, whether to `visit` it and whether to descend into it); `visit`
    /// gets the label, the node and its path, built only if asked for. One path buffer is
    /// kept for the whole walk (each name is pushed once and cut off once), so the walk costs
    /// time and memory linear in the nodes it looks at, whatever their depth.
    ///
    /// Sorted order: below a directory at `P`, a child `x` is at `P/x` and its subtree at
    /// `P/x/...`; the two are not adjacent when a sibling's name continues `x` with a byte
    /// below `/` (`P/x` < `P/x-y` < `P/x/z`). So each child gives two keys, its name and its
    /// name followed by `/`, and a directory's keys are visited in sorted order.
    pub(super) fn walk<'t, L, B>(
        &'t self,
        dir: usize,
        path: &str,
        label: &L,
        mut expand: impl FnMut(&L, &'t DirNode, &mut Vec<Child<'t, L>>),
        mut visit: impl FnMut(&L, usize, At<'_>) -> ControlFlow<B>,
    ) -> Option<B> {
        struct Frame<'t, L> {
            /// The length of the path buffer at this directory.
            base: usize,
            kids: Vec<Child<'t, L>>,
            /// Keys still to visit, the next one last: `kid << 1` for the child itself,
            /// `kid << 1 | 1` for its subtree.
            todo: Vec<usize>,
        }
        let frame = |base: usize, kids: Vec<Child<'t, L>>| {
            let mut todo: Vec<usize> = (0..kids.len())
                .flat_map(|i| {
                    let k = &kids[i];
                    [
                        k.visit.then_some(i << 1),
                        (k.descend && self.dir(k.id).is_some()).then_some(i << 1 | 1),
                    ]
                })
                .flatten()
                .collect();
            todo.sort_unstable_by(|&a, &b| {
                let key = |k: usize| {
                    let tail: &[u8] = if k & 1 == 1 { b"/" } else { b"" };
                    kids[k >> 1].name.as_bytes().iter().chain(tail)
                };
                key(b).cmp(key(a))
            });
            Frame { base, kids, todo }
        };
        let d = self.dir(dir)?;
        let mut buf = String::from(path.trim_end_matches('/'));
        let mut kids = Vec::new();
        expand(label, d, &mut kids);
        let mut stack = vec![frame(buf.len(), kids)];
        while let Some(top) = stack.last_mut() {
            let Some(k) = top.todo.pop() else {
                stack.pop();
                continue;
            };
            buf.truncate(top.base);
            let kid = &top.kids[k >> 1];
            if k & 1 == 0 {
                let at = At {
                    parent: &buf,
                    name: kid.name,
                };
                if let ControlFlow::Break(b) = visit(&kid.label, kid.id, at) {
                    return Some(b);
                }
            } else {
                buf.push('/');
                buf.push_str(kid.name);
                let d = self.dir(kid.id).expect("descend into a directory");
                let mut kids = Vec::new();
                expand(&kid.label, d, &mut kids);
                let next = frame(buf.len(), kids);
                stack.push(next);
            }
        }
        None
    }

    /// `expand` for a walk of every node below a directory (no labels).
    fn every_child<'t>(&'t self) -> impl FnMut(&(), &'t DirNode, &mut Vec<Child<'t, ()>>) {
        move |(), d, kids| {
            kids.extend(d.children.iter().map(|(name, &id)| Child {
                name,
                id,
                label: (),
                visit: self.file(id).is_some(),
                descend: true,
            }));
        }
    }

    /// Every file below `id` (or `id` itself), with its path, sorted by path.
    pub(super) fn files_below(
        &self,
        id: usize,
        path: &str,
    ) -> FsResult<Vec<(String, Arc<FileNode>)>> {
        if let Node::File(f) = self.node(id) {
            return Ok(vec![(path.to_owned(), Arc::clone(f))]);
        }
        let mut out = Vec::new();
        let failed = self.walk(id, path, &(), self.every_child(), |(), c, at| {
            let Some(f) = self.file(c) else {
                return ControlFlow::Continue(());
            };
            match at.path().and_then(|p| push(&mut out, (p, Arc::clone(f)))) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        });
        failed.map_or(Ok(out), Err)
    }

    /// The first file below `id` (or `id` itself, at `path`) for which `stop` is true, with
    /// its path; the paths of the others are never built.
    pub(super) fn find_file_below(
        &self,
        id: usize,
        path: &str,
        mut stop: impl FnMut(&Arc<FileNode>) -> bool,
    ) -> Option<FsResult<String>> {
        if let Node::File(f) = self.node(id) {
            return stop(f).then(|| Ok(path.to_owned()));
        }
        self.walk(id, path, &(), self.every_child(), |(), c, at| {
            match self.file(c) {
                Some(f) if stop(f) => ControlFlow::Break(at.path()),
                _ => ControlFlow::Continue(()),
            }
        })
    }

    /// Marks every file below `id` (at `path`) as removed and returns them, or marks none
    /// and names an open one.
    pub(super) fn unlink_below(&self, id: usize, path: &str) -> FsResult<Vec<Arc<FileNode>>> {
        let mut done: Vec<Arc<FileNode>> = Vec::new();
        let busy = self.find_file_below(id, path, |f| {
            if f.lock.try_unlink() {
                done.push(Arc::clone(f));
                false
            } else {
                true
            }
        });
        match busy {
            None => Ok(done),
            Some(path) => {
                for f in &done {
                    f.lock.relink();
                }
                Err(FsError::FileBusy { path: path? })
            }
        }
    }

    /// Paths of the nodes matching the pattern components `parts` (see
    /// [`MemoryFileSystem::glob`](super::MemoryFileSystem::glob)), sorted, each once.
    ///
    /// The pattern is run as a non-deterministic automaton over path components: each node
    /// gets the set of pattern positions that can be reached at it, computed once from its
    /// parent's set, so the cost is the nodes visited times the pattern's length, however
    /// many `**` it has (trying every way to split a path between them is exponential).
    pub(super) fn glob(&self, parts: &[String]) -> FsResult<Vec<String>> {
        let mut out = Vec::new();
        if parts.is_empty() {
            return Ok(out);
        }
        let nfa = Nfa::new(parts);
        let start = Rc::new(nfa.closure(vec![0]));
        let accept = nfa.accept();
        self.walk(
            ROOT,
            "/",
            &start,
            |states, d, kids| {
                let mut add = |name, id| {
                    let next = nfa.step(states, name);
                    let (Some(&first), Some(&last)) = (next.first(), next.last()) else {
                        return;
                    };
                    kids.push(Child {
                        name,
                        id,
                        // Below a `**` a chain keeps the same set: share it.
                        label: if next == **states {
                            Rc::clone(states)
                        } else {
                            Rc::new(next)
                        },
                        visit: last == accept,
                        descend: first < accept,
                    });
                };
                match nfa.literals(states) {
                    Some(names) => {
                        for n in names {
                            if let Some((name, &id)) = d.children.get_key_value(n) {
                                add(name.as_str(), id);
                            }
                        }
                    }
                    None => {
                        for (name, &id) in &d.children {
                            add(name.as_str(), id);
                        }
                    }
                }
            },
            |_, _, at| match at.path().and_then(|p| push(&mut out, p)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            },
        )
        .map_or(Ok(out), Err)
    }

    /// The subtree at directory `id` as a flat list in which every directory comes before
    /// what is in it (for `copy_tree`, which copies the files' data and then grafts it).
    pub(super) fn flatten(&self, id: usize) -> Vec<Flat> {
        let mut out = Vec::new();
        let mut stack = vec![(id, None)];
        while let Some((id, at)) = stack.pop() {
            let Node::Dir(d) = self.node(id) else {
                continue;
            };
            for (name, &c) in &d.children {
                let file = self.file(c).cloned();
                let is_dir = file.is_none();
                out.push(Flat {
                    parent: at,
                    name: name.clone(),
                    file,
                });
                if is_dir {
                    stack.push((c, Some(out.len() - 1)));
                }
            }
        }
        out
    }

    /// Inserts copies below directory `dir`: `flat` from [`Tree::flatten`] with each file's
    /// new data (in the same order).
    pub(super) fn graft(&mut self, dir: usize, flat: Vec<Flat>, data: Vec<Option<Data>>) {
        let mut ids = Vec::with_capacity(flat.len());
        for (entry, data) in flat.into_iter().zip(data) {
            let parent = entry.parent.map_or(dir, |i| ids[i]);
            let id = match data {
                Some(data) => self.insert(
                    parent,
                    &entry.name,
                    Node::File(Arc::new(FileNode::new(data, 0, FileLock::default()))),
                ),
                None => self.new_dir(parent, &entry.name),
            };
            ids.push(id);
        }
    }
}

/// A child that a [`Tree::walk`] is to look at.
pub(super) struct Child<'t, L> {
    pub(super) name: &'t str,
    pub(super) id: usize,
    pub(super) label: L,
    /// Whether to call the walk's `visit` for it.
    pub(super) visit: bool,
    /// Whether to walk below it (if it is a directory).
    pub(super) descend: bool,
}

/// Where a walk is: a node's parent path and its name, joined only when asked for.
pub(super) struct At<'a> {
    parent: &'a str,
    name: &'a str,
}

impl At<'_> {
    /// The node's path (as long as its depth makes it: allocated fallibly).
    pub(super) fn path(&self) -> FsResult<String> {
        let n = self.parent.len() + 1 + self.name.len();
        let mut s = String::new();
        s.try_reserve_exact(n).map_err(|_| FsError::OutOfMemory {
            requested: n as u64,
        })?;
        s.push_str(self.parent);
        s.push('/');
        s.push_str(self.name);
        Ok(s)
    }
}

/// Appends to a walk's output, which is as large as the caller asked for: fallibly.
fn push<T>(out: &mut Vec<T>, item: T) -> FsResult<()> {
    out.try_reserve(1).map_err(|_| FsError::OutOfMemory {
        requested: std::mem::size_of::<T>() as u64,
    })?;
    out.push(item);
    Ok(())
}

/// One node of a flattened subtree ([`Tree::flatten`]).
pub(super) struct Flat {
    /// The index of its directory in the list (`None`: the subtree's root).
    pub(super) parent: Option<usize>,
    pub(super) name: String,
    /// The file, or `None` for a directory.
    pub(super) file: Option<Arc<FileNode>>,
}

/// One pattern component.
enum Comp {
    /// `**`: any number of components.
    Any,
    Literal(String),
    Wild(glob::Pattern),
}

/// A glob pattern as an automaton over path components: position `i` waits for component
/// `i` of the pattern, and position `len` (past the last) accepts.
struct Nfa {
    comps: Vec<Comp>,
}

impl Nfa {
    fn new(parts: &[String]) -> Self {
        let comps = parts
            .iter()
            .map(|p| {
                if p == "**" {
                    Comp::Any
                } else if glob::is_literal(p) {
                    Comp::Literal(p.clone())
                } else {
                    Comp::Wild(glob::Pattern::new(p))
                }
            })
            .collect();
        Self { comps }
    }

    fn accept(&self) -> usize {
        self.comps.len()
    }

    /// `set`, sorted and with every position reachable from it by skipping a `**` that
    /// matches no component. A trailing `**` is not skipped: it matches every descendant
    /// of a directory, never the directory itself.
    fn closure(&self, mut set: Vec<usize>) -> Vec<usize> {
        set.sort_unstable();
        set.dedup();
        let mut out: Vec<usize> = Vec::with_capacity(set.len());
        for mut s in set {
            // A run added by an earlier `**` may already hold it (runs are contiguous).
            if out.last().is_some_and(|&l| l >= s) {
                continue;
            }
            out.push(s);
            while s + 1 < self.comps.len() && matches!(self.comps[s], Comp::Any) {
                s += 1;
                out.push(s);
            }
        }
        out
    }

    /// The positions reached from `states` by a child called `name`.
    fn step(&self, states: &[usize], name: &str) -> Vec<usize> {
        let accept = self.accept();
        let mut next = Vec::new();
        for &i in states {
            match self.comps.get(i) {
                // A trailing `**` matches the child and everything below it.
                Some(Comp::Any) if i + 1 == accept => next.extend([i, accept]),
                Some(Comp::Any) => next.push(i),
                Some(Comp::Literal(l)) if l == name => next.push(i + 1),
                Some(Comp::Wild(p)) if p.matches(name) => next.push(i + 1),
                Some(Comp::Literal(_) | Comp::Wild(_)) | None => {}
            }
        }
        self.closure(next)
    }

    /// The only child names that can get anywhere from `states`, if every position there
    /// waits for a literal (so that a directory's children are looked up, not scanned).
    fn literals<'a>(&'a self, states: &[usize]) -> Option<Vec<&'a str>> {
        let mut names = states
            .iter()
            .filter_map(|&i| self.comps.get(i))
            .map(|c| match c {
                Comp::Literal(l) => Some(l.as_str()),
                Comp::Any | Comp::Wild(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        names.sort_unstable();
        names.dedup();
        Some(names)
    }
}
