//! The single-producer/single-consumer ring.
//!
//! [`core`] is the data path (records, commit by the head store, padding, validation); the
//! segment-backed `Ring` with roles and blocking waits builds on it.

pub(crate) mod core;
