//! The queue's segment: the layout of its lock area, the identity of a process in a record
//! (attachment slot + generation), and the producer and consumer locks.
//!
//! This module owns the lock area of a queue segment and the meaning of its generations; the
//! protocol over the control block and the data area is [`core`](super::core)'s, the waiting
//! and the public handle [`queue`](super::queue)'s. It never interprets payloads.
//!
//! # Layout (kind [`Kind::Queue`]; offsets from the lock area, native-endian)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `head` | u64 (atomic) | end of the space claimed by producers |
//! | 8 | `puts` | u64 (atomic) | messages claimed (advisory, for `len`) |
//! | 128 | `cpos` | u64 (atomic) | the next record to hand to a consumer |
//! | 136 | `gets` | u64 (atomic) | messages taken (advisory) |
//! | 256 | `tail` | u64 (atomic) | end of the space handed back to producers |
//! | 384 | `not_empty` | eventcount (2 × u32) | consumers sleep here; a commit wakes them |
//! | 448 | `not_full` | eventcount (2 × u32) | producers sleep here; reclaiming wakes them |
//! | 512 | P-lock | robust mutex (128 bytes, see [`crate::lock::mutex`]) | serialises claims |
//! | 640 | C-lock | robust mutex (128 bytes) | serialises takes |
//! | 768 | `gens[slots]` | u32 (atomic) each | claim generation of each attachment slot |
//!
//! The data area is the byte ring (`capacity` bytes, a power of two); the header's
//! `kind_param` is `max_message_size`. A process that attaches takes an attachment slot, then
//! increments that slot's generation: records that name the slot with an older generation
//! belong to a dead predecessor (see [`core`](super::core) for the record encoding).
//!
//! [`Kind::Queue`]: crate::shm::header::Kind::Queue

use std::time::Instant;

use super::core::{self as qcore, Control, Owner};
use crate::channel::frame::MapRegion;
use crate::channel::geometry::Geometry;
use crate::channel::segment::ChannelSegment;
use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::error::LockError;
use crate::lock::mutex::{self, Interrupt, RobustMutex};
use crate::shm::error::SegmentError;
use crate::shm::segment::Segment;
use crate::shm::structured::Structured;
use crate::sync::{AtomicU32, Ordering};

/// Eventcount consumers sleep on.
pub(crate) const NOT_EMPTY_OFF: usize = 384;
/// Eventcount producers sleep on.
pub(crate) const NOT_FULL_OFF: usize = 448;
const P_LOCK_OFF: u64 = 512;
const C_LOCK_OFF: u64 = 640;
const GENS_OFF: u64 = 768;

/// Bytes of the lock area of a queue with `slots` attachment slots.
pub(crate) fn lock_area(slots: u32) -> u64 {
    (GENS_OFF + 4 * u64::from(slots)).next_multiple_of(64)
}

/// Initialises the lock area of a new queue segment (creator only). The segment is
/// zero-filled: positions, counters, eventcounts and generations start at 0; only the two
/// mutexes need initialising.
pub(crate) fn init(seg: &Segment, geo: &crate::shm::header::Geometry) -> Result<()> {
    mutex::init_area(seg, geo.lock_off + P_LOCK_OFF)?;
    mutex::init_area(seg, geo.lock_off + C_LOCK_OFF)
}

/// What a queue handle and its clones share: the channel segment and its two locks.
pub(crate) struct Shared {
    pub(crate) ch: ChannelSegment,
    pub(crate) p_lock: RobustMutex,
    pub(crate) c_lock: RobustMutex,
}

// SAFETY: the raw pointers inside point into the mapping that `ch` keeps alive; every access
// through them is atomic or a copy into space the protocol gives the caller exclusively.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Attaches to the queue in `st`, whose data area has geometry `g`: counts this process's
    /// slot as a new generation and validates the positions and both locks.
    pub(crate) fn attach(st: Structured, g: Geometry) -> Result<Shared> {
        // SAFETY: both mutex areas lie inside the validated lock area (offsets above,
        // `lock_area` checked at attach), 64-aligned, and live as long as `st`.
        let (p_lock, c_lock) = unsafe {
            (
                RobustMutex::at(st.lock_ptr().add(P_LOCK_OFF as usize)),
                RobustMutex::at(st.lock_ptr().add(C_LOCK_OFF as usize)),
            )
        };
        let shared = Shared {
            ch: ChannelSegment::new(st, g),
            p_lock,
            c_lock,
        };
        let st = shared.ch.structured();
        let slot = st.attachment().slot(&|_| {})?;
        shared.bump_gen(slot);
        shared.q().validate().map_err(|c| shared.ch.corrupt(c))?;
        for m in [p_lock, c_lock] {
            m.validate().map_err(|r| st.corrupt(r))?;
        }
        Ok(shared)
    }

    /// The geometry of the queue in `st` (just opened), refused unless it is one this layout
    /// can hold.
    pub(crate) fn geometry_of(st: &Structured) -> Result<Geometry> {
        let geo = *st.geometry();
        Geometry::new(geo.data_size, geo.kind_param)
            .filter(|_| {
                geo.attach_slots <= qcore::MAX_SLOTS && geo.lock_size >= lock_area(geo.attach_slots)
            })
            .ok_or_else(|| {
                Error::Segment(SegmentError::IncompatibleLayout {
                    location: st.location().clone(),
                    reason: format!(
                    "a queue of {} bytes with max_message_size {}, {} slots and a {}-byte lock \
                     area is not a valid queue geometry",
                    geo.data_size, geo.kind_param, geo.attach_slots, geo.lock_size
                ),
                })
            })
    }

    pub(crate) fn control(&self) -> &Control {
        // SAFETY: the lock area starts 64-aligned with at least 384 bytes for the control
        // block, accessed by everyone through atomics only.
        unsafe { Control::from_ptr(self.ch.structured().lock_ptr()) }
    }

    pub(crate) fn q(&self) -> qcore::Queue<'_, MapRegion> {
        qcore::Queue {
            g: self.ch.geometry(),
            ctl: self.control(),
            region: self.ch.region(),
        }
    }

    fn gen_word(&self, slot: u32) -> Option<&AtomicU32> {
        (slot < self.ch.structured().geometry().attach_slots).then(|| {
            self.ch
                .lock_word32((GENS_OFF + 4 * u64::from(slot)) as usize)
        })
    }

    fn bump_gen(&self, slot: u32) {
        if let Some(w) = self.gen_word(slot) {
            // SYNC: Release pairs with the Acquire load in `is_dead`: a process that sees the
            // new generation knows the slot changed hands.
            w.fetch_add(1, Ordering::Release);
        }
    }

    /// This process's identity in records (claiming a new slot first after a fork).
    pub(crate) fn owner(&self) -> Result<Owner> {
        let st = self.ch.structured();
        let slot = st.attachment().slot(&|s| self.bump_gen(s))?;
        let w = self
            .gen_word(slot)
            .ok_or_else(|| st.corrupt(format!("attachment slot {slot} outside the table")))?;
        Ok(Owner {
            slot,
            // SYNC: Relaxed: our own slot's word, which only we change while we hold it.
            gen: w.load(Ordering::Relaxed) as u16,
        })
    }

    /// Whether the process that wrote `o` into a record is gone: its slot is unheld, or held
    /// by a later process (another generation). A stopped process is alive.
    pub(crate) fn is_dead(&self, o: Owner, check_os: bool) -> bool {
        let Some(w) = self.gen_word(o.slot) else {
            return true;
        };
        // SYNC: Acquire pairs with the Release increment in `bump_gen`.
        if w.load(Ordering::Acquire) as u16 != o.gen {
            return true;
        }
        check_os
            && !self
                .ch
                .structured()
                .attachment()
                .is_alive(o.slot)
                .unwrap_or(true)
    }

    pub(crate) fn location(&self) -> &Location {
        self.ch.location()
    }

    /// Locks `m`, waiting until `until` at most (`None`: not at all, one compare-and-swap
    /// and no syscall; a passed `until`: one try, which takes over from a gone holder).
    /// `Ok(None)` if another holder kept it.
    ///
    /// `owner_died` needs no repair: every prefix of a critical section is consistent (see
    /// the core's docs), so the flag is only informative and dropped here.
    pub(crate) fn lock(
        &self,
        m: RobustMutex,
        slot: u32,
        until: Option<Instant>,
        interrupt: Interrupt<'_>,
        what: &'static str,
    ) -> Result<Option<()>> {
        let st = self.ch.structured();
        let Some(until) = until else {
            return Ok(m.lock_now(st, slot, self.location(), what)?.then_some(()));
        };
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return Ok(m.try_lock(st, slot, self.location(), what)?.map(|_| ()));
        }
        match m.lock(st, slot, Some(timeout), interrupt, self.location(), what) {
            Ok(_) => Ok(Some(())),
            Err(Error::Lock(LockError::Timeout { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn unlock(&self, m: RobustMutex, what: &'static str) -> Result<()> {
        m.unlock(self.location(), what)
    }
}
