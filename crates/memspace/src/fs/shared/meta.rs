//! One copy of the metadata: reading it (validated, for readers and for the writer) and
//! changing it (the writer, on the inactive copy, recording every byte range it writes so that
//! the next commit can bring the other copy up to date by copying just those ranges).
//!
//! Every value read here is checked against the layout before it is used as an index or an
//! offset, and every loop is bounded by a capacity of the layout, so a corrupt (or torn) copy
//! gives [`Bad`], never an access out of range or a loop without end.

use super::layout::{
    Header, Inode, Layout, Limbo, LockEntry, FREE_SIZE, HDR_SIZE, INODE_SIZE, KIND_DIR, KIND_FILE,
    KIND_FREE, LIMBO_SIZE, LT_READ, LT_SIZE, LT_WAIT, LT_WRITE_PENDING, RANDOM,
};
use super::region::{bad, Bad, BadResult, Region};
use crate::fs::error::FsError;
use crate::shm::header::fnv1a64;

/// Why a filesystem operation failed, inside the shared filesystem: a filesystem error, a
/// corrupt region, or another core error.
#[derive(Debug)]
pub(crate) enum Fail {
    Fs(FsError),
    Bad(Bad),
    Err(crate::Error),
}

impl From<FsError> for Fail {
    fn from(e: FsError) -> Self {
        Fail::Fs(e)
    }
}
impl From<Bad> for Fail {
    fn from(e: Bad) -> Self {
        Fail::Bad(e)
    }
}
impl From<crate::Error> for Fail {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Fs(f) => Fail::Fs(f),
            e => Fail::Err(e),
        }
    }
}

pub(crate) type Res<T> = std::result::Result<T, Fail>;

fn name_hash(parent: u32, name: &[u8]) -> u64 {
    let mut b = Vec::with_capacity(4 + name.len());
    b.extend_from_slice(&parent.to_ne_bytes());
    b.extend_from_slice(name);
    fnv1a64(&b)
}

/// One copy of the metadata at `base`; writes are recorded in `dirty` (copy-relative).
pub(crate) struct Meta<'a> {
    pub(crate) r: &'a Region,
    pub(crate) l: &'a Layout,
    pub(crate) base: u64,
    pub(crate) dirty: Vec<(u64, u64)>,
}

impl<'a> Meta<'a> {
    pub(crate) fn new(r: &'a Region, l: &'a Layout, copy: usize) -> Self {
        Meta {
            r,
            l,
            base: l.copies[copy & 1],
            dirty: Vec::new(),
        }
    }

    fn read(&self, off: u64, out: &mut [u8]) -> BadResult<()> {
        self.r.read(self.base + off, out)
    }

    fn write(&mut self, off: u64, data: &[u8]) -> BadResult<()> {
        self.r.write(self.base + off, data)?;
        self.dirty.push((off, data.len() as u64));
        Ok(())
    }

    // ----- header -----

    pub(crate) fn hdr(&self) -> BadResult<Header> {
        let mut b = [0u8; HDR_SIZE as usize];
        self.read(0, &mut b)?;
        if !Header::checksum_ok(&b) {
            return bad!("metadata header checksum mismatch");
        }
        let h = Header::decode(&b);
        let l = self.l;
        let nodes = u64::from(l.p.nodes);
        if h.nodes > nodes
            || h.ino_hwm > l.p.nodes
            || h.ino_free > l.p.nodes
            || h.files.checked_add(h.dirs) != Some(h.nodes)
            || h.names_top > l.p.names
            || h.names_dead > h.names_top
            || h.free_len > l.free_cap
            || h.limbo_len > l.limbo_cap
            || h.lt_hwm > l.p.locks
            || h.lt_free > l.p.locks
            || h.lt_used > h.lt_hwm
        {
            return bad!("metadata header counters out of range: {h:?}");
        }
        Ok(h)
    }

    pub(crate) fn put_hdr(&mut self, h: &Header) -> BadResult<()> {
        self.write(0, &h.encode())
    }

    // ----- inodes -----

    fn ino_off(&self, i: u32) -> BadResult<u64> {
        if i == 0 || i > self.l.p.nodes {
            return bad!("inode {i} out of range");
        }
        Ok(self.l.inodes + u64::from(i - 1) * INODE_SIZE)
    }

    /// The raw inode `i` (validated fields, whatever its kind).
    pub(crate) fn inode(&self, i: u32) -> BadResult<Inode> {
        let mut b = [0u8; INODE_SIZE as usize];
        self.read(self.ino_off(i)?, &mut b)?;
        let n = Inode::decode(&b);
        let l = self.l;
        let max = l.p.nodes;
        if n.kind > KIND_DIR
            || n.parent > max
            || n.first > max
            || n.next > max
            || n.prev > max
            || n.lock_head > l.p.locks
            || u64::from(n.name_off) + u64::from(n.name_len) > l.p.names
        {
            return bad!("inode {i} has fields out of range");
        }
        if n.kind == KIND_FILE {
            let end = n.off.checked_add(n.cap);
            let ok = n.size <= n.cap
                && (n.cap == 0 || (n.off % 64 == 0 && end.is_some_and(|e| e <= l.p.data)));
            if !ok {
                return bad!(
                    "inode {i}: extent {}+{} size {} out of range",
                    n.off,
                    n.cap,
                    n.size
                );
            }
        }
        Ok(n)
    }

    /// Inode `i`, which must be a live file or directory.
    pub(crate) fn live(&self, i: u32) -> BadResult<Inode> {
        let n = self.inode(i)?;
        if n.kind == KIND_FREE {
            return bad!("inode {i} is free but referenced");
        }
        Ok(n)
    }

    pub(crate) fn put_inode(&mut self, i: u32, n: &Inode) -> BadResult<()> {
        let off = self.ino_off(i)?;
        self.write(off, &n.encode())
    }

    // ----- names -----

    pub(crate) fn name(&self, n: &Inode) -> BadResult<String> {
        let mut v = vec![0u8; usize::from(n.name_len)];
        self.read(self.l.names + u64::from(n.name_off), &mut v)?;
        String::from_utf8(v).map_err(|_| Bad("a name is not UTF-8".into()))
    }

    fn name_is(&self, n: &Inode, name: &[u8]) -> BadResult<bool> {
        if usize::from(n.name_len) != name.len() {
            return Ok(false);
        }
        let mut buf = [0u8; 256];
        if name.len() <= buf.len() {
            let b = &mut buf[..name.len()];
            self.read(self.l.names + u64::from(n.name_off), b)?;
            return Ok(b == name);
        }
        let mut v = vec![0u8; name.len()];
        self.read(self.l.names + u64::from(n.name_off), &mut v)?;
        Ok(v == name)
    }

    /// Stores `name` in the name heap (compacting it if it is full); returns its offset.
    pub(crate) fn alloc_name(&mut self, h: &mut Header, name: &[u8]) -> Res<u32> {
        let len = name.len() as u64;
        if h.names_top + len > self.l.p.names {
            self.compact_names(h)?;
            if h.names_top + len > self.l.p.names {
                return Err(FsError::MetadataFull { what: "name space" }.into());
            }
        }
        let off = h.names_top;
        self.write(self.l.names + off, name)?;
        h.names_top += len;
        Ok(off as u32)
    }

    pub(crate) fn free_name(h: &mut Header, n: &Inode) {
        h.names_dead = (h.names_dead + u64::from(n.name_len)).min(h.names_top);
    }

    /// Rewrites every live name contiguously from the start of the heap.
    fn compact_names(&mut self, h: &mut Header) -> Res<()> {
        let mut live = Vec::new();
        for i in 1..=h.ino_hwm {
            let n = self.inode(i)?;
            if n.kind != KIND_FREE {
                live.push((i, n, self.name(&n)?));
            }
        }
        let mut top = 0u64;
        for (i, mut n, name) in live {
            self.write(self.l.names + top, name.as_bytes())?;
            n.name_off = top as u32;
            self.put_inode(i, &n)?;
            top += name.len() as u64;
        }
        h.names_top = top;
        h.names_dead = 0;
        Ok(())
    }

    // ----- the name index: (parent, name) -> inode, open addressing -----

    fn hslot(&self, k: u64) -> u64 {
        self.l.hash + (k & (u64::from(self.l.hash_cap) - 1)) * 4
    }

    fn hget(&self, k: u64) -> BadResult<u32> {
        let mut b = [0u8; 4];
        self.read(self.hslot(k), &mut b)?;
        let v = u32::from_ne_bytes(b);
        if v > self.l.p.nodes {
            return bad!("name index entry {v} out of range");
        }
        Ok(v)
    }

    fn hput(&mut self, k: u64, v: u32) -> BadResult<()> {
        let off = self.hslot(k);
        self.write(off, &v.to_ne_bytes())
    }

    /// Slot `k` of the name index (0: empty), for `fsck`.
    pub(crate) fn index_slot(&self, k: u64) -> BadResult<u32> {
        self.hget(k)
    }

    /// The child `name` of directory `parent`.
    pub(crate) fn lookup(&self, parent: u32, name: &str) -> BadResult<Option<u32>> {
        let h = name_hash(parent, name.as_bytes());
        for k in 0..u64::from(self.l.hash_cap) {
            let v = self.hget(h.wrapping_add(k))?;
            if v == 0 {
                return Ok(None);
            }
            let n = self.live(v)?;
            if n.parent == parent && self.name_is(&n, name.as_bytes())? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn hash_insert(&mut self, parent: u32, name: &[u8], ino: u32) -> BadResult<()> {
        let h = name_hash(parent, name);
        for k in 0..u64::from(self.l.hash_cap) {
            if self.hget(h.wrapping_add(k))? == 0 {
                return self.hput(h.wrapping_add(k), ino);
            }
        }
        bad!("name index is full")
    }

    /// Removes `ino` (child `name` of `parent`) from the index, shifting later entries of its
    /// probe run back (no tombstones).
    fn hash_remove(&mut self, parent: u32, name: &[u8], ino: u32) -> BadResult<()> {
        let cap = u64::from(self.l.hash_cap);
        let mask = cap - 1;
        let h = name_hash(parent, name);
        let mut hole = None;
        for k in 0..cap {
            let v = self.hget(h.wrapping_add(k))?;
            if v == 0 {
                break;
            }
            if v == ino {
                hole = Some(h.wrapping_add(k) & mask);
                break;
            }
        }
        let Some(mut hole) = hole else {
            return bad!("inode {ino} missing from the name index");
        };
        let mut j = hole;
        for _ in 0..cap {
            j = (j + 1) & mask;
            let v = self.hget(j)?;
            if v == 0 {
                break;
            }
            let n = self.live(v)?;
            let home = name_hash(n.parent, self.name(&n)?.as_bytes()) & mask;
            // Move v into the hole unless its home lies cyclically in (hole, j].
            let dist_home = (j.wrapping_sub(home)) & mask;
            let dist_hole = (j.wrapping_sub(hole)) & mask;
            if dist_home >= dist_hole {
                self.hput(hole, v)?;
                hole = j;
            }
        }
        self.hput(hole, 0)
    }

    // ----- the tree -----

    /// The children of directory `dir`, in list order.
    pub(crate) fn children(&self, dir: &Inode) -> BadResult<Vec<(u32, Inode)>> {
        let mut out = Vec::new();
        let mut c = dir.first;
        let mut left = self.l.p.nodes;
        while c != 0 {
            if left == 0 {
                return bad!("a directory's child list has a cycle");
            }
            left -= 1;
            let n = self.live(c)?;
            out.push((c, n));
            c = n.next;
        }
        Ok(out)
    }

    /// The inode at `parts` (components of a normalised path), if any.
    pub(crate) fn resolve<S: AsRef<str>>(&self, parts: &[S]) -> BadResult<Option<u32>> {
        let mut cur = super::layout::ROOT_INO;
        for p in parts {
            let n = self.live(cur)?;
            if !n.is_dir() {
                return Ok(None);
            }
            match self.lookup(cur, p.as_ref())? {
                Some(c) => cur = c,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// How far `parts` exists as directories: `(inode, depth, blocked)` where `blocked` is
    /// true if `parts[depth]` exists and is a file.
    pub(crate) fn reach<S: AsRef<str>>(&self, parts: &[S]) -> BadResult<(u32, usize, bool)> {
        let mut cur = super::layout::ROOT_INO;
        for (d, p) in parts.iter().enumerate() {
            match self.lookup(cur, p.as_ref())? {
                Some(c) if self.live(c)?.is_dir() => cur = c,
                Some(_) => return Ok((cur, d, true)),
                None => return Ok((cur, d, false)),
            }
        }
        Ok((cur, parts.len(), false))
    }

    /// A new inode, linked under `parent` as `name`. Counts are updated in `h`.
    pub(crate) fn create(
        &mut self,
        h: &mut Header,
        parent: u32,
        name: &str,
        mut n: Inode,
    ) -> Res<u32> {
        let ino = if h.ino_free != 0 {
            let i = h.ino_free;
            let f = self.inode(i)?;
            if f.kind != KIND_FREE {
                return Err(Bad(format!("free inode list holds live inode {i}")).into());
            }
            h.ino_free = f.next;
            i
        } else if h.ino_hwm < self.l.p.nodes {
            h.ino_hwm += 1;
            h.ino_hwm
        } else {
            return Err(Bad("no free inode below the node limit".into()).into());
        };
        n.name_off = self.alloc_name(h, name.as_bytes())?;
        n.name_len = name.len() as u16;
        n.parent = parent;
        let mut p = self.live(parent)?;
        n.next = p.first;
        n.prev = 0;
        if p.first != 0 {
            let mut f = self.live(p.first)?;
            f.prev = ino;
            self.put_inode(p.first, &f)?;
        }
        p.first = ino;
        self.put_inode(parent, &p)?;
        self.put_inode(ino, &n)?;
        self.hash_insert(parent, name.as_bytes(), ino)?;
        h.nodes += 1;
        if n.kind == KIND_DIR {
            h.dirs += 1;
        } else {
            h.files += 1;
        }
        Ok(ino)
    }

    /// Unlinks inode `ino` from its parent's list and the index (the inode stays as it is).
    pub(crate) fn detach(&mut self, ino: u32) -> Res<Inode> {
        let n = self.live(ino)?;
        let name = self.name(&n)?;
        self.hash_remove(n.parent, name.as_bytes(), ino)?;
        if n.prev != 0 {
            let mut p = self.live(n.prev)?;
            p.next = n.next;
            self.put_inode(n.prev, &p)?;
        } else {
            let mut p = self.live(n.parent)?;
            p.first = n.next;
            self.put_inode(n.parent, &p)?;
        }
        if n.next != 0 {
            let mut x = self.live(n.next)?;
            x.prev = n.prev;
            self.put_inode(n.next, &x)?;
        }
        Ok(n)
    }

    /// Removes inode `ino` from the name index only (its whole subtree is being deleted, so
    /// the child lists go with it).
    pub(crate) fn unindex(&mut self, ino: u32) -> Res<()> {
        let n = self.live(ino)?;
        let name = self.name(&n)?;
        self.hash_remove(n.parent, name.as_bytes(), ino)?;
        Ok(())
    }

    /// Links a detached inode under `parent` as `name` (a rename).
    pub(crate) fn attach(&mut self, h: &mut Header, ino: u32, parent: u32, name: &str) -> Res<()> {
        let mut n = self.live(ino)?;
        if self.name(&n)? != name {
            Self::free_name(h, &n);
            n.name_off = self.alloc_name(h, name.as_bytes())?;
            n.name_len = name.len() as u16;
        }
        let mut p = self.live(parent)?;
        n.parent = parent;
        n.next = p.first;
        n.prev = 0;
        if p.first != 0 {
            let mut f = self.live(p.first)?;
            f.prev = ino;
            self.put_inode(p.first, &f)?;
        }
        p.first = ino;
        self.put_inode(parent, &p)?;
        self.put_inode(ino, &n)?;
        self.hash_insert(parent, name.as_bytes(), ino)?;
        Ok(())
    }

    /// Frees a detached inode (its data extent is the caller's).
    pub(crate) fn free_inode(&mut self, h: &mut Header, ino: u32) -> Res<()> {
        let n = self.live(ino)?;
        Self::free_name(h, &n);
        // The counts are the header's: a corrupt one may say fewer than there are.
        let short = || {
            Bad(format!(
                "the header counts fewer nodes than inode {ino} makes"
            ))
        };
        if n.kind == KIND_DIR {
            h.dirs = h.dirs.checked_sub(1).ok_or_else(short)?;
        } else {
            h.files = h.files.checked_sub(1).ok_or_else(short)?;
            if n.chunks != RANDOM {
                h.chunks = h.chunks.saturating_sub(n.chunks);
            }
        }
        h.nodes = h.nodes.checked_sub(1).ok_or_else(short)?;
        let f = Inode {
            next: h.ino_free,
            ..Inode::default()
        };
        self.put_inode(ino, &f)?;
        h.ino_free = ino;
        Ok(())
    }

    // ----- free extents: sorted by offset, coalesced -----

    pub(crate) fn free_at(&self, i: u32) -> BadResult<(u64, u64)> {
        let mut b = [0u8; 16];
        self.read(self.l.free + u64::from(i) * FREE_SIZE, &mut b)?;
        let off = u64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8]));
        let len = u64::from_ne_bytes(b[8..].try_into().unwrap_or([0; 8]));
        if off.checked_add(len).is_none_or(|e| e > self.l.p.data) || len == 0 {
            return bad!("free extent {i} ({off}+{len}) out of range");
        }
        Ok((off, len))
    }

    fn put_free(&mut self, i: u32, off: u64, len: u64) -> BadResult<()> {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&off.to_ne_bytes());
        b[8..].copy_from_slice(&len.to_ne_bytes());
        self.write(self.l.free + u64::from(i) * FREE_SIZE, &b)
    }

    fn shift_free(&mut self, from: u32, to: u32, count: u32) -> BadResult<()> {
        if count == 0 {
            return Ok(());
        }
        let src = self.base + self.l.free + u64::from(from) * FREE_SIZE;
        let dst = self.base + self.l.free + u64::from(to) * FREE_SIZE;
        let n = u64::from(count) * FREE_SIZE;
        self.r.copy_within(src, dst, n)?;
        let lo = u64::from(from.min(to)) * FREE_SIZE;
        self.dirty.push((
            self.l.free + lo,
            n + u64::from(from.abs_diff(to)) * FREE_SIZE,
        ));
        Ok(())
    }

    /// Takes `len` bytes (a multiple of 64) from the lowest free extent that holds them.
    pub(crate) fn alloc_extent(&mut self, h: &mut Header, len: u64) -> BadResult<Option<u64>> {
        for i in 0..h.free_len {
            let (off, flen) = self.free_at(i)?;
            if flen >= len {
                if flen == len {
                    self.shift_free(i + 1, i, h.free_len - i - 1)?;
                    h.free_len -= 1;
                } else {
                    self.put_free(i, off + len, flen - len)?;
                }
                return Ok(Some(off));
            }
        }
        Ok(None)
    }

    /// Takes the first `len` bytes of free extent `i` (if it holds them).
    pub(crate) fn alloc_extent_at(&mut self, h: &mut Header, i: u32, len: u64) -> BadResult<bool> {
        if i >= h.free_len {
            return Ok(false);
        }
        let (off, flen) = self.free_at(i)?;
        if flen < len {
            return Ok(false);
        }
        if flen == len {
            self.shift_free(i + 1, i, h.free_len - i - 1)?;
            h.free_len -= 1;
        } else {
            self.put_free(i, off + len, flen - len)?;
        }
        Ok(true)
    }

    /// Gives `off..off + len` back to the free set, merging it with its neighbours.
    pub(crate) fn free_extent(&mut self, h: &mut Header, off: u64, len: u64) -> BadResult<()> {
        if len == 0 {
            return Ok(());
        }
        // First free extent after `off`.
        let (mut lo, mut hi) = (0u32, h.free_len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.free_at(mid)?.0 < off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let i = lo;
        let prev = if i > 0 {
            Some(self.free_at(i - 1)?)
        } else {
            None
        };
        let next = if i < h.free_len {
            Some(self.free_at(i)?)
        } else {
            None
        };
        if prev.is_some_and(|(po, pl)| po + pl > off) || next.is_some_and(|(no, _)| off + len > no)
        {
            return bad!("extent {off}+{len} freed twice (overlaps a free extent)");
        }
        let join_prev = prev.is_some_and(|(po, pl)| po + pl == off);
        let join_next = next.is_some_and(|(no, _)| off + len == no);
        match (join_prev, join_next, prev, next) {
            (true, true, Some((po, pl)), Some((_, nl))) => {
                self.put_free(i - 1, po, pl + len + nl)?;
                self.shift_free(i + 1, i, h.free_len - i - 1)?;
                h.free_len -= 1;
            }
            (true, _, Some((po, pl)), _) => self.put_free(i - 1, po, pl + len)?,
            (_, true, _, Some((_, nl))) => self.put_free(i, off, len + nl)?,
            _ => {
                if h.free_len >= self.l.free_cap {
                    return bad!("free extent table is full");
                }
                self.shift_free(i, i + 1, h.free_len - i)?;
                self.put_free(i, off, len)?;
                h.free_len += 1;
            }
        }
        Ok(())
    }

    // ----- old versions waiting for their readers -----

    pub(crate) fn limbo_at(&self, i: u32) -> BadResult<Limbo> {
        let mut b = [0u8; 32];
        self.read(self.l.limbo + u64::from(i) * LIMBO_SIZE, &mut b)?;
        let g = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let e = Limbo {
            off: g(0),
            len: g(8),
            born: g(16),
            last: g(24),
        };
        if e.off
            .checked_add(e.len)
            .is_none_or(|end| end > self.l.p.data)
            || e.born > e.last.saturating_add(1)
        {
            return bad!("old extent {i} out of range");
        }
        Ok(e)
    }

    fn put_limbo(&mut self, i: u32, e: &Limbo) -> BadResult<()> {
        let mut b = [0u8; 32];
        for (k, v) in [e.off, e.len, e.born, e.last].into_iter().enumerate() {
            b[k * 8..k * 8 + 8].copy_from_slice(&v.to_ne_bytes());
        }
        self.write(self.l.limbo + u64::from(i) * LIMBO_SIZE, &b)
    }

    pub(crate) fn push_limbo(&mut self, h: &mut Header, e: Limbo) -> Res<()> {
        if e.len == 0 {
            return Ok(());
        }
        if h.limbo_len >= self.l.limbo_cap {
            return Err(FsError::NoSpace {
                requested: 0,
                pinned: 0,
            }
            .into());
        }
        self.put_limbo(h.limbo_len, &e)?;
        h.limbo_len += 1;
        Ok(())
    }

    pub(crate) fn remove_limbo(&mut self, h: &mut Header, i: u32) -> BadResult<()> {
        let last = h.limbo_len - 1;
        if i != last {
            let e = self.limbo_at(last)?;
            self.put_limbo(i, &e)?;
        }
        h.limbo_len = last;
        Ok(())
    }

    // ----- lock table -----

    fn lt_off(&self, i: u32) -> BadResult<u64> {
        if i == 0 || i > self.l.p.locks {
            return bad!("lock entry {i} out of range");
        }
        Ok(self.l.lt + u64::from(i) * LT_SIZE)
    }

    pub(crate) fn lt(&self, i: u32) -> BadResult<LockEntry> {
        let mut b = [0u8; LT_SIZE as usize];
        self.read(self.lt_off(i)?, &mut b)?;
        let e = LockEntry::decode(&b);
        let l = self.l;
        if e.ino > l.p.nodes || e.next > l.p.locks || e.kind > LT_WAIT {
            return bad!("lock entry {i} has fields out of range");
        }
        if e.kind == LT_WRITE_PENDING {
            let end = e.pend_off.checked_add(e.pend_cap);
            let ok = e.pend_size <= e.pend_cap
                && (e.pend_cap == 0
                    || (e.pend_off % 64 == 0 && end.is_some_and(|x| x <= l.p.data)));
            if !ok {
                return bad!("lock entry {i}: private extent out of range");
            }
        }
        Ok(e)
    }

    pub(crate) fn put_lt(&mut self, i: u32, e: &LockEntry) -> BadResult<()> {
        let off = self.lt_off(i)?;
        self.write(off, &e.encode())
    }

    /// The lock entries of inode `n`, in chain order.
    pub(crate) fn locks_of(&self, n: &Inode) -> BadResult<Vec<(u32, LockEntry)>> {
        let mut out = Vec::new();
        let mut c = n.lock_head;
        let mut left = self.l.p.locks;
        while c != 0 {
            if left == 0 {
                return bad!("a lock chain has a cycle");
            }
            left -= 1;
            let e = self.lt(c)?;
            if e.kind == 0 {
                return bad!("lock chain reaches free entry {c}");
            }
            out.push((c, e));
            c = e.next;
        }
        Ok(out)
    }

    /// A new lock entry at the head of inode `ino`'s chain.
    pub(crate) fn add_lock(&mut self, h: &mut Header, ino: u32, mut e: LockEntry) -> Res<u32> {
        let i = if h.lt_free != 0 {
            let i = h.lt_free;
            let f = self.lt(i)?;
            if f.kind != 0 {
                return Err(Bad(format!("free lock list holds entry {i} in use")).into());
            }
            h.lt_free = f.next;
            i
        } else if h.lt_hwm < self.l.p.locks {
            h.lt_hwm += 1;
            h.lt_hwm
        } else {
            return Err(FsError::MetadataFull {
                what: "lock table (open handles)",
            }
            .into());
        };
        let mut n = self.live(ino)?;
        e.ino = ino;
        e.next = n.lock_head;
        n.lock_head = i;
        self.put_lt(i, &e)?;
        self.put_inode(ino, &n)?;
        h.lt_used += 1;
        Ok(i)
    }

    /// Removes lock entry `i` from its inode's chain and frees it.
    pub(crate) fn remove_lock(&mut self, h: &mut Header, i: u32) -> Res<()> {
        let e = self.lt(i)?;
        let mut n = self.live(e.ino)?;
        if n.lock_head == i {
            n.lock_head = e.next;
            self.put_inode(e.ino, &n)?;
        } else {
            let chain = self.locks_of(&n)?;
            let Some(&(pi, mut p)) = chain.iter().find(|(_, x)| x.next == i) else {
                return Err(Bad(format!("lock entry {i} is not in its inode's chain")).into());
            };
            p.next = e.next;
            self.put_lt(pi, &p)?;
        }
        let f = LockEntry {
            next: h.lt_free,
            ..LockEntry::default()
        };
        self.put_lt(i, &f)?;
        h.lt_free = i;
        h.lt_used = h.lt_used.checked_sub(1).ok_or_else(|| {
            Bad(format!(
                "the header counts no lock entry in use, entry {i} is"
            ))
        })?;
        Ok(())
    }

    /// A read entry of `(slot, epoch)` on inode `n`, if any.
    pub(crate) fn find_read(&self, n: &Inode, slot: u32, epoch: u64) -> BadResult<Option<u32>> {
        Ok(self
            .locks_of(n)?
            .into_iter()
            .find(|(_, e)| e.kind == LT_READ && e.slot == slot && e.epoch == epoch)
            .map(|(i, _)| i))
    }
}
