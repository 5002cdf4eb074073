//! A channel's eventcount held apart from the channel's handle: what an asynchronous waiter
//! sleeps on (the per-event-loop thread of Python's `memspace.aio`, or any Rust event loop
//! through a [`Waiter`](super::waiter::Waiter)).
//!
//! This module owns nothing in shared memory: a [`Signal`] names one of the eventcounts a
//! channel lays out in its lock area (the consumers' "not empty", the producers' "not full")
//! and keeps the mapping alive. The channel still notifies it after every change, exactly as
//! for its own blocking waits; what the condition is (a committed record, room for one) stays
//! the channel's, checked by whoever tries the non-waiting operation.
//!
//! # How a waiter uses it (the eventcount protocol, split in two)
//!
//! ```text
//! try the operation           (e.g. Queue::try_pop)    -> done?
//! key = signal.prepare()      (announces a waiter)
//! try the operation again                              -> done? then signal.cancel()
//! waiter.watch(&signal, key)  (the waiter now owns the prepare and cancels it)
//! ... waiter.wait() reports the watch once a notify came after `prepare` ...
//! try the operation again     (maybe someone else got there first: start over)
//! ```
//!
//! No wake-up is lost: a notify that comes after `prepare` changes the sequence word (the
//! eventcount's guarantee), so the watch fires; one that came before it is seen by the second
//! try. Nothing is ever taken on the waiter's side, so a caller that gives up (a cancelled
//! coroutine) loses nothing.

use std::sync::Arc;

use crate::channel::segment::ChannelSegment;
use crate::lock::eventcount::EventCount;

/// What a [`Signal`] points into: a channel's shared state (its `Arc`, so the mapping lives
/// as long as any signal of it).
pub(crate) trait SignalSource: Send + Sync + 'static {
    /// The channel segment whose lock area holds the eventcount.
    fn channel(&self) -> &ChannelSegment;
}

/// Which of a channel's eventcounts: the one a receiving side waits on, or a sending side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// "A message may be there": notified after every commit (the consumers' eventcount).
    Readable,
    /// "Room may be there": notified after every release (the producers' eventcount).
    Writable,
}

/// One eventcount of a channel, usable without the channel's handle (clone it freely; it
/// keeps the channel's mapping alive). Get one with `Queue::signal` or `Ring::signal`; see
/// [`Waiter`](super::waiter::Waiter) for waiting on many at once.
#[derive(Clone)]
pub struct Signal {
    src: Arc<dyn SignalSource>,
    off: usize,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("location", self.src.channel().location())
            .field("offset", &self.off)
            .finish()
    }
}

impl Signal {
    /// The eventcount at `off` of `src`'s lock area (a layout constant of the channel, so the
    /// lock-area bounds check in `ChannelSegment::event` always passes).
    pub(crate) fn new(src: Arc<dyn SignalSource>, off: usize) -> Signal {
        // Fail here, at the channel's call, rather than later in a waiter's thread.
        let _ = src.channel().event(off);
        Signal { src, off }
    }

    pub(crate) fn event(&self) -> EventCount<'_> {
        self.src.channel().event(self.off)
    }

    /// Announces a waiter and returns the key to watch. Call it before the last try of the
    /// operation; then either [`cancel`](Signal::cancel) (the try succeeded) or hand the key
    /// to [`Waiter::watch`](super::waiter::Waiter::watch), which cancels it for you. While a
    /// prepare is outstanding, every notify of this eventcount costs its notifier a wake
    /// syscall, so never leave one behind.
    pub fn prepare(&self) -> u32 {
        self.event().prepare()
    }

    /// Withdraws a [`prepare`](Signal::prepare).
    pub fn cancel(&self) {
        self.event().cancel();
    }

    /// Whether a notify came after the `prepare` that returned `key`.
    pub fn changed(&self, key: u32) -> bool {
        self.event().changed(key)
    }

    /// Whether `self` and `other` are the same eventcount of the same mapping.
    pub fn same_as(&self, other: &Signal) -> bool {
        std::ptr::eq(self.event().seq_word(), other.event().seq_word())
    }
}
