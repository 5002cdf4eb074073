//! The errors of the filesystem, whatever its backing (heap today, a shared segment next).
//!
//! Each variant carries the facts (paths, sizes, modes) as fields, so that a caller can decide
//! what to do and the Python bindings can word the exception D-MemFS users expect. `Display`
//! is a plain description for Rust users; it is not the Python message and carries no Python
//! or D-MemFS wording. The enum is deliberately *not* `non_exhaustive`: the bindings match it
//! without a catch-all arm, so a new variant nobody mapped fails to compile there.

use super::options::{LockKind, OpenMode};

/// What can go wrong in a filesystem operation. Wrapped as [`crate::Error::Fs`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// A path that names nothing (or whose parent does not exist).
    #[error("no such file or directory: '{path}'")]
    NoSuchPath {
        /// The path as given.
        path: String,
    },

    /// A file cannot be created at `path`: its parent `parent` does not exist, or is a file
    /// (`parent_is_file`).
    #[error("cannot create '{path}': its parent '{parent}' is not a directory")]
    NoParentDirectory {
        /// The path as given.
        path: String,
        /// Its parent, normalised.
        parent: String,
        /// The parent exists and is a file.
        parent_is_file: bool,
    },

    /// A path that must not exist yet but does (or a parent that is a file).
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

    /// A directory operation was given a file.
    #[error("not a directory: '{path}'")]
    NotADirectory {
        /// The path as given.
        path: String,
    },

    /// A path that climbs above the root (`/../x`): refused, never clamped.
    #[error("path climbs above the root: '{path}'")]
    PathTraversal {
        /// The path as given.
        path: String,
    },

    /// The byte quota cannot hold `requested` more bytes. Nothing was written or allocated.
    #[error("quota exceeded: {requested} bytes requested, {available} available")]
    QuotaExceeded {
        /// Bytes asked for.
        requested: u64,
        /// Bytes that were free at the time.
        available: u64,
    },

    /// The filesystem already holds `limit` nodes (files and directories, the root included).
    #[error("node limit reached: {current} nodes, limit {limit}")]
    NodeLimitExceeded {
        /// Nodes present.
        current: u64,
        /// The configured `max_nodes`.
        limit: u64,
    },

    /// A file's lock could not be taken within the timeout.
    #[error("timed out waiting for the {kind} lock on '{path}'")]
    LockTimeout {
        /// The path as given.
        path: String,
        /// The lock that was asked for.
        kind: LockKind,
    },

    /// The file (or a file below a directory) is open, so it cannot be removed, renamed or
    /// replaced.
    #[error("file is open: '{path}'")]
    FileBusy {
        /// The path of the open file.
        path: String,
    },

    /// The operating system could not allocate memory for the data (the quota allowed it).
    #[error("memory allocation of {requested} bytes failed")]
    OutOfMemory {
        /// Bytes asked for.
        requested: u64,
    },

    /// A read on a handle opened write-only.
    #[error("handle opened in mode {mode:?} cannot read")]
    NotReadable {
        /// The handle's mode.
        mode: OpenMode,
    },

    /// A write on a handle opened read-only.
    #[error("handle opened in mode {mode:?} cannot write")]
    NotWritable {
        /// The handle's mode.
        mode: OpenMode,
    },

    /// An operation on a closed handle.
    #[error("the file handle is closed")]
    Closed,

    /// A write that is not an append, on a file whose storage is sequential-only.
    #[error("random-access write on sequential-only storage")]
    PromotionDisabled,

    /// A write that is not an append, on a sequential file too large to be made contiguous.
    #[error("sequential file of {size} bytes is above the promotion limit of {limit} bytes")]
    PromotionTooLarge {
        /// The file's size.
        size: u64,
        /// The configured `promotion_hard_limit`.
        limit: u64,
    },

    /// A write whose end does not fit in 64 bits.
    #[error("write of {len} bytes at offset {offset} overflows")]
    WriteOverflow {
        /// Where the write starts.
        offset: u64,
        /// Its length.
        len: u64,
    },

    /// A seek from the start by a negative offset.
    #[error("negative offset {offset} from the start")]
    SeekBeforeStart {
        /// The offset given.
        offset: i64,
    },

    /// A seek from the end by a positive offset (past the end is not supported).
    #[error("positive offset {offset} from the end")]
    SeekPastEnd {
        /// The offset given.
        offset: i64,
    },

    /// A seek `whence` other than 0, 1 or 2.
    #[error("invalid whence {whence}")]
    InvalidWhence {
        /// The value given.
        whence: i32,
    },

    /// A seek whose resulting position would be negative.
    #[error("resulting position {position} is negative")]
    NegativePosition {
        /// The position it would have reached.
        position: i128,
    },

    /// A seek whose resulting position does not fit in 64 bits.
    #[error("resulting position {position} is too large")]
    PositionTooLarge {
        /// The position it would have reached.
        position: i128,
    },

    /// A shared filesystem has no contiguous free space of `requested` bytes (its segment is
    /// sized at creation); `pinned` bytes are held by old versions that live readers
    /// (views, snapshots) may still see.
    #[error("no space left in the shared filesystem for {requested} bytes ({pinned} bytes held by old versions readers may still see)")]
    NoSpace {
        /// Bytes asked for.
        requested: u64,
        /// Bytes of old versions not yet reusable.
        pinned: u64,
    },

    /// A fixed-size metadata table of a shared filesystem is full.
    #[error("the shared filesystem's {what} is full")]
    MetadataFull {
        /// Which table.
        what: &'static str,
    },

    /// An operation that cannot apply to the root directory (remove, rename, move).
    #[error("cannot {op} the root directory")]
    RootOperation {
        /// The operation: `"remove"`, `"rename"` or `"move"`.
        op: &'static str,
    },

    /// A rename or move of a directory into its own subtree.
    #[error("cannot move '{src}' into its own subtree '{dst}'")]
    IntoOwnSubtree {
        /// The source as given.
        src: String,
        /// The destination as given.
        dst: String,
    },
}

impl FsError {
    /// The OS error number that describes this error, if one does (the Python bindings build
    /// `OSError(errno, ...)` from it).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::PathExists { .. } => Some(libc::EEXIST),
            // ENOENT (FileNotFoundError), as D-MemFS raises, also for a parent that is a file.
            FsError::NoSuchPath { .. } | FsError::NoParentDirectory { .. } => Some(libc::ENOENT),
            FsError::IsADirectory { .. } => Some(libc::EISDIR),
            FsError::NotADirectory { .. } => Some(libc::ENOTDIR),
            FsError::LockTimeout { .. } | FsError::FileBusy { .. } => Some(libc::EAGAIN),
            FsError::NoSpace { .. } | FsError::MetadataFull { .. } => Some(libc::ENOSPC),
            FsError::PathTraversal { .. }
            | FsError::QuotaExceeded { .. }
            | FsError::NodeLimitExceeded { .. }
            | FsError::OutOfMemory { .. }
            | FsError::NotReadable { .. }
            | FsError::NotWritable { .. }
            | FsError::Closed
            | FsError::PromotionDisabled
            | FsError::PromotionTooLarge { .. }
            | FsError::WriteOverflow { .. }
            | FsError::SeekBeforeStart { .. }
            | FsError::SeekPastEnd { .. }
            | FsError::InvalidWhence { .. }
            | FsError::NegativePosition { .. }
            | FsError::PositionTooLarge { .. }
            | FsError::RootOperation { .. }
            | FsError::IntoOwnSubtree { .. } => None,
        }
    }
}

/// `Result` with [`FsError`], for the filesystem's internals (the public methods return
/// [`crate::Result`]).
pub(crate) type FsResult<T> = std::result::Result<T, FsError>;
