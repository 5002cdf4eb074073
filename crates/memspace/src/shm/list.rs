//! Listing the POSIX segments of this machine (`memspace ls`), with the kind of each.
//!
//! This module only reads: it opens each file for its first bytes (read-only, without
//! following a symbolic link or waiting on a FIFO planted under the name) and never maps or
//! changes anything. Structured segments' lock files (`*.memspace-lock`) are not listed.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::Result;
use crate::location::Location;
use crate::os;
use crate::shm::header;
use crate::shm::segment::{os_error, LOCK_FILE_SUFFIX};

/// What [`list_named`] reports about one POSIX segment.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// Name with its leading `/`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `"raw"` for plain segments; structured objects report their kind.
    pub kind: String,
    /// Last modification time.
    pub modified: Option<SystemTime>,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// Lists the POSIX segments visible to this process (on Linux, the files in `/dev/shm`),
/// sorted by name. Returns an empty list on platforms that cannot enumerate them.
pub fn list_named() -> Result<Vec<SegmentInfo>> {
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;

    let Some(dir) = os::SHM_DIR else {
        return Ok(Vec::new());
    };
    let loc = Location::Path(PathBuf::from(dir));
    let entries = std::fs::read_dir(dir).map_err(|e| os_error("read_dir", &loc, e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(|s| format!("/{s}")) else {
            continue;
        };
        if name.ends_with(LOCK_FILE_SUFFIX) {
            continue;
        }
        #[cfg(unix)]
        let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
        #[cfg(not(unix))]
        let (uid, mode) = (0, 0);
        out.push(SegmentInfo {
            kind: kind_of(&entry.path()),
            name,
            size: meta.len(),
            modified: meta.modified().ok(),
            uid,
            mode,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The kind of the segment stored in the file at `path`: `"raw"` unless it starts with a
/// memspace header (then the kind's name, or `"corrupt"` if the header does not validate).
fn kind_of(path: &Path) -> String {
    use std::io::Read;
    let Ok(mut f) = os::open_to_read(path) else {
        return "raw".to_owned();
    };
    if !f.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return "raw".to_owned();
    }
    let size = f.metadata().map_or(0, |m| m.len());
    let mut buf = [0u8; header::HEADER_SIZE];
    if f.read_exact(&mut buf).is_err() {
        return "raw".to_owned();
    }
    header::kind_from_prefix(&buf, size)
}

/// Returns the effective uid of this process (segments are listed with their owner).
pub fn current_uid() -> u32 {
    os::current_uid()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::shm::segment::Segment;

    fn unique(tag: &str) -> String {
        crate::testing::unique_name("list", tag)
    }

    #[test]
    fn listed_in_dev_shm() {
        let name = unique("ls");
        let _s = Segment::create_named(&name, 123).unwrap();
        let found = list_named().unwrap().into_iter().find(|i| i.name == name);
        Segment::unlink_named(&name).unwrap();
        let info = found.expect("segment listed");
        assert_eq!(info.size, 123);
        assert_eq!(info.kind, "raw");
        assert_eq!(info.mode, 0o600);
    }
}
