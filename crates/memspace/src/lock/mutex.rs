//! The robust, process-shared mutex, in its own segment ([`Mutex`]) or embedded in another
//! kind's lock area (the crate-private `RobustMutex`, e.g. as an rwlock's writer lock or a
//! queue's producer and consumer locks).
//!
//! This module owns a 128-byte mutex area and the protocol over its one futex word. It is
//! memspace's own protocol, not glibc's robust `pthread_mutex_t`: glibc keeps the links of its
//! robust list inside the shared mutex and writes through them on unlock, so a stray write by
//! any process that can write the segment became a write through a wild pointer in the holder
//! (and macOS has no robust pthread mutexes at all). Here **nothing read from shared memory is
//! ever used as an address**: the word is decoded, range-checked, and compared.
//!
//! # Protocol
//!
//! The word names its holder by attachment slot and that slot's claim generation (the
//! attachment table's per-slot counter, bumped by every process that claims the slot):
//!
//! - **lock**: one compare-and-swap of the word from 0 to `me` (the fast path). If that fails,
//!   spin briefly, then set the `WAITERS` bit and sleep on the word (futex) in slices. A
//!   waiter that has slept acquires with `WAITERS` set (another may still sleep).
//! - **unlock**: one compare-and-swap from `me` to 0; only if that fails because `WAITERS` is
//!   set, a compare-and-swap from `me | WAITERS` to 0 and a futex wake of one waiter. A word
//!   that names anyone else is corruption: it is left alone and reported (the lock is not
//!   released by writing over another holder).
//! - **takeover**: a waiter checks the holder's liveness once per [`PROBE_SLICE`] (20 ms) of
//!   waiting (not before its first sleep, so that contention between live processes costs no
//!   extra syscall). The holder is *gone* when the slot's generation in the table
//!   is no longer the word's (the slot was released and claimed again), or when no process
//!   holds the slot's liveness lock (the attachment table's OFD lock, which the kernel drops
//!   when a process dies however it dies). The waiter then takes the lock over with a
//!   compare-and-swap from exactly the word it observed to `me | WAITERS`, and is told
//!   `owner_died`. A stopped (`SIGSTOP`) process still holds its liveness lock: it is alive and
//!   never taken over. A dead holder is therefore replaced within about 20 ms (plus the
//!   kernel's exit), well within the 100 ms promise.
//! - **try-lock**: the compare-and-swap, and if the word is held, the liveness check (a
//!   syscall) with a takeover if the holder is gone, as glibc's `trylock` returned
//!   `EOWNERDEAD`; `RobustMutex::lock_now` is the compare-and-swap alone.
//!
//! No lost wake-up: the `WAITERS` bit lives in the word itself, so setting it, the futex's
//! "sleep only while the word is still `v | WAITERS`" and the unlocker's compare-and-swap are
//! all operations on one location, totally ordered. A waiter that was woken and then gives up
//! (timeout, interrupt) passes the wake on. The protocol is model-checked with loom (the
//! `loom_*` tests below: contention, a dead holder's takeover with liveness as a model
//! function, unlock waking a sleeper) and runs under Miri on heap memory (`heap_*` tests).
//!
//! # Who holds it (process-local)
//!
//! Reentrancy ([`LockError::WouldDeadlock`]) and release by a non-holder ([`LockError::NotHeld`])
//! are decided from a thread-local list of the areas this thread holds (with the fork
//! generation and the identity written), never from shared memory: a hostile write cannot make
//! a thread believe it holds a lock. The word's holder is a *handle* (an attachment slot), so
//! a thread that exits while holding leaves the lock held by its process until the handle is
//! closed or dropped, or the process exits; then the next holder is told `owner_died` (see
//! the crate's lock module docs, "Limits").
//!
//! # Encoding of the mutex area (128 bytes, 64-aligned)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `word` | u32 (atomic, futex word) | 0 = free; else see below |
//! | 4..72 | reserved | | 0 |
//! | 72 | `magic` | u32 | `0x3258_4d52` ("RMX2"), written at init, checked at open |
//! | 76..128 | reserved | | 0 |
//!
//! The word, when not 0:
//!
//! | bits | field | meaning |
//! |---|---|---|
//! | 0..12 | `slot + 1` | the holder's attachment slot + 1 (1..=4095); must name a slot of the table |
//! | 12..31 | `gen` | the low 19 bits of that slot's claim generation when the holder locked |
//! | 31 | `WAITERS` | someone may sleep on the word: the unlocker must wake one |
//!
//! A non-zero word whose slot field is 0, or names a slot outside the table, is corrupt
//! ([`SegmentError::Corrupt`]); any other value is a holder, live (waiters wait, up to their
//! timeout) or gone (taken over). So garbage written by another process leads at worst to a
//! timeout, a takeover or a `Corrupt` error. A live holder whose generation happens to match
//! garbage, or a dead one whose slot was claimed again exactly 2^19 times while it stayed
//! held, is not recognised as gone until that slot's process exits.
//!
//! The area of layout 1 (glibc's `pthread_mutex_t`, magic `"RMTX"`) is not compatible: the
//! header's layout major version was bumped to 2 with this encoding, and an area with the old
//! magic is refused by name.

use std::cell::RefCell;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::error::LockError;
use crate::lock::eventcount::{Futex, OsFutex};
use crate::shm::error::SegmentError;
use crate::shm::header::{Kind, LayoutRequest, MAX_ATTACH_SLOTS};
use crate::shm::segment::{OpenTarget, Segment};
use crate::shm::structured::Structured;
use crate::sync::{spin_loop, AtomicU32, Ordering};

/// Bytes of a mutex area.
pub const MUTEX_AREA: u64 = 128;
/// Longest single sleep inside a lock wait; the interrupt check runs between slices.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);
/// How often a waiter checks whether the holder is gone (and runs the interrupt check).
pub const PROBE_SLICE: Duration = Duration::from_millis(20);
const MAGIC: u32 = 0x3258_4d52; // "RMX2"
const OLD_MAGIC: u32 = 0x5854_4d52; // "RMTX": layout 1, a glibc pthread_mutex_t
const WORD_OFF: usize = 0;
const MAGIC_OFF: usize = 72;

/// Default number of attachment slots of a lock segment.
pub const DEFAULT_SLOTS: u32 = 64;

/// An interrupt check run between wait slices: return `true` to abandon the wait with
/// [`Error::Interrupted`].
pub type Interrupt<'a> = &'a mut dyn FnMut() -> bool;

// ---------------------------------------------------------------------------------------------
// The word.

/// Set while someone may sleep on the word.
const WAITERS: u32 = 1 << 31;
const SLOT_BITS: u32 = 12;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
const GEN_BITS: u32 = 19;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
const _: () = assert!(MAX_ATTACH_SLOTS < SLOT_MASK);
const _: () = assert!(SLOT_BITS + GEN_BITS == 31);

/// Spins (re-reading the word) before the first sleep, about a microsecond: a running holder
/// keeps the queue's locks for well under that (a futex sleep/wake costs tens), and one that
/// keeps it longer has been descheduled, when spinning only takes the CPU it needs.
#[cfg(not(loom))]
const SPIN: u32 = 32;
// Under loom a spin is a yield, which would keep the waiter from running until every other
// thread is blocked and hide the interleavings where it sleeps before the unlock.
#[cfg(loom)]
const SPIN: u32 = 0;

/// A holder's identity as the word stores it: `slot + 1` in the low 12 bits, the generation
/// above; never 0, never with `WAITERS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder(u32);

impl Holder {
    /// The identity of the handle in attachment `slot` whose claim generation is `gen`.
    pub(crate) fn new(slot: u32, gen: u64) -> Holder {
        debug_assert!(slot < SLOT_MASK);
        Holder(((slot + 1) & SLOT_MASK) | (((gen as u32) & GEN_MASK) << SLOT_BITS))
    }

    /// The attachment slot.
    pub(crate) fn slot(self) -> u32 {
        (self.0 & SLOT_MASK) - 1
    }

    /// The low bits of the slot's claim generation.
    pub(crate) fn generation(self) -> u32 {
        self.0 >> SLOT_BITS
    }

    fn bits(self) -> u32 {
        self.0
    }
}

/// A decoded word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Free,
    Held { holder: Holder, waiters: bool },
    Invalid,
}

fn decode(v: u32) -> Word {
    if v == 0 {
        Word::Free
    } else if v & SLOT_MASK == 0 {
        Word::Invalid
    } else {
        Word::Held {
            holder: Holder(v & !WAITERS),
            waiters: v & WAITERS != 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The protocol over one word.

/// Why an acquisition failed, before the caller words it.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The deadline passed.
    Timeout,
    /// The interrupt check asked to stop.
    Interrupted,
    /// The word holds an impossible value (the reason says which).
    Corrupt(String),
    /// Asking for a holder's liveness failed.
    Other(Error),
}

/// Whether the holder a word names is gone (the attachment table, or a model under loom).
pub(crate) trait Owners {
    /// `Ok(true)` if the process that wrote `h` is gone: its slot is held by a later claimer
    /// (another generation) or by nobody. A stopped process is not gone. A slot outside the
    /// table is [`Fault::Corrupt`].
    fn is_gone(&self, h: Holder) -> std::result::Result<bool, Fault>;
}

/// The clock of the waits (none under loom, where no model has a deadline).
fn now() -> Duration {
    #[cfg(not(loom))]
    {
        crate::os::monotonic_now()
    }
    #[cfg(loom)]
    {
        Duration::ZERO
    }
}

/// The protocol (see the module docs) over one word, a futex and the holders' liveness.
pub(crate) struct WordLock<'a, O, F> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) owners: &'a O,
    pub(crate) futex: &'a F,
}

impl<O: Owners, F: Futex> WordLock<'_, O, F> {
    /// The fast path: one compare-and-swap from free to `me`.
    pub(crate) fn try_fast(&self, me: Holder) -> bool {
        // SYNC: AcqRel. Acquire pairs with the Release compare-and-swap in `unlock`: what the
        // previous holder wrote under the lock is visible to us. Release pairs with the Acquire
        // loads of the word by waiters: one that sees `me` sees our slot's claim generation
        // (written by our claim, before this), so it never judges us gone by a stale one.
        self.word
            .compare_exchange(0, me.bits(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock over from the gone holder of `observed`. True if ours now.
    fn take_over(&self, observed: u32, me: Holder) -> bool {
        // SYNC: AcqRel, as in `try_fast`. From exactly the word we judged: if anything changed
        // since, the judgement is void.
        self.word
            .compare_exchange(
                observed,
                me.bits() | WAITERS,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// One attempt that never sleeps: `Ok(Some(owner_died))` if acquired (taking over from a
    /// gone holder), `Ok(None)` if a live holder has it.
    pub(crate) fn try_lock(&self, me: Holder) -> std::result::Result<Option<bool>, Fault> {
        loop {
            // SYNC: AcqRel as in `try_fast`; Acquire on failure, as the waiters' loads in
            // `lock`: the holder we judge published its claim generation before this word.
            let Err(v) =
                self.word
                    .compare_exchange(0, me.bits(), Ordering::AcqRel, Ordering::Acquire)
            else {
                return Ok(Some(false));
            };
            match decode(v) {
                Word::Free => {}
                Word::Invalid => return Err(invalid(v)),
                Word::Held { holder, .. } => {
                    if !self.owners.is_gone(holder)? {
                        return Ok(None);
                    }
                    if self.take_over(v, me) {
                        return Ok(Some(true));
                    }
                }
            }
        }
    }

    /// Locks, waiting at most `timeout` (`None`: forever), running `interrupt` once per probe
    /// slice. Returns `owner_died`.
    pub(crate) fn lock(
        &self,
        me: Holder,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> std::result::Result<bool, Fault> {
        if self.try_fast(me) {
            return Ok(false);
        }
        for _ in 0..SPIN {
            // SYNC: Relaxed: only a hint; the compare-and-swap below is what acquires.
            if self.word.load(Ordering::Relaxed) == 0 && self.try_fast(me) {
                return Ok(false);
            }
            spin_loop();
        }
        let start = now();
        let deadline = timeout.map(|t| start.saturating_add(t));
        // No liveness check before the first sleep: a contended lock (the queue's, between
        // live processes) would pay a syscall for every sleep. The try-lock (the first step of
        // every Python acquire, and the queue's non-waiting calls) checks at once instead.
        let mut probe = false;
        let mut next_probe = start + PROBE_SLICE;
        // Whether we have slept (then we acquire with WAITERS: others may sleep too) and
        // whether the last sleep ended by a wake (which we pass on if we give up).
        let mut slept = false;
        let mut woken = false;
        let give_up = |woken: bool, f: Fault| -> std::result::Result<bool, Fault> {
            if woken {
                self.futex.wake_one(self.word);
            }
            Err(f)
        };
        loop {
            // SYNC: Acquire pairs with the AcqRel compare-and-swap that wrote the holder (in
            // `try_fast`, below, or `take_over`): its claim generation is visible when we judge
            // it. Every transition is a compare-and-swap from this value.
            let v = self.word.load(Ordering::Acquire);
            let (holder, waiters) = match decode(v) {
                Word::Free => {
                    let next = if slept {
                        me.bits() | WAITERS
                    } else {
                        me.bits()
                    };
                    // SYNC: AcqRel, as in `try_fast`.
                    if self
                        .word
                        .compare_exchange(0, next, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Ok(false);
                    }
                    continue;
                }
                Word::Invalid => return give_up(woken, invalid(v)),
                Word::Held { holder, waiters } => (holder, waiters),
            };
            if probe {
                probe = false;
                match self.owners.is_gone(holder) {
                    Ok(true) => {
                        if self.take_over(v, me) {
                            return Ok(true);
                        }
                        continue;
                    }
                    Ok(false) => {}
                    Err(f) => return give_up(woken, f),
                }
            }
            if !waiters
                && self
                    .word
                    // SYNC: Relaxed: announcing a sleeper publishes nothing; the unlocker's
                    // compare-and-swap on this same word sees it or fails.
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let t = now();
            let mut slice = PROBE_SLICE.min(next_probe.saturating_sub(t));
            if let Some(d) = deadline {
                if t >= d {
                    return give_up(woken, Fault::Timeout);
                }
                slice = slice.min(d.saturating_sub(t));
            }
            let timed_out = self.futex.wait(self.word, v | WAITERS, Some(slice));
            slept = true;
            woken = !timed_out;
            let t = now();
            if timed_out || t >= next_probe {
                probe = true;
                next_probe = t + PROBE_SLICE;
                if interrupt() {
                    return give_up(woken, Fault::Interrupted);
                }
            }
        }
    }

    /// Unlocks a lock `me` holds. A word that names anyone else is left alone:
    /// [`Fault::Corrupt`].
    pub(crate) fn unlock(&self, me: Holder) -> std::result::Result<(), Fault> {
        // SYNC: Release pairs with the Acquire compare-and-swaps that lock: what we wrote under
        // the lock is visible to the next holder.
        let Err(mut cur) =
            self.word
                .compare_exchange(me.bits(), 0, Ordering::Release, Ordering::Relaxed)
        else {
            return Ok(());
        };
        while cur == me.bits() | WAITERS {
            // SYNC: Release, as above.
            match self
                .word
                .compare_exchange(cur, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.futex.wake_one(self.word);
                    return Ok(());
                }
                Err(now) => cur = now,
            }
        }
        // Someone wrote over the word while we held the lock. Waiters may be asleep on the
        // old value: wake them all so that they judge the new one now.
        self.futex.wake_all(self.word);
        Err(Fault::Corrupt(format!(
            "its word is {cur:#010x} at a release by the holder {:#010x} (written over while held)",
            me.bits()
        )))
    }

    /// The holder the word names now, if any (informational).
    pub(crate) fn holder(&self) -> Option<Holder> {
        // SYNC: Relaxed: informational.
        match decode(self.word.load(Ordering::Relaxed)) {
            Word::Held { holder, .. } => Some(holder),
            Word::Free | Word::Invalid => None,
        }
    }
}

fn invalid(v: u32) -> Fault {
    Fault::Corrupt(format!("its word {v:#010x} names no attachment slot"))
}

// ---------------------------------------------------------------------------------------------
// On a segment: the attachment table as the owners, the thread-local holds.

/// The attachment table of a structured segment, as the judge of holders.
struct TableOwners<'a>(&'a Structured);

/// Bytes from a slot record's start to its `generation` field (see `shm::attach`'s encoding).
const GEN_FIELD: usize = 16;

impl TableOwners<'_> {
    /// The claim generation of `slot` (`slot` below the table's size).
    fn generation(&self, slot: u32) -> u64 {
        let st = self.0;
        let g = st.geometry();
        debug_assert!(slot < g.attach_slots);
        let off = g.attach_off as usize
            + crate::shm::attach::TABLE_HEADER as usize
            + slot as usize * crate::shm::attach::SLOT_SIZE
            + GEN_FIELD;
        // SAFETY: the attachment table lies inside the mapping (validated geometry) and the
        // slot is inside the table, so the 8-aligned u64 at `off` is mapped for as long as
        // `st` lives; it is only ever accessed atomically.
        let w = unsafe { crate::sync::atomic_u64(st.segment().as_ptr().add(off)) };
        // SYNC: Relaxed: the claimer's increment happens before its AcqRel compare-and-swap of
        // any word naming this generation, which our Acquire load of that word synchronises
        // with (see `WordLock::try_fast`); our own slot's value is our own claim's.
        w.load(Ordering::Relaxed)
    }
}

impl Owners for TableOwners<'_> {
    fn is_gone(&self, h: Holder) -> std::result::Result<bool, Fault> {
        let slots = self.0.geometry().attach_slots;
        let slot = h.slot();
        if slot >= slots {
            return Err(Fault::Corrupt(format!(
                "its holder is attachment slot {slot}, the table has {slots}"
            )));
        }
        if self.generation(slot) as u32 & GEN_MASK != h.generation() {
            return Ok(true);
        }
        self.0
            .attachment()
            .is_alive(slot)
            .map(|alive| !alive)
            .map_err(Fault::Other)
    }
}

/// One hold of this thread: the area, the fork generation it was taken in, who we were.
#[derive(Clone, Copy)]
struct Hold {
    area: usize,
    fork_gen: u64,
    me: Holder,
}

thread_local! {
    static HOLDS: RefCell<Vec<Hold>> = const { RefCell::new(Vec::new()) };
}

/// What this thread's list says about `area` in this fork generation.
fn held_here(area: usize, fork_gen: u64) -> Option<Holder> {
    HOLDS.with(|h| {
        h.borrow()
            .iter()
            .find(|e| e.area == area && e.fork_gen == fork_gen)
            .map(|e| e.me)
    })
}

fn forget(area: usize, fork_gen: u64) -> Option<Holder> {
    HOLDS.with(|h| {
        let mut h = h.borrow_mut();
        let pos = h
            .iter()
            .position(|e| e.area == area && e.fork_gen == fork_gen)?;
        Some(h.swap_remove(pos).me)
    })
}

fn remember(area: usize, fork_gen: u64, me: Holder) {
    HOLDS.with(|h| {
        let mut h = h.borrow_mut();
        // Entries of an earlier fork generation are the parent's holds (a forked child
        // inherits the thread-local list of the thread that forked): never ours.
        h.retain(|e| e.fork_gen == fork_gen);
        h.push(Hold { area, fork_gen, me });
    });
}

/// A robust mutex living at a 64-aligned, 128-byte area of a mapped structured segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RobustMutex {
    ptr: *mut u8,
}

/// Initialises a mutex area (creator only, before the segment is published).
pub(crate) fn init_area(seg: &Segment, off: u64) -> Result<()> {
    seg.check_range(off, MUTEX_AREA)?;
    // The word starts at 0 (free) in the zero-filled segment; only the magic is written.
    seg.write_at(off + MAGIC_OFF as u64, &MAGIC.to_ne_bytes())
}

impl RobustMutex {
    /// # Safety
    /// `ptr` must be a 64-aligned mutex area inside a mapping that outlives every use of the
    /// returned value.
    pub(crate) unsafe fn at(ptr: *mut u8) -> Self {
        Self { ptr }
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: inside the area (see `at`), 4-aligned; shared only through atomics.
        unsafe { crate::sync::atomic_u32(self.ptr.add(WORD_OFF)) }
    }

    fn core<'a>(&'a self, owners: &'a TableOwners<'a>) -> WordLock<'a, TableOwners<'a>, OsFutex> {
        WordLock {
            word: self.word(),
            owners,
            futex: &OsFutex,
        }
    }

    /// Checks what can be checked of the bytes at attach: the magic, and that the word is one
    /// a holder could have written.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        // SAFETY: inside the area; read_unaligned has no alignment requirement. A plain read
        // of bytes another process may be writing is a copy of whatever is there, validated
        // below and never trusted.
        let magic = unsafe { std::ptr::read_unaligned(self.ptr.add(MAGIC_OFF).cast::<u32>()) };
        if magic == OLD_MAGIC {
            return Err(
                "the mutex is a glibc pthread mutex of layout 1 (made by an older memspace)"
                    .to_owned(),
            );
        }
        if magic != MAGIC {
            return Err(format!("mutex magic {magic:#x}, expected {MAGIC:#x}"));
        }
        // SYNC: Relaxed: a plausibility check of an untrusted value.
        let v = self.word().load(Ordering::Relaxed);
        if decode(v) == Word::Invalid {
            return Err(format!("the mutex word {v:#010x} names no attachment slot"));
        }
        Ok(())
    }

    /// This handle's identity in the word: `slot` (this process's slot of `st`) and the
    /// generation the table holds for it.
    fn me(st: &Structured, slot: u32, loc: &Location) -> Result<Holder> {
        if slot >= st.geometry().attach_slots {
            return Err(corrupt(
                loc,
                "mutex",
                &format!("attachment slot {slot} is outside the table"),
            ));
        }
        Ok(Holder::new(slot, TableOwners(st).generation(slot)))
    }

    /// This thread's identity for a lock attempt, after the reentrancy check.
    fn prepare(
        &self,
        st: &Structured,
        slot: u32,
        loc: &Location,
        what: &'static str,
    ) -> Result<(Holder, u64)> {
        let me = Self::me(st, slot, loc)?;
        let fork_gen = crate::sync::fork_generation();
        match held_here(self.ptr as usize, fork_gen) {
            Some(h) if h == me => Err(Error::Lock(LockError::WouldDeadlock {
                what,
                location: loc.clone(),
            })),
            Some(_) => {
                // A hold of a handle that was dropped while held, whose mapping this one
                // reuses: that lock was abandoned (its next holder is told owner_died).
                forget(self.ptr as usize, fork_gen);
                Ok((me, fork_gen))
            }
            None => Ok((me, fork_gen)),
        }
    }

    /// Tries once: `Ok(None)` if a live holder (another thread or process) has it,
    /// `Ok(Some(owner_died))` if acquired, taking over from a gone holder. `st` is the
    /// structured segment the area belongs to and `slot` this process's slot in it.
    pub(crate) fn try_lock(
        &self,
        st: &Structured,
        slot: u32,
        loc: &Location,
        what: &'static str,
    ) -> Result<Option<bool>> {
        let (me, fork_gen) = self.prepare(st, slot, loc, what)?;
        let owners = TableOwners(st);
        let r = self
            .core(&owners)
            .try_lock(me)
            .map_err(|f| fault(f, loc, what, Duration::ZERO))?;
        if r.is_some() {
            remember(self.ptr as usize, fork_gen, me);
        }
        Ok(r)
    }

    /// One compare-and-swap, never a syscall: `Ok(true)` if acquired (a gone holder is not
    /// recognised here; `try_lock` and `lock` do that).
    pub(crate) fn lock_now(
        &self,
        st: &Structured,
        slot: u32,
        loc: &Location,
        what: &'static str,
    ) -> Result<bool> {
        let (me, fork_gen) = self.prepare(st, slot, loc, what)?;
        let owners = TableOwners(st);
        let got = self.core(&owners).try_fast(me);
        if got {
            remember(self.ptr as usize, fork_gen, me);
        }
        Ok(got)
    }

    /// Locks, waiting at most `timeout` (`None`: forever) in slices, running `interrupt`
    /// between slices. Returns `owner_died`. `st` and `slot` as for [`RobustMutex::try_lock`].
    pub(crate) fn lock(
        &self,
        st: &Structured,
        slot: u32,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
        loc: &Location,
        what: &'static str,
    ) -> Result<bool> {
        let (me, fork_gen) = self.prepare(st, slot, loc, what)?;
        let owners = TableOwners(st);
        let died = self
            .core(&owners)
            .lock(me, timeout, interrupt)
            .map_err(|f| fault(f, loc, what, timeout.unwrap_or_default()))?;
        remember(self.ptr as usize, fork_gen, me);
        Ok(died)
    }

    /// Unlocks; [`LockError::NotHeld`] if the calling thread does not hold it (through this
    /// mapping, in this process); [`SegmentError::Corrupt`] if the word was written over while
    /// held (the hold is dropped, the word left as it is).
    pub(crate) fn unlock(&self, loc: &Location, what: &'static str) -> Result<()> {
        let Some(me) = forget(self.ptr as usize, crate::sync::fork_generation()) else {
            return Err(Error::Lock(LockError::NotHeld {
                what,
                location: loc.clone(),
            }));
        };
        let core = WordLock {
            word: self.word(),
            owners: &NoOwners,
            futex: &OsFutex,
        };
        core.unlock(me)
            .map_err(|f| fault(f, loc, what, Duration::ZERO))
    }

    /// The attachment slot the word names as holder (`None` if free or unreadable;
    /// informational).
    pub(crate) fn holder_slot(self) -> Option<u32> {
        let core = WordLock {
            word: self.word(),
            owners: &NoOwners,
            futex: &OsFutex,
        };
        core.holder().map(Holder::slot)
    }
}

/// For the operations that never judge a holder (unlock, inspection).
struct NoOwners;

impl Owners for NoOwners {
    fn is_gone(&self, _h: Holder) -> std::result::Result<bool, Fault> {
        Ok(false)
    }
}

fn corrupt(loc: &Location, what: &str, reason: &str) -> Error {
    Error::Segment(SegmentError::Corrupt {
        location: loc.clone(),
        reason: format!("the {what} is unusable: {reason}"),
    })
}

fn fault(f: Fault, loc: &Location, what: &'static str, timeout: Duration) -> Error {
    match f {
        Fault::Timeout => Error::Lock(LockError::Timeout {
            what,
            location: loc.clone(),
            timeout,
        }),
        Fault::Interrupted => Error::Interrupted,
        Fault::Corrupt(reason) => corrupt(loc, what, &reason),
        Fault::Other(e) => e,
    }
}

/// A cross-process mutex that survives a killed holder, in its own segment.
///
/// ```
/// use memspace::lock::Mutex;
/// let name = format!("/memspace-doc-mutex-{}", std::process::id());
/// let m = Mutex::create_named(&name)?;
/// {
///     let g = m.lock()?;
///     assert!(!g.owner_died());
/// }
/// Mutex::remove(&memspace::Location::Name(name))?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Debug)]
pub struct Mutex {
    s: Structured,
    m: RobustMutex,
}

// SAFETY: the mutex area is shared memory designed for concurrent use; RobustMutex's pointer
// stays valid while `s` (which owns the mapping) lives.
unsafe impl Send for Mutex {}
// SAFETY: as above; every access to the area is atomic.
unsafe impl Sync for Mutex {}

const WHAT: &str = "mutex";

impl Mutex {
    /// Creates a mutex segment at `location` with permission bits `mode`.
    pub fn create(location: Location, mode: u32) -> Result<Mutex> {
        let req = LayoutRequest {
            kind: Kind::Mutex,
            attach_slots: DEFAULT_SLOTS,
            lock_size: MUTEX_AREA,
            data_size: 0,
            kind_param: 0,
        };
        let s = Structured::create(
            location,
            mode,
            &req,
            &|seg, geo| init_area(seg, geo.lock_off),
            &|_| {},
        )?;
        Ok(Self::wrap(s))
    }

    /// Creates a named mutex (mode `0o600`).
    pub fn create_named(name: &str) -> Result<Mutex> {
        Self::create(Location::Name(name.to_owned()), 0o600)
    }

    /// Opens an existing mutex segment (a [`Location`], or one with a [`Trust`](crate::Trust)).
    pub fn open(location: impl Into<OpenTarget>) -> Result<Mutex> {
        let s = Structured::open(location, Kind::Mutex, None, &|_| {})?;
        if s.geometry().lock_size < MUTEX_AREA {
            return Err(Error::Segment(SegmentError::IncompatibleLayout {
                location: s.location().clone(),
                reason: format!("lock area of {} bytes is too small", s.geometry().lock_size),
            }));
        }
        let m = Self::wrap(s);
        m.m.validate().map_err(|reason| {
            Error::Segment(SegmentError::Corrupt {
                location: m.location().clone(),
                reason,
            })
        })?;
        Ok(m)
    }

    /// Opens a named mutex.
    pub fn open_named(name: &str) -> Result<Mutex> {
        Self::open(Location::Name(name.to_owned()))
    }

    /// Removes the segment (processes that have it open keep using it).
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    fn wrap(s: Structured) -> Mutex {
        // SAFETY: the lock area is validated, 64-aligned, at least MUTEX_AREA bytes (checked by
        // `open`, by construction in `create`), and lives as long as `s`, stored alongside.
        let m = unsafe { RobustMutex::at(s.lock_ptr()) };
        Mutex { s, m }
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.s.location()
    }

    /// The trust that opens this mutex again in another process (for pickling).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.s.reopen_trust()
    }

    fn slot(&self) -> Result<u32> {
        self.s.attachment().slot(&|_| {})
    }

    /// Locks, waiting as long as it takes.
    pub fn lock(&self) -> Result<MutexGuard<'_>> {
        self.lock_with(None, &mut || false)
    }

    /// Locks, waiting at most `timeout` ([`LockError::Timeout`] after that).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_>> {
        self.lock_with(Some(timeout), &mut || false)
    }

    /// Locks only if it is free now, or its holder is gone ([`LockError::Timeout`] with a
    /// zero timeout otherwise).
    pub fn try_lock(&self) -> Result<MutexGuard<'_>> {
        self.lock_with(Some(Duration::ZERO), &mut || false)
    }

    /// Locks with a timeout (`None`: none) and an interrupt check run between wait slices.
    pub fn lock_with(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<MutexGuard<'_>> {
        let owner_died = self.raw_lock(timeout, interrupt)?;
        Ok(MutexGuard {
            m: self,
            owner_died,
            _not_send: std::marker::PhantomData,
        })
    }

    /// Locks without a guard; pair with [`Mutex::raw_unlock`] on the same thread. Returns
    /// `owner_died`. For bindings that manage the hold themselves.
    pub fn raw_lock(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<bool> {
        let slot = self.slot()?;
        if timeout == Some(Duration::ZERO) {
            return self
                .m
                .try_lock(&self.s, slot, self.location(), WHAT)?
                .ok_or_else(|| {
                    Error::Lock(LockError::Timeout {
                        what: WHAT,
                        location: self.location().clone(),
                        timeout: Duration::ZERO,
                    })
                });
        }
        self.m
            .lock(&self.s, slot, timeout, interrupt, self.location(), WHAT)
    }

    /// Tries once without waiting: `Ok(None)` if busy.
    pub fn raw_try_lock(&self) -> Result<Option<bool>> {
        let slot = self.slot()?;
        self.m.try_lock(&self.s, slot, self.location(), WHAT)
    }

    /// Unlocks a lock taken with [`Mutex::raw_lock`] by this thread ([`LockError::NotHeld`]
    /// otherwise).
    pub fn raw_unlock(&self) -> Result<()> {
        self.m.unlock(self.location(), WHAT)
    }

    /// The attachment slot of the current holder, if any (informational).
    pub fn holder_slot(&self) -> Option<u32> {
        self.m.holder_slot()
    }
}

/// Proof that this thread holds a [`Mutex`]; unlocks when dropped.
#[derive(Debug)]
#[must_use = "the mutex is unlocked when the guard is dropped"]
pub struct MutexGuard<'a> {
    m: &'a Mutex,
    owner_died: bool,
    // A hold is recorded per thread (reentrancy, release by a non-holder): the thread that
    // locked must unlock.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl MutexGuard<'_> {
    /// True if the previous holder died while holding the lock: the data it protects may be
    /// half-updated and should be checked or repaired.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        let _ = self.m.raw_unlock();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        crate::testing::unique_name("mutex", tag)
    }

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and OFD locks: not under Miri
    fn lock_unlock_reentrancy_and_non_holder() {
        let n = name("basic");
        let m = Mutex::create_named(&n).unwrap();
        let loc = m.location().clone();
        {
            let g = m.lock().unwrap();
            assert!(!g.owner_died());
            assert!(matches!(
                m.lock(),
                Err(Error::Lock(LockError::WouldDeadlock { .. }))
            ));
            assert!(matches!(
                m.try_lock(),
                Err(Error::Lock(LockError::WouldDeadlock { .. }))
            ));
            let m2 = Mutex::open_named(&n).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert!(matches!(
                        m2.try_lock(),
                        Err(Error::Lock(LockError::Timeout { .. }))
                    ));
                    // Another thread of the same handle waits too (no reentrancy there).
                    assert!(matches!(
                        m.try_lock(),
                        Err(Error::Lock(LockError::Timeout { .. }))
                    ));
                    let t0 = std::time::Instant::now();
                    assert!(matches!(
                        m2.lock_timeout(Duration::from_millis(120)),
                        Err(Error::Lock(LockError::Timeout { .. }))
                    ));
                    let waited = t0.elapsed();
                    assert!(waited >= Duration::from_millis(120), "{waited:?}");
                    assert!(matches!(
                        m.raw_unlock(),
                        Err(Error::Lock(LockError::NotHeld { .. }))
                    ));
                });
            });
            assert_eq!(m2.holder_slot(), Some(m.slot().unwrap()));
        }
        assert_eq!(m.holder_slot(), None);
        assert!(matches!(
            m.raw_unlock(),
            Err(Error::Lock(LockError::NotHeld { .. }))
        ));
        let mut calls = 0;
        let g = m.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let t0 = std::time::Instant::now();
                let r = m.lock_with(None, &mut || {
                    calls += 1;
                    calls >= 2
                });
                assert!(matches!(r, Err(Error::Interrupted)));
                assert!(t0.elapsed() < Duration::from_secs(1));
            });
        });
        drop(g);
        Mutex::remove(&loc).unwrap();
    }

    /// A handle dropped while its thread holds the lock gives the lock up as abandoned: the
    /// next holder is told `owner_died` (a thread's exit alone does not release it).
    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and OFD locks: not under Miri
    fn dropped_handle_is_a_gone_holder_thread_exit_is_not() {
        let n = name("drop");
        let m = Mutex::create_named(&n).unwrap();
        let m2 = Mutex::open_named(&n).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| m2.raw_lock(None, &mut || false).unwrap());
        });
        // The thread exited holding it: still held (by its process, through m2).
        assert!(matches!(
            m.lock_timeout(Duration::from_millis(60)),
            Err(Error::Lock(LockError::Timeout { .. }))
        ));
        drop(m2);
        let t0 = std::time::Instant::now();
        let g = m.lock_timeout(Duration::from_secs(5)).unwrap();
        assert!(g.owner_died());
        assert!(t0.elapsed() < Duration::from_millis(100));
        drop(g);
        Mutex::remove(m.location()).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and OFD locks: not under Miri
    fn corrupt_words_and_magic() {
        let n = name("corrupt");
        let m = Mutex::create_named(&n).unwrap();
        let loc = m.location().clone();
        let off = m.s.geometry().lock_off;
        // A slot field of 0 with other bits set, and a slot outside the 64-slot table.
        for bad in [0x8000_0000u32, 0x0000_f000, 0x0000_0fff, 1000] {
            m.s.segment().write_at(off, &bad.to_ne_bytes()).unwrap();
            for r in [
                m.try_lock().map(|_| ()),
                m.lock_timeout(Duration::from_millis(50)).map(|_| ()),
            ] {
                assert!(
                    matches!(r, Err(Error::Segment(SegmentError::Corrupt { .. }))),
                    "{bad:#x}: {r:?}"
                );
            }
            // Without a slot at all the word is refused at open already.
            if bad & SLOT_MASK == 0 {
                assert!(matches!(
                    Mutex::open(loc.clone()),
                    Err(Error::Segment(SegmentError::Corrupt { .. }))
                ));
            }
        }
        // A slot in range whose generation is not its claimer's: a gone holder, taken over.
        let stale = Holder::new(5, 77).bits();
        m.s.segment().write_at(off, &stale.to_ne_bytes()).unwrap();
        assert!(m.try_lock().unwrap().owner_died());
        // Written over while held: the release refuses to write over the stranger, the hold
        // is gone, and the stranger (gone too) is taken over by the next locker.
        let g = m.lock().unwrap();
        m.s.segment().write_at(off, &stale.to_ne_bytes()).unwrap();
        std::mem::forget(g);
        assert!(matches!(
            m.raw_unlock(),
            Err(Error::Segment(SegmentError::Corrupt { .. }))
        ));
        assert!(matches!(
            m.raw_unlock(),
            Err(Error::Lock(LockError::NotHeld { .. }))
        ));
        assert!(m.lock().unwrap().owner_died());
        // The magic is checked at open; the old build's magic is named.
        m.s.segment()
            .write_at(off + MAGIC_OFF as u64, &OLD_MAGIC.to_ne_bytes())
            .unwrap();
        let e = Mutex::open(loc.clone()).unwrap_err();
        assert!(e.to_string().contains("layout 1"), "{e}");
        m.s.segment()
            .write_at(off + MAGIC_OFF as u64, &[0; 4])
            .unwrap();
        let e = Mutex::open(loc.clone()).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        drop(m);
        Mutex::remove(&loc).unwrap();
    }

    // --- the protocol on heap memory (also under Miri) ---------------------------------------

    /// Liveness of up to four slots as heap flags (1: alive); generation 1 everywhere.
    struct HeapOwners {
        alive: [AtomicU32; 4],
        probes: AtomicU32,
    }

    impl HeapOwners {
        fn new() -> HeapOwners {
            HeapOwners {
                alive: std::array::from_fn(|_| AtomicU32::new(1)),
                probes: AtomicU32::new(0),
            }
        }
    }

    impl Owners for HeapOwners {
        fn is_gone(&self, h: Holder) -> std::result::Result<bool, Fault> {
            self.probes.fetch_add(1, Ordering::SeqCst);
            let slot = h.slot() as usize;
            if slot >= self.alive.len() {
                return Err(Fault::Corrupt(format!("slot {slot}")));
            }
            Ok(h.generation() != 1 || self.alive[slot].load(Ordering::SeqCst) == 0)
        }
    }

    fn me(slot: u32) -> Holder {
        Holder::new(slot, 1)
    }

    #[test]
    fn heap_mutex_excludes_between_threads() {
        let word = AtomicU32::new(0);
        let owners = HeapOwners::new();
        let inside = AtomicU32::new(0);
        let total = AtomicU32::new(0);
        let rounds = if cfg!(miri) { 20 } else { 2000 };
        std::thread::scope(|s| {
            for slot in 0..3 {
                let (word, owners, inside, total) = (&word, &owners, &inside, &total);
                s.spawn(move || {
                    let l = WordLock {
                        word,
                        owners,
                        futex: &OsFutex,
                    };
                    for _ in 0..rounds {
                        assert!(!l.lock(me(slot), None, &mut || false).unwrap());
                        assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                        total.fetch_add(1, Ordering::Relaxed);
                        inside.fetch_sub(1, Ordering::Relaxed);
                        l.unlock(me(slot)).unwrap();
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::SeqCst), 3 * rounds);
        assert_eq!(word.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn heap_mutex_gone_holder_is_taken_over_live_one_is_not() {
        let word = AtomicU32::new(0);
        let owners = HeapOwners::new();
        let l = WordLock {
            word: &word,
            owners: &owners,
            futex: &OsFutex,
        };
        assert!(l.try_fast(me(0)));
        // Alive (a stopped process is alive): busy, and a timed wait ends at its deadline.
        assert_eq!(l.try_lock(me(1)).unwrap(), None);
        let t0 = std::time::Instant::now();
        assert!(matches!(
            l.lock(me(1), Some(Duration::from_millis(30)), &mut || false),
            Err(Fault::Timeout)
        ));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        // Gone: taken over by the waiter (within a probe slice), told owner_died.
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let t0 = std::time::Instant::now();
                let died = l.lock(me(1), Some(Duration::from_secs(10)), &mut || false);
                (died.unwrap(), t0.elapsed())
            });
            std::thread::sleep(Duration::from_millis(10));
            owners.alive[0].store(0, Ordering::SeqCst);
            let (died, _waited) = h.join().unwrap();
            assert!(died);
        });
        assert_eq!(l.holder(), Some(me(1)));
        // The dead holder's late unlock (a stale hold) does not release the new holder.
        assert!(matches!(l.unlock(me(0)), Err(Fault::Corrupt(_))));
        l.unlock(me(1)).unwrap();
        // A stale generation is gone too, and try_lock takes over.
        word.store(Holder::new(2, 9).bits(), Ordering::SeqCst);
        assert_eq!(l.try_lock(me(1)).unwrap(), Some(true));
        l.unlock(me(1)).unwrap();
        // A slot outside the table, or no slot at all: corrupt, never a wait.
        for bad in [Holder::new(7, 1).bits(), WAITERS, 0x7000] {
            word.store(bad, Ordering::SeqCst);
            assert!(matches!(l.try_lock(me(1)), Err(Fault::Corrupt(_))));
            assert!(matches!(
                l.lock(me(1), Some(Duration::from_secs(5)), &mut || false),
                Err(Fault::Corrupt(_))
            ));
        }
    }

    #[test]
    fn heap_mutex_waiter_is_woken_and_interrupted() {
        let word = AtomicU32::new(0);
        let owners = HeapOwners::new();
        let l = WordLock {
            word: &word,
            owners: &owners,
            futex: &OsFutex,
        };
        assert!(l.try_fast(me(0)));
        std::thread::scope(|s| {
            let h = s.spawn(|| l.lock(me(1), None, &mut || false).unwrap());
            // Let it reach the sleep (it sets WAITERS first).
            while word.load(Ordering::SeqCst) & WAITERS == 0 {
                std::thread::yield_now();
            }
            l.unlock(me(0)).unwrap();
            assert!(!h.join().unwrap());
        });
        // It acquired with WAITERS (another may sleep): its unlock still works.
        assert_eq!(word.load(Ordering::SeqCst), me(1).bits() | WAITERS);
        l.unlock(me(1)).unwrap();
        assert!(l.try_fast(me(0)));
        let mut calls = 0;
        let r = l.lock(me(1), None, &mut || {
            calls += 1;
            calls == 2
        });
        assert!(matches!(r, Err(Fault::Interrupted)));
        assert!(owners.probes.load(Ordering::SeqCst) >= 1);
        l.unlock(me(0)).unwrap();
    }

    #[test]
    fn heap_mutex_word_encoding() {
        for slot in [0, 1, 63, 1023, 4094] {
            for gen in [0u64, 1, 0x7ffff, 0x80000, u64::MAX] {
                let h = Holder::new(slot, gen);
                assert_eq!(h.slot(), slot);
                assert_eq!(h.generation(), gen as u32 & GEN_MASK);
                assert_eq!(h.bits() & WAITERS, 0);
                assert_eq!(
                    decode(h.bits() | WAITERS),
                    Word::Held {
                        holder: h,
                        waiters: true
                    }
                );
            }
        }
        assert_eq!(decode(0), Word::Free);
        assert_eq!(decode(WAITERS), Word::Invalid);
        assert_eq!(decode(0xffff_f000), Word::Invalid);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::lock::eventcount::ModelFutex;
    use loom::sync::Arc;

    /// Bounded preemptions keep the exhaustive search to seconds (`LOOM_MAX_PREEMPTIONS`
    /// overrides it).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(f);
    }

    /// Liveness as a model function: slot i is alive while `alive[i]` is 1.
    struct ModelOwners {
        alive: [AtomicU32; 3],
    }

    impl ModelOwners {
        fn new() -> ModelOwners {
            ModelOwners {
                alive: [AtomicU32::new(1), AtomicU32::new(1), AtomicU32::new(1)],
            }
        }
    }

    impl Owners for ModelOwners {
        fn is_gone(&self, h: Holder) -> std::result::Result<bool, Fault> {
            Ok(self.alive[h.slot() as usize].load(Ordering::SeqCst) == 0)
        }
    }

    /// A futex whose every sleep "times out" at once (after letting others run): models a
    /// waiter's slices ending while the holder never wakes it, as a dead holder never does.
    struct SliceFutex;

    impl Futex for SliceFutex {
        fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Option<Duration>) -> bool {
            if word.load(Ordering::SeqCst) != expected {
                return false;
            }
            loom::thread::yield_now();
            true
        }
        fn wake_one(&self, _word: &AtomicU32) {}
        fn wake_all(&self, _word: &AtomicU32) {}
    }

    struct Shared<F> {
        word: AtomicU32,
        owners: ModelOwners,
        futex: F,
        inside: AtomicU32,
        died: AtomicU32,
    }

    fn shared<F>(futex: F) -> Arc<Shared<F>> {
        Arc::new(Shared {
            word: AtomicU32::new(0),
            owners: ModelOwners::new(),
            futex,
            inside: AtomicU32::new(0),
            died: AtomicU32::new(0),
        })
    }

    fn lock_of<F: Futex>(s: &Shared<F>) -> WordLock<'_, ModelOwners, F> {
        WordLock {
            word: &s.word,
            owners: &s.owners,
            futex: &s.futex,
        }
    }

    fn critical<F>(s: &Shared<F>) {
        assert_eq!(s.inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
        s.inside.fetch_sub(1, Ordering::SeqCst);
    }

    /// Two threads contend (the futex blocks until woken, no timeouts): mutual exclusion,
    /// nobody is told owner_died, and nobody sleeps forever (a lost wake-up would deadlock,
    /// which loom reports).
    #[test]
    fn loom_mutex_two_threads_contend() {
        model(|| {
            let s = shared(ModelFutex::default());
            let hs: Vec<_> = (0..2u32)
                .map(|slot| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let l = lock_of(&s);
                        let me = Holder::new(slot, 1);
                        assert!(!l.lock(me, None, &mut || false).unwrap());
                        critical(&s);
                        l.unlock(me).unwrap();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(s.word.load(Ordering::SeqCst), 0);
        });
    }

    /// A holder sleeps a waiter: the waiter is already queued on the word when the holder
    /// unlocks (or is just about to be): in every interleaving it is woken.
    #[test]
    fn loom_mutex_unlock_wakes_the_sleeper() {
        model(|| {
            let s = shared(ModelFutex::default());
            let holder = Holder::new(0, 1);
            assert!(lock_of(&s).try_fast(holder));
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                let l = lock_of(&s2);
                let me = Holder::new(1, 1);
                assert!(!l.lock(me, None, &mut || false).unwrap());
                critical(&s2);
                l.unlock(me).unwrap();
            });
            critical(&s);
            lock_of(&s).unlock(holder).unwrap();
            t.join().unwrap();
            assert_eq!(s.word.load(Ordering::SeqCst), 0);
        });
    }

    /// The holder (slot 0) dies holding the lock while a waiter (slot 1) waits in slices: the
    /// waiter takes the lock over and is told owner_died.
    #[test]
    fn loom_mutex_dead_holder_is_taken_over() {
        model(|| {
            let s = shared(SliceFutex);
            let dead = Holder::new(0, 1);
            assert!(lock_of(&s).try_fast(dead));
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                let l = lock_of(&s2);
                let me = Holder::new(1, 1);
                assert!(l.lock(me, None, &mut || false).unwrap());
                critical(&s2);
                l.unlock(me).unwrap();
            });
            // The holder dies: its liveness goes, its word stays.
            s.owners.alive[0].store(0, Ordering::SeqCst);
            t.join().unwrap();
            assert_eq!(s.word.load(Ordering::SeqCst), 0);
        });
    }

    /// Two waiters (slots 1, 2) find the holder (slot 0) dead and race to take the lock over:
    /// exactly one takeover happens (owner_died once), the two never overlap, both finish.
    #[test]
    fn loom_mutex_two_waiters_take_over_once() {
        model(|| {
            let s = shared(SliceFutex);
            let dead = Holder::new(0, 1);
            assert!(lock_of(&s).try_fast(dead));
            s.owners.alive[0].store(0, Ordering::SeqCst);
            let hs: Vec<_> = (1..3u32)
                .map(|slot| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let l = lock_of(&s);
                        let me = Holder::new(slot, 1);
                        if l.lock(me, None, &mut || false).unwrap() {
                            s.died.fetch_add(1, Ordering::SeqCst);
                        }
                        critical(&s);
                        l.unlock(me).unwrap();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(s.died.load(Ordering::SeqCst), 1);
            assert_eq!(s.word.load(Ordering::SeqCst), 0);
        });
    }

    /// A live holder (slot 0, alive throughout, like a stopped process) is never taken over:
    /// the waiter only gets the lock after the unlock, without owner_died.
    #[test]
    fn loom_mutex_live_holder_is_never_taken_over() {
        model(|| {
            let s = shared(SliceFutex);
            let holder = Holder::new(0, 1);
            assert!(lock_of(&s).try_fast(holder));
            s.inside.fetch_add(1, Ordering::SeqCst);
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                let l = lock_of(&s2);
                let me = Holder::new(1, 1);
                let died = l.lock(me, None, &mut || false).unwrap();
                assert!(!died);
                critical(&s2);
                l.unlock(me).unwrap();
            });
            s.inside.fetch_sub(1, Ordering::SeqCst);
            lock_of(&s).unlock(holder).unwrap();
            t.join().unwrap();
        });
    }
}
