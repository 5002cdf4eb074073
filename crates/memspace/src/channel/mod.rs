//! What every channel shares, and nothing that belongs to one channel.
//!
//! A channel (the [`spsc`](crate::spsc) ring, the [`mpmc`](crate::mpmc) queue, and kinds to
//! come, such as a broadcast with one head and a cursor per subscriber) is a structured segment
//! whose data area is a ring of framed records addressed by monotonic byte positions. The
//! pieces here are the same for all of them:
//!
//! - `frame`: the record framing (header, padding, alignment) and the byte [`Region`]s records
//!   live in (a mapping in production, loom cells on the heap in the model tests);
//! - `geometry`: the data area's capacity and message limit, the cache-line pair a side owns,
//!   and the protocol's [`Corrupt`] report;
//! - `wait`: spinning, then sleeping on an eventcount in slices, with deadlines and interrupt
//!   checks;
//! - `role`: a single-holder role held by an OFD lock that the kernel drops at its holder's death;
//! - `segment`: a channel's mapped segment, data region and lock-area words held together;
//! - `signal`: one of a channel's eventcounts held apart from its handle ([`Signal`]), what an
//!   asynchronous waiter sleeps on;
//! - `waiter`: one thread waiting on many signals at once ([`Waiter`]), the core of Python's
//!   `memspace.aio`.
//!
//! Each channel builds its own protocol (`spsc::core`, `mpmc::core`) and its own
//! segment-backed handle on these; a channel never imports another channel.
//!
//! [`Region`]: frame::Region
//! [`Corrupt`]: geometry::Corrupt
//! [`Signal`]: signal::Signal
//! [`Waiter`]: waiter::Waiter

pub(crate) mod error;
pub(crate) mod frame;
pub(crate) mod geometry;
pub(crate) mod role;
pub(crate) mod segment;
pub(crate) mod signal;
pub(crate) mod wait;
pub(crate) mod waiter;
