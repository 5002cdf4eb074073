//! The filesystem operations, each one transaction (changes) or one snapshot read (queries),
//! with the in-process filesystem's checks, in its order, so that every bad input gives the
//! same error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{cancel_wait, seq_chunks, try_file_lock, Core, Env, Tx};
use super::layout::{Inode, KIND_DIR, KIND_FILE, LT_WAIT, LT_WRITE, MAX_NAME, RANDOM, ROOT_INO};
use super::meta::{Fail, Meta, Res};
use crate::fs::error::FsError;
use crate::fs::options::{now, OpenMode, Stat, Stats};
use crate::fs::{glob, path};
use crate::lock::Interrupt;

/// What `open` found or made, under the file's lock.
pub(crate) struct Opened {
    pub(crate) ino: u32,
    pub(crate) entry: u32,
    pub(crate) off: u64,
    pub(crate) size: u64,
    pub(crate) chunks: u64,
    pub(crate) created: bool,
    /// For a read handle: the generation it pinned (its lock is a reader entry, not a
    /// lock-table entry).
    pub(crate) gen: Option<u64>,
}

fn check_name(name: &str) -> Res<()> {
    if name.len() > MAX_NAME {
        return Err(crate::Error::InvalidArgument(format!(
            "a path component of {} bytes is longer than the {MAX_NAME} a shared filesystem stores",
            name.len()
        ))
        .into());
    }
    Ok(())
}

fn new_node(kind: u8, chunks: u64, gen: u64) -> Inode {
    let t = now();
    Inode {
        kind,
        chunks,
        born: gen,
        created: t,
        modified: t,
        ..Inode::default()
    }
}

/// `parent/name` (the root's children without a doubled slash).
fn child_path(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len() + name.len() + 1);
    s.push_str(parent.trim_end_matches('/'));
    s.push('/');
    s.push_str(name);
    s
}

fn no_such(p: &str) -> Fail {
    FsError::NoSuchPath { path: p.to_owned() }.into()
}

/// The inode's extent bytes copied out of the data area (under the commit lock or a pin).
fn file_bytes<E: Env>(core: &Core<E>, n: &Inode) -> Res<Vec<u8>> {
    let len = usize::try_from(n.size).map_err(|_| FsError::OutOfMemory { requested: n.size })?;
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| FsError::OutOfMemory { requested: n.size })?;
    v.resize(len, 0);
    core.r.read(core.l.data + n.off, &mut v)?;
    Ok(v)
}

impl<E: Env> Core<E> {
    fn storage_chunks(&self) -> u64 {
        if self.l.p.storage == 2 {
            RANDOM
        } else {
            0
        }
    }

    /// The charge of a file of `len` bytes made in one piece (import, copy).
    fn charge_for(&self, len: u64) -> u64 {
        if self.l.p.storage == 2 {
            len
        } else if len == 0 {
            0
        } else {
            len + self.l.p.chunk_overhead
        }
    }

    fn one_piece_chunks(&self, len: u64) -> u64 {
        if self.l.p.storage == 2 {
            RANDOM
        } else {
            u64::from(len > 0)
        }
    }

    /// A new file holding a copy of `bytes` (or of the extent at `src`) under `parent`.
    fn new_file(
        tx: &mut Tx<'_, E>,
        parent: u32,
        name: &str,
        len: u64,
        fill: &dyn Fn(&Tx<'_, E>, u64) -> Res<()>,
        generation: u64,
    ) -> Res<u32> {
        let core = tx.core;
        let cap = len.div_ceil(64) * 64;
        let off = tx.alloc(cap)?;
        if cap > 0 {
            fill(tx, off)?;
        }
        let chunks = core.one_piece_chunks(len);
        let mut n = new_node(KIND_FILE, chunks, tx.gen);
        n.size = len;
        n.off = off;
        n.cap = cap;
        n.generation = generation;
        tx.h.chunks = tx.h.chunks.saturating_add(seq_chunks(chunks));
        tx.m.create(&mut tx.h, parent, name, n)
    }

    /// Opens (or creates) the file at `path` with its lock taken; waits for the lock.
    pub(crate) fn open_file(
        &self,
        path: &str,
        mode: OpenMode,
        lock_timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Res<(Opened, String)> {
        let mut parent = path::components(path)?;
        let normalized = path::join(&parent);
        let Some(name) = parent.pop() else {
            return Err(FsError::IsADirectory {
                path: path.to_owned(),
            }
            .into());
        };
        check_name(name)?;
        let timeout = lock_timeout.or(self.default_lock_timeout());
        let deadline = timeout.map(|t| Instant::now() + t);
        let write = mode.writable();
        let timeout_err = || -> Fail {
            FsError::LockTimeout {
                path: path.to_owned(),
                kind: mode.lock_kind(),
            }
            .into()
        };
        if !write {
            let o = self.wait_for(
                deadline,
                interrupt,
                |core, _| core.try_open_read(&parent, name, path),
                timeout_err,
            )?;
            return Ok((o, normalized));
        }
        let waited: std::cell::Cell<Option<u32>> = std::cell::Cell::new(None);
        let token = crate::sync::next_unique_id();
        let opened = self.wait_for(
            deadline,
            interrupt,
            |core, intr| {
                let got = core.tx(&mut *intr, |tx| {
                    Self::open_write_tx(tx, &parent, name, path, mode, token)
                })?;
                let o = match got {
                    Ok(o) => o,
                    Err(ino) => {
                        waited.set(Some(ino));
                        return Ok(None);
                    }
                };
                if o.created {
                    return Ok(Some(o));
                }
                // Readers register outside the commit lock: having published our entry,
                // look for them (they look for us after registering), and wait if any.
                crate::sync::handshake_fence();
                let mut alive = std::collections::HashMap::new();
                if !core.reader_inos(&mut alive)?.contains(&o.ino) {
                    return Ok(Some(o));
                }
                waited.set(Some(o.ino));
                core.tx(intr, |tx| {
                    let mut e = tx.m.lt(o.entry)?;
                    if e.kind == LT_WRITE && e.slot == tx.me.slot && e.epoch == tx.me.epoch {
                        e.kind = LT_WAIT;
                        e.count = token;
                        tx.m.put_lt(o.entry, &e)?;
                    }
                    Ok(())
                })?;
                Ok(None)
            },
            timeout_err,
        );
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                if let Some(ino) = waited.get() {
                    let _ = self.tx(&mut || false, |tx| cancel_wait(tx, ino, token));
                }
                return Err(e);
            }
        };
        Ok((opened, normalized))
    }

    /// One attempt to open `path` for reading: pin the current generation, find the file,
    /// register as its reader, then check that no live writer holds or waits for it (a
    /// writer checks for readers after committing its entry: one of the two sees the other).
    fn try_open_read(&self, parent: &[&str], name: &str, path: &str) -> Res<Option<Opened>> {
        let (pin, (ino, n)) = self.pinned(|m| {
            let found = match m.resolve(parent)? {
                Some(p) if m.live(p)?.is_dir() => m.lookup(p, name)?,
                _ => None,
            };
            let Some(id) = found else {
                return Err(no_such(path));
            };
            let n = m.live(id)?;
            if n.is_dir() {
                return Err(FsError::IsADirectory {
                    path: path.to_owned(),
                }
                .into());
            }
            Ok((id, n))
        })?;
        self.add_reader(ino)?;
        crate::sync::handshake_fence();
        let alive = std::cell::RefCell::new(std::collections::HashMap::new());
        let dead = std::cell::Cell::new(false);
        let blocked = self.read(|m| {
            let now = m.inode(ino)?;
            if now.kind != KIND_FILE {
                return Ok(true);
            }
            for (_, e) in m.locks_of(&now)? {
                if e.is_write() || e.kind == LT_WAIT {
                    if self.entry_alive(&e, &mut alive.borrow_mut())? {
                        return Ok(true);
                    }
                    dead.set(true);
                }
            }
            Ok(false)
        });
        if dead.get() {
            // A dead writer held it: reclaim what it left (its private extent and quota) now
            // that it is known dead.
            self.tx(&mut || false, |tx| tx.reap().map(|_| ()))?;
        }
        match blocked {
            Ok(false) => {
                let gen = pin.gen();
                std::mem::forget(pin);
                Ok(Some(Opened {
                    ino,
                    entry: 0,
                    off: n.off,
                    size: n.size,
                    chunks: n.chunks,
                    created: false,
                    gen: Some(gen),
                }))
            }
            other => {
                self.drop_reader(ino)?;
                other.map(|_| None)
            }
        }
    }

    /// The transaction of one attempt to open `path` for writing: the existing file with its
    /// exclusive lock taken (or a waiting-writer entry left), or a new file if the mode allows.
    fn open_write_tx(
        tx: &mut Tx<'_, E>,
        parent: &[&str],
        name: &str,
        path: &str,
        mode: OpenMode,
        token: u64,
    ) -> Res<std::result::Result<Opened, u32>> {
        let pid = tx.m.resolve(parent)?;
        let found = match pid {
            Some(p) if tx.m.live(p)?.is_dir() => tx.m.lookup(p, name)?,
            _ => None,
        };
        if let Some(id) = found {
            let n = tx.m.live(id)?;
            if n.is_dir() {
                return Err(FsError::IsADirectory {
                    path: path.to_owned(),
                }
                .into());
            }
            if mode == OpenMode::CreateNew {
                return Err(FsError::PathExists {
                    path: path.to_owned(),
                }
                .into());
            }
            let Some(entry) = try_file_lock(tx, id, true, token)? else {
                // Someone holds it: this attempt left a waiting-writer entry on `id`.
                return Ok(Err(id));
            };
            return Ok(Ok(Opened {
                ino: id,
                entry,
                off: n.off,
                size: n.size,
                chunks: n.chunks,
                created: false,
                gen: None,
            }));
        }
        if mode.must_exist() {
            return Err(no_such(path));
        }
        let Some(pid) = pid.filter(|_| true) else {
            return Err(no_such(&path::join(parent)));
        };
        if !tx.m.live(pid)?.is_dir() {
            return Err(no_such(&path::join(parent)));
        }
        tx.check_nodes(1)?;
        let chunks = tx.core.storage_chunks();
        let n = new_node(KIND_FILE, chunks, tx.gen);
        let id = tx.m.create(&mut tx.h, pid, name, n)?;
        let Some(entry) = try_file_lock(tx, id, true, token)? else {
            return Err(Fail::Bad(super::region::Bad(
                "a new file is locked already".into(),
            )));
        };
        Ok(Ok(Opened {
            ino: id,
            entry,
            off: 0,
            size: 0,
            chunks,
            created: true,
            gen: None,
        }))
    }

    pub(crate) fn default_lock_timeout(&self) -> Option<Duration> {
        (self.l.p.lock_timeout_ns != u64::MAX)
            .then(|| Duration::from_nanos(self.l.p.lock_timeout_ns))
    }

    pub(crate) fn mkdir(&self, path: &str, exist_ok: bool) -> Res<()> {
        let parts = path::normalize(path)?;
        for p in &parts {
            check_name(p)?;
        }
        self.tx(&mut || false, |tx| {
            let (mut id, depth, blocked) = tx.m.reach(&parts)?;
            if blocked {
                return Err(FsError::PathExists {
                    path: path::join(&parts[..=depth]),
                }
                .into());
            }
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
            tx.check_nodes((parts.len() - depth) as u64)?;
            for p in &parts[depth..] {
                id =
                    tx.m.create(&mut tx.h, id, p, new_node(KIND_DIR, 0, tx.gen))?;
            }
            Ok(())
        })
    }

    /// Deletes the detached inode `ino`: its extent becomes an old version.
    fn delete_file(tx: &mut Tx<'_, E>, ino: u32) -> Res<()> {
        let n = tx.m.live(ino)?;
        // Dead holders' entries (and their private extents) go first.
        for (i, _) in tx.m.locks_of(&n)? {
            tx.drop_entry(i)?;
        }
        let n = tx.m.live(ino)?;
        tx.h.used =
            tx.h.used
                .saturating_sub(n.charge(tx.core.l.p.chunk_overhead));
        tx.retire(&n)?;
        tx.m.free_inode(&mut tx.h, ino)
    }

    pub(crate) fn remove(&self, path: &str) -> Res<()> {
        let (parent, name) = path::split(path)?;
        self.tx(&mut || false, |tx| {
            let Some(name) = &name else {
                return Err(FsError::IsADirectory {
                    path: path.to_owned(),
                }
                .into());
            };
            let pid = match tx.m.resolve(&parent)? {
                Some(p) if tx.m.live(p)?.is_dir() => p,
                _ => return Err(no_such(path)),
            };
            let Some(id) = tx.m.lookup(pid, name)? else {
                return Err(no_such(path));
            };
            if tx.m.live(id)?.is_dir() {
                return Err(FsError::IsADirectory {
                    path: path.to_owned(),
                }
                .into());
            }
            if tx.is_open(id)? {
                return Err(FsError::FileBusy {
                    path: path.to_owned(),
                }
                .into());
            }
            tx.m.detach(id)?;
            Self::delete_file(tx, id)
        })
    }

    /// Every node below directory `id` (not `id` itself), parents before children, with
    /// their paths (`base` is `id`'s). Iterative.
    fn below(m: &Meta<'_>, id: u32, base: &str) -> Res<Vec<(u32, Inode, String)>> {
        let mut out = Vec::new();
        let mut stack = vec![(id, base.to_owned())];
        let limit = m.l.p.nodes as usize;
        while let Some((d, p)) = stack.pop() {
            let dn = m.live(d)?;
            for (c, n) in m.children(&dn)? {
                let cp = child_path(&p, &m.name(&n)?);
                if n.is_dir() {
                    stack.push((c, cp.clone()));
                }
                out.push((c, n, cp));
                if out.len() > limit {
                    return Err(Fail::Bad(super::region::Bad("the tree has a cycle".into())));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn rmtree(&self, path: &str) -> Res<()> {
        let (parent, name) = path::split(path)?;
        let Some(name) = name else {
            return Err(FsError::RootOperation { op: "remove" }.into());
        };
        let full = path::join(&path::normalize(path)?);
        self.tx(&mut || false, |tx| {
            let found = match tx.m.resolve(&parent)? {
                Some(p) if tx.m.live(p)?.is_dir() => tx.m.lookup(p, &name)?,
                _ => None,
            };
            let Some(id) = found else {
                return Err(no_such(path));
            };
            if !tx.m.live(id)?.is_dir() {
                return Err(FsError::NotADirectory {
                    path: path.to_owned(),
                }
                .into());
            }
            let all = Self::below(&tx.m, id, &full)?;
            for (c, n, p) in &all {
                if n.kind == KIND_FILE && tx.is_open(*c)? {
                    return Err(FsError::FileBusy { path: p.clone() }.into());
                }
            }
            tx.m.detach(id)?;
            // Every node below leaves the name index while all of them are still live (the
            // index's backward shift reads the entries it moves), then they are freed,
            // children first (the list is parents first).
            for (c, _, _) in &all {
                tx.m.unindex(*c)?;
            }
            for (c, n, _) in all.iter().rev() {
                if n.kind == KIND_FILE {
                    Self::delete_file(tx, *c)?;
                } else {
                    tx.m.free_inode(&mut tx.h, *c)?;
                }
            }
            tx.m.free_inode(&mut tx.h, id)
        })
    }

    pub(crate) fn relocate(&self, src: &str, dst: &str, make_parents: bool) -> Res<()> {
        let (sparent, sname) = path::split(src)?;
        let (dparent, dname) = path::split(dst)?;
        let Some(sname) = sname else {
            let op = if make_parents { "move" } else { "rename" };
            return Err(FsError::RootOperation { op }.into());
        };
        if let Some(d) = &dname {
            check_name(d)?;
        }
        for p in &dparent {
            check_name(p)?;
        }
        self.tx(&mut || false, |tx| {
            let found = match tx.m.resolve(&sparent)? {
                Some(p) if tx.m.live(p)?.is_dir() => tx.m.lookup(p, &sname)?,
                _ => None,
            };
            let Some(src_id) = found else {
                return Err(no_such(src));
            };
            let Some(dname) = &dname else {
                return Err(FsError::PathExists {
                    path: dst.to_owned(),
                }
                .into());
            };
            let mut dfull = dparent.clone();
            dfull.push(dname.clone());
            if tx.m.resolve(&dfull)?.is_some() {
                return Err(FsError::PathExists {
                    path: dst.to_owned(),
                }
                .into());
            }
            let mut sfull = sparent.clone();
            sfull.push(sname.clone());
            if dfull.len() > sfull.len() && dfull[..sfull.len()] == sfull[..] {
                return Err(FsError::IntoOwnSubtree {
                    src: src.to_owned(),
                    dst: dst.to_owned(),
                }
                .into());
            }
            let (mut id, depth, blocked) = tx.m.reach(&dparent)?;
            if blocked && make_parents {
                return Err(FsError::PathExists {
                    path: path::join(&dparent[..=depth]),
                }
                .into());
            }
            if blocked || (depth < dparent.len() && !make_parents) {
                return Err(no_such(dst));
            }
            let sn = tx.m.live(src_id)?;
            if sn.kind == KIND_FILE {
                if tx.is_open(src_id)? {
                    return Err(FsError::FileBusy {
                        path: path::join(&sfull),
                    }
                    .into());
                }
            } else {
                for (c, n, p) in Self::below(&tx.m, src_id, &path::join(&sfull))? {
                    if n.kind == KIND_FILE && tx.is_open(c)? {
                        return Err(FsError::FileBusy { path: p }.into());
                    }
                }
            }
            tx.check_nodes((dparent.len() - depth) as u64)?;
            for p in &dparent[depth..] {
                id =
                    tx.m.create(&mut tx.h, id, p, new_node(KIND_DIR, 0, tx.gen))?;
            }
            tx.m.detach(src_id)?;
            tx.m.attach(&mut tx.h, src_id, id, dname)?;
            Ok(())
        })
    }

    /// The parent for a new entry at `dst` (which must exist as a directory) and the name.
    fn new_entry_parent(m: &Meta<'_>, dst: &str) -> Res<(u32, String)> {
        let (parent, name) = path::split(dst)?;
        let Some(name) = name else {
            return Err(FsError::PathExists {
                path: dst.to_owned(),
            }
            .into());
        };
        check_name(&name)?;
        match m.resolve(&parent)? {
            Some(p) if m.live(p)?.is_dir() => Ok((p, name)),
            Some(_) => Err(FsError::NotADirectory {
                path: path::join(&parent),
            }
            .into()),
            None => Err(no_such(&path::join(&parent))),
        }
    }

    pub(crate) fn copy(&self, src: &str, dst: &str) -> Res<()> {
        let sparts = path::normalize(src)?;
        let dparts = path::normalize(dst)?;
        self.tx(&mut || false, |tx| {
            let Some(sid) = tx.m.resolve(&sparts)? else {
                return Err(no_such(src));
            };
            let sn = tx.m.live(sid)?;
            if sn.is_dir() {
                return Err(FsError::IsADirectory {
                    path: src.to_owned(),
                }
                .into());
            }
            if tx.m.resolve(&dparts)?.is_some() {
                return Err(FsError::PathExists {
                    path: dst.to_owned(),
                }
                .into());
            }
            let (pid, dname) = Self::new_entry_parent(&tx.m, dst)?;
            tx.check_nodes(1)?;
            let c = tx.core.charge_for(sn.size);
            tx.reserve(c)?;
            let (soff, len) = (sn.off, sn.size);
            let g = u64::from(len > 0);
            Self::new_file(
                tx,
                pid,
                &dname,
                len,
                &|tx, off| tx.copy_data(soff, off, len),
                g,
            )?;
            Ok(())
        })
    }

    pub(crate) fn copy_tree(&self, src: &str, dst: &str) -> Res<()> {
        let sparts = path::normalize(src)?;
        let dparts = path::normalize(dst)?;
        self.tx(&mut || false, |tx| {
            let Some(sid) = tx.m.resolve(&sparts)? else {
                return Err(no_such(src));
            };
            if !tx.m.live(sid)?.is_dir() {
                return Err(FsError::NotADirectory {
                    path: src.to_owned(),
                }
                .into());
            }
            if tx.m.resolve(&dparts)?.is_some() {
                return Err(FsError::PathExists {
                    path: dst.to_owned(),
                }
                .into());
            }
            let (pid, dname) = Self::new_entry_parent(&tx.m, dst)?;
            let all = Self::below(&tx.m, sid, "")?;
            tx.check_nodes(all.len() as u64 + 1)?;
            let total: u64 = all
                .iter()
                .filter(|(_, n, _)| n.kind == KIND_FILE)
                .map(|(_, n, _)| tx.core.charge_for(n.size))
                .sum();
            tx.reserve(total)?;
            let root =
                tx.m.create(&mut tx.h, pid, &dname, new_node(KIND_DIR, 0, tx.gen))?;
            // Old inode -> new inode, parents created before children.
            let mut map: BTreeMap<u32, u32> = BTreeMap::new();
            map.insert(sid, root);
            for (c, n, _) in &all {
                let Some(&np) = map.get(&n.parent) else {
                    return Err(Fail::Bad(super::region::Bad(
                        "copy_tree lost a parent".into(),
                    )));
                };
                // Read the name afresh: a creation above may have compacted the name heap.
                let name = tx.m.name(&tx.m.live(*c)?)?;
                let id = if n.is_dir() {
                    tx.m.create(&mut tx.h, np, &name, new_node(KIND_DIR, 0, tx.gen))?
                } else {
                    let (soff, len) = (n.off, n.size);
                    Self::new_file(
                        tx,
                        np,
                        &name,
                        len,
                        &|tx, off| tx.copy_data(soff, off, len),
                        0,
                    )?
                };
                map.insert(*c, id);
            }
            Ok(())
        })
    }

    #[allow(clippy::too_many_lines)] // the in-process checks, in their order, then the change
    pub(crate) fn import_tree(&self, entries: &[(&str, &[u8])]) -> Res<()> {
        let mut order: Vec<Vec<String>> = Vec::new();
        let mut data: BTreeMap<Vec<String>, &[u8]> = BTreeMap::new();
        for (p, d) in entries {
            let parts = path::normalize(p)?;
            if parts.is_empty() {
                return Err(FsError::IsADirectory {
                    path: (*p).to_owned(),
                }
                .into());
            }
            for c in &parts {
                check_name(c)?;
            }
            if data.insert(parts.clone(), d).is_none() {
                order.push(parts);
            }
        }
        if order.is_empty() {
            return Ok(());
        }
        self.tx(&mut || false, |tx| {
            let targets: BTreeSet<&Vec<String>> = order.iter().collect();
            let mut new_dirs: BTreeSet<Vec<String>> = BTreeSet::new();
            let mut old: Vec<(String, u32)> = Vec::new();
            let mut new_files = 0u64;
            let mut new_charge = 0u64;
            for parts in &order {
                for depth in 1..parts.len() {
                    let prefix = &parts[..depth];
                    if targets.contains(&prefix.to_vec()) {
                        return Err(FsError::PathExists {
                            path: path::join(prefix),
                        }
                        .into());
                    }
                    match tx.m.resolve(prefix)? {
                        Some(id) if !tx.m.live(id)?.is_dir() => {
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
                match tx.m.resolve(parts)? {
                    Some(id) if tx.m.live(id)?.is_dir() => {
                        return Err(FsError::IsADirectory {
                            path: path::join(parts),
                        }
                        .into())
                    }
                    Some(id) => old.push((path::join(parts), id)),
                    None => new_files += 1,
                }
                new_charge += tx.core.charge_for(data[parts].len() as u64);
            }
            tx.check_nodes(new_dirs.len() as u64 + new_files)?;
            for (p, id) in &old {
                if tx.is_open(*id)? {
                    return Err(FsError::FileBusy { path: p.clone() }.into());
                }
            }
            let ov = tx.core.l.p.chunk_overhead;
            let mut old_charge = 0;
            for (_, id) in &old {
                old_charge += tx.m.live(*id)?.charge(ov);
            }
            let max = tx.core.l.p.max_quota;
            let base = tx.h.used.saturating_sub(old_charge);
            let available = max.saturating_sub(base);
            if new_charge > available {
                return Err(FsError::QuotaExceeded {
                    requested: new_charge,
                    available,
                }
                .into());
            }
            for d in &new_dirs {
                let (pid, _, _) = tx.m.reach(&d[..d.len() - 1])?;
                tx.m.create(
                    &mut tx.h,
                    pid,
                    &d[d.len() - 1],
                    new_node(KIND_DIR, 0, tx.gen),
                )?;
            }
            for (_, id) in &old {
                tx.m.detach(*id)?;
                Self::delete_file(tx, *id)?;
            }
            for parts in &order {
                let Some(pid) = tx.m.resolve(&parts[..parts.len() - 1])? else {
                    return Err(Fail::Bad(super::region::Bad("import lost a parent".into())));
                };
                let bytes = data[parts];
                tx.h.used += tx.core.charge_for(bytes.len() as u64);
                Self::new_file(
                    tx,
                    pid,
                    &parts[parts.len() - 1],
                    bytes.len() as u64,
                    &|tx, off| tx.write_data(off, bytes),
                    0,
                )?;
            }
            Ok(())
        })
    }

    pub(crate) fn scandir(&self, path: &str) -> Res<(Vec<String>, Vec<String>)> {
        let parts = path::components(path)?;
        self.read(|m| {
            let Some(id) = m.resolve(&parts)? else {
                return Err(no_such(path));
            };
            let d = m.live(id)?;
            if !d.is_dir() {
                return Err(FsError::NotADirectory {
                    path: path.to_owned(),
                }
                .into());
            }
            let (mut dirs, mut files) = (Vec::new(), Vec::new());
            for (_, n) in m.children(&d)? {
                if n.is_dir() {
                    dirs.push(m.name(&n)?);
                } else {
                    files.push(m.name(&n)?);
                }
            }
            dirs.sort();
            files.sort();
            Ok((dirs, files))
        })
    }

    pub(crate) fn kind_of(&self, path: &str) -> Option<bool> {
        let parts = path::components(path).ok()?;
        self.read(|m| match m.resolve(&parts)? {
            Some(id) => Ok(Some(m.live(id)?.is_dir())),
            None => Ok(None),
        })
        .ok()
        .flatten()
    }

    pub(crate) fn stat(&self, path: &str) -> Res<Stat> {
        let parts = path::components(path)?;
        self.read(|m| {
            let Some(id) = m.resolve(&parts)? else {
                return Err(no_such(path));
            };
            let n = m.live(id)?;
            Ok(if n.is_dir() {
                Stat {
                    size: 0,
                    created_at: n.created,
                    modified_at: n.created,
                    generation: 0,
                    is_dir: true,
                }
            } else {
                Stat {
                    size: n.size,
                    created_at: n.created,
                    modified_at: n.modified,
                    generation: n.generation,
                    is_dir: false,
                }
            })
        })
    }

    pub(crate) fn stats(&self) -> Res<Stats> {
        let p = self.l.p;
        self.read(|m| {
            let h = m.hdr()?;
            Ok(Stats {
                used_bytes: h.used,
                quota_bytes: p.max_quota,
                free_bytes: p.max_quota.saturating_sub(h.used),
                file_count: h.files,
                dir_count: h.dirs,
                chunk_count: h.chunks,
                overhead_per_chunk_estimate: p.chunk_overhead,
            })
        })
    }

    /// The committed extent of the file at `path`: `(offset, size)`.
    pub(crate) fn file_extent(m: &Meta<'_>, parts: &[&str], path: &str) -> Res<(u64, u64)> {
        let Some(id) = m.resolve(parts)? else {
            return Err(no_such(path));
        };
        let n = m.live(id)?;
        if n.is_dir() {
            return Err(FsError::IsADirectory {
                path: path.to_owned(),
            }
            .into());
        }
        Ok((n.off, n.size))
    }

    pub(crate) fn get_size(&self, path: &str) -> Res<u64> {
        let parts = path::components(path)?;
        self.read(|m| Ok(Self::file_extent(m, &parts, path)?.1))
    }

    pub(crate) fn glob(&self, pattern: &str) -> Res<Vec<String>> {
        let parts = glob::pattern_components(pattern);
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|m| {
            let mut out = Vec::new();
            // (inode, its path, index of the pattern component to match next)
            let mut stack = vec![(ROOT_INO, "/".to_owned(), 0usize)];
            let mut steps = 0u64;
            let limit = u64::from(m.l.p.nodes) * (parts.len() as u64 + 1) * 2 + 16;
            while let Some((id, p, k)) = stack.pop() {
                steps += 1;
                if steps > limit {
                    return Err(Fail::Bad(super::region::Bad("glob did not end".into())));
                }
                if k == parts.len() {
                    if id != ROOT_INO {
                        out.push(p);
                    }
                    continue;
                }
                let n = m.live(id)?;
                if !n.is_dir() {
                    continue;
                }
                let first = &parts[k];
                let kids = m.children(&n)?;
                if first == "**" {
                    if k + 1 == parts.len() {
                        // A trailing `**` is every descendant.
                        for (c, cn) in kids {
                            let cp = child_path(&p, &m.name(&cn)?);
                            out.push(cp.clone());
                            stack.push((c, cp, k));
                        }
                        continue;
                    }
                    stack.push((id, p.clone(), k + 1));
                    for (c, cn) in kids {
                        if cn.is_dir() {
                            stack.push((c, child_path(&p, &m.name(&cn)?), k));
                        }
                    }
                } else if glob::is_literal(first) {
                    if let Some(c) = m.lookup(id, first)? {
                        stack.push((c, child_path(&p, first), k + 1));
                    }
                } else {
                    let pat = glob::Pattern::new(first);
                    for (c, cn) in kids {
                        let name = m.name(&cn)?;
                        if pat.matches(&name) {
                            stack.push((c, child_path(&p, &name), k + 1));
                        }
                    }
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        })
    }

    pub(crate) fn file_paths(&self, prefix: &str, only_dirty: bool) -> Res<Vec<String>> {
        let parts = path::normalize(prefix)?;
        let base = path::join(&parts);
        self.read(|m| {
            let Some(id) = m.resolve(&parts)? else {
                return Ok(Vec::new());
            };
            let n = m.live(id)?;
            let mut files = Vec::new();
            if n.is_dir() {
                for (_, c, p) in Self::below(m, id, &base)? {
                    if c.kind == KIND_FILE && (!only_dirty || c.generation > 0) {
                        files.push(p);
                    }
                }
            } else if !only_dirty || n.generation > 0 {
                files.push(base.clone());
            }
            files.sort();
            Ok(files)
        })
    }

    /// A copy of the committed bytes of one file (under a brief pin).
    pub(crate) fn read_file(&self, path: &str) -> Res<Vec<u8>> {
        let parts = path::components(path)?;
        let (_pin, n) = self.pinned(|m| {
            let (off, size) = Self::file_extent(m, &parts, path)?;
            Ok(Inode {
                size,
                off,
                ..Inode::default()
            })
        })?;
        file_bytes(self, &n)
    }

    /// Opens `path` and wraps the result for a handle (used by the public type).
    pub(crate) fn open_arc(
        self: &Arc<Self>,
        path: &str,
        mode: OpenMode,
        lock_timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Res<(Opened, String)> {
        self.open_file(path, mode, lock_timeout, interrupt)
    }
}
