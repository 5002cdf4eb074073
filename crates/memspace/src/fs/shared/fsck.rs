//! The full invariant check of a shared filesystem (`fsck`) and the usage report
//! (`inspect`). Both read the committed state under the commit lock, so they see one
//! consistent generation; neither changes anything unless asked to reap the dead first.

use std::collections::BTreeSet;

use super::core::{seq_chunks, Core, Env};
use super::layout::{charge, KIND_DIR, KIND_FILE, KIND_FREE, LT_WRITE_PENDING, ROOT_INO};
use super::meta::{Meta, Res};

/// What [`fsck`](super::SharedFileSystem::fsck) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Every broken invariant, in words (empty: consistent).
    pub problems: Vec<String>,
    /// The generation checked.
    pub generation: u64,
    /// Files and directories (the root included) reachable from the root.
    pub files: u64,
    /// Directories reachable from the root, the root included.
    pub dirs: u64,
    /// `used` as recorded.
    pub used_bytes: u64,
    /// The sum of the files' charges (with open writers' private extents counted instead of
    /// their files' committed bytes).
    pub charged_bytes: u64,
    /// Lock-table entries held by processes that are no longer alive (reaped by the next
    /// writer that meets them, or by `fsck(reap=true)`).
    pub dead_entries: u64,
    /// Lock-table entries in use.
    pub open_entries: u64,
}

impl FsckReport {
    /// Whether no invariant is broken.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Usage and health of a shared filesystem, for `memspace inspect`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedFsInfo {
    /// Bytes charged to the quota.
    pub used_bytes: u64,
    /// The quota.
    pub quota_bytes: u64,
    /// Files.
    pub files: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// The node limit.
    pub max_nodes: u64,
    /// Bytes of the data area.
    pub data_bytes: u64,
    /// Free bytes of the data area.
    pub free_data_bytes: u64,
    /// Number of free extents (1 = no fragmentation).
    pub free_extents: u64,
    /// The largest free extent (the largest file that can be written without waiting for
    /// reclaim).
    pub largest_free_extent: u64,
    /// Bytes of old versions waiting for readers that may still see them.
    pub old_version_bytes: u64,
    /// Open handles (lock-table entries), all processes together.
    pub open_handles: u64,
    /// The committed generation.
    pub generation: u64,
    /// Attached processes: `(slot, pid)` of each live one.
    pub attached: Vec<(u32, u32)>,
    /// Age in seconds of the oldest live reader's snapshot (a view or a copy in progress).
    pub oldest_snapshot_age: Option<f64>,
}

impl<E: Env> Core<E> {
    /// Checks every invariant of the committed state.
    #[allow(clippy::too_many_lines)] // one flat list of checks reads best in one place
    pub(crate) fn check(
        &self,
        m: &Meta<'_>,
        alive: &dyn Fn(u32, u64) -> Res<bool>,
    ) -> Res<FsckReport> {
        let mut rep = FsckReport::default();
        let p = &mut rep.problems;
        let h = m.hdr()?;
        rep.generation = h.gen;
        rep.used_bytes = h.used;
        let ov = self.l.p.chunk_overhead;
        // The tree, iteratively from the root.
        let mut seen = BTreeSet::new();
        let mut stack = vec![ROOT_INO];
        seen.insert(ROOT_INO);
        let mut files = 0u64;
        let mut dirs = 0u64;
        let mut charged = 0u64;
        let mut chunks = 0u64;
        let mut extents: Vec<(u64, u64, String)> = Vec::new();
        while let Some(d) = stack.pop() {
            let dn = m.inode(d)?;
            if dn.kind != KIND_DIR {
                p.push(format!("inode {d} is listed as a directory but is not one"));
                continue;
            }
            dirs += 1;
            let kids = match m.children(&dn) {
                Ok(k) => k,
                Err(e) => {
                    p.push(e.0);
                    continue;
                }
            };
            let mut prev = 0u32;
            for (c, n) in kids {
                if !seen.insert(c) {
                    p.push(format!("inode {c} is reachable twice"));
                    continue;
                }
                if n.parent != d {
                    p.push(format!(
                        "inode {c} is in directory {d}'s list but names {} as parent",
                        n.parent
                    ));
                }
                if n.prev != prev {
                    p.push(format!("inode {c}: back link {} should be {prev}", n.prev));
                }
                prev = c;
                match m.name(&n) {
                    Ok(name) => {
                        if name.is_empty() || name.contains('/') {
                            p.push(format!("inode {c} has the invalid name {name:?}"));
                        }
                        match m.lookup(d, &name) {
                            Ok(Some(x)) if x == c => {}
                            other => p.push(format!(
                                "name index gives {other:?} for inode {c} ({name:?})"
                            )),
                        }
                    }
                    Err(e) => p.push(e.0),
                }
                if n.kind == KIND_DIR {
                    stack.push(c);
                } else if n.kind == KIND_FILE {
                    files += 1;
                    // Saturating: a corrupt chunk count is reported, never an overflow.
                    charged = charged.saturating_add(charge(n.size, n.chunks, ov));
                    chunks = chunks.saturating_add(seq_chunks(n.chunks));
                    if n.cap > 0 {
                        extents.push((n.off, n.cap, format!("file inode {c}")));
                    }
                } else {
                    p.push(format!("free inode {c} is linked in the tree"));
                }
            }
        }
        rep.files = files;
        rep.dirs = dirs;
        if files != h.files || dirs != h.dirs || files + dirs != h.nodes {
            p.push(format!(
                "counts: {files} files and {dirs} directories reachable, header says {} and {} ({} nodes)",
                h.files, h.dirs, h.nodes
            ));
        }
        // The name index holds exactly the reachable nodes but the root, each once.
        let mut indexed = BTreeSet::new();
        for k in 0..u64::from(self.l.hash_cap) {
            let v = m.index_slot(k)?;
            if v == 0 {
                continue;
            }
            if !seen.contains(&v) || v == ROOT_INO {
                p.push(format!(
                    "name index slot {k} holds inode {v}, which is not in the tree"
                ));
            } else if !indexed.insert(v) {
                p.push(format!("inode {v} is in the name index twice"));
            }
        }
        if indexed.len() + 1 != seen.len() {
            p.push(format!(
                "the name index holds {} nodes, the tree {} (the root not indexed)",
                indexed.len(),
                seen.len() - 1
            ));
        }
        // Every inode below the high-water mark is reachable or on the free list.
        let mut free_inodes = BTreeSet::new();
        let mut f = h.ino_free;
        while f != 0 {
            if !free_inodes.insert(f) || free_inodes.len() > self.l.p.nodes as usize {
                p.push("the free inode list has a cycle".into());
                break;
            }
            let n = m.inode(f)?;
            if n.kind != KIND_FREE {
                p.push(format!("live inode {f} is on the free list"));
                break;
            }
            f = n.next;
        }
        for i in 1..=h.ino_hwm {
            if !seen.contains(&i) && !free_inodes.contains(&i) {
                p.push(format!("inode {i} is leaked (neither reachable nor free)"));
            }
        }
        // Lock entries and private extents.
        let mut open = 0u64;
        for i in 1..=h.lt_hwm {
            let e = m.lt(i)?;
            if e.kind == 0 {
                continue;
            }
            open += 1;
            if !seen.contains(&e.ino) || m.inode(e.ino)?.kind != KIND_FILE {
                p.push(format!(
                    "lock entry {i} names inode {} which is not a live file",
                    e.ino
                ));
                continue;
            }
            let n = m.inode(e.ino)?;
            if !m.locks_of(&n)?.iter().any(|(x, _)| *x == i) {
                p.push(format!("lock entry {i} is not on inode {}'s chain", e.ino));
            }
            if !alive(e.slot, e.epoch)? {
                rep.dead_entries += 1;
            }
            if e.kind == LT_WRITE_PENDING {
                charged = (charged - charge(n.size, n.chunks, ov).min(charged))
                    .saturating_add(charge(e.pend_size, e.pend_chunks, ov));
                if e.pend_cap > 0 {
                    extents.push((
                        e.pend_off,
                        e.pend_cap,
                        format!("private extent of entry {i}"),
                    ));
                }
            }
        }
        rep.open_entries = open;
        if u64::from(h.lt_used) != open {
            p.push(format!(
                "{open} lock entries in use, header says {}",
                h.lt_used
            ));
        }
        rep.charged_bytes = charged;
        if charged != h.used {
            p.push(format!(
                "used is {} but the files are charged {charged}",
                h.used
            ));
        }
        if chunks != h.chunks {
            p.push(format!(
                "chunk count is {} but the files hold {chunks}",
                h.chunks
            ));
        }
        // Space: files + private + old versions + free = the data area, disjoint.
        for i in 0..h.limbo_len {
            let e = m.limbo_at(i)?;
            extents.push((e.off, e.len, format!("old version {i}")));
        }
        for i in 0..h.free_len {
            let (o, l) = m.free_at(i)?;
            extents.push((o, l, format!("free extent {i}")));
        }
        extents.sort();
        let mut end = 0u64;
        let mut total = 0u64;
        for (o, l, what) in &extents {
            if *o < end {
                p.push(format!("{what} at {o}+{l} overlaps what ends at {end}"));
            }
            end = end.max(o + l);
            total += l;
        }
        let usable = self.l.p.data / 64 * 64;
        if total != usable {
            p.push(format!(
                "the extents cover {total} bytes of the {usable}-byte data area ({} leaked)",
                i128::from(usable) - i128::from(total)
            ));
        }
        Ok(rep)
    }
}
