//! Cross-process locks that survive a killed holder, and the wait/wake primitive under them.
//!
//! - [`Mutex`]: a robust process-shared mutex in its own segment (memspace's own futex-word
//!   protocol: the word names the holder's attachment slot and generation, a waiter takes over
//!   from a dead holder); a guard tells whether the previous holder died (`owner_died`).
//! - [`RwLock`]: a writer-preferring reader/writer lock built from that mutex, an eventcount
//!   and per-attachment reader counters, so dead readers and writers are recognised.
//! - `eventcount` (crate-internal): wait for a change of shared state without polling; a wake
//!   costs no syscall when nobody waits.
//! - [`LockError`]: what can go wrong taking or releasing them (a holder's death is not an
//!   error: it comes with the acquired lock).
//!
//! All waits use the monotonic clock and are cut into slices of [`mutex::WAIT_SLICE`], with a
//! caller-supplied interrupt check between slices.
//!
//! # Limits (known and deliberate)
//!
//! - A hold belongs to the *handle* and its process, not to the thread: the lock word names
//!   the handle's attachment slot. A thread that exits while holding a mutex, a write lock or
//!   a read lock leaves it held until the handle is closed or dropped or its process exits;
//!   then the next holder is told `owner_died` (a writer replaces a dead reader). (glibc's
//!   robust mutex, used before layout 2, released a mutex when its *thread* exited.) Only the
//!   thread that took a hold may release it ([`LockError::NotHeld`] otherwise).
//! - A dead holder is recognised by its waiters' probes, every 20 ms
//!   ([`mutex::PROBE_SLICE`]); a stopped (`SIGSTOP`) process is alive and keeps its holds.
//! - Reentrancy is detected per handle and thread; a thread holding a lock through one handle
//!   and asking through a second handle of the same segment is not detected (its timeout
//!   still applies).
//! - After `fork`, a handle used in the child claims a fresh attachment slot (the parent's OFD
//!   locks are shared with the child); locks the parent held are not held by the child, and
//!   a child that still has the parent's descriptors open (it never used the handle) keeps
//!   the parent's slot alive after the parent dies, until it uses or drops the handle.
//! - A process that dies while waiting leaves the eventcount's waiter count high: later
//!   wakes make a (harmless) syscall.
//! - Shared memory is untrusted: any value of a mutex word leads at worst to a timeout, a
//!   takeover or [`SegmentError::Corrupt`](crate::SegmentError::Corrupt), and nothing read
//!   from it is used as an address; but a process that can write the segment can of course
//!   break mutual exclusion (see [`mutex`]).

pub(crate) mod error;
pub(crate) mod eventcount;
pub mod mutex;
pub mod rwlock;

pub use error::LockError;
pub use mutex::{Interrupt, Mutex, MutexGuard};
pub use rwlock::{ReadGuard, RwLock, ShmRwLock, WriteGuard};
