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
//! | T | `done` | eventcount (2 × u32) | `join` sleeps here; `task_done` wakes it |
//! | T + 8 | `lost` | u64 (atomic) | tasks settled as lost with a consumer that died holding them |
//! | T + 64 | `tasks[slots]` | u64 (atomic) each | per slot: generation (high 16 bits), messages taken and not yet `task_done` (low 48) |
//!
//! `T` = `768 + 4 × slots` rounded up to 64. The task accounting (`T` onwards) came with
//! layout 2.1; a queue of layout 2.0 (whose lock area ends at `T`) is still opened and used,
//! and only `task_done`/`join` refuse it.
//!
//! The data area is the byte ring (`capacity` bytes, a power of two); the header's
//! `kind_param` is `max_message_size`. A process that attaches takes an attachment slot, then
//! increments that slot's generation: records that name the slot with an older generation
//! belong to a dead predecessor (see [`core`](super::core) for the record encoding).
//!
//! # Task accounting (`task_done` and `join`)
//!
//! A consumer adds the messages it takes to its slot's task word under the C-lock, in the
//! same critical section that moves them out of the queue, and `task_done` takes one off (the
//! slot's owner alone changes its count while it lives). `join` is done when, under the C-lock,
//! no task is left in the queue ([`has_tasks`](super::core::Queue::has_tasks)) and, after it,
//! every slot's count is zero: a take is either before that critical section (and counted in
//! its slot) or after it (and then of a message committed after the look). A count whose
//! owner is dead is *settled*: moved to `lost` by a compare-exchange that names the dead
//! generation, so that exactly one of the settlers (a `join`, or the next process to take the
//! slot, which settles it when it bumps the generation) counts it, and a new owner's count is
//! never taken for its predecessor's.
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
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Eventcount consumers sleep on.
pub(crate) const NOT_EMPTY_OFF: usize = 384;
/// Eventcount producers sleep on.
pub(crate) const NOT_FULL_OFF: usize = 448;
const P_LOCK_OFF: u64 = 512;
const C_LOCK_OFF: u64 = 640;
const GENS_OFF: u64 = 768;

/// Where the task accounting starts (the end of a layout 2.0 lock area).
fn tasks_off(slots: u32) -> u64 {
    (GENS_OFF + 4 * u64::from(slots)).next_multiple_of(64)
}
/// From the task accounting: the `done` eventcount, `lost`, the per-slot task words.
const DONE_REL: u64 = 0;
const LOST_REL: u64 = 8;
const TASKS_REL: u64 = 64;
/// Low bits of a task word: the count.
const COUNT_MASK: u64 = (1 << 48) - 1;

/// Bytes of the lock area of a queue with `slots` attachment slots.
pub(crate) fn lock_area(slots: u32) -> u64 {
    (tasks_off(slots) + TASKS_REL + 8 * u64::from(slots)).next_multiple_of(64)
}

/// The lock area of a layout 2.0 queue (no task accounting): opened, without `join`.
pub(crate) fn lock_area_2_0(slots: u32) -> u64 {
    tasks_off(slots)
}

fn task_word(gen: u16, count: u64) -> u64 {
    (u64::from(gen) << 48) | (count & COUNT_MASK)
}

fn task_gen(w: u64) -> u16 {
    (w >> 48) as u16
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
    /// Offset of the task accounting, if the layout has it (2.1 on).
    tasks: Option<u64>,
}

/// What `task_done` found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskDone {
    /// One task fewer.
    Done,
    /// This slot has no task left: more `task_done` calls than messages taken.
    TooMany,
}

impl crate::channel::signal::SignalSource for Shared {
    fn channel(&self) -> &ChannelSegment {
        &self.ch
    }
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
        let geo = *st.geometry();
        let tasks =
            (geo.lock_size >= lock_area(geo.attach_slots)).then(|| tasks_off(geo.attach_slots));
        let shared = Shared {
            ch: ChannelSegment::new(st, g),
            p_lock,
            c_lock,
            tasks,
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
                geo.attach_slots <= qcore::MAX_SLOTS
                    && geo.lock_size >= lock_area_2_0(geo.attach_slots)
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
            let gen = w.fetch_add(1, Ordering::Release).wrapping_add(1) as u16;
            // The slot's task count is ours from now on: what our dead predecessor left is
            // lost with it (unless a join settled it first; see the module docs).
            if let Some(t) = self.task_word(slot) {
                let old = t.swap(task_word(gen, 0), Ordering::SeqCst);
                self.add_lost(old & COUNT_MASK);
            }
        }
    }

    /// The task word of `slot` (`None` without task accounting, or outside the table).
    fn task_word(&self, slot: u32) -> Option<&AtomicU64> {
        let base = self.tasks?;
        (slot < self.ch.structured().geometry().attach_slots).then(|| {
            self.ch
                .lock_word64((base + TASKS_REL + 8 * u64::from(slot)) as usize)
        })
    }

    fn add_lost(&self, n: u64) {
        if n > 0 {
            if let Some(base) = self.tasks {
                // SYNC: Relaxed: a statistic, read by `info` only.
                self.ch
                    .lock_word64((base + LOST_REL) as usize)
                    .fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Whether the layout has task accounting (2.1 on).
    pub(crate) fn has_tasks(&self) -> bool {
        self.tasks.is_some()
    }

    /// The eventcount `join` sleeps on (`None` without task accounting).
    pub(crate) fn done_event(&self) -> Option<crate::lock::eventcount::EventCount<'_>> {
        self.tasks
            .map(|base| self.ch.event((base + DONE_REL) as usize))
    }

    /// Offset of the `done` eventcount in the lock area, for a [`Signal`](crate::Signal).
    pub(crate) fn done_offset(&self) -> Option<usize> {
        self.tasks.map(|base| (base + DONE_REL) as usize)
    }

    /// Adds `n` messages taken by `owner` to its slot's count. Caller holds the C-lock (the
    /// same critical section as the take). A word of another generation (corrupt) is left
    /// alone; the count saturates instead of spilling into the generation.
    pub(crate) fn took(&self, owner: Owner, n: u64) {
        let Some(t) = self.task_word(owner.slot) else {
            return;
        };
        // SYNC: SeqCst, as every access of the task words: a settler's compare-exchange and
        // this update are ordered one way or the other.
        let _ = t.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
            (task_gen(w) == owner.gen).then(|| {
                task_word(
                    owner.gen,
                    (w & COUNT_MASK).saturating_add(n).min(COUNT_MASK),
                )
            })
        });
    }

    /// Takes one task off `owner`'s count.
    pub(crate) fn task_done(&self, owner: Owner) -> TaskDone {
        let Some(t) = self.task_word(owner.slot) else {
            return TaskDone::TooMany;
        };
        // SYNC: SeqCst, see `took`.
        let r = t.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
            (task_gen(w) == owner.gen && w & COUNT_MASK > 0).then(|| w - 1)
        });
        match r {
            Ok(_) => TaskDone::Done,
            Err(_) => TaskDone::TooMany,
        }
    }

    /// Settles the counts of dead slots into `lost` and returns the sum of the live ones
    /// (each live count is a liveness check: a system call).
    pub(crate) fn unfinished_taken(&self) -> u64 {
        let slots = self.ch.structured().geometry().attach_slots;
        let mut live = 0u64;
        for slot in 0..slots {
            let Some(t) = self.task_word(slot) else {
                return 0;
            };
            // SYNC: SeqCst, see `took`.
            let w = t.load(Ordering::SeqCst);
            let count = w & COUNT_MASK;
            if count == 0 {
                continue;
            }
            let owner = Owner {
                slot,
                gen: task_gen(w),
            };
            if !self.is_dead(owner, true) {
                live = live.saturating_add(count);
                continue;
            }
            // SYNC: SeqCst, see `took`. Fails if the owner's successor settled it first
            // (it bumped the generation), or a concurrent join did: never counted twice.
            if t.compare_exchange(
                w,
                task_word(owner.gen, 0),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
            {
                self.add_lost(count);
            }
        }
        live
    }

    /// Whether some slot holds tasks and its generation is still the one that took them (a
    /// hint that tasks are left: reads only, no liveness check).
    pub(crate) fn tasks_look_held(&self) -> bool {
        let slots = self.ch.structured().geometry().attach_slots;
        (0..slots).any(|slot| {
            let (Some(t), Some(g)) = (self.task_word(slot), self.gen_word(slot)) else {
                return false;
            };
            // SYNC: SeqCst, see `took`; Acquire for the generation (a hint only).
            let w = t.load(Ordering::SeqCst);
            w & COUNT_MASK > 0 && task_gen(w) == g.load(Ordering::Acquire) as u16
        })
    }

    /// Tasks settled as lost so far (0 without task accounting).
    pub(crate) fn tasks_lost(&self) -> u64 {
        self.tasks.map_or(0, |base| {
            // SYNC: Relaxed: a statistic.
            self.ch
                .lock_word64((base + LOST_REL) as usize)
                .load(Ordering::Relaxed)
        })
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
