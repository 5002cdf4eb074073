//! Cross-process locks that survive a killed holder, and the wait/wake primitive under them.
//!
//! - [`Mutex`]: a robust process-shared mutex in its own segment; a guard tells whether the
//!   previous holder died (`owner_died`).
//! - [`RwLock`]: a writer-preferring reader/writer lock built from that mutex, an eventcount
//!   and per-attachment reader counters, so dead readers and writers are recognised.
//! - `eventcount` (crate-internal): wait for a change of shared state without polling; a wake
//!   costs no syscall when nobody waits.
//!
//! All waits use the monotonic clock and are cut into slices of [`mutex::WAIT_SLICE`], with a
//! caller-supplied interrupt check between slices.

pub(crate) mod eventcount;
pub mod mutex;
pub mod rwlock;

pub use mutex::{Interrupt, Mutex, MutexGuard};
pub use rwlock::{ReadGuard, RwLock, ShmRwLock, WriteGuard};
