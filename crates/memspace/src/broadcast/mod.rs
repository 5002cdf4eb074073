//! The one-publisher/many-subscriber broadcast.
//!
//! - [`Broadcast`] / [`BroadcastOptions`]: a broadcast in a named or file-backed segment, with a
//!   single-owner [`Publisher`] (a role a dead holder's successor can take over) and any number
//!   of [`Subscriber`]s, each of which sees every message published after it subscribed, in
//!   order, exactly once; blocking waits without polling; zero-copy on both sides.
//! - [`Overflow`]: what the publisher does when a subscriber falls behind: wait for the slowest
//!   live one ([`Overflow::Block`]) or overwrite and tell it how many it missed
//!   ([`Overflow::Overwrite`], [`ChannelError::Lagged`](crate::ChannelError::Lagged)).
//! - `core` (crate-internal): the protocol (records, the join handshake, the cached floor and
//!   the liveness of laggards, the overwrite seqlock and lap detection), written against any
//!   byte region so that loom and proptest check it on the heap.
//!
//! Built on the crate's channel layer (record framing, geometry, waits, roles) beside the ring
//! and the queue, never on them.

pub(crate) mod core;
mod endpoints;
mod segment;
mod shared;

pub use self::core::Overflow;
pub use endpoints::{Message, Publisher, Reservation, Subscriber};
pub use segment::{
    Broadcast, BroadcastInfo, BroadcastOptions, SubscriberInfo, DEFAULT_SLOTS, MAX_CAPACITY,
    MIN_CAPACITY,
};
