//! The multi-producer/multi-consumer queue.
//!
//! - [`Queue`] / [`QueueOptions`]: a queue in a named or file-backed segment, shared by any
//!   number of processes and threads, with blocking waits that do not poll, FIFO per
//!   producer, and crash safety (a killed producer or consumer loses at most what it held and
//!   never wedges the queue).
//! - `core` (crate-internal): the claim/commit/take/release protocol over any byte region,
//!   checked with loom and proptest on the heap.

pub(crate) mod core;
mod queue;

pub use queue::{
    Message, Queue, QueueInfo, QueueOptions, Reservation, DEFAULT_SLOTS, MAX_CAPACITY, MIN_CAPACITY,
};
