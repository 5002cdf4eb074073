//! The one error type of the core.
//!
//! Every fallible operation returns [`Result`]. Variants carry structured fields so that the
//! Python bindings can map each to the right exception (`FileExistsError`, `ValueError`, ...)
//! with a message that names the object and the cause; `Display` is that message.

use std::io;

use crate::location::Location;

/// Everything that can go wrong in memspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A segment name that the platform would reject or that memspace refuses.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// An argument outside its domain (a size of zero, a size the platform cannot map, ...).
    #[error("{0}")]
    InvalidArgument(String),

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

    /// An access outside a segment.
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

    /// The operation is not available on this platform.
    #[error("{what} is not supported on this platform")]
    Unsupported {
        /// What was attempted.
        what: &'static str,
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
    CorruptSegment {
        /// Where.
        location: Location,
        /// What was found.
        reason: String,
    },

    /// A lock could not be acquired within the timeout (or at once, for a try-lock).
    #[error("timed out after {timeout:?} waiting for the {what} of {location}")]
    Timeout {
        /// Which lock.
        what: &'static str,
        /// Where.
        location: Location,
        /// The timeout that elapsed.
        timeout: std::time::Duration,
    },

    /// A wait was abandoned because the caller's interrupt check asked for it (in Python: a
    /// signal handler raised, e.g. `KeyboardInterrupt`).
    #[error("interrupted while waiting")]
    Interrupted,

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

    /// A ring role (producer or consumer) is held by another live process (or handle).
    #[error("the {role} role of ring {location} is held by a live process")]
    RoleTaken {
        /// Where.
        location: Location,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
    },

    /// Every slot of the attachment table is held by a live process.
    #[error("all {slots} attachment slots of segment {location} are in use by live processes")]
    AttachmentTableFull {
        /// Where.
        location: Location,
        /// Size of the table.
        slots: u32,
    },

    /// A typed read found a value of another type than the one asked for.
    #[error("at offset {offset}: expected a {expected} value, found {found}")]
    TagMismatch {
        /// Offset of the value's tag.
        offset: u64,
        /// Type asked for.
        expected: &'static str,
        /// What is stored there.
        found: String,
    },

    /// Stored data that cannot be decoded (invalid UTF-8, an impossible bool byte, ...).
    #[error("at offset {offset}: {reason}")]
    InvalidData {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A number that does not fit the field or type it is written to.
    #[error("{value} does not fit in a {ty}")]
    ValueOutOfRange {
        /// The value.
        value: String,
        /// The type.
        ty: &'static str,
    },

    /// Any other operating-system error, with the call that failed.
    #[error("{op} failed for {location}: {source}")]
    Os {
        /// The system call or operation.
        op: &'static str,
        /// Where.
        location: Location,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A filesystem path (of [`crate::fs::MemoryFileSystem`]) that names nothing.
    #[error("no such file or directory: '{path}'")]
    NoSuchPath {
        /// The path as given.
        path: String,
    },

    /// A filesystem path that must not exist yet but does.
    #[error("file exists: '{path}'")]
    PathExists {
        /// The path as given.
        path: String,
    },

    /// A file operation was given a directory.
    #[error("is a directory: '{path}'")]
    IsADirectory {
        /// The path as given.
        path: String,
    },

    /// A directory operation was given a file (or a path goes through a file).
    #[error("not a directory: '{path}'")]
    NotADirectory {
        /// The path as given.
        path: String,
    },

    /// A path that climbs above the root (`/../x`).
    #[error("path traversal attempt detected: '{path}'")]
    PathTraversal {
        /// The path as given.
        path: String,
    },

    /// The filesystem quota cannot hold `requested` more bytes.
    #[error("MFS quota exceeded: requested {requested} bytes, only {available} bytes available.")]
    QuotaExceeded {
        /// Bytes asked for.
        requested: u64,
        /// Bytes that were free at the time.
        available: u64,
    },

    /// The filesystem already holds `limit` nodes (files and directories, the root included).
    #[error("MFS node limit exceeded: current {current} nodes, limit is {limit}.")]
    NodeLimitExceeded {
        /// Nodes present.
        current: u64,
        /// The configured `max_nodes`.
        limit: u64,
    },

    /// A file lock could not be taken within the timeout.
    #[error("could not acquire the {kind} lock on '{path}' within the timeout")]
    LockTimeout {
        /// The path as given.
        path: String,
        /// `"read"` or `"write"`.
        kind: &'static str,
    },

    /// The file (or a file below a directory) is open, so it cannot be removed, renamed or
    /// replaced.
    #[error("file is open: '{path}'")]
    FileBusy {
        /// The path of the open file.
        path: String,
    },

    /// An operation the object does not support in its current mode or storage (writing a
    /// file opened for reading, a random write into sequential-only storage, ...).
    #[error("{0}")]
    UnsupportedOperation(String),

    /// The operating system could not allocate memory for the data (the quota allowed it).
    #[error("memory allocation of {requested} bytes failed")]
    OutOfMemory {
        /// Bytes asked for.
        requested: u64,
    },
}

impl Error {
    /// The OS error number behind this error, if there is one (used by the Python bindings to
    /// build `OSError(errno, ...)`).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            Error::AlreadyExists { .. } | Error::PathExists { .. } => Some(libc::EEXIST),
            Error::NotFound { .. } | Error::NoSuchPath { .. } => Some(libc::ENOENT),
            Error::PermissionDenied { .. } => Some(libc::EACCES),
            Error::NoSpace { .. } => Some(libc::ENOSPC),
            Error::IsADirectory { .. } => Some(libc::EISDIR),
            Error::NotADirectory { .. } => Some(libc::ENOTDIR),
            Error::LockTimeout { .. } | Error::FileBusy { .. } => Some(libc::EAGAIN),
            Error::AttachmentTableFull { .. } => Some(EUSERS),
            _ => None,
        }
    }
}

#[cfg(unix)]
const EUSERS: i32 = libc::EUSERS;
#[cfg(not(unix))]
const EUSERS: i32 = 87;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
