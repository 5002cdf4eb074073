//! What every channel's shared state is measured and built with: the data area's [`Geometry`],
//! the cache-line pair a side owns ([`Line`]), and the one error a channel protocol reports
//! ([`Corrupt`]).
//!
//! A channel's positions are monotonic 64-bit byte counts into a power-of-two data area (see
//! [`frame`](super::frame)); each side keeps its position and its advisory message counter on a
//! [`Line`] of its own, so that two sides never write the same cache line. Which lines a
//! channel has, and the invariants between them, are the channel's own (`spsc::core`,
//! `mpmc::core`).

use crate::channel::frame::HEADER;
use crate::sync::AtomicU64;

/// Impossible state found in a channel's shared control block or data area. The segment-backed
/// handle turns it into a corrupt-segment error (and poisons the segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

/// Two cache lines (an adjacent-line-prefetch pair) owned by one side: its position and its
/// advisory message counter. Only atomics, so a shared reference over shared memory is sound.
///
/// Layout (128 bytes, 64-aligned): `pos` u64 at 0, `count` u64 at 8, the rest reserved (zero).
#[repr(C, align(64))]
pub(crate) struct Line {
    /// The side's byte position.
    pub(crate) pos: AtomicU64,
    /// Messages the side has published, taken or released (per channel); advisory.
    pub(crate) count: AtomicU64,
    _pad: [AtomicU64; 14],
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Line>() == 128);
    assert!(std::mem::align_of::<Line>() == 64);
};

impl Line {
    /// A zeroed line on the heap (tests and loom models).
    #[cfg(test)]
    pub(crate) fn new() -> Line {
        Line {
            pos: AtomicU64::new(0),
            count: AtomicU64::new(0),
            _pad: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Capacity and message-size limit of a channel's data area, fixed at creation and validated
/// at attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    cap: u64,
    max_len: u64,
}

impl Geometry {
    /// The largest `max_len` a data area of `cap` bytes can promise: a record of that size plus
    /// the padding in front of it always fits in an empty area, wherever the lap ends.
    pub(crate) const fn max_len_for(cap: u64) -> u64 {
        cap / 2 - HEADER
    }

    /// `cap` must be a power of two >= 32; `max_len` at most [`Geometry::max_len_for`] and
    /// below 2^32.
    pub(crate) fn new(cap: u64, max_len: u64) -> Option<Geometry> {
        (cap.is_power_of_two()
            && cap >= 32
            && max_len <= Self::max_len_for(cap)
            && max_len < u64::from(u32::MAX))
        .then_some(Geometry { cap, max_len })
    }

    /// Capacity in bytes (a power of two).
    pub(crate) fn capacity(self) -> u64 {
        self.cap
    }

    /// Largest payload in bytes.
    pub(crate) fn max_len(self) -> u64 {
        self.max_len
    }

    /// Offset in the data area of byte position `pos`.
    pub(crate) fn offset(self, pos: u64) -> u64 {
        pos & (self.cap - 1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_validated() {
        assert!(Geometry::new(48, 8).is_none());
        assert!(Geometry::new(16, 0).is_none());
        assert!(Geometry::new(64, 25).is_none());
        assert_eq!(Geometry::new(64, 24).unwrap().max_len(), 24);
    }
}
