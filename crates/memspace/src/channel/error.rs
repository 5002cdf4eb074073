//! What can go wrong using a channel (ring, queue, broadcast): a role another live process
//! holds, a wait for room or for a message that timed out, a lock another holder kept
//! throughout a call, a broadcast subscriber that was lapped.
//!
//! What a channel finds impossible in shared memory is a corrupt *segment*
//! ([`SegmentError::Corrupt`](crate::SegmentError::Corrupt)), and a message that is too large an
//! invalid argument. Wrapped as [`Error::Channel`](crate::Error::Channel).

use std::time::Duration;

use crate::location::Location;

fn holder(by_this_process: bool) -> &'static str {
    if by_this_process {
        "another handle in this process (one handle per role: use that one, or close it first)"
    } else {
        "another live process"
    }
}

/// A channel's errors.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// A single-holder role (a ring's producer or consumer, a broadcast's publisher) is held
    /// by another live process (or handle).
    #[error("the {role} role of {location} is held by {}", holder(*by_this_process))]
    RoleTaken {
        /// Where.
        location: Location,
        /// `"producer"`, `"consumer"` or `"publisher"`.
        role: &'static str,
        /// The holder is another handle of this very process (not a process to wait for).
        by_this_process: bool,
    },

    /// What a blocking call waited for (room for a message, ...) did not come within the
    /// timeout.
    #[error("timed out after {timeout:?} waiting for the {what} of {location}")]
    Timeout {
        /// What was waited for (`"room in the ring"`, `"room in the queue"`).
        what: &'static str,
        /// Where.
        location: Location,
        /// The timeout that elapsed.
        timeout: Duration,
    },

    /// `task_done` was called more times than the handle took messages (each handle marks
    /// what it took itself).
    #[error(
        "task_done() called more times than this handle of {location} took messages (a handle \
         marks only the messages it took itself)"
    )]
    TaskDoneTooOften {
        /// Where.
        location: Location,
    },

    /// A broadcast subscriber in overwrite mode fell a lap behind: the publisher overwrote
    /// `missed` messages it had not read (or one it was reading). It continues with the oldest
    /// message still there.
    #[error("the subscriber of {location} fell behind and missed {missed} messages")]
    Lagged {
        /// Where.
        location: Location,
        /// How many messages were lost to this subscriber.
        missed: u64,
    },

    /// A call gave up because another process or thread held one of the channel's locks at
    /// its last attempt (a stopped process holds it for as long as it is stopped), while the
    /// channel was neither full (for a send) nor empty (for a receive), as far as can be told
    /// without the lock.
    #[error(
        "the {what} of {location} was held by another process or thread throughout {waited:?} \
         (a stopped process keeps it locked): nothing was sent or taken, though the queue \
         was not {}",
        if what.contains("producer") { "full" } else { "empty" }
    )]
    Busy {
        /// Which lock (`"queue producer lock"`, `"queue consumer lock"`).
        what: &'static str,
        /// Where.
        location: Location,
        /// How long the call waited.
        waited: Duration,
    },
}
