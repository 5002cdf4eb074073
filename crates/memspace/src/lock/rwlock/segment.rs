//! The rwlock on a segment: the rwlock area's layout, the handles ([`ShmRwLock`], [`RwLock`])
//! and guards, and the per-thread record of held locks.
//!
//! This module owns an rwlock area: a robust mutex used as the writer lock, a state word, an
//! eventcount and one reader counter per attachment slot, and runs the [`core`](super::core)
//! state machine over it with the robust mutex, the OS futex and the attachment table's
//! liveness. It never touches the data the lock protects.
//!
//! Reentrancy is detected per thread (a thread-local list of the locks it holds): read or
//! write while holding the same lock is [`LockError::WouldDeadlock`]; releasing a lock the thread
//! does not hold is [`LockError::NotHeld`].
//!
//! # Encoding of the rwlock area (64-aligned; `192 + 4 * slots` bytes)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | writer mutex | 128 bytes | see `lock::mutex` |
//! | 128 | `state` | u32 (atomic) | bit 31 `WRITER`; bit 30 `DIED` (a dead holder's news for the next writer); bits 0..30 the writer's slot + 1 (informational) |
//! | 132 | `seq` | u32 (atomic) | eventcount sequence (futex word) |
//! | 136 | `waiters` | u32 (atomic) | eventcount waiter count |
//! | 140..192 | reserved | | 0 |
//! | 192 + 4·i | `readers[i]` | u32 (atomic) | bits 0..20: read holds of attachment slot i; bits 20..32: the slot's claim generation (ABA guard) |
//!
//! Untrusted: a reader count that cannot be explained (release finds 0) is reported as
//! [`SegmentError::Corrupt`]; any other value at worst makes a writer wait until its timeout.

use std::cell::RefCell;
use std::time::Duration;

use super::core::{Failures, Liveness, RwCore, WriterLock, COUNT_MASK, GEN_ONE};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::error::LockError;
use crate::lock::eventcount::{EventCount, OsFutex};
use crate::lock::mutex::{self, Interrupt, RobustMutex, MUTEX_AREA};
use crate::shm::error::SegmentError;
use crate::shm::header::{Kind, LayoutRequest};
use crate::shm::segment::{OpenTarget, Segment};
use crate::shm::structured::Structured;
use crate::sync::{AtomicU32, Ordering};

const _: () = assert!(MUTEX_AREA as usize <= STATE_OFF);
const STATE_OFF: usize = 128;
const SEQ_OFF: usize = 132;
const WAITERS_OFF: usize = 136;
const READERS_OFF: usize = 192;

/// Bytes of an rwlock area for `slots` attachment slots.
pub fn area_size(slots: u32) -> u64 {
    READERS_OFF as u64 + 4 * u64::from(slots)
}

// ---------------------------------------------------------------------------------------------
// Per-thread record of held locks (reentrancy and non-holder detection).

#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    Read,
    Write,
}

thread_local! {
    static HELD: RefCell<Vec<(u64, Held)>> = const { RefCell::new(Vec::new()) };
}

fn held_by_me(id: u64) -> Option<Held> {
    HELD.with(|h| h.borrow().iter().find(|(i, _)| *i == id).map(|(_, m)| *m))
}

fn push_held(id: u64, m: Held) {
    HELD.with(|h| h.borrow_mut().push((id, m)));
}

fn pop_held(id: u64, m: Held) -> bool {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        match h.iter().rposition(|e| *e == (id, m)) {
            Some(pos) => {
                h.swap_remove(pos);
                true
            }
            None => false,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The rwlock on a segment.

/// An rwlock area inside a structured segment, with this process's view of it. Used by
/// [`RwLock`] and by kinds that put an rwlock in front of their data ([`crate::view::View`]).
#[derive(Debug)]
pub struct ShmRwLock {
    s: Structured,
    area: *mut u8,
    slots: u32,
    id: u64,
}

// SAFETY: the area is shared memory designed for concurrent use; the pointer stays valid as
// long as `s` (owning the mapping) lives.
unsafe impl Send for ShmRwLock {}
// SAFETY: as above.
unsafe impl Sync for ShmRwLock {}

struct ShmWriter<'a> {
    m: RobustMutex,
    slot: u32,
    st: &'a Structured,
}

const WRITER_WHAT: &str = "rwlock writer lock";

impl WriterLock for ShmWriter<'_> {
    fn try_lock(&self) -> Result<Option<bool>> {
        self.m
            .try_lock(self.st, self.slot, self.st.location(), WRITER_WHAT)
    }
    fn lock(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<bool> {
        self.m.lock(
            self.st,
            self.slot,
            timeout,
            interrupt,
            self.st.location(),
            WRITER_WHAT,
        )
    }
    fn unlock(&self) -> Result<()> {
        self.m.unlock(self.st.location(), WRITER_WHAT)
    }
}

struct ShmLive<'a>(&'a crate::shm::attach::Attachment);

impl Liveness for ShmLive<'_> {
    fn is_alive(&self, slot: u32) -> Result<bool> {
        self.0.is_alive(slot)
    }
    fn scan_limit(&self) -> u32 {
        self.0.high_water_mark()
    }
}

struct ShmFail<'a>(&'a Location, &'static str);

impl Failures for ShmFail<'_> {
    fn timeout(&self, timeout: Duration) -> Error {
        Error::Lock(LockError::Timeout {
            what: self.1,
            location: self.0.clone(),
            timeout,
        })
    }
    fn corrupt(&self, reason: String) -> Error {
        Error::Segment(SegmentError::Corrupt {
            location: self.0.clone(),
            reason,
        })
    }
}

fn next_id() -> u64 {
    crate::sync::next_unique_id()
}

/// Clears the reader counter of a freshly claimed slot (its previous holder is dead).
///
/// # Safety
/// `area` must be a live rwlock area of at least `area_size(slots)` bytes.
unsafe fn clear_slot(area: *mut u8, slots: u32, slot: u32) {
    if slot >= slots {
        return;
    }
    // SAFETY: per the caller; the counter lies inside the area.
    let (r, seq, waiters) = unsafe {
        (
            crate::sync::atomic_u32(area.add(READERS_OFF + 4 * slot as usize)),
            crate::sync::atomic_u32(area.add(SEQ_OFF)),
            crate::sync::atomic_u32(area.add(WAITERS_OFF)),
        )
    };
    // A new generation with no holds: any count here belonged to a dead predecessor, and a
    // writer's pending compare-and-swap on the old word now fails.
    let mut cur = r.load(Ordering::SeqCst);
    loop {
        let next = (cur & !COUNT_MASK).wrapping_add(GEN_ONE);
        match r.compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    if cur & COUNT_MASK != 0 {
        EventCount::new(seq, waiters).notify(&OsFutex);
    }
}

impl ShmRwLock {
    /// The lock-area size this kind needs for `slots` slots.
    pub fn area_size(slots: u32) -> u64 {
        area_size(slots)
    }

    /// Initialises an rwlock area at `off` (creator only).
    pub fn init_area(seg: &Segment, off: u64) -> Result<()> {
        mutex::init_area(seg, off)
    }

    fn on_claim(s_lock_ptr: *mut u8, slots: u32) -> impl Fn(u32) {
        let addr = s_lock_ptr as usize;
        move |slot| {
            // SAFETY: called by the attachment while the structured segment (and its lock
            // area of area_size(slots) bytes) is mapped.
            unsafe { clear_slot(addr as *mut u8, slots, slot) }
        }
    }

    /// Creates a structured segment of `kind` whose lock area is an rwlock.
    pub fn create(
        location: Location,
        mode: u32,
        kind: Kind,
        slots: u32,
        data_size: u64,
        kind_param: u64,
        init_data: &dyn Fn(&Segment, u64) -> Result<()>,
    ) -> Result<ShmRwLock> {
        let req = LayoutRequest {
            kind,
            attach_slots: slots,
            lock_size: area_size(slots),
            data_size,
            kind_param,
        };
        let s = Structured::create(
            location,
            mode,
            &req,
            &|seg, geo| {
                mutex::init_area(seg, geo.lock_off)?;
                init_data(seg, geo.data_off)
            },
            // A fresh segment has nothing to clear.
            &|_| {},
        )?;
        Ok(Self::wrap(s))
    }

    /// Opens a structured segment of `kind` whose lock area is an rwlock.
    pub fn open(
        location: impl Into<OpenTarget>,
        kind: Kind,
        kind_param: Option<u64>,
    ) -> Result<ShmRwLock> {
        // The slot is claimed inside `open`, before we know the geometry: clear it right after.
        let s = Structured::open(location, kind, kind_param, &|_| {})?;
        let g = *s.geometry();
        if g.lock_size < area_size(g.attach_slots) {
            return Err(Error::Segment(SegmentError::IncompatibleLayout {
                location: s.location().clone(),
                reason: format!(
                    "rwlock area of {} bytes is too small for {} slots",
                    g.lock_size, g.attach_slots
                ),
            }));
        }
        let l = Self::wrap(s);
        // SAFETY: the lock area was validated to hold area_size(slots) bytes.
        let m = unsafe { RobustMutex::at(l.area) };
        m.validate().map_err(|reason| {
            Error::Segment(SegmentError::Corrupt {
                location: l.location().clone(),
                reason,
            })
        })?;
        let slot = l.s.attachment().slot(&|_| {})?;
        // SAFETY: as above.
        unsafe { clear_slot(l.area, l.slots, slot) };
        Ok(l)
    }

    fn wrap(s: Structured) -> ShmRwLock {
        let area = s.lock_ptr();
        let slots = s.geometry().attach_slots;
        ShmRwLock {
            s,
            area,
            slots,
            id: next_id(),
        }
    }

    /// The structured segment.
    pub fn structured(&self) -> &Structured {
        &self.s
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.s.location()
    }

    fn slot(&self) -> Result<u32> {
        let f = Self::on_claim(self.area, self.slots);
        self.s.attachment().slot(&f)
    }

    fn core(&self, slot: u32) -> RwCore<'_, ShmWriter<'_>, OsFutex, ShmLive<'_>, ShmFail<'_>> {
        // SAFETY: the area holds area_size(slots) bytes (validated at open, by construction at
        // create), 64-aligned, alive as long as `self`; the words are 4-aligned.
        unsafe {
            #[allow(clippy::cast_ptr_alignment)] // READERS_OFF is 4-aligned in a 64-aligned area
            let readers = std::slice::from_raw_parts(
                self.area.add(READERS_OFF).cast::<AtomicU32>(),
                self.slots as usize,
            );
            RwCore {
                state: crate::sync::atomic_u32(self.area.add(STATE_OFF)),
                ec: EventCount::new(
                    crate::sync::atomic_u32(self.area.add(SEQ_OFF)),
                    crate::sync::atomic_u32(self.area.add(WAITERS_OFF)),
                ),
                readers,
                w: ShmWriter {
                    m: RobustMutex::at(self.area),
                    slot,
                    st: &self.s,
                },
                futex: OsFutex,
                live: ShmLive(self.s.attachment()),
                fail: ShmFail(self.s.location(), "rwlock"),
            }
        }
    }

    fn deadlock(&self) -> Error {
        Error::Lock(LockError::WouldDeadlock {
            what: "rwlock",
            location: self.location().clone(),
        })
    }

    /// Runs `f(owner_died)` under the read lock, released when `f` returns. The hold is
    /// scoped to this call on this thread, so it needs no entry in the per-thread list. If
    /// this thread already holds the lock (read or write, through this handle), `f` runs at
    /// once under that hold.
    pub fn with_read<T>(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
        f: impl FnOnce(bool) -> T,
    ) -> Result<T> {
        if held_by_me(self.id).is_some() {
            return Ok(f(false));
        }
        let slot = self.slot()?;
        let core = self.core(slot);
        let died = core.read(slot, timeout, interrupt)?;
        let out = f(died);
        core.read_unlock(slot)?;
        Ok(out)
    }

    /// Runs `f(owner_died)` under the write lock, released when `f` returns (see
    /// [`ShmRwLock::with_read`]). If this thread holds the write lock already, `f` runs at
    /// once; if it holds a read lock, [`LockError::WouldDeadlock`].
    pub fn with_write<T>(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
        f: impl FnOnce(bool) -> T,
    ) -> Result<T> {
        match held_by_me(self.id) {
            Some(Held::Write) => return Ok(f(false)),
            Some(Held::Read) => return Err(self.deadlock()),
            None => {}
        }
        let slot = self.slot()?;
        let core = self.core(slot);
        let died = core.write(slot, timeout, interrupt)?;
        let out = f(died);
        core.write_unlock()?;
        Ok(out)
    }

    /// Read-locks without a guard (pair with [`ShmRwLock::raw_read_unlock`] on this thread).
    /// Returns `owner_died`.
    pub fn raw_read(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<bool> {
        if held_by_me(self.id).is_some() {
            return Err(self.deadlock());
        }
        let slot = self.slot()?;
        let died = self.core(slot).read(slot, timeout, interrupt)?;
        push_held(self.id, Held::Read);
        Ok(died)
    }

    /// Releases a read lock this thread holds.
    pub fn raw_read_unlock(&self) -> Result<()> {
        if !pop_held(self.id, Held::Read) {
            return Err(Error::Lock(LockError::NotHeld {
                what: "rwlock read lock",
                location: self.location().clone(),
            }));
        }
        let slot = self.slot()?;
        self.core(slot).read_unlock(slot)
    }

    /// Write-locks without a guard (pair with [`ShmRwLock::raw_write_unlock`] on this
    /// thread). Returns `owner_died`.
    pub fn raw_write(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<bool> {
        if held_by_me(self.id).is_some() {
            return Err(self.deadlock());
        }
        let slot = self.slot()?;
        let died = self.core(slot).write(slot, timeout, interrupt)?;
        push_held(self.id, Held::Write);
        Ok(died)
    }

    /// Releases the write lock this thread holds.
    pub fn raw_write_unlock(&self) -> Result<()> {
        if !pop_held(self.id, Held::Write) {
            return Err(Error::Lock(LockError::NotHeld {
                what: "rwlock write lock",
                location: self.location().clone(),
            }));
        }
        let slot = self.slot()?;
        self.core(slot).write_unlock()
    }

    /// True if a writer holds or is waiting for the lock (informational).
    pub fn is_write_locked(&self) -> bool {
        self.core(0).is_write_locked()
    }

    /// Number of read holds (informational).
    pub fn reader_count(&self) -> u64 {
        self.core(0).reader_count()
    }
}

/// A writer-preferring reader/writer lock that survives killed holders, in its own segment.
///
/// ```
/// use memspace::lock::RwLock;
/// let name = format!("/memspace-doc-rwlock-{}", std::process::id());
/// let l = RwLock::create_named(&name)?;
/// {
///     let r = l.read()?;
///     assert!(!r.owner_died());
/// }
/// let w = l.write()?;
/// drop(w);
/// RwLock::remove(&memspace::Location::Name(name))?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Debug)]
pub struct RwLock {
    l: ShmRwLock,
}

impl RwLock {
    /// Creates an rwlock segment at `location` with permission bits `mode`.
    pub fn create(location: Location, mode: u32) -> Result<RwLock> {
        let l = ShmRwLock::create(
            location,
            mode,
            Kind::RwLock,
            mutex::DEFAULT_SLOTS,
            0,
            0,
            &|_, _| Ok(()),
        )?;
        Ok(RwLock { l })
    }

    /// Creates a named rwlock (mode `0o600`).
    pub fn create_named(name: &str) -> Result<RwLock> {
        Self::create(Location::Name(name.to_owned()), 0o600)
    }

    /// Opens an existing rwlock segment (a [`Location`], or one with a
    /// [`Trust`](crate::Trust)).
    pub fn open(location: impl Into<OpenTarget>) -> Result<RwLock> {
        Ok(RwLock {
            l: ShmRwLock::open(location, Kind::RwLock, None)?,
        })
    }

    /// Removes the segment.
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.l.location()
    }

    /// The trust that opens this rwlock again in another process (for pickling).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.l.structured().reopen_trust()
    }

    /// The lock itself (raw, guard-less operations for bindings).
    pub fn raw(&self) -> &ShmRwLock {
        &self.l
    }

    /// Read-locks, waiting as long as it takes.
    pub fn read(&self) -> Result<ReadGuard<'_>> {
        self.read_with(None, &mut || false)
    }

    /// Write-locks, waiting as long as it takes.
    pub fn write(&self) -> Result<WriteGuard<'_>> {
        self.write_with(None, &mut || false)
    }

    /// Read-locks with a timeout and an interrupt check.
    pub fn read_with(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<ReadGuard<'_>> {
        let owner_died = self.l.raw_read(timeout, interrupt)?;
        Ok(ReadGuard {
            l: &self.l,
            owner_died,
            _not_send: std::marker::PhantomData,
        })
    }

    /// Write-locks with a timeout and an interrupt check.
    pub fn write_with(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<WriteGuard<'_>> {
        let owner_died = self.l.raw_write(timeout, interrupt)?;
        Ok(WriteGuard {
            l: &self.l,
            owner_died,
            _not_send: std::marker::PhantomData,
        })
    }
}

/// A read hold; released when dropped.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct ReadGuard<'a> {
    l: &'a ShmRwLock,
    owner_died: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ReadGuard<'_> {
    /// True if a dead writer's hold was recovered to let this reader in.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        let _ = self.l.raw_read_unlock();
    }
}

/// A write hold; released when dropped.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct WriteGuard<'a> {
    l: &'a ShmRwLock,
    owner_died: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl WriteGuard<'_> {
    /// True if a dead holder (writer or reader) was replaced to let this writer in.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let _ = self.l.raw_write_unlock();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        crate::testing::unique_name("rw", tag)
    }

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and OFD locks: not under Miri
    fn readers_share_writer_excludes() {
        let n = name("basic");
        let l = RwLock::create_named(&n).unwrap();
        let l2 = RwLock::open_named_for_test(&n);
        let r1 = l.read().unwrap();
        let r2 = l2.read().unwrap();
        assert_eq!(l.raw().reader_count(), 2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = l2.write_with(Some(Duration::from_millis(60)), &mut || false);
                assert!(
                    matches!(r, Err(Error::Lock(LockError::Timeout { .. }))),
                    "{r:?}"
                );
            });
        });
        // The aborted writer let readers in again.
        assert!(!l.raw().is_write_locked());
        drop(r2);
        assert!(matches!(
            l.read(),
            Err(Error::Lock(LockError::WouldDeadlock { .. }))
        ));
        assert!(matches!(
            l.write(),
            Err(Error::Lock(LockError::WouldDeadlock { .. }))
        ));
        drop(r1);
        let w = l.write().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = l2.read_with(Some(Duration::ZERO), &mut || false);
                assert!(
                    matches!(r, Err(Error::Lock(LockError::Timeout { .. }))),
                    "{r:?}"
                );
            });
        });
        drop(w);
        assert!(matches!(
            l.raw().raw_read_unlock(),
            Err(Error::Lock(LockError::NotHeld { .. }))
        ));
        assert!(matches!(
            l.raw().raw_write_unlock(),
            Err(Error::Lock(LockError::NotHeld { .. }))
        ));
        RwLock::remove(l.location()).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and OFD locks: not under Miri
    fn writer_waits_for_reader_thread() {
        let n = name("thr");
        let l = RwLock::create_named(&n).unwrap();
        let r = l.read().unwrap();
        // Set just before the read hold ends: a writer that gets in while it is 0 did not wait.
        let released = crate::sync::AtomicU32::new(0);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let w = l.write().unwrap();
                // SYNC: SeqCst, like the store: a plain flag, no other data is published.
                let waited = released.load(crate::sync::Ordering::SeqCst) == 1;
                drop(w);
                waited
            });
            std::thread::sleep(Duration::from_millis(50));
            released.store(1, crate::sync::Ordering::SeqCst);
            drop(r);
            assert!(
                h.join().unwrap(),
                "the writer got in while a reader held the lock"
            );
        });
        RwLock::remove(l.location()).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and OFD locks: not under Miri
    fn a_mutex_segment_is_not_an_rwlock() {
        let n = name("kind");
        let m = crate::lock::mutex::Mutex::create_named(&n).unwrap();
        let loc = m.location().clone();
        assert!(matches!(
            RwLock::open(loc.clone()),
            Err(Error::Segment(SegmentError::WrongKind { .. }))
        ));
        drop(m);
        crate::lock::mutex::Mutex::remove(&loc).unwrap();
    }

    impl RwLock {
        fn open_named_for_test(n: &str) -> RwLock {
            RwLock::open(Location::Name(n.to_owned())).unwrap()
        }
    }
}
