//! File data on the heap and the quota it is charged to.
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

use std::sync::Arc;

use crate::fs::bytes::{ByteSink, SharedBytes};
use crate::fs::error::{FsError, FsResult};
use crate::fs::options::StorageKind;
use crate::sync::{AtomicU64, Ordering};

/// The byte budget of one filesystem: one atomic counter (a change is one read-modify-write,
/// never a lock: appends reserve on every write).
pub(crate) struct Quota {
    max: u64,
    used: AtomicU64,
}

impl Quota {
    pub(crate) fn new(max: u64) -> Self {
        Self {
            max,
            used: AtomicU64::new(0),
        }
    }

    /// Applies `f` to `used` atomically (retrying on a race); `f` returning `None` changes
    /// nothing. Returns what `used` was.
    fn update(&self, mut f: impl FnMut(u64) -> Option<u64>) -> Result<u64, u64> {
        // The counter guards no other memory, so SeqCst here costs what any atomic
        // read-modify-write costs and needs no pairing argument.
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, &mut f)
    }

    /// Reserves `n` bytes or fails without changing anything.
    pub(crate) fn reserve(&self, n: u64) -> FsResult<()> {
        self.exchange(0, n)
    }

    /// Gives `n` bytes back.
    pub(crate) fn release(&self, n: u64) {
        let before = self
            .update(|used| Some(used.saturating_sub(n)))
            .unwrap_or_else(|u| u);
        debug_assert!(before >= n, "quota release of {n} with {before} used");
    }

    /// Atomically gives back `release` bytes and reserves `reserve`, or fails without change.
    pub(crate) fn exchange(&self, release: u64, reserve: u64) -> FsResult<()> {
        let mut available = 0;
        self.update(|used| {
            let base = used.saturating_sub(release);
            available = self.max.saturating_sub(base);
            (reserve <= available).then(|| base + reserve)
        })
        .map(drop)
        .map_err(|_| FsError::QuotaExceeded {
            requested: reserve,
            available,
        })
    }

    /// Undoes an [`Quota::exchange`] (after an allocation failed).
    pub(crate) fn undo_exchange(&self, release: u64, reserve: u64) {
        let _ = self.update(|used| Some(used.saturating_sub(reserve) + release));
    }

    /// `(max, used)`.
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (self.max, self.used.load(Ordering::SeqCst))
    }
}

/// What a storage operation needs to know about its filesystem.
#[derive(Clone, Copy)]
pub(crate) struct Cfg {
    pub(crate) overhead: u64,
    pub(crate) hard_limit: u64,
}

/// One run of a file's bytes.
enum Piece {
    Owned(Vec<u8>),
    Shared(Arc<dyn SharedBytes>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(v) => v,
            Piece::Shared(b) => b.bytes(),
        }
    }
}

/// One file's bytes: a list of pieces (usually one). Appends grow the last owned piece
/// (amortised; large buffers grow by `mremap`, without copying) or keep a caller's immutable
/// buffer as a piece of its own. A *sequential* file counts the chunks it is charged for (one
/// per append, as D-MemFS stores them) without storing them apart. A random-access file is
/// one owned piece; promoting a file that is one owned piece copies nothing.
pub(crate) struct Data {
    pieces: Vec<Piece>,
    /// `ends[i]` is the file offset just past piece `i`.
    ends: Vec<u64>,
    /// Chunks charged while sequential; `None` once random-access.
    chunks: Option<u64>,
    /// Whether a random write may promote this file (storage "auto").
    promote: bool,
}

fn oom(requested: u64) -> FsError {
    FsError::OutOfMemory { requested }
}

/// Grows `v` to `new_len` (zero-filled) without aborting if memory runs out; never shrinks.
fn grow_to(v: &mut Vec<u8>, new_len: usize) -> FsResult<()> {
    if new_len <= v.len() {
        return Ok(());
    }
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
            pieces: Vec::new(),
            ends: Vec::new(),
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
    pub(crate) fn from_bytes(kind: StorageKind, data: &[u8]) -> FsResult<Self> {
        Self::from_pieces(kind, data.len(), [data])
    }

    /// A file holding a copy of `src`'s bytes in one piece (one chunk), stored as `kind`.
    /// The caller has reserved [`Data::charge_for`] its size already.
    pub(crate) fn copy_of(kind: StorageKind, src: &Data) -> FsResult<Self> {
        let len = usize::try_from(src.size()).map_err(|_| oom(src.size()))?;
        Self::from_pieces(kind, len, src.pieces.iter().map(Piece::bytes))
    }

    fn from_pieces<'a>(
        kind: StorageKind,
        len: usize,
        pieces: impl IntoIterator<Item = &'a [u8]>,
    ) -> FsResult<Self> {
        let mut d = Self::new(kind);
        if len > 0 {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| oom(len as u64))?;
            for p in pieces {
                v.extend_from_slice(p);
            }
            d.set_single(v);
        }
        if let Some(c) = d.chunks.as_mut() {
            *c = u64::from(len > 0);
        }
        Ok(d)
    }

    /// All the bytes in a new buffer (allocated fallibly).
    pub(crate) fn to_vec(&self) -> FsResult<Vec<u8>> {
        let len = usize::try_from(self.size()).map_err(|_| oom(self.size()))?;
        let mut v = Vec::new();
        v.try_reserve_exact(len).map_err(|_| oom(len as u64))?;
        for p in &self.pieces {
            v.extend_from_slice(p.bytes());
        }
        Ok(v)
    }

    pub(crate) fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
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

    /// Replaces the pieces with one owned buffer (empty: no piece).
    fn set_single(&mut self, v: Vec<u8>) {
        self.pieces.clear();
        self.ends.clear();
        if !v.is_empty() {
            self.ends.push(v.len() as u64);
            self.pieces.push(Piece::Owned(v));
        }
    }

    /// The bytes as one owned buffer of at least `min_len` capacity, copying only if there
    /// are several pieces or a shared one. On failure nothing has changed.
    fn contiguous(&mut self, min_len: usize) -> FsResult<&mut Vec<u8>> {
        let single_owned = self.pieces.len() == 1 && matches!(self.pieces[0], Piece::Owned(_));
        if !single_owned {
            let size = self.size() as usize;
            let mut v = Vec::new();
            v.try_reserve_exact(size.max(min_len))
                .map_err(|_| oom(size.max(min_len) as u64))?;
            for p in &self.pieces {
                v.extend_from_slice(p.bytes());
            }
            self.pieces.clear();
            self.ends.clear();
            self.ends.push(v.len() as u64);
            self.pieces.push(Piece::Owned(v));
        }
        let Some(Piece::Owned(v)) = self.pieces.first_mut() else {
            unreachable!("one owned piece")
        };
        Ok(v)
    }

    /// Sets `ends` for a single piece after its length changed.
    fn sync_single_end(&mut self) {
        let len = self.pieces.first().map_or(0, |p| p.bytes().len() as u64);
        self.ends.clear();
        if len == 0 {
            self.pieces.clear();
        } else {
            self.ends.push(len);
        }
    }

    /// Copies bytes from `off` into `buf`; returns how many (0 at or past the end).
    pub(crate) fn read_at<B: ByteSink + ?Sized>(&self, off: u64, buf: &mut B) -> usize {
        let size = self.size();
        if off >= size || buf.is_empty() {
            return 0;
        }
        let n = (size - off).min(buf.len() as u64) as usize;
        let mut i = self.ends.partition_point(|&e| e <= off);
        let mut pos = off;
        let mut done = 0usize;
        while done < n {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            let piece = self.pieces[i].bytes();
            let lo = (pos - start) as usize;
            let take = (piece.len() - lo).min(n - done);
            buf.put(done, &piece[lo..lo + take]);
            done += take;
            pos += take as u64;
            i += 1;
        }
        n
    }

    /// Gives back spare capacity left by appends (called when a writer closes), so that
    /// memory held stays close to what the quota counts.
    pub(crate) fn shrink_slack(&mut self) {
        if let Some(Piece::Owned(v)) = self.pieces.last_mut() {
            let (len, cap) = (v.len(), v.capacity());
            if cap - len > (len / 8).max(4096) {
                v.shrink_to_fit();
            }
        }
    }

    /// Appends to a sequential file: into the last owned piece, or a new one.
    fn append_owned(&mut self, data: &[u8]) -> FsResult<()> {
        let n = data.len();
        if let Some(Piece::Owned(v)) = self.pieces.last_mut() {
            v.try_reserve(n).map_err(|_| oom(n as u64))?;
            v.extend_from_slice(data);
            *self.ends.last_mut().expect("one end per piece") += n as u64;
        } else {
            let mut v = Vec::new();
            v.try_reserve(n.max(64)).map_err(|_| oom(n as u64))?;
            v.extend_from_slice(data);
            self.ends.push(self.size() + n as u64);
            self.pieces.push(Piece::Owned(v));
        }
        Ok(())
    }

    /// Whether [`Data::write_shared_at`] at `off` would keep its buffer.
    pub(crate) fn keeps_at(&self, off: u64) -> bool {
        self.chunks.is_some() && off == self.size()
    }

    /// Appends `shared` without copying it if this is a sequential append at `off`;
    /// otherwise writes a copy of its bytes. Charged exactly as [`Data::write_at`].
    pub(crate) fn write_shared_at(
        &mut self,
        off: u64,
        shared: Arc<dyn SharedBytes>,
        cfg: Cfg,
        quota: &Quota,
    ) -> FsResult<()> {
        let n = shared.bytes().len() as u64;
        match self.chunks {
            Some(c) if self.keeps_at(off) && n > 0 => {
                quota.reserve(n + cfg.overhead)?;
                self.ends.push(off + n);
                self.pieces.push(Piece::Shared(shared));
                self.chunks = Some(c + 1);
                Ok(())
            }
            _ => self.write_at(off, shared.bytes(), cfg, quota),
        }
    }

    /// Writes `data` at `off`, charging the quota for the growth.
    pub(crate) fn write_at(
        &mut self,
        off: u64,
        data: &[u8],
        cfg: Cfg,
        quota: &Quota,
    ) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let n = data.len() as u64;
        let end = off.checked_add(n).ok_or(FsError::WriteOverflow {
            offset: off,
            len: n,
        })?;
        let size = self.size();
        match self.chunks {
            Some(c) if off == size => {
                let charge = n + cfg.overhead;
                quota.reserve(charge)?;
                if let Err(e) = self.append_owned(data) {
                    quota.release(charge);
                    return Err(e);
                }
                self.chunks = Some(c + 1);
                Ok(())
            }
            Some(c) => {
                if !self.promote {
                    return Err(FsError::PromotionDisabled);
                }
                if size > cfg.hard_limit {
                    return Err(FsError::PromotionTooLarge {
                        size,
                        limit: cfg.hard_limit,
                    });
                }
                // D-MemFS's quota steps, so that the same write fails at the same byte: the
                // copy it makes is reserved while both exist, the chunk overhead is given back,
                // the growth is charged, the old data is given back.
                let old_overhead = c * cfg.overhead;
                let ext = end.saturating_sub(size);
                quota.reserve(size)?;
                if let Err(e) = quota.exchange(old_overhead, ext) {
                    quota.release(size);
                    return Err(e);
                }
                let grown = self
                    .contiguous(end as usize)
                    .and_then(|v| grow_to(v, end as usize));
                if let Err(e) = grown {
                    quota.undo_exchange(old_overhead, ext);
                    quota.release(size);
                    return Err(e);
                }
                self.write_in_place(off, data);
                self.chunks = None;
                quota.release(size);
                Ok(())
            }
            None => {
                if end > size {
                    let ext = end - size;
                    quota.reserve(ext)?;
                    let grown = self
                        .contiguous(end as usize)
                        .and_then(|v| grow_to(v, end as usize));
                    if let Err(e) = grown {
                        quota.release(ext);
                        return Err(e);
                    }
                }
                self.write_in_place(off, data);
                Ok(())
            }
        }
    }

    /// Copies `data` into the single owned piece, which already covers `off..off + len`.
    fn write_in_place(&mut self, off: u64, data: &[u8]) {
        if let Some(Piece::Owned(v)) = self.pieces.first_mut() {
            v[off as usize..off as usize + data.len()].copy_from_slice(data);
            if self.ends.last() == Some(&(v.len() as u64)) {
                return;
            }
        }
        self.sync_single_end();
    }

    /// Resizes to `new` bytes (zero-filled when growing).
    pub(crate) fn truncate(&mut self, new: u64, cfg: Cfg, quota: &Quota) -> FsResult<()> {
        let old = self.size();
        if new == old {
            return Ok(());
        }
        if new > old {
            let pad = new - old;
            if self.chunks.is_some() {
                // Growing appends one zero-filled chunk to a sequential file.
                let charge = pad + cfg.overhead;
                quota.reserve(charge)?;
                if let Err(e) = self.append_zeros(pad as usize) {
                    quota.release(charge);
                    return Err(e);
                }
                self.chunks = self.chunks.map(|c| c + 1);
            } else {
                quota.reserve(pad)?;
                let grown = self
                    .contiguous(new as usize)
                    .and_then(|v| grow_to(v, new as usize));
                if let Err(e) = grown {
                    quota.release(pad);
                    return Err(e);
                }
                self.sync_single_end();
            }
        } else {
            // Keep the first `new` bytes as one owned piece (no copy if it already is one).
            let keep = new as usize;
            let single_owned = self.pieces.len() == 1 && matches!(self.pieces[0], Piece::Owned(_));
            if single_owned {
                if let Some(Piece::Owned(v)) = self.pieces.first_mut() {
                    v.truncate(keep);
                    if new <= old / 4 {
                        v.shrink_to_fit();
                    }
                }
                self.sync_single_end();
            } else {
                let mut v = Vec::new();
                v.try_reserve_exact(keep).map_err(|_| oom(new))?;
                let mut left = keep;
                for p in &self.pieces {
                    let b = p.bytes();
                    let take = b.len().min(left);
                    v.extend_from_slice(&b[..take]);
                    left -= take;
                    if left == 0 {
                        break;
                    }
                }
                self.set_single(v);
            }
            let mut freed = old - new;
            if let Some(c) = self.chunks.as_mut() {
                // A shrunk sequential file is one chunk (or none).
                let kept = u64::from(new > 0);
                freed += (*c - kept) * cfg.overhead;
                *c = kept;
            }
            quota.release(freed);
        }
        Ok(())
    }

    fn append_zeros(&mut self, n: usize) -> FsResult<()> {
        if let Some(Piece::Owned(v)) = self.pieces.last_mut() {
            let len = v.len();
            grow_to(v, len + n)?;
            *self.ends.last_mut().expect("one end per piece") += n as u64;
        } else {
            let mut v = Vec::new();
            grow_to(&mut v, n)?;
            self.ends.push(self.size() + n as u64);
            self.pieces.push(Piece::Owned(v));
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
            Err(FsError::QuotaExceeded {
                requested: 201,
                available: 200
            })
        ));
        d.write_at(0, &[1; 72], CFG, &q).unwrap();
        assert_eq!(q.snapshot().1, 200);
        assert!(matches!(
            d.write_at(1, b"x", CFG, &q),
            Err(FsError::PromotionDisabled)
        ));
        assert_eq!(contents(&d), vec![1; 72]);
    }

    struct Ext(Vec<u8>);
    impl SharedBytes for Ext {
        fn bytes(&self) -> &[u8] {
            &self.0
        }
    }

    #[test]
    fn shared_pieces_are_kept_charged_and_materialised_on_promotion() {
        let q = Quota::new(10_000);
        let mut d = Data::new(StorageKind::Auto);
        d.write_at(0, b"ab", CFG, &q).unwrap();
        d.write_shared_at(2, Arc::new(Ext(b"cdef".to_vec())), CFG, &q)
            .unwrap();
        d.write_at(6, b"gh", CFG, &q).unwrap();
        assert_eq!(d.pieces.len(), 3);
        assert_eq!(q.snapshot().1, 8 + 3 * 128);
        assert_eq!(contents(&d), b"abcdefgh");
        let mut b = [0u8; 4];
        assert_eq!(d.read_at(1, &mut b[..]), 4);
        assert_eq!(&b, b"bcde");
        d.write_at(3, b"X", CFG, &q).unwrap();
        assert_eq!(d.pieces.len(), 1);
        assert_eq!(contents(&d), b"abcXefgh");
        assert_eq!(q.snapshot().1, 8);
        let mut e = Data::new(StorageKind::Auto);
        e.write_shared_at(0, Arc::new(Ext(b"0123456789".to_vec())), CFG, &q)
            .unwrap();
        e.truncate(4, CFG, &q).unwrap();
        assert_eq!(contents(&e), b"0123");
        e.truncate(6, CFG, &q).unwrap();
        assert_eq!(contents(&e), b"0123\0\0");
        assert_eq!(q.snapshot().1, 8 + e.charge(CFG));
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
