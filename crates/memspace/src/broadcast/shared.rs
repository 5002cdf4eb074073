//! What a broadcast handle, its clones, its publisher and its subscriber share: the channel
//! segment and the accessors of its lock area (laid out in [`segment`](super::segment)), apart
//! from both so that the endpoints and the segment code each import it and not each other.

use super::core::{Overflow, PubLine, SubLine};
use crate::channel::geometry::{Corrupt, Geometry};
use crate::channel::segment::ChannelSegment;
use crate::channel::signal::SignalSource;
use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::eventcount::{EventCount, OsFutex};
use crate::sync::AtomicU32;

/// The `published` eventcount's offset in the lock area (see the layout in `segment`).
pub(super) const PUBLISHED_OFF: usize = 192;
/// The `room` eventcount's offset.
pub(super) const ROOM_OFF: usize = 256;
/// The first cursor line's offset.
pub(super) const SUBS_OFF: u64 = 384;
/// The size of a cursor line (two cache lines).
pub(super) const LINE: u64 = 128;

/// What a broadcast handle, its clones, its publisher and its subscriber share.
pub(super) struct Shared {
    pub(super) ch: ChannelSegment,
    pub(super) overflow: Overflow,
    /// 1 while this handle's attachment slot has a subscriber (one per handle).
    pub(super) subscribed: AtomicU32,
}

// SAFETY: the raw pointers inside point into the mapping that `ch` keeps alive; every access
// through them is atomic or a copy into space the protocol gives the caller.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl SignalSource for Shared {
    fn channel(&self) -> &ChannelSegment {
        &self.ch
    }
}

impl Shared {
    #[allow(clippy::cast_ptr_alignment)] // the lock area is 64-aligned (`shm::header`)
    pub(super) fn control(&self) -> &PubLine {
        // SAFETY: the lock area starts 64-aligned with at least 128 bytes (checked at open),
        // and everyone accesses the publisher's line through atomics only (`PubLine` is made of
        // `AtomicU64`s, valid for every bit pattern).
        unsafe { &*self.ch.structured().lock_ptr().cast::<PubLine>() }
    }

    /// The cursor lines of every attachment slot.
    #[allow(clippy::cast_ptr_alignment)] // the lock area is 64-aligned (`shm::header`)
    pub(super) fn subs(&self) -> &[SubLine] {
        let slots = self.ch.structured().geometry().attach_slots as usize;
        // SAFETY: the lock area holds `lock_area(slots)` bytes (checked at open): `slots` lines
        // of 128 bytes at SUBS_OFF, 64-aligned, inside the mapping that `self.ch` keeps alive;
        // every access to them is atomic (`SubLine` is made of `AtomicU64`s).
        unsafe {
            std::slice::from_raw_parts(
                self.ch
                    .structured()
                    .lock_ptr()
                    .add(SUBS_OFF as usize)
                    .cast::<SubLine>(),
                slots,
            )
        }
    }

    pub(super) fn g(&self) -> Geometry {
        self.ch.geometry()
    }

    pub(super) fn location(&self) -> &Location {
        self.ch.location()
    }

    pub(super) fn published_event(&self) -> EventCount<'_> {
        self.ch.event(PUBLISHED_OFF)
    }

    pub(super) fn room_event(&self) -> EventCount<'_> {
        self.ch.event(ROOM_OFF)
    }

    /// Marks `slot`'s line as holding no subscriber, for a process that just took the slot,
    /// and wakes a publisher that a dead predecessor's cursor may have held back.
    pub(super) fn take_slot(&self, slot: u32) {
        if let Some(line) = self.subs().get(slot as usize) {
            line.clear(true);
            self.room_event().notify(&OsFutex);
        }
    }

    /// This process's attachment slot (claiming a new one first after a fork).
    pub(super) fn own_slot(&self) -> Result<u32> {
        self.ch
            .structured()
            .attachment()
            .slot(&|s| self.take_slot(s))
    }

    /// Whether the process in `slot` is alive (an error counts as alive: a publisher never
    /// overwrites what a subscriber it could not check may still read).
    pub(super) fn is_alive(&self, slot: usize) -> bool {
        self.ch
            .structured()
            .attachment()
            .is_alive(slot as u32)
            .unwrap_or(true)
    }

    pub(super) fn corrupt(&self, c: Corrupt) -> Error {
        self.ch.corrupt(c)
    }
}
