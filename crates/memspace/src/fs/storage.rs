//! File data and the quota it is charged to.
//!
//! A file's data is either *sequential* (a list of chunks, one per append: appending never
//! copies what is there) or *random-access* (one contiguous buffer). A sequential file is
//! promoted to random-access on its first write that is not an append, when the filesystem
//! allows it and the file is not larger than the promotion limit.
//!
//! Quota accounting matches D-MemFS byte for byte: a sequential file is charged its size plus
//! a fixed overhead per chunk, a random-access file its length. Every change reserves quota
//! *before* it allocates and gives back exactly what it reserved when it fails, so the
//! filesystem's `used` always equals the sum of its files' charges.

use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};

use crate::{Error, Result};

/// The byte budget of one filesystem.
pub(crate) struct Quota {
    max: u64,
    used: Mutex<u64>,
}

impl Quota {
    pub(crate) fn new(max: u64) -> Self {
        Self {
            max,
            used: Mutex::new(0),
        }
    }

    fn used_mut(&self) -> std::sync::MutexGuard<'_, u64> {
        // One integer updated in single steps: still consistent after a panic elsewhere.
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `n` bytes or fails without changing anything.
    pub(crate) fn reserve(&self, n: u64) -> Result<()> {
        self.exchange(0, n)
    }

    /// Gives `n` bytes back.
    pub(crate) fn release(&self, n: u64) {
        let mut used = self.used_mut();
        debug_assert!(
            *used >= n,
            "quota release of {n} with {used} used",
            used = *used
        );
        *used = used.saturating_sub(n);
    }

    /// Atomically gives back `release` bytes and reserves `reserve`, or fails without change.
    pub(crate) fn exchange(&self, release: u64, reserve: u64) -> Result<()> {
        let mut used = self.used_mut();
        let base = used.saturating_sub(release);
        let available = self.max.saturating_sub(base);
        if reserve > available {
            return Err(Error::QuotaExceeded {
                requested: reserve,
                available,
            });
        }
        *used = base + reserve;
        Ok(())
    }

    /// Undoes an [`Quota::exchange`] (after an allocation failed).
    pub(crate) fn undo_exchange(&self, release: u64, reserve: u64) {
        let mut used = self.used_mut();
        *used = used.saturating_sub(reserve) + release;
    }

    /// `(max, used)`, read together.
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (self.max, *self.used_mut())
    }
}

/// How new files store their data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// Chunked, promoted to contiguous on the first random write.
    #[default]
    Auto,
    /// Chunked only; a random write is refused.
    Sequential,
    /// Contiguous from the start.
    RandomAccess,
}

/// What a storage operation needs to know about its filesystem.
#[derive(Clone, Copy)]
pub(crate) struct Cfg {
    pub(crate) overhead: u64,
    pub(crate) hard_limit: u64,
}

/// One file's bytes, always contiguous. A *sequential* file counts the chunks it is charged
/// for (one per append, as D-MemFS stores them) without storing them apart: appends grow one
/// buffer (amortised; large buffers grow by `mremap`, without copying), reads are one copy,
/// and promotion to random-access changes only the accounting, not the bytes.
pub(crate) struct Data {
    buf: Vec<u8>,
    /// Chunks charged while sequential; `None` once random-access.
    chunks: Option<u64>,
    /// Whether a random write may promote this file (storage "auto").
    promote: bool,
}

/// A destination for copied-out bytes: initialised (`[u8]`) or not (`[MaybeUninit<u8>]`, so
/// that a caller can copy straight into freshly allocated memory without zeroing it first).
pub trait ByteSink {
    /// Its length in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `src` to `at..at + src.len()`.
    fn put(&mut self, at: usize, src: &[u8]);
}

impl ByteSink for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn put(&mut self, at: usize, src: &[u8]) {
        self[at..at + src.len()].copy_from_slice(src);
    }
}

impl ByteSink for [MaybeUninit<u8>] {
    fn len(&self) -> usize {
        <[MaybeUninit<u8>]>::len(self)
    }
    fn put(&mut self, at: usize, src: &[u8]) {
        // A plain byte loop: the compiler turns it into memcpy.
        for (d, s) in self[at..at + src.len()].iter_mut().zip(src) {
            d.write(*s);
        }
    }
}

fn oom(requested: u64) -> Error {
    Error::OutOfMemory { requested }
}

/// Grows `v` to `new_len` (zero-filled) without aborting if memory runs out.
fn grow(v: &mut Vec<u8>, new_len: usize) -> Result<()> {
    if new_len > v.capacity() {
        v.try_reserve(new_len - v.len())
            .map_err(|_| oom((new_len - v.len()) as u64))?;
    }
    v.resize(new_len, 0);
    Ok(())
}

impl Data {
    pub(crate) fn new(kind: StorageKind) -> Self {
        Self {
            buf: Vec::new(),
            chunks: (kind != StorageKind::RandomAccess).then_some(0),
            promote: kind == StorageKind::Auto,
        }
    }

    /// The quota a file of `len` bytes loaded in one piece is charged.
    pub(crate) fn charge_for(kind: StorageKind, len: u64, cfg: Cfg) -> u64 {
        match kind {
            StorageKind::RandomAccess => len,
            _ if len == 0 => 0,
            _ => len + cfg.overhead,
        }
    }

    /// A file holding a copy of `data` in one piece (one chunk). The caller has reserved
    /// [`Data::charge_for`] already.
    pub(crate) fn from_bytes(kind: StorageKind, data: &[u8]) -> Result<Self> {
        let mut d = Self::new(kind);
        d.buf
            .try_reserve_exact(data.len())
            .map_err(|_| oom(data.len() as u64))?;
        d.buf.extend_from_slice(data);
        if let Some(c) = d.chunks.as_mut() {
            *c = u64::from(!data.is_empty());
        }
        Ok(d)
    }

    pub(crate) fn size(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Bytes charged to the quota for this file.
    pub(crate) fn charge(&self, cfg: Cfg) -> u64 {
        self.size() + self.chunks.unwrap_or(0) * cfg.overhead
    }

    pub(crate) fn chunk_count(&self) -> u64 {
        self.chunks.unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn is_sequential(&self) -> bool {
        self.chunks.is_some()
    }

    /// Copies bytes from `off` into `buf`; returns how many (0 at or past the end).
    pub(crate) fn read_at<B: ByteSink + ?Sized>(&self, off: u64, buf: &mut B) -> usize {
        let size = self.size();
        if off >= size || buf.is_empty() {
            return 0;
        }
        let n = (size - off).min(buf.len() as u64) as usize;
        let o = off as usize;
        buf.put(0, &self.buf[o..o + n]);
        n
    }

    /// Gives back spare capacity left by appends (called when a writer closes), so that
    /// memory held stays close to what the quota counts.
    pub(crate) fn shrink_slack(&mut self) {
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if cap - len > (len / 8).max(4096) {
            self.buf.shrink_to_fit();
        }
    }

    /// Writes `data` at `off`, charging the quota for the growth.
    pub(crate) fn write_at(
        &mut self,
        off: u64,
        data: &[u8],
        cfg: Cfg,
        quota: &Quota,
    ) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let n = data.len() as u64;
        let end = off.checked_add(n).ok_or_else(|| {
            Error::InvalidArgument(format!("write of {n} bytes at offset {off} overflows"))
        })?;
        let size = self.size();
        match self.chunks {
            Some(c) if off == size => {
                let charge = n + cfg.overhead;
                quota.reserve(charge)?;
                if self.buf.try_reserve(data.len()).is_err() {
                    quota.release(charge);
                    return Err(oom(n));
                }
                self.buf.extend_from_slice(data);
                self.chunks = Some(c + 1);
                Ok(())
            }
            Some(c) => {
                if !self.promote {
                    return Err(Error::UnsupportedOperation(
                        "Random-access write on a sequential-only file: promotion is disabled \
                         (default_storage='sequential')."
                            .to_owned(),
                    ));
                }
                if size > cfg.hard_limit {
                    return Err(Error::UnsupportedOperation(format!(
                        "Cannot promote SequentialMemoryFile: size {size} exceeds hard limit {}.",
                        cfg.hard_limit
                    )));
                }
                // D-MemFS's quota steps, so that the same write fails at the same byte: the
                // copy it makes is reserved while both exist, the chunk overhead is given back,
                // the growth is charged, the old data is given back. (No copy is made here.)
                let old_overhead = c * cfg.overhead;
                let ext = end.saturating_sub(size);
                quota.reserve(size)?;
                if let Err(e) = quota.exchange(old_overhead, ext) {
                    quota.release(size);
                    return Err(e);
                }
                if end > size {
                    if let Err(e) = grow(&mut self.buf, end as usize) {
                        quota.undo_exchange(old_overhead, ext);
                        quota.release(size);
                        return Err(e);
                    }
                }
                self.buf[off as usize..end as usize].copy_from_slice(data);
                self.chunks = None;
                quota.release(size);
                Ok(())
            }
            None => {
                if end > size {
                    let ext = end - size;
                    quota.reserve(ext)?;
                    if let Err(e) = grow(&mut self.buf, end as usize) {
                        quota.release(ext);
                        return Err(e);
                    }
                }
                self.buf[off as usize..end as usize].copy_from_slice(data);
                Ok(())
            }
        }
    }

    /// Resizes to `new` bytes (zero-filled when growing).
    pub(crate) fn truncate(&mut self, new: u64, cfg: Cfg, quota: &Quota) -> Result<()> {
        let old = self.size();
        if new == old {
            return Ok(());
        }
        if new > old {
            // Growing appends one zero-filled chunk to a sequential file.
            let charge = new - old + self.chunks.map_or(0, |_| cfg.overhead);
            quota.reserve(charge)?;
            if let Err(e) = grow(&mut self.buf, new as usize) {
                quota.release(charge);
                return Err(e);
            }
            if let Some(c) = self.chunks.as_mut() {
                *c += 1;
            }
        } else {
            self.buf.truncate(new as usize);
            if new <= old / 4 {
                self.buf.shrink_to_fit();
            }
            // A shrunk sequential file is one chunk (or none).
            let mut freed = old - new;
            if let Some(c) = self.chunks.as_mut() {
                let kept = u64::from(new > 0);
                freed += (*c - kept) * cfg.overhead;
                *c = kept;
            }
            quota.release(freed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: Cfg = Cfg {
        overhead: 128,
        hard_limit: 1 << 20,
    };

    fn contents(d: &Data) -> Vec<u8> {
        let mut v = vec![0; d.size() as usize];
        assert_eq!(d.read_at(0, &mut v[..]), v.len());
        v
    }

    #[test]
    fn sequential_charges_overhead_per_chunk_and_promotes() {
        let q = Quota::new(10_000);
        let mut d = Data::new(StorageKind::Auto);
        d.write_at(0, b"hello", CFG, &q).unwrap();
        d.write_at(5, b" world", CFG, &q).unwrap();
        assert_eq!(q.snapshot().1, 11 + 2 * 128);
        assert_eq!(d.charge(CFG), q.snapshot().1);
        let mut b = [0u8; 4];
        assert_eq!(d.read_at(3, &mut b[..]), 4);
        assert_eq!(&b, b"lo w");
        d.write_at(0, b"J", CFG, &q).unwrap();
        assert!(!d.is_sequential());
        assert_eq!(contents(&d), b"Jello world");
        assert_eq!(q.snapshot().1, 11);
        d.truncate(0, CFG, &q).unwrap();
        assert_eq!(q.snapshot().1, 0);
    }

    #[test]
    fn failed_writes_change_nothing() {
        let q = Quota::new(200);
        let mut d = Data::new(StorageKind::Sequential);
        assert!(matches!(
            d.write_at(0, &[1; 73], CFG, &q),
            Err(Error::QuotaExceeded {
                requested: 201,
                available: 200
            })
        ));
        d.write_at(0, &[1; 72], CFG, &q).unwrap();
        assert_eq!(q.snapshot().1, 200);
        assert!(matches!(
            d.write_at(1, b"x", CFG, &q),
            Err(Error::UnsupportedOperation(_))
        ));
        assert_eq!(contents(&d), vec![1; 72]);
    }

    #[test]
    fn seq_truncate_merges_chunks() {
        let q = Quota::new(10_000);
        let mut d = Data::new(StorageKind::Auto);
        for _ in 0..4 {
            let s = d.size();
            d.write_at(s, b"abc", CFG, &q).unwrap();
        }
        d.truncate(5, CFG, &q).unwrap();
        assert_eq!(d.chunk_count(), 1);
        assert_eq!(q.snapshot().1, 5 + 128);
        d.truncate(8, CFG, &q).unwrap();
        assert_eq!(contents(&d), b"abcab\0\0\0");
        assert_eq!(q.snapshot().1, d.charge(CFG));
    }
}
