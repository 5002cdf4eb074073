//! A bounds-checked byte region: the filesystem's area of a mapped segment, or a heap buffer
//! in tests (so that the same code runs under Miri and proptest without a segment).
//!
//! Every offset is checked against the region's length before it is used; a bad offset is a
//! [`Bad`] (corruption), never an access outside the region. The region is shared with other
//! processes: reads copy whatever bytes are there (callers validate them), and no reference
//! into it is ever made except the atomics of `sync` and the read-only views a caller pins.

use crate::sync::{AtomicU32, AtomicU64};

/// Something read from shared memory does not make sense (or an offset is out of range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bad(pub(crate) String);

pub(crate) type BadResult<T> = std::result::Result<T, Bad>;

/// `Err(Bad)` with a formatted reason.
macro_rules! bad {
    ($($t:tt)*) => { Err($crate::fs::shared::region::Bad(format!($($t)*))) };
}
pub(crate) use bad;

/// A region of `len` bytes at `ptr`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    ptr: *mut u8,
    len: u64,
}

// SAFETY: the region is plain memory designed to be shared (between processes even); every
// access is a bounds-checked copy or an atomic.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes, 8-aligned, for as long as the
    /// region (or any copy of it) is used.
    pub(crate) unsafe fn new(ptr: *mut u8, len: u64) -> Self {
        Self { ptr, len }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// `off` as usize if `off..off + n` lies inside the region.
    pub(crate) fn check(&self, off: u64, n: u64) -> BadResult<usize> {
        match off.checked_add(n) {
            Some(end) if end <= self.len => Ok(off as usize),
            _ => bad!("range {off}+{n} outside the region of {} bytes", self.len),
        }
    }

    pub(crate) fn read(&self, off: u64, out: &mut [u8]) -> BadResult<()> {
        let o = self.check(off, out.len() as u64)?;
        // SAFETY: the range lies inside the region (checked); `out` is a private buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(o), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    pub(crate) fn write(&self, off: u64, data: &[u8]) -> BadResult<()> {
        let o = self.check(off, data.len() as u64)?;
        // SAFETY: the range lies inside the region (checked); `data` is a private buffer.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(o), data.len()) };
        Ok(())
    }

    /// Copies `n` bytes from `src` to `dst` inside the region (the ranges may overlap).
    pub(crate) fn copy_within(&self, src: u64, dst: u64, n: u64) -> BadResult<()> {
        let s = self.check(src, n)?;
        let d = self.check(dst, n)?;
        // SAFETY: both ranges lie inside the region (checked); `copy` allows overlap.
        unsafe { std::ptr::copy(self.ptr.add(s), self.ptr.add(d), n as usize) };
        Ok(())
    }

    pub(crate) fn u64(&self, off: u64) -> BadResult<u64> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    pub(crate) fn put_u64(&self, off: u64, v: u64) -> BadResult<()> {
        self.write(off, &v.to_ne_bytes())
    }

    /// The `u64` at `off` as an atomic (`off` must be 8-aligned).
    pub(crate) fn atomic_u64(&self, off: u64) -> BadResult<&AtomicU64> {
        if off % 8 != 0 {
            return bad!("atomic at unaligned offset {off}");
        }
        let o = self.check(off, 8)?;
        // SAFETY: inside the region (checked), 8-aligned (the base is 8-aligned, see `new`);
        // every concurrent access to these words is atomic.
        Ok(unsafe { crate::sync::atomic_u64(self.ptr.add(o)) })
    }

    /// The `u32` at `off` as an atomic (`off` must be 4-aligned).
    pub(crate) fn atomic_u32(&self, off: u64) -> BadResult<&AtomicU32> {
        if off % 4 != 0 {
            return bad!("atomic at unaligned offset {off}");
        }
        let o = self.check(off, 4)?;
        // SAFETY: as in `atomic_u64`.
        Ok(unsafe { crate::sync::atomic_u32(self.ptr.add(o)) })
    }
}

/// A heap buffer to run the filesystem on without a segment (tests, Miri).
#[cfg(all(test, not(loom)))]
pub(crate) struct HeapRegion {
    buf: Vec<u64>,
}

#[cfg(all(test, not(loom)))]
impl HeapRegion {
    pub(crate) fn new(len: u64) -> Self {
        Self {
            buf: vec![0u64; len.div_ceil(8) as usize],
        }
    }

    pub(crate) fn region(&mut self) -> Region {
        let len = self.buf.len() as u64 * 8;
        // SAFETY: the buffer is 8-aligned, `len` bytes, and outlives the tests that use it
        // (they keep the HeapRegion alive and never reallocate it).
        unsafe { Region::new(self.buf.as_mut_ptr().cast::<u8>(), len) }
    }
}
