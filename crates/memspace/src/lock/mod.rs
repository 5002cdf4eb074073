//! Cross-process locks that survive a killed holder, and the wait/wake primitive under them.
//!
//! - [`Mutex`]: a robust process-shared mutex in its own segment; a guard tells whether the
//!   previous holder died (`owner_died`).
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
//! - A read hold belongs to the *process* (reader counts are per attachment slot): a thread
//!   that exits while holding a read lock leaves it held until its process exits. A write
//!   hold (and a mutex) belongs to the *thread*: the kernel releases it, with `owner_died`,
//!   when that thread exits.
//! - Reentrancy is detected per handle and thread; a thread holding a lock through one handle
//!   and asking through a second handle of the same segment is not detected (its timeout
//!   still applies).
//! - All processes must share a pid namespace: robust futexes identify holders by thread id.
//! - After `fork`, a handle used in the child claims a fresh attachment slot (the parent's OFD
//!   locks are shared with the child); locks the parent held are not held by the child.
//! - A process that dies while waiting leaves the eventcount's waiter count high: later
//!   wakes make a (harmless) syscall.
//! - The `pthread_mutex_t` bytes are validated (type field, our magic) before every lock but
//!   are glibc's to interpret; see [`mutex`] for what a hostile writer can still do.

pub(crate) mod error;
pub(crate) mod eventcount;
pub mod mutex;
pub mod rwlock;

pub use error::LockError;
pub use mutex::{Interrupt, Mutex, MutexGuard};
pub use rwlock::{ReadGuard, RwLock, ShmRwLock, WriteGuard};
