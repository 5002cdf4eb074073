//! A channel's structured segment: the header-validated mapping, the data area as a
//! [`MapRegion`] of a checked [`Geometry`], and the words of the lock area a channel lays out.
//!
//! Each channel kind owns the layout of its lock area (control block, eventcounts, role bytes
//! or locks: see the layout table in `spsc::ring` and `mpmc::queue`) and decides how a geometry
//! is read from the header; this module only holds the pieces together so that every channel
//! builds them the same way, and reports what a protocol found impossible as a corrupt segment
//! (which poisons it).

use crate::channel::frame::MapRegion;
use crate::channel::geometry::{Corrupt, Geometry};
use crate::error::Error;
use crate::location::Location;
use crate::lock::eventcount::EventCount;
use crate::shm::structured::Structured;
use crate::sync::{AtomicU32, AtomicU64};

/// A mapped, attached channel segment and its data area.
pub(crate) struct ChannelSegment {
    st: Structured,
    g: Geometry,
    region: MapRegion,
}

impl ChannelSegment {
    /// Wraps `st`, whose data area must be the channel's byte ring of geometry `g` (checked
    /// against the header by the caller).
    pub(crate) fn new(st: Structured, g: Geometry) -> ChannelSegment {
        // SAFETY: the data area is `data_size` bytes inside the mapping, which `st` keeps
        // alive as long as the region is used (both live here); only copies and atomics
        // touch it.
        let region = unsafe { MapRegion::new(st.data_ptr(), st.geometry().data_size as usize) };
        ChannelSegment { st, g, region }
    }

    /// The structured segment.
    pub(crate) fn structured(&self) -> &Structured {
        &self.st
    }

    /// The data area's geometry.
    pub(crate) fn geometry(&self) -> Geometry {
        self.g
    }

    /// The data area.
    pub(crate) fn region(&self) -> &MapRegion {
        &self.region
    }

    /// Where it lives.
    pub(crate) fn location(&self) -> &Location {
        self.st.location()
    }

    /// The `u32` at `off` of the lock area.
    ///
    /// Panics unless `off` is 4-aligned with 4 bytes inside the lock area: the channel's
    /// layout constants, checked against the header's lock size at attach, make that true.
    pub(crate) fn lock_word32(&self, off: usize) -> &AtomicU32 {
        let size = self.st.geometry().lock_size;
        assert!(
            off % 4 == 0 && off as u64 + 4 <= size,
            "lock-area word {off} outside {size} bytes"
        );
        // SAFETY: `off + 4` lies inside the lock area (checked above), which is 64-aligned
        // inside the live mapping that `self.st` keeps alive for the returned borrow; `off` is
        // 4-aligned; everyone accesses the lock area's words through atomics only.
        unsafe { crate::sync::atomic_u32(self.st.lock_ptr().add(off)) }
    }

    /// The `u64` at `off` of the lock area (8-aligned, 8 bytes inside; panics otherwise, as
    /// [`ChannelSegment::lock_word32`]).
    pub(crate) fn lock_word64(&self, off: usize) -> &AtomicU64 {
        let size = self.st.geometry().lock_size;
        assert!(
            off % 8 == 0 && off as u64 + 8 <= size,
            "lock-area word {off} outside {size} bytes"
        );
        // SAFETY: as in `lock_word32`, for an 8-aligned word inside the (64-aligned) area.
        unsafe { crate::sync::atomic_u64(self.st.lock_ptr().add(off)) }
    }

    /// The eventcount whose two words are at `off` of the lock area.
    pub(crate) fn event(&self, off: usize) -> EventCount<'_> {
        EventCount::new(self.lock_word32(off), self.lock_word32(off + 4))
    }

    /// The error for what the protocol found impossible (and poisons the segment).
    pub(crate) fn corrupt(&self, c: Corrupt) -> Error {
        self.st.corrupt(c.0)
    }
}
