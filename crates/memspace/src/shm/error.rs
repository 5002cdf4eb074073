//! What can go wrong with a segment: its name, its existence and permissions, its space, an
//! access outside it, its layout and state, its attachment table, and the system calls on it.
//!
//! Every variant names the segment's [`Location`] (or, for an access, the bounds), so that the
//! message alone says which object and why. Wrapped as [`Error::Segment`](crate::Error::Segment).

use std::io;
use std::path::PathBuf;

use crate::location::Location;

/// A segment's (and its layout's) errors.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A segment name that the platform would reject or that memspace refuses.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// `create` found something already at that name or path.
    #[error("segment {location} already exists")]
    AlreadyExists {
        /// Where.
        location: Location,
    },

    /// `open` or `remove` found nothing at that name or path.
    #[error("segment {location} does not exist")]
    NotFound {
        /// Where.
        location: Location,
    },

    /// `create` at a path whose directory does not exist (nothing was created).
    #[error("cannot create segment {location}: directory {:?} does not exist", directory.display().to_string())]
    NoDirectory {
        /// Where.
        location: Location,
        /// The directory that is missing.
        directory: PathBuf,
    },

    /// The operating system refused access.
    #[error("permission denied for segment {location}")]
    PermissionDenied {
        /// Where.
        location: Location,
    },

    /// Not enough room in the backing store (`/dev/shm` or the file system) to reserve the
    /// segment. Reported at creation, so that no later access can fault.
    #[error(
        "not enough space to reserve {requested} bytes for segment {location} \
         (the backing file system, e.g. /dev/shm, is full or too small)"
    )]
    NoSpace {
        /// Where.
        location: Location,
        /// Bytes asked for.
        requested: u64,
    },

    /// An access outside a segment (or outside a view's data area).
    #[error("range {offset}..{offset}+{len} is outside the segment of {size} bytes")]
    OutOfBounds {
        /// Start of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the segment.
        size: u64,
    },

    /// The object behind a name or path is not something memspace can map (a directory, a
    /// device, an empty file, or a file smaller than the caller requires).
    #[error("segment {location} cannot be used: {reason}")]
    Unusable {
        /// Where.
        location: Location,
        /// Why.
        reason: String,
    },

    /// A structured segment holds another kind of object than the one asked for.
    #[error("segment {location} holds a {found}, not a {expected}")]
    WrongKind {
        /// Where.
        location: Location,
        /// The kind asked for.
        expected: &'static str,
        /// The kind found in the header.
        found: String,
    },

    /// A segment's header is not one this version can use: not a memspace header, another
    /// major layout version, another byte order, a bad checksum or sizes that do not add up.
    #[error("segment {location} has an incompatible or invalid layout: {reason}")]
    IncompatibleLayout {
        /// Where.
        location: Location,
        /// What did not match (expected and found values).
        reason: String,
    },

    /// A structured segment whose creator has not finished (or died while) initialising it.
    #[error(
        "segment {location} is still being initialised after {waited_ms} ms \
         (its creator may have died; `memspace rm --stale` removes such segments)"
    )]
    NotReady {
        /// Where.
        location: Location,
        /// How long the opener waited.
        waited_ms: u64,
    },

    /// A value read from a live structured segment is impossible (memory corrupted by a bug or
    /// a hostile process). Nothing outside the segment was touched.
    #[error("segment {location} is corrupt: {reason}")]
    Corrupt {
        /// Where.
        location: Location,
        /// What was found.
        reason: String,
    },

    /// Every slot of the attachment table is held by a live process.
    #[error("all {slots} attachment slots of segment {location} are in use by live processes")]
    AttachmentTableFull {
        /// Where.
        location: Location,
        /// Size of the table.
        slots: u32,
    },

    /// Any other operating-system error, with the call that failed.
    #[error("{op} failed for segment {location}: {source}")]
    Os {
        /// The system call or operation.
        op: &'static str,
        /// Where.
        location: Location,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl SegmentError {
    /// The OS error number behind this error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SegmentError::Os { source, .. } => source.raw_os_error(),
            SegmentError::AlreadyExists { .. } => Some(libc::EEXIST),
            SegmentError::NotFound { .. } | SegmentError::NoDirectory { .. } => Some(libc::ENOENT),
            SegmentError::PermissionDenied { .. } => Some(libc::EACCES),
            SegmentError::NoSpace { .. } => Some(libc::ENOSPC),
            SegmentError::AttachmentTableFull { .. } => Some(EUSERS),
            SegmentError::InvalidName { .. }
            | SegmentError::OutOfBounds { .. }
            | SegmentError::Unusable { .. }
            | SegmentError::WrongKind { .. }
            | SegmentError::IncompatibleLayout { .. }
            | SegmentError::NotReady { .. }
            | SegmentError::Corrupt { .. } => None,
        }
    }
}

#[cfg(unix)]
const EUSERS: i32 = libc::EUSERS;
#[cfg(not(unix))]
const EUSERS: i32 = 87;
