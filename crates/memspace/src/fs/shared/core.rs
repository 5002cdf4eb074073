//! The shared filesystem over a [`Region`]: commits, snapshot reads, pins, reclaim, the
//! lock table's rules and reaping the dead. Where the region lives and how processes are told
//! apart is the [`Env`]'s (a segment and its attachment table, or a heap model in tests).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::layout::{
    charge, Header, Inode, Layout, Limbo, LockEntry, Params, EVC_SEQ, EVC_WAITERS, HDR_SIZE,
    KIND_DIR, KIND_FILE, LOG_ENTRY, LOG_GEN, LOG_LEN, LOG_OVERFLOW, LT_READ, LT_WAIT, LT_WRITE,
    LT_WRITE_PENDING, PINS_PER_SLOT, PIN_SIZE, RANDOM, READERS_OFF, READERS_PER_SLOT, ROOT,
    ROOT_INO, SEQ0, SEQ1, SLOT_REC,
};
use super::meta::{Fail, Meta, Res};
use super::region::{Bad, Region};
use crate::fs::error::FsError;
use crate::fs::options::now;
use crate::lock::eventcount::{EventCount, OsFutex};
use crate::lock::Interrupt;
use crate::sync::Ordering;

/// How many times a snapshot read retries before it reads under the commit lock instead.
const READ_RETRIES: u32 = 64;
/// Longest single sleep of a wait for a file lock.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// What the filesystem needs from where it runs: the commit lock and process liveness.
pub(crate) trait Env: Send + Sync {
    /// Takes the commit lock (this process's threads are already serialised); `true` if its
    /// previous holder died holding it.
    fn lock(&self, interrupt: Interrupt<'_>) -> crate::Result<bool>;
    /// Releases the commit lock.
    fn unlock(&self);
    /// This process's attachment slot.
    fn slot(&self) -> crate::Result<u32>;
    /// Whether the process in `slot` is alive.
    fn alive(&self, slot: u32) -> crate::Result<bool>;
    /// 1 + the highest slot ever claimed (scans of slot records stop there).
    fn slots_in_use(&self) -> u32;
    /// The error for a corrupt filesystem.
    fn corrupt(&self, reason: String) -> crate::Error;
}

/// This process's pins (see "Pins" in the module documentation).
#[derive(Default)]
struct LocalPins {
    /// Pinned generations with their counts and since when (ns).
    gens: std::collections::BTreeMap<u64, (u32, u64)>,
    /// Whether entries other than the first may be in use (else one pinned generation is
    /// published by writing the first entry alone: the common case, one reader at a time).
    multi: bool,
}

/// Who this process is in the lock table: its slot and the epoch it wrote there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    pub(crate) slot: u32,
    pub(crate) epoch: u64,
}

pub(crate) struct Core<E: Env> {
    pub(crate) env: E,
    pub(crate) r: Region,
    pub(crate) l: Layout,
    local: Mutex<()>,
    pins: Mutex<LocalPins>,
    me: Mutex<Option<Me>>,
    /// This process's reader entries: inode -> (entry index, handles).
    readers: Mutex<HashMap<u32, (u64, u32)>>,
}

fn lock_local<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything can panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh epoch: unique among the processes of this machine for practical purposes.
fn new_epoch() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 40) ^ crate::sync::next_unique_id()).max(1)
}

/// Initialises a zeroed region for `p` (creator only, before anyone else can see it).
pub(crate) fn init_region(r: &Region, p: Params) -> std::result::Result<Layout, Bad> {
    let Some(l) = Layout::plan(p) else {
        return Err(Bad("sizes overflow".into()));
    };
    if l.total > r.len() {
        return Err(Bad(format!(
            "region of {} bytes, need {}",
            r.len(),
            l.total
        )));
    }
    r.write(0, &l.encode())?;
    let t = now();
    for c in 0..2 {
        let mut m = Meta::new(r, &l, c);
        let root = Inode {
            kind: KIND_DIR,
            created: t,
            modified: t,
            ..Inode::default()
        };
        m.put_inode(ROOT_INO, &root)?;
        let mut h = Header {
            gen: 1,
            nodes: 1,
            dirs: 1,
            ino_hwm: 1,
            ..Header::default()
        };
        let usable = p.data / 64 * 64;
        if usable > 0 {
            let mut hh = h;
            m.free_extent(&mut hh, 0, usable)?;
            h = hh;
        }
        m.put_hdr(&h)?;
    }
    r.put_u64(LOG_GEN, 1)?;
    r.put_u64(LOG_LEN, 0)?;
    r.atomic_u64(ROOT)?.store(1, Ordering::SeqCst);
    Ok(l)
}

/// A transaction in progress: the inactive copy, its header, and who runs it.
pub(crate) struct Tx<'a, E: Env> {
    pub(crate) m: Meta<'a>,
    pub(crate) h: Header,
    pub(crate) core: &'a Core<E>,
    pub(crate) me: Me,
    /// The generation this transaction commits.
    pub(crate) gen: u64,
    alive: HashMap<u32, bool>,
    readers: Option<std::collections::HashSet<u32>>,
    /// Whether a lock was released (waiters are woken after the commit).
    pub(crate) released: bool,
}

impl<E: Env> Tx<'_, E> {
    /// Whether the holder `(slot, epoch)` of a lock entry is alive.
    pub(crate) fn holder_alive(&mut self, slot: u32, epoch: u64) -> Res<bool> {
        if slot == self.me.slot && epoch == self.me.epoch {
            return Ok(true);
        }
        if self.core.slot_epoch(slot)? != epoch {
            return Ok(false);
        }
        if let Some(&a) = self.alive.get(&slot) {
            return Ok(a);
        }
        let a = self.core.env.alive(slot)?;
        self.alive.insert(slot, a);
        Ok(a)
    }

    /// Removes lock entry `i`; a writer's private extent goes back to the free set and the
    /// file's charge returns to its committed one.
    pub(crate) fn drop_entry(&mut self, i: u32) -> Res<()> {
        let e = self.m.lt(i)?;
        if e.kind == LT_WRITE_PENDING {
            let n = self.m.live(e.ino)?;
            let ov = self.core.l.p.chunk_overhead;
            self.h.used = self
                .h
                .used
                .saturating_sub(charge(e.pend_size, e.pend_chunks, ov))
                .saturating_add(n.charge(ov));
            self.m.free_extent(&mut self.h, e.pend_off, e.pend_cap)?;
        }
        self.m.remove_lock(&mut self.h, i)?;
        self.released = true;
        Ok(())
    }

    /// Removes every lock entry whose holder is dead. Returns how many.
    pub(crate) fn reap(&mut self) -> Res<u32> {
        let mut n = 0;
        for i in 1..=self.h.lt_hwm {
            let e = self.m.lt(i)?;
            if e.kind != 0 && !self.holder_alive(e.slot, e.epoch)? {
                self.drop_entry(i)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The live lock entries of `ino` (dead holders' entries are removed on the way).
    pub(crate) fn live_locks(&mut self, ino: u32) -> Res<Vec<(u32, LockEntry)>> {
        let n = self.m.live(ino)?;
        let mut out = Vec::new();
        for (i, e) in self.m.locks_of(&n)? {
            if self.holder_alive(e.slot, e.epoch)? {
                out.push((i, e));
            } else {
                self.drop_entry(i)?;
            }
        }
        Ok(out)
    }

    /// Whether `ino` is open by anyone alive.
    pub(crate) fn is_open(&mut self, ino: u32) -> Res<bool> {
        if self.live_locks(ino)?.iter().any(|(_, e)| e.kind != LT_WAIT) {
            return Ok(true);
        }
        if self.readers.is_none() {
            self.readers = Some(self.core.reader_inos(&mut self.alive)?);
        }
        Ok(self.readers.as_ref().is_some_and(|r| r.contains(&ino)))
    }

    /// Frees the extents of old versions that no live pin can see. Returns bytes freed.
    pub(crate) fn reclaim(&mut self) -> Res<u64> {
        if self.h.limbo_len == 0 {
            return Ok(0);
        }
        let pins = self.core.live_pins(&mut self.alive)?;
        let committed = self.gen - 1;
        let mut freed = 0;
        let mut i = self.h.limbo_len;
        while i > 0 {
            i -= 1;
            let e = self.m.limbo_at(i)?;
            let seen = pins.iter().any(|&(lo, hi)| lo <= e.last && hi >= e.born);
            // Only versions freed by a commit already published (`last` < the current root).
            if e.last < committed && !seen {
                self.m.free_extent(&mut self.h, e.off, e.len)?;
                self.m.remove_limbo(&mut self.h, i)?;
                freed += e.len;
            }
        }
        Ok(freed)
    }

    /// Allocates `len` bytes (rounded up to 64), reclaiming old versions and dead writers'
    /// extents if the free set has no room.
    pub(crate) fn alloc(&mut self, len: u64) -> Res<u64> {
        let len = len.div_ceil(64) * 64;
        if len == 0 {
            return Ok(0);
        }
        for round in 0..3 {
            if let Some(off) = self.m.alloc_extent(&mut self.h, len)? {
                return Ok(off);
            }
            match round {
                0 => {
                    self.reclaim()?;
                }
                1 => {
                    self.reap()?;
                    self.reclaim()?;
                }
                _ => {}
            }
        }
        let mut pinned = 0;
        for i in 0..self.h.limbo_len {
            pinned += self.m.limbo_at(i)?.len;
        }
        Err(FsError::NoSpace {
            requested: len,
            pinned,
        }
        .into())
    }

    /// Extends the extent `off..off + cap` in place by `extra` bytes if the space right after
    /// it is free.
    pub(crate) fn extend_in_place(&mut self, off: u64, cap: u64, extra: u64) -> Res<bool> {
        let extra = extra.div_ceil(64) * 64;
        let end = off + cap;
        for i in 0..self.h.free_len {
            let (fo, fl) = self.m.free_at(i)?;
            if fo == end && fl >= extra {
                // Take the head of that free extent.
                let got = self.m.alloc_extent_at(&mut self.h, i, extra)?;
                return Ok(got);
            }
            if fo > end {
                break;
            }
        }
        Ok(false)
    }

    /// Quota check: `n` more bytes on top of what is used, after reaping the dead if needed.
    pub(crate) fn reserve(&mut self, n: u64) -> Res<()> {
        let max = self.core.l.p.max_quota;
        if self.h.used.saturating_add(n) > max {
            self.reap()?;
        }
        let available = max.saturating_sub(self.h.used);
        if n > available {
            return Err(FsError::QuotaExceeded {
                requested: n,
                available,
            }
            .into());
        }
        self.h.used += n;
        Ok(())
    }

    /// Refuses `extra` more nodes beyond `max_nodes`.
    pub(crate) fn check_nodes(&self, extra: u64) -> Res<()> {
        let limit = u64::from(self.core.l.p.nodes);
        if self.h.nodes + extra > limit {
            return Err(FsError::NodeLimitExceeded {
                current: self.h.nodes,
                limit,
            }
            .into());
        }
        Ok(())
    }

    /// Puts a file's committed extent among the old versions (freed by this commit).
    pub(crate) fn retire(&mut self, n: &Inode) -> Res<()> {
        if n.kind == KIND_FILE && n.cap > 0 {
            let e = Limbo {
                off: n.off,
                len: n.cap,
                born: n.born,
                last: self.gen - 1,
            };
            if let Err(Fail::Fs(FsError::NoSpace { .. })) = self.m.push_limbo(&mut self.h, e) {
                self.reclaim()?;
                self.m.push_limbo(&mut self.h, e)?;
            }
        }
        Ok(())
    }

    /// Copies `len` bytes of file data from `src` to `dst` (data-area offsets).
    pub(crate) fn copy_data(&self, src: u64, dst: u64, len: u64) -> Res<()> {
        let d = self.core.l.data;
        Ok(self.core.r.copy_within(d + src, d + dst, len)?)
    }

    /// Writes `bytes` at data-area offset `off`.
    pub(crate) fn write_data(&self, off: u64, bytes: &[u8]) -> Res<()> {
        Ok(self.core.r.write(self.core.l.data + off, bytes)?)
    }
}

impl<E: Env> Core<E> {
    pub(crate) fn new(env: E, r: Region) -> std::result::Result<Self, Bad> {
        let l = Layout::decode(&r)?;
        Ok(Core {
            env,
            r,
            l,
            local: Mutex::new(()),
            pins: Mutex::new(LocalPins::default()),
            me: Mutex::new(None),
            readers: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn fail(&self, f: Fail) -> crate::Error {
        match f {
            Fail::Fs(e) => crate::Error::Fs(e),
            Fail::Bad(b) => self.env.corrupt(b.0),
            Fail::Err(e) => e,
        }
    }

    fn word(&self, off: u64) -> Res<&crate::sync::AtomicU64> {
        Ok(self.r.atomic_u64(off)?)
    }

    fn seq(&self, copy: u64) -> Res<&crate::sync::AtomicU64> {
        self.word(if copy & 1 == 0 { SEQ0 } else { SEQ1 })
    }

    pub(crate) fn root(&self) -> Res<u64> {
        Ok(self.word(ROOT)?.load(Ordering::SeqCst))
    }

    fn slot_rec(&self, slot: u32) -> Res<u64> {
        if slot >= self.l.p.slots {
            return Err(Bad(format!("slot {slot} out of range")).into());
        }
        Ok(self.l.slots + u64::from(slot) * SLOT_REC)
    }

    /// The epoch the process in `slot` wrote when it attached.
    pub(crate) fn slot_epoch(&self, slot: u32) -> Res<u64> {
        let off = self.slot_rec(slot)?;
        Ok(self.word(off)?.load(Ordering::SeqCst))
    }

    /// This process's identity, claiming it (a fresh epoch in its slot record, its pins
    /// cleared) on first use and after a fork gave it another slot.
    pub(crate) fn me(&self) -> Res<Me> {
        let slot = self.env.slot()?;
        let mut me = lock_local(&self.me);
        if let Some(m) = *me {
            if m.slot == slot {
                return Ok(m);
            }
        }
        let rec = self.slot_rec(slot)?;
        for k in 0..PINS_PER_SLOT * 3 {
            self.word(rec + 16 + k * 8)?.store(0, Ordering::SeqCst);
        }
        for k in 0..READERS_PER_SLOT {
            self.word(rec + READERS_OFF + k * 8)?
                .store(0, Ordering::SeqCst);
        }
        lock_local(&self.readers).clear();
        let epoch = new_epoch();
        self.word(rec)?.store(epoch, Ordering::SeqCst);
        self.word(rec + 8)?
            .store(u64::from(std::process::id()), Ordering::SeqCst);
        *lock_local(&self.pins) = LocalPins::default();
        let m = Me { slot, epoch };
        *me = Some(m);
        Ok(m)
    }

    fn evc(&self) -> Res<EventCount<'_>> {
        Ok(EventCount::new(
            self.r.atomic_u32(EVC_SEQ)?,
            self.r.atomic_u32(EVC_WAITERS)?,
        ))
    }

    /// Runs `f` as one transaction: all of its changes are committed together, or none if it
    /// fails. See "Commit" in the module documentation.
    pub(crate) fn tx<T>(
        &self,
        interrupt: Interrupt<'_>,
        f: impl FnOnce(&mut Tx<'_, E>) -> Res<T>,
    ) -> Res<T> {
        let me = self.me()?;
        let _local = lock_local(&self.local);
        let died = self.env.lock(interrupt)?;
        let r = self.tx_locked(me, died, f);
        self.env.unlock();
        let (value, released) = r?;
        if released {
            let ev = self.evc()?;
            // Our change (the commit's root store) was SeqCst, as `notify` requires.
            ev.notify(&OsFutex);
        }
        Ok(value)
    }

    fn tx_locked<T>(
        &self,
        me: Me,
        died: bool,
        f: impl FnOnce(&mut Tx<'_, E>) -> Res<T>,
    ) -> Res<(T, bool)> {
        let root = self.root()?;
        // A generation is counted from 1 and never reaches 2^64 - 1 (a corrupt root might).
        if root == 0 || root == u64::MAX {
            return Err(Fail::Bad(Bad(format!(
                "root generation {root} out of range"
            ))));
        }
        let (active, inactive) = (root & 1, (root + 1) & 1);
        let seq = self.seq(inactive)?;
        let s = seq.load(Ordering::SeqCst);
        if s % 2 == 0 {
            seq.store(s + 1, Ordering::SeqCst);
        }
        // No write to the copy may become visible before its sequence word turned odd
        // (pairs with the fence between a reader's copy and its second sequence load).
        crate::sync::fence(Ordering::SeqCst);
        let a_base = self.l.copies[active as usize];
        let i_base = self.l.copies[inactive as usize];
        self.sync_inactive(root, died || s % 2 == 1, a_base, i_base)?;
        let mut tx = Tx {
            m: Meta::new(&self.r, &self.l, inactive as usize),
            h: Header::default(),
            core: self,
            me,
            gen: root + 1,
            alive: HashMap::new(),
            readers: None,
            released: false,
        };
        let result = (|| {
            tx.h = tx.m.hdr()?;
            if tx.h.gen != root {
                return Err(Fail::Bad(Bad(format!(
                    "the current metadata copy holds generation {}, the root says {root}",
                    tx.h.gen
                ))));
            }
            if died {
                tx.reap()?;
            }
            let v = f(&mut tx)?;
            if tx.m.dirty.is_empty() && !died {
                return Ok((v, false));
            }
            if tx.h.limbo_len > 0 {
                tx.reclaim()?;
            }
            tx.h.gen = root + 1;
            tx.h.committed_ns = now_ns();
            let h = tx.h;
            tx.m.put_hdr(&h)?;
            Ok((v, true))
        })();
        match result {
            Ok((v, false)) => {
                // Nothing written: the copy is exactly the active one again.
                seq.store(s | 1, Ordering::SeqCst);
                seq.fetch_add(1, Ordering::SeqCst);
                Ok((v, false))
            }
            Ok((v, true)) => {
                self.write_log(root + 1, &mut tx.m.dirty)?;
                seq.fetch_add(1, Ordering::SeqCst);
                // The commit point.
                self.word(ROOT)?.store(root + 1, Ordering::SeqCst);
                Ok((v, tx.released || died))
            }
            Err(e) => {
                // Undo: copy back from the active copy every range the transaction wrote.
                let mut ok = true;
                for &(off, len) in &tx.m.dirty {
                    ok &= self.r.copy_within(a_base + off, i_base + off, len).is_ok();
                }
                if ok {
                    seq.fetch_add(1, Ordering::SeqCst);
                }
                Err(e)
            }
        }
    }

    /// Brings the inactive copy to the committed state: nothing to do if it is identical,
    /// replay the last commit's ranges if it is one behind, else copy it whole.
    fn sync_inactive(&self, root: u64, force: bool, a_base: u64, i_base: u64) -> Res<()> {
        let size = self.l.copy_size;
        let mut hb = [0u8; HDR_SIZE as usize];
        self.r.read(i_base, &mut hb)?;
        let ih = Header::decode(&hb);
        let ok_hdr = Header::checksum_ok(&hb);
        let log_gen = self.r.u64(LOG_GEN)?;
        let log_len = self.r.u64(LOG_LEN)?;
        if !force && ok_hdr && ih.gen == root {
            return Ok(());
        }
        if !force
            && ok_hdr
            && ih.gen.checked_add(1) == Some(root)
            && log_gen == root
            && log_len <= u64::from(self.l.p.log)
        {
            for k in 0..log_len {
                let off = self.r.u64(self.l.log + k * LOG_ENTRY)?;
                let len = self.r.u64(self.l.log + k * LOG_ENTRY + 8)?;
                if off.checked_add(len).is_none_or(|e| e > size) {
                    return self.full_copy(a_base, i_base);
                }
                self.r.copy_within(a_base + off, i_base + off, len)?;
            }
            return Ok(());
        }
        self.full_copy(a_base, i_base)
    }

    fn full_copy(&self, a_base: u64, i_base: u64) -> Res<()> {
        Ok(self.r.copy_within(a_base, i_base, self.l.copy_size)?)
    }

    /// Records the ranges commit `gen` wrote (merged), for the next commit's replay.
    fn write_log(&self, gen: u64, dirty: &mut [(u64, u64)]) -> Res<()> {
        dirty.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for &(off, len) in dirty.iter() {
            match merged.last_mut() {
                Some((mo, ml)) if off <= *mo + *ml => {
                    *ml = (*ml).max(off + len - *mo);
                }
                _ => merged.push((off, len)),
            }
        }
        self.r.put_u64(LOG_GEN, 0)?;
        if merged.len() as u64 > u64::from(self.l.p.log) {
            self.r.put_u64(LOG_LEN, LOG_OVERFLOW)?;
        } else {
            for (k, &(off, len)) in merged.iter().enumerate() {
                let at = self.l.log + k as u64 * LOG_ENTRY;
                self.r.put_u64(at, off)?;
                self.r.put_u64(at + 8, len)?;
            }
            self.r.put_u64(LOG_LEN, merged.len() as u64)?;
        }
        self.r.put_u64(LOG_GEN, gen)?;
        Ok(())
    }

    /// Runs `f` on the committed metadata without any lock (see "Snapshot reads"): retried
    /// if a commit overwrote the copy meanwhile, and run under the commit lock if that keeps
    /// happening.
    pub(crate) fn read<T>(&self, f: impl Fn(&Meta<'_>) -> Res<T>) -> Res<T> {
        for _ in 0..READ_RETRIES {
            let g = self.root()?;
            if let Some(v) = self.read_gen(g, &f)? {
                return Ok(v);
            }
            crate::sync::spin_loop();
        }
        self.tx(&mut || false, |tx| {
            let m = Meta::new(&self.r, &self.l, ((tx.gen - 1) & 1) as usize);
            f(&m)
        })
    }

    /// `f` on the copy of generation `g`, or `None` if that copy no longer holds it.
    fn read_gen<T>(&self, g: u64, f: &impl Fn(&Meta<'_>) -> Res<T>) -> Res<Option<T>> {
        let seq = self.seq(g)?;
        let s1 = seq.load(Ordering::SeqCst);
        if s1 % 2 == 1 {
            return Ok(None);
        }
        let m = Meta::new(&self.r, &self.l, (g & 1) as usize);
        let r = m.hdr().map_err(Fail::from).and_then(|h| {
            if h.gen == g {
                f(&m).map(Some)
            } else {
                Ok(None)
            }
        });
        crate::sync::fence(Ordering::SeqCst);
        if seq.load(Ordering::SeqCst) != s1 {
            return Ok(None);
        }
        r
    }

    /// Pins the current generation and runs `f` on its metadata; the pin stays until the
    /// returned [`Pin`] is dropped, so the data extents `f` found stay valid.
    ///
    /// Like [`Core::read`], it runs under the commit lock after [`READ_RETRIES`] tries: a
    /// copy whose sequence word stays odd or whose header names another generation than the
    /// root (corruption, nothing a live writer leaves) never reads as generation `g`, and
    /// must give an error, not a retry loop without end.
    pub(crate) fn pinned<T>(&self, f: impl Fn(&Meta<'_>) -> Res<T>) -> Res<(Pin<'_, E>, T)> {
        for _ in 0..READ_RETRIES {
            let g = self.root()?;
            self.pin(g)?;
            let pin = Pin { core: self, gen: g };
            // The pin is visible (SeqCst store) before this load: a writer that did not see
            // it published its root first, and we see that root here.
            crate::sync::handshake_fence();
            if self.root()? != g {
                continue;
            }
            if let Some(v) = self.read_gen(g, &f)? {
                return Ok((pin, v));
            }
            crate::sync::spin_loop();
        }
        // Under the commit lock no commit runs: the pin is published before any later
        // transaction's reclaim loads the pins, and the committed copy cannot change.
        self.tx(&mut || false, |tx| {
            let g = tx.gen - 1;
            self.pin(g)?;
            let pin = Pin { core: self, gen: g };
            let m = Meta::new(&self.r, &self.l, (g & 1) as usize);
            let h = m.hdr()?;
            if h.gen != g {
                return Err(Fail::Bad(Bad(format!(
                    "the current metadata copy holds generation {}, the root says {g}",
                    h.gen
                ))));
            }
            let v = f(&m)?;
            Ok((pin, v))
        })
    }

    fn pin(&self, g: u64) -> Res<()> {
        let me = self.me()?;
        let mut p = lock_local(&self.pins);
        let e = p.gens.entry(g).or_insert((0, now_ns()));
        e.0 += 1;
        if e.0 == 1 {
            if p.gens.len() == 1 && !p.multi {
                // Every entry is clear: publish the one range directly (`lo` last).
                let at = self.slot_rec(me.slot)? + 16;
                let since = p.gens.get(&g).map_or(0, |x| x.1);
                self.word(at + 16)?.store(since, Ordering::SeqCst);
                self.word(at + 8)?.store(g, Ordering::SeqCst);
                self.word(at)?.store(g, Ordering::SeqCst);
            } else {
                self.publish_pins(me.slot, &p)?;
                p.multi = p.gens.len() > 1;
            }
        }
        Ok(())
    }

    pub(crate) fn unpin(&self, g: u64) {
        let Ok(me) = self.me() else { return };
        let mut p = lock_local(&self.pins);
        if let Some(e) = p.gens.get_mut(&g) {
            e.0 -= 1;
            if e.0 == 0 {
                p.gens.remove(&g);
                if p.gens.is_empty() && !p.multi {
                    // Only the first entry was in use: clearing its `lo` withdraws it.
                    if let Ok(at) = self.slot_rec(me.slot) {
                        if let Ok(w) = self.word(at + 16) {
                            w.store(0, Ordering::SeqCst);
                        }
                    }
                } else {
                    let _ = self.publish_pins(me.slot, &p);
                    p.multi = p.gens.len() > 1;
                }
            }
        }
    }

    /// Writes this process's pinned generations as at most `PINS_PER_SLOT - 1` ranges, with
    /// the last entry covering everything while the others change (so no pinned generation is
    /// ever uncovered, even for a moment).
    fn publish_pins(&self, slot: u32, p: &LocalPins) -> Res<()> {
        let rec = self.slot_rec(slot)?;
        let entry = |k: u64| rec + 16 + k * PIN_SIZE;
        let gens: Vec<(u64, u64)> = p.gens.iter().map(|(&g, &(_, t))| (g, t)).collect();
        let k = (PINS_PER_SLOT - 1) as usize;
        // Merge the closest neighbours until at most k ranges remain.
        let mut ranges: Vec<(u64, u64, u64)> = gens.iter().map(|&(g, t)| (g, g, t)).collect();
        while ranges.len() > k {
            let mut best = 0;
            for i in 0..ranges.len() - 1 {
                if ranges[i + 1].0 - ranges[i].1 < ranges[best + 1].0 - ranges[best].1 {
                    best = i;
                }
            }
            let b = ranges.remove(best + 1);
            ranges[best].1 = b.1;
            ranges[best].2 = ranges[best].2.min(b.2);
        }
        let scratch = entry(PINS_PER_SLOT - 1);
        let (lo, hi, since) = ranges.iter().fold((u64::MAX, 0, u64::MAX), |a, r| {
            (a.0.min(r.0), a.1.max(r.1), a.2.min(r.2))
        });
        // Cover the old ranges and the new ones at once while the entries change.
        let (olo, ohi) = (0..PINS_PER_SLOT - 1).try_fold((lo, hi), |a, i| {
            let l = self.word(entry(i))?.load(Ordering::SeqCst);
            let h = self.word(entry(i) + 8)?.load(Ordering::SeqCst);
            Ok::<_, Fail>(if l == 0 { a } else { (a.0.min(l), a.1.max(h)) })
        })?;
        if olo <= ohi {
            self.word(scratch + 8)?.store(ohi, Ordering::SeqCst);
            self.word(scratch)?.store(olo, Ordering::SeqCst);
        }
        for i in 0..PINS_PER_SLOT - 1 {
            let (l, h, t) = ranges.get(i as usize).copied().unwrap_or((0, 0, 0));
            self.word(entry(i) + 16)?.store(t, Ordering::SeqCst);
            self.word(entry(i) + 8)?.store(h, Ordering::SeqCst);
            self.word(entry(i))?.store(l, Ordering::SeqCst);
        }
        self.word(scratch)?.store(0, Ordering::SeqCst);
        let _ = since;
        Ok(())
    }

    /// Every pinned range of a live process.
    fn live_pins(&self, alive: &mut HashMap<u32, bool>) -> Res<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        for s in 0..self.env.slots_in_use().min(self.l.p.slots) {
            let rec = self.slot_rec(s)?;
            for k in 0..PINS_PER_SLOT {
                let at = rec + 16 + k * PIN_SIZE;
                let lo = self.word(at)?.load(Ordering::SeqCst);
                if lo == 0 {
                    continue;
                }
                let hi = self.word(at + 8)?.load(Ordering::SeqCst).max(lo);
                let a = if let Some(&a) = alive.get(&s) {
                    a
                } else {
                    let a = self.env.alive(s)?;
                    alive.insert(s, a);
                    a
                };
                if a {
                    out.push((lo, hi));
                }
            }
        }
        Ok(out)
    }

    /// Records that this process holds a read handle on `ino` (visible to writers, who wait
    /// for it). `SeqCst`: the writer's side of the handshake loads it after its commit.
    pub(crate) fn add_reader(&self, ino: u32) -> Res<()> {
        let me = self.me()?;
        let rec = self.slot_rec(me.slot)?;
        let mut r = lock_local(&self.readers);
        let (k, n) = if let Some(&(k, n)) = r.get(&ino) {
            (k, n + 1)
        } else {
            let used: std::collections::HashSet<u64> = r.values().map(|x| x.0).collect();
            let Some(k) = (0..READERS_PER_SLOT).find(|k| !used.contains(k)) else {
                return Err(FsError::MetadataFull {
                    what: "reader table of this process (files open for reading at once)",
                }
                .into());
            };
            (k, 1)
        };
        self.word(rec + READERS_OFF + k * 8)?
            .store((u64::from(ino) << 32) | u64::from(n), Ordering::SeqCst);
        r.insert(ino, (k, n));
        Ok(())
    }

    /// Withdraws one read handle on `ino`; wakes writers waiting for it.
    pub(crate) fn drop_reader(&self, ino: u32) -> Res<()> {
        let me = self.me()?;
        let rec = self.slot_rec(me.slot)?;
        {
            let mut r = lock_local(&self.readers);
            let Some(&(k, n)) = r.get(&ino) else {
                return Ok(());
            };
            let v = if n > 1 {
                r.insert(ino, (k, n - 1));
                (u64::from(ino) << 32) | u64::from(n - 1)
            } else {
                r.remove(&ino);
                0
            };
            self.word(rec + READERS_OFF + k * 8)?
                .store(v, Ordering::SeqCst);
        }
        // The store above is SeqCst, as `notify` requires.
        self.evc()?.notify(&OsFutex);
        Ok(())
    }

    /// The inodes live processes hold read handles on.
    pub(crate) fn reader_inos(
        &self,
        alive: &mut HashMap<u32, bool>,
    ) -> Res<std::collections::HashSet<u32>> {
        let mut out = std::collections::HashSet::new();
        for s in 0..self.env.slots_in_use().min(self.l.p.slots) {
            let rec = self.slot_rec(s)?;
            let mut found = Vec::new();
            for k in 0..READERS_PER_SLOT {
                let v = self.word(rec + READERS_OFF + k * 8)?.load(Ordering::SeqCst);
                if v & 0xffff_ffff != 0 {
                    found.push((v >> 32) as u32);
                }
            }
            if found.is_empty() {
                continue;
            }
            let a = if let Some(&a) = alive.get(&s) {
                a
            } else {
                let a = self.env.alive(s)?;
                alive.insert(s, a);
                a
            };
            if a {
                out.extend(found);
            }
        }
        Ok(out)
    }

    /// Whether a lock entry's holder is alive (outside a transaction).
    pub(crate) fn entry_alive(&self, e: &LockEntry, alive: &mut HashMap<u32, bool>) -> Res<bool> {
        if self.slot_epoch(e.slot)? != e.epoch {
            return Ok(false);
        }
        if let Some(&a) = alive.get(&e.slot) {
            return Ok(a);
        }
        let a = self.env.alive(e.slot)?;
        alive.insert(e.slot, a);
        Ok(a)
    }

    /// The oldest live pin: `(generation, since_ns)`.
    pub(crate) fn oldest_pin(&self) -> Res<Option<(u64, u64)>> {
        let mut best: Option<(u64, u64)> = None;
        for s in 0..self.env.slots_in_use().min(self.l.p.slots) {
            let rec = self.slot_rec(s)?;
            for k in 0..PINS_PER_SLOT - 1 {
                let at = rec + 16 + k * PIN_SIZE;
                let lo = self.word(at)?.load(Ordering::SeqCst);
                if lo == 0 || !self.env.alive(s)? {
                    continue;
                }
                let t = self.word(at + 16)?.load(Ordering::SeqCst);
                if best.is_none_or(|b| lo < b.0) {
                    best = Some((lo, t));
                }
            }
        }
        Ok(best)
    }

    /// Waits for a file lock: `attempt` (a transaction) returns `Some` once it got it.
    pub(crate) fn wait_for<T>(
        &self,
        deadline: Option<Instant>,
        interrupt: Interrupt<'_>,
        mut attempt: impl FnMut(&Self, Interrupt<'_>) -> Res<Option<T>>,
        timeout: impl Fn() -> Fail,
    ) -> Res<T> {
        loop {
            let ev = self.evc()?;
            let key = ev.prepare();
            match attempt(self, interrupt) {
                Ok(Some(v)) => {
                    ev.cancel();
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => {
                    ev.cancel();
                    return Err(e);
                }
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if now >= d => {
                    ev.cancel();
                    return Err(timeout());
                }
                Some(d) => (d - now).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            ev.wait(&OsFutex, key, Some(slice));
            if interrupt() {
                return Err(crate::Error::Interrupted.into());
            }
        }
    }
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A pinned generation (see "Pins"): the data extents of that generation stay valid while it
/// lives.
pub(crate) struct Pin<'a, E: Env> {
    core: &'a Core<E>,
    gen: u64,
}

impl<E: Env> Pin<'_, E> {
    pub(crate) fn gen(&self) -> u64 {
        self.gen
    }
}

impl<E: Env> Drop for Pin<'_, E> {
    fn drop(&mut self) {
        self.core.unpin(self.gen);
    }
}

/// A file lock request of `kind` by `me` on `ino`: `true` if granted (an entry was added).
///
/// A writer that has to wait leaves a waiting entry (`count` = its `token`, unique to that
/// `open` call) that holds new readers back until it gets in.
pub(crate) fn try_file_lock<E: Env>(
    tx: &mut Tx<'_, E>,
    ino: u32,
    write: bool,
    token: u64,
) -> Res<Option<u32>> {
    let locks = tx.live_locks(ino)?;
    let me = tx.me;
    let mine = |e: &LockEntry| {
        e.kind == LT_WAIT && e.slot == me.slot && e.epoch == me.epoch && e.count == token
    };
    let my_wait = locks.iter().find(|(_, e)| mine(e)).map(|(i, _)| *i);
    let conflict = locks.iter().any(|(_, e)| {
        if write {
            !mine(e)
        } else {
            e.is_write() || e.kind == LT_WAIT
        }
    });
    if conflict {
        // A writer that has to wait holds new readers back until it gets in.
        if write && my_wait.is_none() {
            let w = LockEntry {
                kind: LT_WAIT,
                slot: me.slot,
                epoch: me.epoch,
                count: token,
                ..LockEntry::default()
            };
            tx.m.add_lock(&mut tx.h, ino, w)?;
        }
        return Ok(None);
    }
    if let Some(i) = my_wait {
        let mut e = tx.m.lt(i)?;
        e.kind = LT_WRITE;
        e.count = 1;
        tx.m.put_lt(i, &e)?;
        return Ok(Some(i));
    }
    if !write {
        let n = tx.m.live(ino)?;
        if let Some(i) = tx.m.find_read(&n, tx.me.slot, tx.me.epoch)? {
            let mut e = tx.m.lt(i)?;
            e.count = e.count.saturating_add(1);
            tx.m.put_lt(i, &e)?;
            return Ok(Some(i));
        }
    }
    let e = LockEntry {
        kind: if write { LT_WRITE } else { LT_READ },
        slot: tx.me.slot,
        epoch: tx.me.epoch,
        count: 1,
        ..LockEntry::default()
    };
    let i = tx.m.add_lock(&mut tx.h, ino, e)?;
    Ok(Some(i))
}

/// Withdraws this process's waiting-writer entry on `ino` (a wait that timed out or failed).
pub(crate) fn cancel_wait<E: Env>(tx: &mut Tx<'_, E>, ino: u32, token: u64) -> Res<()> {
    let n = tx.m.inode(ino)?;
    if n.kind != super::layout::KIND_FILE {
        return Ok(());
    }
    for (i, e) in tx.m.locks_of(&n)? {
        if e.kind == LT_WAIT && e.slot == tx.me.slot && e.epoch == tx.me.epoch && e.count == token {
            tx.drop_entry(i)?;
        }
    }
    Ok(())
}

/// Releases one hold of lock entry `i` (a read entry counts its handles).
pub(crate) fn release_file_lock<E: Env>(tx: &mut Tx<'_, E>, i: u32) -> Res<()> {
    let mut e = tx.m.lt(i)?;
    if e.kind == 0 || e.slot != tx.me.slot || e.epoch != tx.me.epoch {
        // Reaped meanwhile (we were thought dead): nothing of ours is left.
        return Ok(());
    }
    if e.kind == LT_READ && e.count > 1 {
        e.count -= 1;
        tx.m.put_lt(i, &e)?;
        tx.released = true;
        return Ok(());
    }
    tx.drop_entry(i)
}

/// The chunk count after `RANDOM` is taken into account for stats.
pub(crate) fn seq_chunks(c: u64) -> u64 {
    if c == RANDOM {
        0
    } else {
        c
    }
}

/// loom models of the two lock-free handshakes, with the orderings the code above uses: a
/// reader's pin against a writer's reclaim, and a snapshot read against a commit that
/// rewrites the copy (the seqlock).
#[cfg(all(test, loom))]
mod loom_tests {
    use crate::sync::{fence, handshake_fence, AtomicU64, Ordering};
    use loom::sync::Arc;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(f);
    }

    /// Generation 1's extent holds 42 until a writer reuses it, which it may only do once the
    /// version is retired (root 2 published) and no pin covers generation 1. A reader that
    /// proceeds with generation 1 must still read 42.
    #[test]
    fn loom_pin_against_reclaim() {
        model(|| {
            let root = Arc::new(AtomicU64::new(1));
            let pin = Arc::new(AtomicU64::new(0));
            let extent = Arc::new(AtomicU64::new(42));
            let (r, p, e) = (Arc::clone(&root), Arc::clone(&pin), Arc::clone(&extent));
            let reader = loom::thread::spawn(move || {
                // `Core::pinned`: pin, then confirm the root.
                let g = loop {
                    let g = r.load(Ordering::SeqCst);
                    p.store(g, Ordering::SeqCst);
                    handshake_fence();
                    if r.load(Ordering::SeqCst) == g {
                        break g;
                    }
                };
                if g == 1 {
                    assert_eq!(e.load(Ordering::SeqCst), 42, "read a reused extent");
                }
                p.store(0, Ordering::SeqCst);
            });
            // Commit 2 retires generation 1's extent (born 1, last 1)...
            root.store(2, Ordering::SeqCst);
            // ... and a later transaction reclaims it if no pin covers generation 1.
            handshake_fence();
            let lo = pin.load(Ordering::SeqCst);
            if lo == 0 || lo > 1 {
                extent.store(0, Ordering::SeqCst);
            }
            reader.join().unwrap();
        });
    }

    /// A reader of copy 0 at generation 2 either sees the whole of generation 2 or notices
    /// (sequence word changed) that commit 4 is rewriting that copy.
    #[test]
    fn loom_snapshot_read_against_commit() {
        model(|| {
            let seq = Arc::new(AtomicU64::new(0));
            let a = Arc::new(AtomicU64::new(2));
            let b = Arc::new(AtomicU64::new(2));
            let (s, x, y) = (Arc::clone(&seq), Arc::clone(&a), Arc::clone(&b));
            let reader = loom::thread::spawn(move || {
                let s1 = s.load(Ordering::SeqCst);
                if s1 % 2 == 1 {
                    return;
                }
                // SYNC: Relaxed: the copy's bytes are plain copies in the real code; the
                // sequence loads and the fence order them.
                let (va, vb) = (x.load(Ordering::Relaxed), y.load(Ordering::Relaxed));
                fence(Ordering::SeqCst);
                if s.load(Ordering::SeqCst) == s1 {
                    assert_eq!(va, vb, "a torn snapshot passed the sequence check");
                }
            });
            // `tx_locked`: odd, fence, write the copy, even.
            seq.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            // SYNC: Relaxed: as the reader's loads.
            a.store(4, Ordering::Relaxed);
            // SYNC: Relaxed: as above.
            b.store(4, Ordering::Relaxed);
            seq.fetch_add(1, Ordering::SeqCst);
            reader.join().unwrap();
        });
    }
}
