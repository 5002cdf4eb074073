//! Where a segment lives: a POSIX shared-memory name or a file path.
//!
//! This module owns the [`Location`] value and how it is shown in messages. It is plain data
//! and imports nothing from the crate, so that every other module (the error types included)
//! can name a location without depending on `shm`. Checking a location against the platform's
//! rules is `shm`'s business ([`Location::validate`] is defined there).

use std::fmt;
use std::path::PathBuf;

/// Where a segment lives: a POSIX shared-memory name (`"/demo"`) or a file path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A POSIX shared-memory object; lives until unlinked or reboot.
    Name(String),
    /// A regular file, mapped shared; persists like any file.
    Path(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Name(n) => write!(f, "{n:?}"),
            Location::Path(p) => write!(f, "at path {:?}", p.display().to_string()),
        }
    }
}
