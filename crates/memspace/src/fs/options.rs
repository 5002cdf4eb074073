//! What every filesystem shares, whatever holds its tree: the settings and their defaults,
//! how new files store their data, the open modes and the lock each takes, and the metadata
//! a caller reads back ([`Stat`], [`Stats`]).
//!
//! Nothing here knows where nodes or bytes live.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default `max_quota`: 256 MiB.
pub const DEFAULT_MAX_QUOTA: u64 = 256 * 1024 * 1024;
/// Default per-chunk overhead charged for sequential files (D-MemFS's estimate).
pub const DEFAULT_CHUNK_OVERHEAD: u64 = 128;
/// Default largest size at which a sequential file may be promoted: 512 MiB.
pub const DEFAULT_PROMOTION_HARD_LIMIT: u64 = 512 * 1024 * 1024;
/// Default lock timeout of `open`: 30 s.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How new files store their data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// Chunked, promoted to contiguous on the first random write.
    #[default]
    Auto,
    /// Chunked only; a random write is refused.
    Sequential,
    /// Contiguous from the start.
    RandomAccess,
}

impl StorageKind {
    /// Parses `auto`, `sequential`, `random_access` (D-MemFS's `default_storage` names).
    ///
    /// ```
    /// use memspace::fs::StorageKind;
    /// assert_eq!(StorageKind::parse("random_access"), Some(StorageKind::RandomAccess));
    /// assert_eq!(StorageKind::parse("contiguous"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => Self::Auto,
            "sequential" => Self::Sequential,
            "random_access" => Self::RandomAccess,
            _ => return None,
        })
    }
    /// The name [`StorageKind::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Sequential => "sequential",
            Self::RandomAccess => "random_access",
        }
    }
}

/// Settings of a filesystem (a builder).
///
/// ```
/// use memspace::fs::{FsOptions, StorageKind};
/// let opts = FsOptions::new().max_quota(1024).max_nodes(Some(10)).storage(StorageKind::Sequential);
/// assert_eq!(opts.get_max_quota(), 1024);
/// ```
#[derive(Clone, Debug)]
pub struct FsOptions {
    pub(crate) max_quota: u64,
    pub(crate) chunk_overhead: u64,
    pub(crate) promotion_hard_limit: u64,
    pub(crate) max_nodes: Option<u64>,
    pub(crate) storage: StorageKind,
    pub(crate) default_lock_timeout: Option<Duration>,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            max_quota: DEFAULT_MAX_QUOTA,
            chunk_overhead: DEFAULT_CHUNK_OVERHEAD,
            promotion_hard_limit: DEFAULT_PROMOTION_HARD_LIMIT,
            max_nodes: None,
            storage: StorageKind::Auto,
            default_lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
        }
    }
}

impl FsOptions {
    /// The defaults (those of D-MemFS).
    pub fn new() -> Self {
        Self::default()
    }
    /// The byte quota.
    #[must_use]
    pub fn max_quota(mut self, bytes: u64) -> Self {
        self.max_quota = bytes;
        self
    }
    /// The quota overhead charged per chunk of a sequential file.
    #[must_use]
    pub fn chunk_overhead(mut self, bytes: u64) -> Self {
        self.chunk_overhead = bytes;
        self
    }
    /// The largest sequential file that may be promoted to random-access.
    #[must_use]
    pub fn promotion_hard_limit(mut self, bytes: u64) -> Self {
        self.promotion_hard_limit = bytes;
        self
    }
    /// The most nodes (files and directories, the root included); `None`: unlimited.
    #[must_use]
    pub fn max_nodes(mut self, limit: Option<u64>) -> Self {
        self.max_nodes = limit;
        self
    }
    /// How new files store their data.
    #[must_use]
    pub fn storage(mut self, kind: StorageKind) -> Self {
        self.storage = kind;
        self
    }
    /// How long `open` waits for a file lock by default; `None`: forever.
    #[must_use]
    pub fn default_lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_lock_timeout = timeout;
        self
    }
    /// The configured quota.
    pub fn get_max_quota(&self) -> u64 {
        self.max_quota
    }
    /// The configured per-chunk overhead.
    pub fn get_chunk_overhead(&self) -> u64 {
        self.chunk_overhead
    }
    /// The configured default lock timeout (`None`: wait forever).
    pub fn get_default_lock_timeout(&self) -> Option<Duration> {
        self.default_lock_timeout
    }
    /// The timeout an `open` waits: `lock_timeout`, or the default if that is `None`.
    pub(crate) fn lock_timeout(&self, lock_timeout: Option<Duration>) -> Option<Duration> {
        lock_timeout.or(self.default_lock_timeout)
    }
}

/// The lock an open handle holds on its file for its whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Shared: any number of readers.
    Read,
    /// Exclusive: one writer, no readers.
    Write,
}

impl LockKind {
    /// `"read"` or `"write"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockKind::Read => "read",
            LockKind::Write => "write",
        }
    }
}

impl std::fmt::Display for LockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a file is opened (the binary modes of Python's `open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// `rb`: read; the file must exist; shared lock.
    Read,
    /// `wb`: write; created or truncated; exclusive lock.
    Write,
    /// `ab`: append; created if missing; every write goes to the end.
    Append,
    /// `r+b`: read and write; the file must exist; not truncated.
    ReadWrite,
    /// `xb`: write; the file must not exist.
    CreateNew,
}

impl OpenMode {
    /// Parses `rb`, `wb`, `ab`, `r+b`, `xb`.
    ///
    /// ```
    /// use memspace::fs::OpenMode;
    /// assert_eq!(OpenMode::parse("r+b"), Some(OpenMode::ReadWrite));
    /// assert_eq!(OpenMode::parse("r"), None);
    /// ```
    pub fn parse(mode: &str) -> Option<Self> {
        Some(match mode {
            "rb" => Self::Read,
            "wb" => Self::Write,
            "ab" => Self::Append,
            "r+b" => Self::ReadWrite,
            "xb" => Self::CreateNew,
            _ => return None,
        })
    }
    /// The mode string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "rb",
            Self::Write => "wb",
            Self::Append => "ab",
            Self::ReadWrite => "r+b",
            Self::CreateNew => "xb",
        }
    }
    /// Whether a handle in this mode may read.
    pub fn readable(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }
    /// Whether a handle in this mode may write.
    pub fn writable(self) -> bool {
        !matches!(self, Self::Read)
    }
    /// Whether the file must exist already (`rb`, `r+b`).
    pub fn must_exist(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }
    /// The lock a handle in this mode holds: shared for `rb`, exclusive otherwise.
    pub fn lock_kind(self) -> LockKind {
        if self == Self::Read {
            LockKind::Read
        } else {
            LockKind::Write
        }
    }
}

/// Metadata of one path.
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: f64,
    /// Last data change, seconds since the Unix epoch.
    pub modified_at: f64,
    /// Count of data changes since creation or import (0 for a directory).
    pub generation: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// Usage of a whole filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Bytes charged to the quota.
    pub used_bytes: u64,
    /// The quota.
    pub quota_bytes: u64,
    /// `quota_bytes - used_bytes`.
    pub free_bytes: u64,
    /// Number of files.
    pub file_count: u64,
    /// Number of directories, the root included.
    pub dir_count: u64,
    /// Chunks held by sequential files.
    pub chunk_count: u64,
    /// The per-chunk overhead charged.
    pub overhead_per_chunk_estimate: u64,
}

/// Now, in the unit of [`Stat`]'s times (seconds since the Unix epoch).
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
