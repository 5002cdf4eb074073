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

pub(crate) enum Data {
    Seq {
        chunks: Vec<Vec<u8>>,
        /// `ends[i]` is the file offset just past chunk `i`.
        ends: Vec<u64>,
        size: u64,
        promote: bool,
    },
    Ra(Vec<u8>),
}

fn oom(requested: u64) -> Error {
    Error::OutOfMemory { requested }
}

/// A vector of exactly `n` zero bytes, or an allocation error.
fn zeroed(n: u64) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n as usize).map_err(|_| oom(n))?;
    v.resize(n as usize, 0);
    Ok(v)
}

fn copied(data: &[u8]) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(data.len())
        .map_err(|_| oom(data.len() as u64))?;
    v.extend_from_slice(data);
    Ok(v)
}

impl Data {
    pub(crate) fn new(kind: StorageKind) -> Self {
        match kind {
            StorageKind::RandomAccess => Data::Ra(Vec::new()),
            k => Data::Seq {
                chunks: Vec::new(),
                ends: Vec::new(),
                size: 0,
                promote: k == StorageKind::Auto,
            },
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

    /// A file holding a copy of `data` in one piece. The caller has reserved
    /// [`Data::charge_for`] already.
    pub(crate) fn from_bytes(kind: StorageKind, data: &[u8]) -> Result<Self> {
        let mut d = Self::new(kind);
        match &mut d {
            Data::Ra(v) => *v = copied(data)?,
            Data::Seq {
                chunks, ends, size, ..
            } => {
                if !data.is_empty() {
                    chunks.push(copied(data)?);
                    *size = data.len() as u64;
                    ends.push(*size);
                }
            }
        }
        Ok(d)
    }

    pub(crate) fn size(&self) -> u64 {
        match self {
            Data::Seq { size, .. } => *size,
            Data::Ra(v) => v.len() as u64,
        }
    }

    /// Bytes charged to the quota for this file.
    pub(crate) fn charge(&self, cfg: Cfg) -> u64 {
        match self {
            Data::Seq { chunks, size, .. } => size + chunks.len() as u64 * cfg.overhead,
            Data::Ra(v) => v.len() as u64,
        }
    }

    pub(crate) fn chunk_count(&self) -> u64 {
        match self {
            Data::Seq { chunks, .. } => chunks.len() as u64,
            Data::Ra(_) => 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_sequential(&self) -> bool {
        matches!(self, Data::Seq { .. })
    }

    /// Copies bytes from `off` into `buf`; returns how many (0 at or past the end).
    pub(crate) fn read_at(&self, off: u64, buf: &mut [u8]) -> usize {
        let size = self.size();
        if off >= size || buf.is_empty() {
            return 0;
        }
        let n = (size - off).min(buf.len() as u64) as usize;
        match self {
            Data::Ra(v) => {
                let o = off as usize;
                buf[..n].copy_from_slice(&v[o..o + n]);
            }
            Data::Seq { chunks, ends, .. } => {
                let mut i = ends.partition_point(|&e| e <= off);
                let mut pos = off;
                let mut done = 0usize;
                while done < n {
                    let start = if i == 0 { 0 } else { ends[i - 1] };
                    let chunk = &chunks[i];
                    let lo = (pos - start) as usize;
                    let take = (chunk.len() - lo).min(n - done);
                    buf[done..done + take].copy_from_slice(&chunk[lo..lo + take]);
                    done += take;
                    pos += take as u64;
                    i += 1;
                }
            }
        }
        n
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
        match self {
            Data::Seq {
                chunks,
                ends,
                size,
                promote,
            } => {
                if off == *size {
                    let charge = n + cfg.overhead;
                    quota.reserve(charge)?;
                    let chunk = copied(data).inspect_err(|_| quota.release(charge))?;
                    chunks.push(chunk);
                    *size = end;
                    ends.push(end);
                    return Ok(());
                }
                if !*promote {
                    return Err(Error::UnsupportedOperation(
                        "Random-access write on a sequential-only file: promotion is disabled \
                         (default_storage='sequential')."
                            .to_owned(),
                    ));
                }
                self.promote_and_write(off, data, cfg, quota)
            }
            Data::Ra(v) => {
                let len = v.len() as u64;
                if end > len {
                    let ext = end - len;
                    quota.reserve(ext)?;
                    if v.try_reserve(ext as usize).is_err() {
                        quota.release(ext);
                        return Err(oom(ext));
                    }
                    v.resize(end as usize, 0);
                }
                v[off as usize..end as usize].copy_from_slice(data);
                Ok(())
            }
        }
    }

    /// Sequential -> random-access, then the write. The quota steps are D-MemFS's (the copy
    /// is reserved while both exist, the chunk overhead is given back, the growth is charged,
    /// the old data is given back), so the same write fails at the same byte; a failure at
    /// any step leaves the file and the quota as they were.
    fn promote_and_write(&mut self, off: u64, data: &[u8], cfg: Cfg, quota: &Quota) -> Result<()> {
        let Data::Seq { chunks, size, .. } = self else {
            unreachable!("promote_and_write on random-access data")
        };
        let size = *size;
        if size > cfg.hard_limit {
            return Err(Error::UnsupportedOperation(format!(
                "Cannot promote SequentialMemoryFile: size {size} exceeds hard limit {}.",
                cfg.hard_limit
            )));
        }
        let end = off + data.len() as u64;
        let old_overhead = chunks.len() as u64 * cfg.overhead;
        let ext = end.saturating_sub(size);
        quota.reserve(size)?;
        if let Err(e) = quota.exchange(old_overhead, ext) {
            quota.release(size);
            return Err(e);
        }
        let total = size.max(end);
        let mut buf = Vec::new();
        if buf.try_reserve_exact(total as usize).is_err() {
            quota.undo_exchange(old_overhead, ext);
            quota.release(size);
            return Err(oom(total));
        }
        for c in chunks.iter() {
            buf.extend_from_slice(c);
        }
        buf.resize(total as usize, 0);
        buf[off as usize..end as usize].copy_from_slice(data);
        *self = Data::Ra(buf);
        quota.release(size);
        Ok(())
    }

    /// Resizes to `new` bytes (zero-filled when growing).
    pub(crate) fn truncate(&mut self, new: u64, cfg: Cfg, quota: &Quota) -> Result<()> {
        let old = self.size();
        if new == old {
            return Ok(());
        }
        match self {
            Data::Seq {
                chunks, ends, size, ..
            } => {
                if new > old {
                    let charge = new - old + cfg.overhead;
                    quota.reserve(charge)?;
                    let pad = zeroed(new - old).inspect_err(|_| quota.release(charge))?;
                    chunks.push(pad);
                    ends.push(new);
                    *size = new;
                } else {
                    let old_chunks = chunks.len() as u64;
                    let mut keep = Vec::new();
                    if new > 0 {
                        keep.try_reserve_exact(new as usize).map_err(|_| oom(new))?;
                        let mut left = new as usize;
                        for c in chunks.iter() {
                            let take = c.len().min(left);
                            keep.extend_from_slice(&c[..take]);
                            left -= take;
                            if left == 0 {
                                break;
                            }
                        }
                    }
                    chunks.clear();
                    ends.clear();
                    if new > 0 {
                        chunks.push(keep);
                        ends.push(new);
                    }
                    *size = new;
                    let freed = (old - new) + (old_chunks - chunks.len() as u64) * cfg.overhead;
                    quota.release(freed);
                }
            }
            Data::Ra(v) => {
                if new > old {
                    let ext = new - old;
                    quota.reserve(ext)?;
                    if v.try_reserve(ext as usize).is_err() {
                        quota.release(ext);
                        return Err(oom(ext));
                    }
                    v.resize(new as usize, 0);
                } else {
                    v.truncate(new as usize);
                    if new <= old / 4 {
                        v.shrink_to_fit();
                    }
                    quota.release(old - new);
                }
            }
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
        assert_eq!(d.read_at(0, &mut v), v.len());
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
        assert_eq!(d.read_at(3, &mut b), 4);
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
