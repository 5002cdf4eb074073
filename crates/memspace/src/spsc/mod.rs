//! The single-producer/single-consumer ring.
//!
//! - [`Ring`] / [`RingOptions`]: a ring in a named or file-backed segment, with
//!   single-owner [`Producer`] and [`Consumer`] handles, blocking waits without polling,
//!   roles that a dead holder's successor can take over, and zero-copy access.
//! - `core` (crate-internal): the data path (records, commit by the head store, padding,
//!   validation), written against any byte region so that loom and proptest check it on the heap.
//!
//! Built on the crate's channel layer (record framing, geometry, waits, roles) beside the
//! queue, never on it.

pub(crate) mod core;
pub(crate) mod ring;

pub use crate::channel::wait::never_interrupted;
pub use ring::{
    Consumer, Message, Producer, Reservation, Ring, RingOptions, Role, DEFAULT_SLOTS, MAX_CAPACITY,
    MIN_CAPACITY,
};
