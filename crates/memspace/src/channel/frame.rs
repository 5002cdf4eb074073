//! The record framing every channel uses, and the byte regions records live in.
//!
//! A channel's data area is a power-of-two number of bytes addressed by monotonic 64-bit
//! positions (`position % capacity` is the offset). It holds 8-byte aligned records:
//!
//! ```text
//! offset 0   u32 len    payload length in bytes (for padding: bytes after this header)
//! offset 4   u32 kind   KIND_DATA or KIND_PADDING; anything else is corruption
//! offset 8   payload    `len` bytes, then zero to seven bytes up to the next multiple of 8
//! ```
//!
//! A record never wraps: when it would not fit before the end of the lap, a padding record fills
//! the rest of the lap and the message starts at offset 0. So every payload is contiguous, which
//! is what makes zero-copy views possible. In the ring the header is written with plain stores
//! and published together with the payload by the ring's commit (its head store); the queue
//! keeps a state word in the same 8 bytes (see `mpmc::core`), which a committed record turns
//! into exactly this header on little-endian machines.
//!
//! Everything read back from a data area is untrusted: [`RecordHeader::decode`] and the channel
//! code check every length against the geometry before any payload byte is touched.
//!
//! [`Region`] abstracts where the bytes are: [`MapRegion`] over a mapping in production, and
//! (under `--cfg loom`) a heap region whose every byte is a loom cell, so that the model checker
//! sees data races on payloads, not only on the atomics.

use crate::sync::AtomicU64;

/// Size of a record header.
pub(crate) const HEADER: u64 = 8;
/// A message record.
pub(crate) const KIND_DATA: u32 = 0x6d73_6431; // "msd1"
/// Filler up to the end of a lap.
pub(crate) const KIND_PADDING: u32 = 0x6d73_7030; // "msp0"

/// Bytes a record with a payload of `len` bytes occupies (header, payload, alignment).
pub(crate) const fn record_size(len: u64) -> u64 {
    HEADER + ((len + 7) & !7)
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordHeader {
    /// A message of `len` payload bytes.
    Data { len: u64 },
    /// Padding: the rest of the lap, `len` bytes after this header.
    Padding { len: u64 },
}

impl RecordHeader {
    /// Decodes the 8 header bytes; `None` for an unknown kind.
    pub(crate) fn decode(bytes: [u8; 8]) -> Option<RecordHeader> {
        let len = u64::from(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        match u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) {
            KIND_DATA => Some(RecordHeader::Data { len }),
            KIND_PADDING => Some(RecordHeader::Padding { len }),
            _ => None,
        }
    }

    /// The 8 header bytes. Lengths are below 2^32 by construction (checked by callers).
    pub(crate) fn encode(self) -> [u8; 8] {
        let (len, kind) = match self {
            RecordHeader::Data { len } => (len, KIND_DATA),
            RecordHeader::Padding { len } => (len, KIND_PADDING),
        };
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        out[4..].copy_from_slice(&kind.to_ne_bytes());
        out
    }
}

/// Bytes that a producer and a consumer share, written and read by copies only.
///
/// Implementations check every access against their length and panic rather than touch memory
/// outside it; the channel protocol guarantees that a range is never written and read at once.
pub(crate) trait Region: Send + Sync {
    /// Length in bytes.
    #[cfg_attr(not(test), allow(dead_code))] // the channels know their geometry; tests check it
    fn len(&self) -> usize;
    /// Copies `src` into the region at `off`.
    fn write(&self, off: usize, src: &[u8]);
    /// Copies `dst.len()` bytes at `off` into `dst`.
    fn read(&self, off: usize, dst: &mut [u8]);
    /// Copies like [`Region::read`], for a reader that validates the copy afterwards (a
    /// seqlock, as the broadcast's overwrite mode does): a writer may be writing the same bytes
    /// at the same time, and the caller discards a copy it finds torn. The exception to the
    /// rule above; a region whose copies are not plain memory accesses (loom's cells) must
    /// make these atomic to allow it.
    fn read_racy(&self, off: usize, dst: &mut [u8]) {
        self.read(off, dst);
    }
    /// Start of the bytes, for zero-copy access; `None` where the region is not plain memory.
    fn as_ptr(&self) -> Option<*mut u8>;
    /// The 8-aligned record header at `off` as an atomic word (the queue's state word).
    /// Panics if `off` is misaligned or outside the region.
    fn word(&self, off: usize) -> &AtomicU64;
}

/// Panics unless `off..off+n` lies within `len`: the last line of defence behind the channel's
/// own validation, so that a logic error can never become an out-of-bounds access.
#[inline]
fn check(off: usize, n: usize, len: usize) {
    assert!(
        off.checked_add(n).is_some_and(|end| end <= len),
        "region access {off}+{n} outside {len} bytes"
    );
}

/// A [`Region`] over mapped (shared) memory.
#[derive(Debug)]
pub(crate) struct MapRegion {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the region is plain shared memory accessed only through copies; which thread copies
// is irrelevant, and the channel protocol keeps writers and readers on disjoint ranges.
unsafe impl Send for MapRegion {}
// SAFETY: as above.
unsafe impl Sync for MapRegion {}

impl MapRegion {
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as the region is
    /// used, and must not be accessed through Rust references by anyone.
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize) -> MapRegion {
        MapRegion { ptr, len }
    }
}

impl Region for MapRegion {
    fn len(&self) -> usize {
        self.len
    }

    fn write(&self, off: usize, src: &[u8]) {
        check(off, src.len(), self.len);
        // SAFETY: the range is inside the region (checked above), which is valid for writes;
        // `src` is a Rust slice, so it cannot overlap memory that no reference may cover.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) };
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        check(off, dst.len(), self.len);
        // SAFETY: the range is inside the region (checked above), which is valid for reads;
        // `dst` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), dst.len()) };
    }

    fn as_ptr(&self) -> Option<*mut u8> {
        Some(self.ptr)
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        check(off, 8, self.len);
        assert!(off % 8 == 0, "misaligned record header at {off}");
        // SAFETY: inside the region (checked), 8-aligned (the region starts 64-aligned and
        // `off` is a multiple of 8), and header words are only ever accessed atomically.
        unsafe { crate::sync::atomic_u64(self.ptr.add(off)) }
    }
}

/// A heap [`Region`] for tests: plain bytes behind a lock-free `UnsafeCell` per byte under loom
/// (so loom checks every payload access for races), a boxed slice otherwise.
#[cfg(test)]
pub(crate) struct HeapRegion {
    #[cfg(loom)]
    cells: Vec<loom::cell::UnsafeCell<u8>>,
    #[cfg(not(loom))]
    bytes: Box<[std::cell::UnsafeCell<u8>]>,
    /// Header words, one per 8 bytes (kept apart from the payload cells: the protocol accesses
    /// a header only atomically and a payload only by copies).
    words: Box<[AtomicU64]>,
}

#[cfg(test)]
// SAFETY: test-only; the channel protocol keeps concurrent accesses on disjoint bytes (and
// loom verifies exactly that in the model tests).
unsafe impl Sync for HeapRegion {}
#[cfg(test)]
// SAFETY: as above.
unsafe impl Send for HeapRegion {}

#[cfg(test)]
impl HeapRegion {
    pub(crate) fn new(len: usize) -> HeapRegion {
        HeapRegion {
            #[cfg(loom)]
            cells: (0..len).map(|_| loom::cell::UnsafeCell::new(0)).collect(),
            #[cfg(not(loom))]
            bytes: (0..len).map(|_| std::cell::UnsafeCell::new(0)).collect(),
            words: (0..len / 8).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Overwrites bytes behind the channel's back (to simulate corruption; the corruption
    /// tests do not run under loom).
    #[cfg(not(loom))]
    pub(crate) fn poke(&self, off: usize, src: &[u8]) {
        self.write(off, src);
    }
}

#[cfg(test)]
impl Region for HeapRegion {
    fn len(&self) -> usize {
        #[cfg(loom)]
        return self.cells.len();
        #[cfg(not(loom))]
        return self.bytes.len();
    }

    fn write(&self, off: usize, src: &[u8]) {
        check(off, src.len(), self.len());
        for (i, b) in src.iter().enumerate() {
            #[cfg(loom)]
            // SAFETY: loom checks that no other thread accesses this cell concurrently.
            self.cells[off + i].with_mut(|p| unsafe { *p = *b });
            #[cfg(not(loom))]
            // SAFETY: the protocol gives this thread the byte exclusively (see the loom tests).
            unsafe {
                *self.bytes[off + i].get() = *b;
            }
        }
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        check(off, dst.len(), self.len());
        for (i, d) in dst.iter_mut().enumerate() {
            #[cfg(loom)]
            {
                // SAFETY: loom checks that no other thread writes this cell concurrently.
                *d = self.cells[off + i].with(|p| unsafe { *p });
            }
            #[cfg(not(loom))]
            {
                // SAFETY: the protocol keeps writers off bytes being read (see the loom tests).
                *d = unsafe { *self.bytes[off + i].get() };
            }
        }
    }

    fn as_ptr(&self) -> Option<*mut u8> {
        None
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        check(off, 8, self.len());
        assert!(off % 8 == 0, "misaligned record header at {off}");
        &self.words[off / 8]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_aligned() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
    }

    #[test]
    fn headers_round_trip_and_reject_unknown_kinds() {
        for h in [
            RecordHeader::Data { len: 0 },
            RecordHeader::Data { len: 12345 },
            RecordHeader::Padding { len: 56 },
        ] {
            assert_eq!(RecordHeader::decode(h.encode()), Some(h));
        }
        assert_eq!(RecordHeader::decode([0; 8]), None);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn region_refuses_out_of_bounds() {
        HeapRegion::new(8).write(4, &[0; 5]);
    }
}
