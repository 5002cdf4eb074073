//! A bounded in-memory filesystem: directories, files, a hard byte quota and a node limit.
//!
//! It never touches the operating system's filesystem and never calls back into its caller
//! (except an interrupt check a caller passes to a wait, run with no lock held).
//!
//! # Layout
//!
//! What does not depend on where the tree and the bytes live is shared by every filesystem
//! here (the heap one now, a segment-backed one shared between processes next):
//!
//! - `path`: the path rules ([`normalize`]: `..` never climbs above the root);
//! - `glob`: shell-style matching of one path component;
//! - `options`: [`FsOptions`] and the defaults, [`StorageKind`], [`OpenMode`] and the
//!   [`LockKind`] it takes, the metadata types [`Stat`] and [`Stats`];
//! - `error`: [`FsError`], every way a filesystem operation fails;
//! - `bytes`: [`ByteSink`] and [`SharedBytes`], how bytes cross without an extra copy;
//! - `handle`: what an open handle means (mode checks, cursor, lines, seek, append, what
//!   `open` does to the file), over any file that gives its data to it.
//!
//! `heap` is the filesystem on the Rust heap, [`MemoryFileSystem`]:
//!
//! - **Tree.** Nodes live in an arena (`Vec` of slots, freed slots reused); a directory maps
//!   names to node ids in a sorted map. One mutex guards the tree and is held only for the
//!   length of one operation; it is never held while waiting for a file lock.
//! - **Files.** Each file has a logical reader/writer lock that an open [`FileHandle`] holds
//!   for its life (writers preferred, timeouts, waits sliced for an interrupt check), and its
//!   data behind a separate `RwLock` taken only for one copy. A file's bytes are one
//!   contiguous buffer, plus, for a sequential file, any large immutable buffers a caller
//!   handed over ([`FileHandle::write_shared`], so they are kept instead of copied). Quota is
//!   charged per logical chunk as D-MemFS does, whatever the physical layout; see
//!   [`StorageKind`] for promotion.
//! - **Quota.** Reserved before any allocation and given back on every failure path: `used`
//!   is exact at every step and returns to 0 when everything is deleted. Operations on several
//!   files at once ([`MemoryFileSystem::import_tree`], [`MemoryFileSystem::copy_tree`]) check
//!   everything first and are all-or-nothing.
//!
//! # Example
//!
//! ```
//! use memspace::fs::{FsOptions, MemoryFileSystem, OpenMode};
//!
//! let fs = MemoryFileSystem::new(FsOptions::new().max_quota(1 << 20));
//! fs.mkdir("/data", false)?;
//! let mut f = fs.open("/data/a.bin", OpenMode::Write, 0, None)?;
//! f.write(b"hello")?;
//! f.close();
//! let mut f = fs.open("/data/a.bin", OpenMode::Read, 0, None)?;
//! assert_eq!(f.read_to_end()?, b"hello");
//! assert_eq!(fs.stats().used_bytes, 5 + 128);
//! # Ok::<(), memspace::Error>(())
//! ```

mod bytes;
mod error;
mod glob;
pub(crate) mod handle;
mod heap;
mod options;
pub(crate) mod path;
pub mod shared;

pub use bytes::{ByteSink, SharedBytes};
pub use error::FsError;
pub use heap::{DirToken, ExportIter, FileHandle, FileSnapshot, MemoryFileSystem};
pub use options::{
    FsOptions, LockKind, OpenMode, Stat, Stats, StorageKind, DEFAULT_CHUNK_OVERHEAD,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_QUOTA, DEFAULT_PROMOTION_HARD_LIMIT,
};
pub use path::normalize;
pub use shared::{
    FsckReport, SharedFileHandle, SharedFileSystem, SharedFsInfo, SharedFsOptions, SharedView,
};
