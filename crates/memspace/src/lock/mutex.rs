//! The robust, process-shared mutex, in its own segment ([`Mutex`]) or embedded in another
//! kind's lock area (the crate-private `RobustMutex`, e.g. as an rwlock's writer lock).
//!
//! This module owns a 128-byte mutex area. The mutex is glibc's `pthread_mutex_t` with
//! `PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST` and type `PTHREAD_MUTEX_ERRORCHECK`:
//!
//! - robust: when a holder dies (even by `SIGKILL`), the kernel walks the dead thread's robust
//!   list, marks the futex word `FUTEX_OWNER_DIED` and wakes a waiter; the next acquirer gets
//!   `EOWNERDEAD`, calls `pthread_mutex_consistent`, and is told through `owner_died`;
//! - error-checking: relocking by the holding thread returns `EDEADLK` and unlocking by a
//!   thread that does not hold it returns `EPERM`, which become [`LockError::WouldDeadlock`] and
//!   [`LockError::NotHeld`] instead of a deadlock or corruption;
//! - waits use `pthread_mutex_clocklock(CLOCK_MONOTONIC)` in slices of [`WAIT_SLICE`], so that
//!   the caller's interrupt check (Python's signal check) runs between slices.
//!
//! # Encoding of the mutex area (128 bytes, 64-aligned)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `pthread` | `pthread_mutex_t` (≤ 64 bytes) | owned by glibc and the kernel |
//! | 64 | `owner_slot` | u32 (atomic) | attachment slot + 1 of the holder, 0 = none (informational) |
//! | 68 | reserved | u32 | 0 |
//! | 72 | `magic` | u32 | `0x5854_4d52` ("RMTX"), written at init |
//! | 76..128 | reserved | | 0 |
//!
//! # Limits of validation
//!
//! The `pthread_mutex_t` bytes are glibc's, and glibc trusts them. Before every lock the
//! mutex's type field is compared with what `pthread_mutex_init` writes for our attributes, so a
//! mutex overwritten with garbage is refused as [`SegmentError::Corrupt`] instead of being handed
//! to glibc; any value of the futex word itself is handled by glibc and the kernel without
//! crashing (at worst a wait times out). A hostile process that rewrites the type field between
//! that check and glibc's own read is beyond what can be checked from outside glibc.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::error::LockError;
use crate::os::{self, MutexLock};
use crate::shm::error::SegmentError;
use crate::shm::header::{Kind, LayoutRequest};
use crate::shm::segment::{OpenTarget, Segment};
use crate::shm::structured::Structured;
use crate::sync::{AtomicU32, Ordering};

/// Bytes of a mutex area.
pub const MUTEX_AREA: u64 = 128;
/// Longest single sleep inside a lock wait; the interrupt check runs between slices.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);
const MAGIC: u32 = 0x5854_4d52;
const OWNER_OFF: usize = 64;
const MAGIC_OFF: usize = 72;

/// Default number of attachment slots of a lock segment.
pub const DEFAULT_SLOTS: u32 = 64;

/// An interrupt check run between wait slices: return `true` to abandon the wait with
/// [`Error::Interrupted`].
pub type Interrupt<'a> = &'a mut dyn FnMut() -> bool;

/// A robust mutex living at a 64-aligned, 128-byte area of a mapped segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RobustMutex {
    ptr: *mut u8,
}

/// Initialises a mutex area (creator only, before the segment is published).
pub(crate) fn init_area(seg: &Segment, off: u64) -> Result<()> {
    seg.check_range(off, MUTEX_AREA)?;
    // SAFETY: the 128 bytes at `off` are inside the mapping (checked) and 64-aligned (areas
    // are); nobody else uses them before the segment is READY.
    unsafe {
        let p = seg.as_ptr().add(off as usize);
        os::robust_mutex_init(p).map_err(|e| {
            Error::Segment(SegmentError::Os {
                op: "pthread_mutex_init",
                location: seg.location().clone(),
                source: e,
            })
        })?;
        std::ptr::write_unaligned(p.add(MAGIC_OFF).cast::<u32>(), MAGIC);
    }
    Ok(())
}

impl RobustMutex {
    /// # Safety
    /// `ptr` must be a 64-aligned mutex area inside a mapping that outlives every use of the
    /// returned value.
    pub(crate) unsafe fn at(ptr: *mut u8) -> Self {
        Self { ptr }
    }

    fn owner_slot(&self) -> &AtomicU32 {
        // SAFETY: inside the area (see `at`), 4-aligned.
        unsafe { crate::sync::atomic_u32(self.ptr.add(OWNER_OFF)) }
    }

    /// Checks what can be checked of the bytes (see "Limits of validation").
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        // SAFETY: inside the area; a plain read of bytes another process may be writing is a
        // copy of whatever is there (validated below, never trusted).
        // SAFETY: inside the area; read_unaligned has no alignment requirement. A plain read
        // of bytes another process may be writing is a copy of whatever is there, validated
        // below and never trusted.
        let magic = unsafe { std::ptr::read_unaligned(self.ptr.add(MAGIC_OFF).cast::<u32>()) };
        if magic != MAGIC {
            return Err(format!("mutex magic {magic:#x}, expected {MAGIC:#x}"));
        }
        if let Some(t) = os::robust_mutex_template() {
            let r = os::PTHREAD_KIND_RANGE;
            // SAFETY: the kind field lies inside the 64 pthread bytes of the area.
            let kind: [u8; 4] =
                unsafe { std::ptr::read_unaligned(self.ptr.add(r.start).cast::<[u8; 4]>()) };
            if kind[..] != t[r.clone()] {
                return Err(format!(
                    "mutex type field {kind:02x?} is not the robust shared error-checking type {:02x?}",
                    &t[r]
                ));
            }
        }
        Ok(())
    }

    fn map(&self, r: MutexLock, loc: &Location, what: &'static str) -> Result<Option<bool>> {
        match r {
            MutexLock::Acquired => Ok(Some(false)),
            MutexLock::OwnerDied => {
                // SAFETY: we hold the mutex (EOWNERDEAD means acquired).
                unsafe { os::robust_mutex_consistent(self.ptr) }.map_err(|e| {
                    Error::Segment(SegmentError::Os {
                        op: "pthread_mutex_consistent",
                        location: loc.clone(),
                        source: e,
                    })
                })?;
                Ok(Some(true))
            }
            MutexLock::Busy => Ok(None),
            MutexLock::Deadlock => Err(Error::Lock(LockError::WouldDeadlock {
                what,
                location: loc.clone(),
            })),
            MutexLock::Error(e) if e == libc::ENOTRECOVERABLE || e == libc::EINVAL => {
                Err(Error::Segment(SegmentError::Corrupt {
                    location: loc.clone(),
                    reason: format!(
                        "the {what} is unusable ({})",
                        std::io::Error::from_raw_os_error(e)
                    ),
                }))
            }
            MutexLock::Error(e) => Err(Error::Segment(SegmentError::Os {
                op: "pthread_mutex_lock",
                location: loc.clone(),
                source: std::io::Error::from_raw_os_error(e),
            })),
        }
    }

    /// Tries once. `Ok(None)` if another thread holds it; `Ok(Some(owner_died))` if acquired.
    pub(crate) fn try_lock(
        &self,
        slot: u32,
        loc: &Location,
        what: &'static str,
    ) -> Result<Option<bool>> {
        self.validate().map_err(|reason| {
            Error::Segment(SegmentError::Corrupt {
                location: loc.clone(),
                reason,
            })
        })?;
        // SAFETY: the area is valid (see `at`) and its type field was just validated.
        let r = self.map(unsafe { os::robust_mutex_trylock(self.ptr) }, loc, what)?;
        if r.is_some() {
            // SYNC: Relaxed: informational (who holds it), never used for synchronisation.
            self.owner_slot().store(slot + 1, Ordering::Relaxed);
        }
        Ok(r)
    }

    /// Locks, waiting at most `timeout` (`None`: forever) in slices, running `interrupt`
    /// between slices. Returns `owner_died`.
    pub(crate) fn lock(
        &self,
        slot: u32,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
        loc: &Location,
        what: &'static str,
    ) -> Result<bool> {
        if let Some(died) = self.try_lock(slot, loc, what)? {
            return Ok(died);
        }
        let start = os::monotonic_now();
        let deadline = timeout.map(|t| start.saturating_add(t));
        loop {
            let now = os::monotonic_now();
            if let Some(d) = deadline {
                if now >= d {
                    return Err(Error::Lock(LockError::Timeout {
                        what,
                        location: loc.clone(),
                        timeout: timeout.unwrap_or_default(),
                    }));
                }
            }
            let slice_end = match deadline {
                Some(d) => d.min(now + WAIT_SLICE),
                None => now + WAIT_SLICE,
            };
            self.validate().map_err(|reason| {
                Error::Segment(SegmentError::Corrupt {
                    location: loc.clone(),
                    reason,
                })
            })?;
            // SAFETY: as in `try_lock`.
            let r = unsafe { os::robust_mutex_lock_until(self.ptr, slice_end) };
            if let Some(died) = self.map(r, loc, what)? {
                // SYNC: Relaxed: informational.
                self.owner_slot().store(slot + 1, Ordering::Relaxed);
                return Ok(died);
            }
            if interrupt() {
                return Err(Error::Interrupted);
            }
        }
    }

    /// Unlocks; [`LockError::NotHeld`] if the calling thread does not hold it.
    pub(crate) fn unlock(&self, loc: &Location, what: &'static str) -> Result<()> {
        // SYNC: Relaxed: informational. Cleared before the unlock so that it never names a
        // holder after the fact (a later holder overwrites it after acquiring). Load + store,
        // not swap: only the holder writes it, and an RMW costs more on the fast path.
        let prev = self.owner_slot().load(Ordering::Relaxed);
        self.owner_slot().store(0, Ordering::Relaxed);
        // SAFETY: the area is valid (see `at`).
        match unsafe { os::robust_mutex_unlock(self.ptr) } {
            Ok(()) => Ok(()),
            Err(e) => {
                // SYNC: Relaxed: restore the informational owner we cleared.
                self.owner_slot().store(prev, Ordering::Relaxed);
                if e.raw_os_error() == Some(libc::EPERM) {
                    Err(Error::Lock(LockError::NotHeld {
                        what,
                        location: loc.clone(),
                    }))
                } else {
                    Err(Error::Segment(SegmentError::Os {
                        op: "pthread_mutex_unlock",
                        location: loc.clone(),
                        source: e,
                    }))
                }
            }
        }
    }

    /// The informational holder slot (`None` if unlocked or unknown).
    pub(crate) fn holder_slot(self) -> Option<u32> {
        // SYNC: Relaxed: informational.
        self.owner_slot().load(Ordering::Relaxed).checked_sub(1)
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
// SAFETY: as above; every access goes through pthread or atomics.
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

    /// Locks only if it is free now ([`LockError::Timeout`] with a zero timeout otherwise).
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
                .try_lock(slot, self.location(), WHAT)?
                .ok_or_else(|| {
                    Error::Lock(LockError::Timeout {
                        what: WHAT,
                        location: self.location().clone(),
                        timeout: Duration::ZERO,
                    })
                });
        }
        self.m.lock(slot, timeout, interrupt, self.location(), WHAT)
    }

    /// Tries once without waiting: `Ok(None)` if busy.
    pub fn raw_try_lock(&self) -> Result<Option<bool>> {
        let slot = self.slot()?;
        self.m.try_lock(slot, self.location(), WHAT)
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
    // pthread mutexes must be unlocked by the thread that locked them.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        crate::testing::unique_name("mutex", tag)
    }

    #[test]
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
            let m2 = Mutex::open_named(&n).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert!(matches!(
                        m2.try_lock(),
                        Err(Error::Lock(LockError::Timeout { .. }))
                    ));
                    let t0 = std::time::Instant::now();
                    assert!(matches!(
                        m2.lock_timeout(Duration::from_millis(120)),
                        Err(Error::Lock(LockError::Timeout { .. }))
                    ));
                    assert!(t0.elapsed() >= Duration::from_millis(110));
                    assert!(matches!(
                        m.raw_unlock(),
                        Err(Error::Lock(LockError::NotHeld { .. }))
                    ));
                });
            });
        }
        assert!(matches!(
            m.raw_unlock(),
            Err(Error::Lock(LockError::NotHeld { .. }))
        ));
        let mut calls = 0;
        let g = m.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = m.lock_with(None, &mut || {
                    calls += 1;
                    calls >= 2
                });
                assert!(matches!(r, Err(Error::Interrupted)));
            });
        });
        drop(g);
        Mutex::remove(&loc).unwrap();
    }

    #[test]
    fn corrupt_type_field() {
        let n = name("kind");
        let m = Mutex::create_named(&n).unwrap();
        let loc = m.location().clone();
        // (That an rwlock refuses to open this segment is checked beside the rwlock.)
        // Corrupt the pthread type field.
        let off = m.s.geometry().lock_off + 16;
        m.s.segment().write_at(off, &[0xff; 4]).unwrap();
        assert!(matches!(
            m.try_lock(),
            Err(Error::Segment(SegmentError::Corrupt { .. }))
        ));
        drop(m);
        Mutex::remove(&loc).unwrap();
    }
}
