//! Shared-memory segments and the structure memspace puts inside them.
//!
//! - `segment` (re-exported here): [`Segment`] / [`SegmentOptions`], exactly the bytes asked
//!   for, mapped shared; creation, opening, bounds-checked access, removal.
//! - `list` (re-exported here): [`list_named`], the POSIX segments of this machine and their kind.
//! - [`header`]: the 128-byte header of a structured segment and the geometry derived from it.
//! - [`attach`]: the attachment table, which tells live attached processes from dead ones.
//! - [`lockfile`]: the file beside a structured segment that holds its liveness and role
//!   locks, which only those who may write the segment can open.
//! - [`structured`]: a segment with a validated header plus this process's attachment, the
//!   building block under every lock, view, ring and queue.
//! - `error` (re-exported here): [`SegmentError`], what can go wrong with a segment or its
//!   layout.
//!
//! The layering inside is one-way: `segment` knows nothing of headers, `header` nothing of
//! segments, `lockfile` builds on `segment`, `attach` uses `segment` and `header`,
//! `structured` all of them. This file only declares and
//! re-exports; code inside the crate imports from the module that defines an item.

pub mod attach;
pub(crate) mod error;
pub mod header;
pub(crate) mod list;
pub mod lockfile;
pub(crate) mod segment;
pub mod structured;

pub use crate::location::Location;
pub use error::SegmentError;
pub use list::{current_uid, list_named, SegmentInfo};
pub use segment::{
    lock_file_location, validate_name, OpenMode, OpenTarget, Segment, SegmentOptions, Trust,
    LOCK_FILE_SUFFIX, MAX_SEGMENT_SIZE,
};
