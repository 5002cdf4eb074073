//! memspace: memory as a workspace and as a channel.
//!
//! This crate is the pure-Rust core of memspace; the Python package is a thin layer over it.
//! It owns:
//!
//! - [`shm`]: named (POSIX) and file-backed shared-memory segments ([`Segment`], at a
//!   [`Location`]), and the header, attachment table and liveness rules of structured segments;
//! - [`lock`]: a robust cross-process [`Mutex`] and a writer-preferring [`RwLock`] that
//!   survive a killed holder, over an eventcount (futex wait/wake);
//! - [`view`]: typed views ([`View`]) and fixed records behind such an rwlock, and the tagged
//!   value encoding ([`view::codec`]) that channels carry;
//! - [`spsc`]: the single-producer/single-consumer [`Ring`];
//! - [`mpmc`]: the multi-producer/multi-consumer [`Queue`], and messages made of aligned parts
//!   ([`mpmc::parts`]);
//! - [`Signal`] and [`Waiter`]: a channel's eventcount held apart from its handle, and one
//!   thread waiting on many of them at once (what an event loop integration is built on);
//! - [`broadcast`]: the one-publisher/many-subscriber [`Broadcast`], blocking for the slowest
//!   live subscriber or overwriting (a lapped subscriber is told how many it missed);
//! - [`fs`]: a bounded in-memory filesystem ([`fs::MemoryFileSystem`]) with a hard byte quota,
//!   a node limit and per-file reader/writer locks;
//! - [`Error`]: one error type wrapping an enum per domain ([`SegmentError`], [`LockError`],
//!   [`ChannelError`], [`DataError`], the filesystem's).
//!
//! Every channel (the ring, the queue, the broadcast) stands on the private `channel` layer, which holds
//! what they share (record framing, data-area geometry, waits, roles) and never one channel;
//! no channel module imports another.
//!
//! The hidden `fuzzing` module (feature `fuzzing`) holds the fuzz targets' entry points; it is
//! not an API.
//!
//! Everything that touches the operating system goes through the private `os` module, and
//! every atomic through `sync`, so that the algorithms can be model-checked with loom and run
//! under Miri on heap memory.
//!
//! # Example
//!
//! ```
//! use memspace::{Segment, SegmentOptions};
//!
//! let name = format!("/memspace-doc-{}", std::process::id());
//! let seg = SegmentOptions::named(&name).size(4096).create()?;
//! seg.write_at(0, b"hello")?;
//!
//! let other = Segment::open_named(&name)?;
//! let mut out = [0u8; 5];
//! other.read_at(0, &mut out)?;
//! assert_eq!(&out, b"hello");
//! Segment::unlink_named(&name)?;
//! # Ok::<(), memspace::Error>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod broadcast;
/// The repository README's Rust examples, compiled and run as doctests (`cargo test --doc`),
/// so that a README example cannot break silently. Its Python examples run in pytest
/// (`tests/docs/test_examples.py`); code blocks in other languages are not Rust doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

mod channel;
mod error;
pub mod fs;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod location;
pub mod lock;
pub mod mpmc;
mod os;
pub mod shm;
pub mod spsc;
mod sync;
// Not `not(loom)`: the unit tests that name segments (mutex, segment, list) are compiled in
// the loom build too, and the helper uses no modelled atomic.
#[cfg(test)]
mod testing;
pub mod view;

pub use broadcast::{Broadcast, BroadcastOptions};
pub use channel::error::ChannelError;
pub use channel::signal::{Interest, Signal};
pub use channel::waiter::{WaitStatus, Waiter, WatchId, RECHECK};
pub use error::{Error, Result};
pub use lock::{LockError, Mutex, MutexGuard, ReadGuard, RwLock, WriteGuard};
pub use mpmc::{Queue, QueueOptions};
pub use shm::header::Kind;
pub use shm::{
    Location, OpenMode, OpenTarget, Segment, SegmentError, SegmentInfo, SegmentOptions, Trust,
};
pub use spsc::{Ring, RingOptions};
pub use view::{DataError, View};
