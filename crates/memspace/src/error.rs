//! The error type of the core: one [`Error`] that wraps an error enum per domain.
//!
//! Every fallible operation returns [`Result`]. The domains are those of the crate:
//!
//! | variant | enum | what went wrong |
//! |---|---|---|
//! | [`Error::Segment`] | [`SegmentError`] (`shm`) | a segment's name, existence, permissions, space, bounds, layout, state, attachment table, or a system call on it |
//! | [`Error::Lock`] | [`LockError`] (`lock`) | a lock not acquired in time, a wait that would deadlock, a release by a non-holder |
//! | [`Error::Channel`] | [`ChannelError`] (`channel`) | a ring or broadcast role held by a live process, a channel wait that timed out, a broadcast subscriber that was lapped |
//! | [`Error::Data`] | [`DataError`] (`view`) | typed data of another type, undecodable, or out of range |
//! | [`Error::Fs`] | [`FsError`](crate::fs::FsError) (`fs`) | a path that names nothing or the wrong kind, the quota or node limit, a file lock, a closed or busy handle, ... |
//!
//! and three cross-cutting variants that belong to no one domain: [`Error::InvalidArgument`]
//! (a caller's argument outside its domain, whichever object refused it),
//! [`Error::Interrupted`] (any wait abandoned by the caller's interrupt check) and
//! [`Error::Unsupported`] (an operation this platform lacks).
//!
//! Variants carry structured fields (the location, the sizes, what was waited for) so that
//! callers, and the Python bindings, decide on the variant and never parse a message. `Display`
//! is a message that names the object and the cause, in the core's words; the domain enums are
//! wrapped transparently, so an error's message and `source()` are its domain error's.
//!
//! None of these enums is `#[non_exhaustive]`, deliberately: the Python bindings map every
//! variant with one exhaustive `match` per enum and no catch-all arm, so that adding a variant
//! here without deciding its Python exception fails to compile the bindings. A
//! `#[non_exhaustive]` enum would force a wildcard arm on them (they are another crate) and hide
//! exactly that missing decision.

use crate::channel::error::ChannelError;
use crate::lock::error::LockError;
use crate::shm::error::SegmentError;
use crate::view::error::DataError;

/// Everything that can go wrong in memspace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A segment (or its layout) refused the operation.
    #[error(transparent)]
    Segment(#[from] SegmentError),

    /// A lock could not be taken or released.
    #[error(transparent)]
    Lock(#[from] LockError),

    /// A channel (ring, queue, broadcast) refused or timed out.
    #[error(transparent)]
    Channel(#[from] ChannelError),

    /// Typed data could not be read or written as asked.
    #[error(transparent)]
    Data(#[from] DataError),

    /// An argument outside its domain (a size of zero, a size the platform cannot map, ...).
    #[error("{0}")]
    InvalidArgument(String),

    /// A wait was abandoned because the caller's interrupt check asked for it (in Python: a
    /// signal handler raised, e.g. `KeyboardInterrupt`).
    #[error("interrupted while waiting")]
    Interrupted,

    /// The operation is not available on this platform.
    #[error("{what} is not supported on this platform")]
    Unsupported {
        /// What was attempted.
        what: &'static str,
    },

    /// The filesystem (in-process or shared) refused the operation.
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
}

impl Error {
    /// True for a wait that ran out of time (a lock or a channel wait), including a try that
    /// found the lock busy (a channel's [`ChannelError::Busy`] too).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Lock(LockError::Timeout { .. })
                | Error::Channel(ChannelError::Timeout { .. } | ChannelError::Busy { .. })
        )
    }

    /// True for a wait abandoned by the caller's interrupt check.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Interrupted)
    }

    /// The OS error number behind this error, if there is one (used by the Python bindings to
    /// build `OSError(errno, ...)`).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Segment(e) => e.raw_os_error(),
            Error::Fs(e) => e.raw_os_error(),
            Error::Lock(_)
            | Error::Channel(_)
            | Error::Data(_)
            | Error::InvalidArgument(_)
            | Error::Interrupted
            | Error::Unsupported { .. } => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
