//! The multi-producer/multi-consumer queue.
//!
//! - [`Queue`] / [`QueueOptions`]: a queue in a named or file-backed segment, shared by any
//!   number of processes and threads, with blocking waits that do not poll, FIFO per
//!   producer, and crash safety (a killed producer or consumer loses at most what it held and
//!   never wedges the queue).
//! - [`parts`]: one message made of several aligned parts (the frame of Python's
//!   `Queue.put_object`), written in place with [`Queue::write_parts`] and read with
//!   [`parts::decode`].
//! - `core` (crate-internal): the claim/commit/take/release protocol over any byte region,
//!   checked with loom and proptest on the heap.
//! - `segment` (crate-internal): the queue segment's lock area (control block, eventcounts,
//!   producer and consumer locks, slot generations) and a process's identity in records.
//!
//! Built on the crate's channel layer (record framing, geometry, waits) beside the ring,
//! never on it.

pub(crate) mod core;
pub mod parts;
mod queue;
mod segment;

pub use queue::{
    Attempt, Message, Queue, QueueInfo, QueueOptions, Reservation, DEFAULT_SLOTS, MAX_CAPACITY,
    MIN_CAPACITY, TRY_LOCK_GRACE,
};
