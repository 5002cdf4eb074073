//! The attachment table: which processes are attached to a structured segment, and which of
//! them are still alive.
//!
//! This module owns the attachment area of a structured segment (offset and slot count come
//! from the validated [`Geometry`]). Each attaching process claims one slot by taking an
//! exclusive (write) OFD (open file description) lock, `fcntl(F_OFD_SETLK)`, on that slot's
//! byte of the segment's *lock file* (see `lockfile`: a file beside the segment that only those
//! who may write the segment can open, so a read-only opener can neither block a claim nor
//! fake one), through a file description of its own. The kernel drops the lock when the last
//! descriptor of that description closes, which happens when the process dies however it
//! dies. So "is the process in slot `i` alive?" is "does someone hold a write lock on slot
//! `i`'s byte?" (`F_OFD_GETLK` asked with a read lock, which only a write lock answers): no pid
//! is trusted (pids are reused), no timeout is guessed, and a stopped (`SIGSTOP`) process
//! still holds its lock and is alive.
//!
//! The slot records in memory are informational (for `memspace inspect` and debugging) except
//! `hwm`, which bounds scans; the lock is the only truth about liveness.
//!
//! # Encoding (at `attach_off`; native-endian)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `hwm` | u32 (atomic) | 1 + the highest slot index ever claimed (scans stop there; clamped to the slot count when read) |
//! | 4..64 | reserved | | 0 |
//! | 64 + 32·i + 0 | `pid` | u32 (atomic) | pid of the last claimer of slot i; 0 = never claimed |
//! | 64 + 32·i + 4 | `tid` | u32 | thread that claimed it |
//! | 64 + 32·i + 8 | `start_time` | u64 | claimer's start time (clock ticks after boot) |
//! | 64 + 32·i + 16 | `generation` | u64 (atomic) | incremented at every claim of slot i |
//! | 64 + 32·i + 24 | `attached_ns` | u64 | claim time, ns since the Unix epoch |
//!
//! The lock for slot i covers the single byte at `attach_off + 64 + 32·i` of the lock file
//! (the offset of the slot's record in the segment; the lock file itself stays empty).
//!
//! # fork
//!
//! A forked child shares its parent's open file descriptions, hence its slot locks. A handle
//! notices the fork (a generation counter bumped by a `pthread_atfork` child hook) and claims a
//! fresh slot through a fresh file description the first time it is used in the child; the
//! child never releases the parent's lock.

use std::fs::File;
use std::sync::Mutex as StdMutex;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::os;
use crate::shm::error::SegmentError;
use crate::shm::header::Geometry;
use crate::shm::segment::Segment;
use crate::sync::{AtomicU32, Ordering};

// The table's sizes are planned with the rest of the layout in `header`; re-exported here,
// where its records are described.
pub use crate::shm::header::{table_bytes, SLOT_SIZE, TABLE_HEADER};

/// Information about one slot, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot index.
    pub slot: u32,
    /// Pid of its last claimer (0 if never claimed).
    pub pid: u32,
    /// Whether a live process holds it now.
    pub alive: bool,
}

struct Claimed {
    file: File,
    slot: u32,
    fork_gen: u64,
}

/// This process's claim on one slot of a segment's attachment table.
///
/// Dropping it releases the slot (unless the process forked since the claim: then the lock
/// belongs to the parent and is left alone).
pub struct Attachment {
    base: *mut u8,
    attach_off: u64,
    slots: u32,
    location: Location,
    // The fast path reads these two without locking `claimed`.
    slot: AtomicU32,
    fork_gen: crate::sync::AtomicU64,
    claimed: StdMutex<Claimed>,
}

// SAFETY: `base` points into a mapping that outlives the attachment (the owner keeps the
// Segment alive and drops the Attachment first); all shared accesses are atomic or copies.
unsafe impl Send for Attachment {}
// SAFETY: as above; the mutable part is behind a std Mutex.
unsafe impl Sync for Attachment {}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SYNC: Relaxed: a debugging snapshot, pairs with nothing.
        let slot = self.slot.load(Ordering::Relaxed);
        f.debug_struct("Attachment")
            .field("location", &self.location)
            .field("slot", &slot)
            .finish_non_exhaustive()
    }
}

fn lock_byte(attach_off: u64, slot: u32) -> u64 {
    attach_off + TABLE_HEADER + u64::from(slot) * SLOT_SIZE as u64
}

impl Attachment {
    /// Claims a free slot of `seg`'s table (laid out per `geo`), locking it in `lock_file`
    /// (the segment's lock file). `on_claim(slot)` runs after the lock is held and before the
    /// attachment is returned: kinds use it to clear per-slot state a dead previous holder
    /// left behind.
    ///
    /// # Safety
    /// `seg` must outlive the returned attachment, and `geo` must be `seg`'s validated
    /// geometry.
    pub unsafe fn claim(
        seg: &Segment,
        lock_file: &File,
        geo: &Geometry,
        on_claim: &dyn Fn(u32),
    ) -> Result<Attachment> {
        os::install_fork_hook();
        let fork_gen = crate::sync::fork_generation();
        let (file, slot) = claim_slot(lock_file, seg.location(), seg.as_ptr(), geo)?;
        let a = Attachment {
            base: seg.as_ptr(),
            attach_off: geo.attach_off,
            slots: geo.attach_slots,
            location: seg.location().clone(),
            slot: AtomicU32::new(slot),
            fork_gen: crate::sync::AtomicU64::new(fork_gen),
            claimed: StdMutex::new(Claimed {
                file,
                slot,
                fork_gen,
            }),
        };
        on_claim(slot);
        Ok(a)
    }

    /// This process's slot, claiming a new one first if the process forked since the last
    /// claim (`on_claim` as in [`Attachment::claim`]).
    pub fn slot(&self, on_claim: &dyn Fn(u32)) -> Result<u32> {
        let now = crate::sync::fork_generation();
        // SYNC: Acquire pairs with the Release store below (another thread of this process
        // re-claimed after fork); `slot` is then the new claim's.
        if self.fork_gen.load(Ordering::Acquire) == now {
            // SYNC: Relaxed: ordered by the Acquire load of `fork_gen` above.
            return Ok(self.slot.load(Ordering::Relaxed));
        }
        let mut c = self
            .claimed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.fork_gen != now {
            let geo_like = (self.attach_off, self.slots);
            let (file, slot) = claim_slot_raw(&c.file, &self.location, self.base, geo_like)?;
            // The old file description is shared with the parent: closing our descriptor of
            // it does not release the parent's lock.
            *c = Claimed {
                file,
                slot,
                fork_gen: now,
            };
            // SYNC: Relaxed; published by the Release store of `fork_gen` just below.
            self.slot.store(slot, Ordering::Relaxed);
            // SYNC: Release pairs with the Acquire load at the top of this function.
            self.fork_gen.store(now, Ordering::Release);
            on_claim(slot);
        }
        Ok(c.slot)
    }

    /// Number of slots in the table.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// 1 + the highest slot index ever claimed, clamped to the table size (the value in
    /// memory is untrusted).
    pub fn high_water_mark(&self) -> u32 {
        // SAFETY: `attach_off` is 64-aligned inside the mapping (validated geometry).
        let hwm = unsafe { crate::sync::atomic_u32(self.base.add(self.attach_off as usize)) };
        // SYNC: Acquire pairs with the Release `fetch_max` in `claim_slot_raw`; a slot claimed
        // concurrently and not yet counted cannot hold any per-slot state yet.
        hwm.load(Ordering::Acquire).min(self.slots)
    }

    /// Whether the process in `slot` is alive (holds its slot lock). Our own slot is alive.
    pub fn is_alive(&self, slot: u32) -> Result<bool> {
        if slot >= self.slots {
            return Ok(false);
        }
        let c = self
            .claimed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.fork_gen == crate::sync::fork_generation() && c.slot == slot {
            return Ok(true);
        }
        os::ofd_is_locked(&c.file, lock_byte(self.attach_off, slot), 1).map_err(|e| {
            Error::Segment(SegmentError::Os {
                op: "fcntl(F_OFD_GETLK)",
                location: self.location.clone(),
                source: e,
            })
        })
    }

    /// Every slot ever claimed, with its last pid and liveness.
    pub fn snapshot(&self) -> Result<Vec<SlotInfo>> {
        let mut out = Vec::new();
        for slot in 0..self.high_water_mark() {
            let off = self.attach_off as usize + TABLE_HEADER as usize + slot as usize * SLOT_SIZE;
            // SAFETY: the slot record lies inside the validated attachment area.
            let pid = unsafe { crate::sync::atomic_u32(self.base.add(off)) };
            out.push(SlotInfo {
                slot,
                // SYNC: Relaxed: informational only.
                pid: pid.load(Ordering::Relaxed),
                alive: self.is_alive(slot)?,
            });
        }
        Ok(out)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let c = self
            .claimed
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.fork_gen == crate::sync::fork_generation() {
            // Closing the file would drop the lock too; unlock explicitly to be sure even if
            // another descriptor of this description exists.
            let _ = os::ofd_unlock(&c.file, lock_byte(self.attach_off, c.slot), 1);
        }
    }
}

fn claim_slot(
    lock_file: &File,
    location: &Location,
    base: *mut u8,
    geo: &Geometry,
) -> Result<(File, u32)> {
    claim_slot_raw(
        lock_file,
        location,
        base,
        (geo.attach_off, geo.attach_slots),
    )
}

fn claim_slot_raw(
    any_file: &File,
    location: &Location,
    base: *mut u8,
    (attach_off, slots): (u64, u32),
) -> Result<(File, u32)> {
    let os_err = |op: &'static str, e| {
        Error::Segment(SegmentError::Os {
            op,
            location: location.clone(),
            source: e,
        })
    };
    // A file description of our own: locks through it are ours alone (not shared with other
    // handles of this process, nor with a parent after fork).
    let file = os::reopen(any_file).map_err(|e| os_err("reopen", e))?;
    for slot in 0..slots {
        if !os::ofd_try_lock(&file, lock_byte(attach_off, slot), 1)
            .map_err(|e| os_err("fcntl(F_OFD_SETLK)", e))?
        {
            continue;
        }
        let rec = attach_off as usize + TABLE_HEADER as usize + slot as usize * SLOT_SIZE;
        let pid = os::getpid();
        // SAFETY: the record lies inside the validated attachment area of the live mapping;
        // we hold the slot's lock, so no other process writes this record now.
        unsafe {
            let p = base.add(rec);
            std::ptr::write_unaligned(p.add(4).cast::<u32>(), os::gettid());
            std::ptr::write_unaligned(p.add(8).cast::<u64>(), os::process_start_time(pid));
            std::ptr::write_unaligned(
                p.add(24).cast::<u64>(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            );
            // SYNC: Relaxed: informational counter.
            crate::sync::atomic_u64(p.add(16)).fetch_add(1, Ordering::Relaxed);
            // SYNC: Release pairs with Relaxed readers in `snapshot` (informational).
            crate::sync::atomic_u32(p).store(pid, Ordering::Release);
            // SYNC: Release pairs with the Acquire load in `high_water_mark`.
            crate::sync::atomic_u32(base.add(attach_off as usize))
                .fetch_max(slot + 1, Ordering::Release);
        }
        return Ok((file, slot));
    }
    Err(Error::Segment(SegmentError::AttachmentTableFull {
        location: location.clone(),
        slots,
    }))
}

/// Whether any process holds a write lock on any of `len` bytes at `offset` of `lock_file`,
/// the lock file of the segment at `location` (`len` 0: to the end of time). Opens its own
/// description, so it sees everyone, this process included. Used by `rm --stale` and the
/// channels' role checks.
pub fn anyone_locks(lock_file: &File, location: &Location, offset: u64, len: u64) -> Result<bool> {
    let file = os::reopen(lock_file).map_err(|e| {
        Error::Segment(SegmentError::Os {
            op: "reopen",
            location: location.clone(),
            source: e,
        })
    })?;
    os::ofd_is_locked(&file, offset, len).map_err(|e| {
        Error::Segment(SegmentError::Os {
            op: "fcntl(F_OFD_GETLK)",
            location: location.clone(),
            source: e,
        })
    })
}
