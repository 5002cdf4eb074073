//! An open file of the shared filesystem: the lock entry its handle holds, and (for a
//! writable handle) the private extent its changes go to until they are committed.
//!
//! A writable handle never writes into a committed extent: its first change copies the file
//! into a private extent (recorded in its lock entry, so a dead handle's extent is found and
//! freed), later changes go there, and `flush`/`close` commit it by swapping the inode's
//! extent in one transaction. Quota is charged in the same transaction as each change of
//! size, with D-MemFS's rules (see `fs::heap::storage`), so the limit holds across processes.

use std::cell::RefCell;
use std::sync::Arc;

use super::core::{release_file_lock, seq_chunks, Core, Env, Tx};
use super::layout::{charge, LT_WRITE, LT_WRITE_PENDING, RANDOM};
use super::meta::{Fail, Res};
use crate::fs::bytes::ByteSink;
use crate::fs::error::{FsError, FsResult};
use crate::fs::handle::{FileAccess, Touch};
use crate::fs::options::{now, OpenMode};

/// The first private extent of a handle holds at least this many bytes.
const MIN_EXTENT: u64 = 4096;
/// Growth doubles, but by at most this much at a time.
const MAX_STEP: u64 = 64 << 20;

#[derive(Debug, Clone, Copy)]
struct Pend {
    off: u64,
    cap: u64,
    size: u64,
    chunks: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FState {
    /// The committed extent the handle started from (immutable while it holds its lock).
    base_off: u64,
    base_size: u64,
    base_chunks: u64,
    pend: Option<Pend>,
    /// Data changes not committed yet (each adds one to the generation).
    changes: u64,
    last_write: f64,
    pub(crate) closed: bool,
}

/// An open file as a cursor sees it.
pub(crate) struct SFile<E: Env> {
    pub(crate) core: Arc<Core<E>>,
    pub(crate) ino: u32,
    pub(crate) entry: u32,
    pub(crate) st: RefCell<FState>,
    /// An error other than a filesystem one, from the last cursor operation.
    pub(crate) err: RefCell<Option<crate::Error>>,
    /// A read handle's pinned generation (it holds a reader entry, not a lock entry).
    pub(crate) read_gen: Option<u64>,
}

impl<E: Env> std::fmt::Debug for SFile<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SFile")
            .field("ino", &self.ino)
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// The cursor's interface carries filesystem errors only: any other error (a corrupt region,
/// an OS failure) is kept in `stash` for the handle to return instead of the placeholder.
fn to_fs<E: Env>(core: &Core<E>, stash: &RefCell<Option<crate::Error>>, f: Fail) -> FsError {
    match f {
        Fail::Fs(e) => e,
        other => {
            *stash.borrow_mut() = Some(core.fail(other));
            FsError::Closed
        }
    }
}

fn grow_cap(cap: u64, need: u64) -> u64 {
    let doubled = cap.saturating_mul(2).min(cap.saturating_add(MAX_STEP));
    need.max(doubled).max(MIN_EXTENT).div_ceil(64) * 64
}

impl<E: Env> SFile<E> {
    pub(crate) fn new(
        core: Arc<Core<E>>,
        ino: u32,
        entry: u32,
        off: u64,
        size: u64,
        chunks: u64,
    ) -> Self {
        SFile {
            core,
            ino,
            entry,
            st: RefCell::new(FState {
                base_off: off,
                base_size: size,
                base_chunks: chunks,
                pend: None,
                changes: 0,
                last_write: 0.0,
                closed: false,
            }),
            err: RefCell::new(None),
            read_gen: None,
        }
    }

    fn cur(st: &FState) -> (u64, u64) {
        match st.pend {
            Some(p) => (p.size, p.chunks),
            None => (st.base_size, st.base_chunks),
        }
    }

    /// Within a transaction: makes sure the private extent holds `need` bytes (copying the
    /// committed bytes into it first if there is none), and records it in the lock entry.
    fn ensure(tx: &mut Tx<'_, E>, st: &mut FState, need: u64, keep: u64) -> Res<()> {
        match st.pend {
            Some(mut p) if p.cap < need => {
                let cap = grow_cap(p.cap, need);
                if p.cap > 0 && tx.extend_in_place(p.off, p.cap, cap - p.cap)? {
                    p.cap = cap;
                } else {
                    let off = tx.alloc(cap)?;
                    tx.copy_data(p.off, off, p.size.min(keep))?;
                    tx.m.free_extent(&mut tx.h, p.off, p.cap)?;
                    p.off = off;
                    p.cap = cap;
                }
                st.pend = Some(p);
            }
            Some(_) => {}
            None => {
                let keep = keep.min(st.base_size).min(need);
                let cap = if need == 0 { 0 } else { grow_cap(0, need) };
                let off = tx.alloc(cap)?;
                tx.copy_data(st.base_off, off, keep)?;
                st.pend = Some(Pend {
                    off,
                    cap,
                    size: keep,
                    chunks: st.base_chunks,
                });
            }
        }
        Ok(())
    }

    /// Within a transaction: writes the private extent's state into the lock entry.
    fn record(&self, tx: &mut Tx<'_, E>, st: &FState) -> Res<()> {
        let mut e = tx.m.lt(self.entry)?;
        if e.ino != self.ino || e.slot != tx.me.slot || e.epoch != tx.me.epoch || !e.is_write() {
            return Err(Fail::Bad(super::region::Bad(
                "a write handle's lock entry was taken from it".into(),
            )));
        }
        if let Some(p) = st.pend {
            e.kind = LT_WRITE_PENDING;
            e.pend_off = p.off;
            e.pend_cap = p.cap;
            e.pend_size = p.size;
            e.pend_chunks = p.chunks;
        }
        tx.m.put_lt(self.entry, &e)?;
        Ok(())
    }

    /// Runs a change of the private extent as one transaction.
    fn change(&self, f: impl FnOnce(&mut Tx<'_, E>, &mut FState) -> Res<()>) -> FsResult<()> {
        let mut st = self.st.borrow_mut();
        let mut copy = *st;
        let r = self.core.tx(&mut || false, |tx| {
            f(tx, &mut copy)?;
            self.record(tx, &copy)
        });
        match r {
            Ok(()) => {
                *st = copy;
                Ok(())
            }
            Err(e) => Err(to_fs(&self.core, &self.err, e)),
        }
    }

    fn pend_ptr(&self, p: &Pend, at: u64, n: u64) -> FsResult<*mut u8> {
        let core = &self.core;
        let start = core.l.data + p.off + at;
        match core.r.check(start, n) {
            Ok(o) => Ok(
                // SAFETY: `o..o + n` lies inside the region (checked).
                unsafe { core.r.ptr().add(o) },
            ),
            Err(b) => Err(to_fs(core, &self.err, Fail::Bad(b))),
        }
    }

    /// Commits the private extent (if any) as the file's content. With `keep`, the handle
    /// keeps its lock (a flush); otherwise the lock is released too.
    pub(crate) fn commit(&self, keep: bool) -> crate::Result<()> {
        let mut st = self.st.borrow_mut();
        let core = Arc::clone(&self.core);
        let ino = self.ino;
        let entry = self.entry;
        let snapshot = (st.pend, st.changes, st.last_write);
        let r = core.tx(&mut || false, |tx| {
            let (pend, changes, last) = snapshot;
            let e = tx.m.lt(entry)?;
            let ours =
                e.kind != 0 && e.slot == tx.me.slot && e.epoch == tx.me.epoch && e.ino == ino;
            if !ours {
                return Ok(None);
            }
            let mut out = None;
            if let Some(p) = pend {
                let mut n = tx.m.live(ino)?;
                let cap = p.size.div_ceil(64) * 64;
                if cap < p.cap {
                    tx.m.free_extent(&mut tx.h, p.off + cap, p.cap - cap)?;
                }
                tx.retire(&n)?;
                tx.h.chunks = (tx.h.chunks - seq_chunks(n.chunks).min(tx.h.chunks))
                    .saturating_add(seq_chunks(p.chunks));
                n.off = if cap == 0 { 0 } else { p.off };
                n.cap = cap;
                n.size = p.size;
                n.chunks = p.chunks;
                n.born = tx.gen;
                n.generation = n.generation.saturating_add(changes);
                if changes > 0 {
                    n.modified = last;
                    n.flags |= 1;
                }
                tx.m.put_inode(ino, &n)?;
                out = Some((n.off, n.size, n.chunks));
                // The entry no longer owns an extent.
                let mut e2 = e;
                e2.kind = LT_WRITE;
                e2.pend_off = 0;
                e2.pend_cap = 0;
                e2.pend_size = 0;
                e2.pend_chunks = 0;
                tx.m.put_lt(entry, &e2)?;
            } else if changes > 0 {
                let mut n = tx.m.live(ino)?;
                n.generation = n.generation.saturating_add(changes);
                n.modified = last;
                n.flags |= 1;
                tx.m.put_inode(ino, &n)?;
            }
            if !keep {
                release_file_lock(tx, entry)?;
            }
            Ok(out)
        });
        match r {
            Ok(done) => {
                if let Some((off, size, chunks)) = done {
                    st.base_off = off;
                    st.base_size = size;
                    st.base_chunks = chunks;
                }
                st.pend = None;
                st.changes = 0;
                if !keep {
                    st.closed = true;
                }
                Ok(())
            }
            Err(e) => Err(core.fail(e)),
        }
    }

    /// Releases a read handle's lock.
    pub(crate) fn release(&self) -> crate::Result<()> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            return Ok(());
        }
        st.closed = true;
        if let Some(gen) = self.read_gen {
            let r = self.core.drop_reader(self.ino);
            self.core.unpin(gen);
            return r.map_err(|e| self.core.fail(e));
        }
        let entry = self.entry;
        self.core
            .tx(&mut || false, |tx| release_file_lock(tx, entry))
            .map_err(|e| self.core.fail(e))
    }
}

impl<E: Env> FileAccess for SFile<E> {
    fn size(&self) -> u64 {
        Self::cur(&self.st.borrow()).0
    }

    fn read_at<B: ByteSink + ?Sized>(&self, off: u64, buf: &mut B) -> usize {
        let st = self.st.borrow();
        let (size, _) = Self::cur(&st);
        if off >= size || buf.is_empty() {
            return 0;
        }
        let n = (size - off).min(buf.len() as u64);
        let ext = match st.pend {
            Some(p) => p.off,
            None => st.base_off,
        };
        let core = &self.core;
        let Ok(o) = core.r.check(core.l.data + ext + off, n) else {
            return 0;
        };
        // SAFETY: the range lies inside the region (checked); the extent is this handle's
        // own (private) or committed and immutable while the handle holds the file's lock.
        let src = unsafe { std::slice::from_raw_parts(core.r.ptr().add(o), n as usize) };
        buf.put(0, src);
        n as usize
    }

    fn write_at(&self, off: u64, data: &[u8]) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let n = data.len() as u64;
        let end = off.checked_add(n).ok_or(FsError::WriteOverflow {
            offset: off,
            len: n,
        })?;
        let p = self.core.l.p;
        let ov = p.chunk_overhead;
        let (size, chunks) = Self::cur(&self.st.borrow());
        let new_size = size.max(end);
        let fits = self.st.borrow().pend.is_some_and(|q| q.cap >= new_size);
        if chunks == RANDOM && new_size == size && fits {
            // An overwrite inside the private extent: no change of charge, no commit.
        } else if chunks != RANDOM && off == size {
            self.change(|tx, st| {
                tx.reserve(n + ov)?;
                Self::ensure(tx, st, end, size)?;
                if let Some(q) = st.pend.as_mut() {
                    q.size = end;
                    q.chunks = chunks + 1;
                }
                Ok(())
            })?;
        } else if chunks != RANDOM {
            if p.storage != 0 {
                return Err(FsError::PromotionDisabled);
            }
            if size > p.promotion_hard_limit {
                return Err(FsError::PromotionTooLarge {
                    size,
                    limit: p.promotion_hard_limit,
                });
            }
            let old_overhead = chunks.saturating_mul(ov);
            let ext = end.saturating_sub(size);
            self.change(|tx, st| {
                // D-MemFS's steps: the copy is reserved while both exist, the overhead is
                // given back, the growth charged, the copy given back.
                tx.reserve(size)?;
                tx.h.used -= size;
                let max = tx.core.l.p.max_quota;
                let base = tx.h.used + size - old_overhead.min(tx.h.used + size);
                let available = max.saturating_sub(base);
                if ext > available {
                    return Err(FsError::QuotaExceeded {
                        requested: ext,
                        available,
                    }
                    .into());
                }
                tx.h.used = tx.h.used - old_overhead.min(tx.h.used) + ext;
                Self::ensure(tx, st, new_size, size)?;
                if let Some(q) = st.pend.as_mut() {
                    q.size = new_size;
                    q.chunks = RANDOM;
                }
                Ok(())
            })?;
        } else {
            let ext = new_size - size;
            self.change(|tx, st| {
                tx.reserve(ext)?;
                Self::ensure(tx, st, new_size, size)?;
                if let Some(q) = st.pend.as_mut() {
                    q.size = new_size;
                }
                Ok(())
            })?;
        }
        let st = &mut *self.st.borrow_mut();
        let Some(q) = st.pend else {
            return Err(FsError::MetadataFull {
                what: "private extent",
            });
        };
        if off > size {
            let gap = self.pend_ptr(&q, size, off - size)?;
            // SAFETY: the gap lies inside the private extent (checked), which only this
            // handle writes.
            unsafe { std::ptr::write_bytes(gap, 0, (off - size) as usize) };
        }
        let dst = self.pend_ptr(&q, off, n)?;
        // SAFETY: the destination lies inside the private extent (checked); `data` is the
        // caller's buffer, outside the region's private extent.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        st.changes += 1;
        st.last_write = now();
        Ok(())
    }

    fn set_len(&self, new: u64, touch: Touch) -> FsResult<()> {
        let p = self.core.l.p;
        let ov = p.chunk_overhead;
        let (old, chunks) = Self::cur(&self.st.borrow());
        if new > old {
            let pad = new - old;
            self.change(|tx, st| {
                if chunks == RANDOM {
                    tx.reserve(pad)?;
                } else {
                    tx.reserve(pad + ov)?;
                }
                Self::ensure(tx, st, new, old)?;
                if let Some(q) = st.pend.as_mut() {
                    q.size = new;
                    if chunks != RANDOM {
                        q.chunks = chunks + 1;
                    }
                }
                Ok(())
            })?;
            let st = self.st.borrow();
            if let Some(q) = st.pend {
                let gap = self.pend_ptr(&q, old, pad)?;
                // SAFETY: inside the private extent (checked), written only by this handle.
                unsafe { std::ptr::write_bytes(gap, 0, pad as usize) };
            }
        } else if new < old || touch == Touch::Always {
            self.change(|tx, st| {
                let kept = u64::from(new > 0);
                let new_chunks = if chunks == RANDOM {
                    RANDOM
                } else {
                    kept.min(chunks)
                };
                let freed = charge(old, chunks, ov)
                    - charge(new, new_chunks, ov).min(charge(old, chunks, ov));
                tx.h.used = tx.h.used.saturating_sub(freed);
                Self::ensure(tx, st, new, new)?;
                if let Some(q) = st.pend.as_mut() {
                    q.size = new;
                    q.chunks = new_chunks;
                }
                Ok(())
            })?;
        }
        if touch == Touch::Always || new != old {
            let mut st = self.st.borrow_mut();
            st.changes += 1;
            st.last_write = now();
        }
        Ok(())
    }

    fn close(&self, mode: OpenMode) {
        // The handle commits or releases explicitly (it can report failure); this is only
        // reached for a handle that did neither.
        let closed = self.st.borrow().closed;
        if !closed {
            let _ = if mode.writable() {
                self.commit(false)
            } else {
                self.release()
            };
        }
    }
}
