//! What can go wrong taking or releasing a cross-process lock: a timeout, a wait that would
//! deadlock, a release by a thread that does not hold the lock.
//!
//! A holder's death is not among them: it is reported with the acquired lock (`owner_died`),
//! never as an error. Wrapped as [`Error::Lock`](crate::Error::Lock).

use std::time::Duration;

use crate::location::Location;

/// A lock's errors.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A lock could not be acquired within the timeout (or at once, for a try-lock).
    #[error("timed out after {timeout:?} waiting for the {what} of {location}")]
    Timeout {
        /// Which lock.
        what: &'static str,
        /// Where.
        location: Location,
        /// The timeout that elapsed.
        timeout: Duration,
    },

    /// The calling thread already holds this lock; waiting for it would deadlock.
    #[error("the calling thread already holds the {what} of {location}; waiting would deadlock")]
    WouldDeadlock {
        /// Which lock.
        what: &'static str,
        /// Where.
        location: Location,
    },

    /// A release of a lock the calling thread does not hold.
    #[error("the calling thread does not hold the {what} of {location}")]
    NotHeld {
        /// Which lock.
        what: &'static str,
        /// Where.
        location: Location,
    },
}
