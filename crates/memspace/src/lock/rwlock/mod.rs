//! The writer-preferring, robust reader/writer lock.
//!
//! - `core` (crate-internal): the state machine over borrowed words (writer preference, the
//!   reader/writer handshake, recovery from dead readers and writers), model-checked with loom
//!   on heap memory with the writer mutex and the futex modelled.
//! - `segment` (re-exported here): the rwlock area of a segment and the handles over it:
//!   [`ShmRwLock`] (an rwlock in front of another kind's data, as in [`crate::view::View`]),
//!   [`RwLock`] (an rwlock in its own segment) and the [`ReadGuard`] / [`WriteGuard`] holds.

pub(crate) mod core;
mod segment;

pub use segment::{area_size, ReadGuard, RwLock, ShmRwLock, WriteGuard};
