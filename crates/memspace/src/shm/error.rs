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

    /// `open` refused a segment owned by another user (see [`Trust`](crate::shm::Trust)):
    /// another local user may have created it first to feed this process its contents.
    #[error(
        "segment {location} is owned by uid {owner}, not by this process's effective uid {euid}"
    )]
    NotOwned {
        /// Where.
        location: Location,
        /// The file's owner (`st_uid`).
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },

    /// `open` refused a segment that group or other may write (see
    /// [`Trust`](crate::shm::Trust)): whoever may write it can change what this process reads.
    #[error("segment {location} is writable by {} (mode {mode:#o})", writers(*mode))]
    SharedWritable {
        /// Where.
        location: Location,
        /// The file's permission bits.
        mode: u32,
    },

    /// A structured segment's lock file does not belong to the segment's owner: someone
    /// else made it (see `shm::lockfile`), so the liveness locks in it cannot be trusted.
    #[error(
        "lock file {location} is owned by uid {owner}, but its segment by uid {segment_owner}"
    )]
    ForeignLockFile {
        /// The lock file.
        location: Location,
        /// Its owner.
        owner: u32,
        /// The segment's owner.
        segment_owner: u32,
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
            SegmentError::PermissionDenied { .. }
            | SegmentError::NotOwned { .. }
            | SegmentError::SharedWritable { .. }
            | SegmentError::ForeignLockFile { .. } => Some(libc::EACCES),
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

/// "group", "other" or "group and other", for a mode with write bits for them.
fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and other",
        (true, false) => "its group",
        _ => "other users",
    }
}

#[cfg(unix)]
const EUSERS: i32 = libc::EUSERS;
#[cfg(not(unix))]
const EUSERS: i32 = 87;
