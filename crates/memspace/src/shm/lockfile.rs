//! The lock file of a structured segment: where its liveness and role locks are taken.
//!
//! Why not the segment's own file: anyone who may *read* a segment (mode 0644, 0640) can open
//! its file read-only and take shared OFD locks on any byte of it, even from 0 to infinity. A
//! shared lock blocks every exclusive one, so such a reader could keep every process from
//! attaching or claiming a role. So the locks that say who is attached (`attach`) and who holds
//! a role (the channels' role bytes) are taken on a second file, beside the segment, that only
//! those who may *write* the segment can open at all:
//!
//! - it is named by [`lock_file_location`] (`/jobs` -> `/jobs.memspace-lock`, a file-backed
//!   `q.bin` -> `q.bin.memspace-lock`);
//! - its mode gives read and write to exactly the classes (owner, group, other) that have
//!   write permission on the segment, and nothing to the others ([`lock_file_mode`]);
//! - it belongs to the segment's owner, is opened like the segment (`O_NOFOLLOW | O_NOCTTY |
//!   O_NONBLOCK`, read-write, checked with `fstat`) and passes the same [`Trust`];
//! - it holds no data: a lock may lie beyond the end of a file, so it stays empty and its byte
//!   offsets are the segment's (slot `i`'s lock is at the same offset as slot `i`'s record).
//!
//! Lifecycle: the creator makes it right after the segment and before publishing READY
//! (exclusively; a stale one, left by an earlier segment of the same name, is replaced: the
//! segment itself was just created exclusively, so nobody can be attached through it).
//! [`Segment::unlink`](crate::shm::Segment::unlink) removes it first, then the segment, so an
//! unlink never removes the lock file of a segment created meanwhile. An opener that finds it
//! missing refuses (it never recreates one: processes attached through a lock file that was
//! removed would then be invisible to those attached through the new one).
//!
//! What it cannot prevent: anyone allowed to write the segment can also lock (or remove) its
//! lock file; they are trusted with the segment's contents anyway.

use std::fs::File;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::os;
use crate::shm::error::SegmentError;
use crate::shm::segment::{check_trust, lock_file_location, os_error, Segment, Trust};

/// The lock file's mode for a segment of mode `mode`: read and write for each class that may
/// write the segment, nothing for the others.
pub fn lock_file_mode(mode: u32) -> u32 {
    let mut out = 0;
    for shift in [6, 3, 0] {
        if mode & (0o2 << shift) != 0 {
            out |= 0o6 << shift;
        }
    }
    out
}

/// Refuses a name whose lock file's name would be too long for the platform.
pub(crate) fn check_name(location: &Location) -> Result<()> {
    if let Location::Name(name) = location {
        let rest = name.len().saturating_sub(1);
        if rest + crate::shm::segment::LOCK_FILE_SUFFIX.len() > os::MAX_SHM_NAME {
            return Err(Error::Segment(SegmentError::InvalidName {
                name: name.clone(),
                reason: if cfg!(target_os = "macos") {
                    "a structured segment's name is limited to 16 bytes after '/' on this \
                     platform (its lock file's name adds \".memspace-lock\")"
                } else {
                    "a structured segment's name is limited to 241 bytes after '/' \
                     (its lock file's name adds \".memspace-lock\")"
                },
            }));
        }
    }
    Ok(())
}

fn open_at(loc: &Location, create: bool, mode: u32) -> std::io::Result<File> {
    match loc {
        Location::Name(n) => os::shm_open(n, create, mode),
        Location::Path(p) => os::open_file(p, create, mode),
    }
}

fn unlink_at(loc: &Location) -> std::io::Result<()> {
    match loc {
        Location::Name(n) => os::shm_unlink(n),
        Location::Path(p) => std::fs::remove_file(p),
    }
}

/// Creates the lock file of `seg`, a segment this process has just created exclusively with
/// permission bits `mode`.
pub(crate) fn create(seg: &Segment, mode: u32) -> Result<File> {
    let loc = lock_file_location(seg.location());
    let lock_mode = lock_file_mode(mode);
    let file = match open_at(&loc, true, lock_mode) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by an earlier segment of this name (its unlink was interrupted, or the
            // segment was removed by hand). Replace it; if it is someone else's in a sticky
            // directory, the unlink fails with a permission error, which is reported.
            unlink_at(&loc).map_err(|e| os_error("unlink", &loc, e))?;
            open_at(&loc, true, lock_mode)
        }
        other => other,
    }
    .map_err(|e| os_error("create", &loc, e))?;
    os::set_mode(&file, lock_mode).map_err(|e| os_error("fchmod", &loc, e))?;
    Ok(file)
}

/// Opens the lock file of `seg` (an opened structured segment): read-write, a regular file,
/// owned by the segment's owner, passing `trust` like the segment did.
pub(crate) fn open(seg: &Segment, trust: &Trust) -> Result<File> {
    let loc = lock_file_location(seg.location());
    let file = open_at(&loc, false, 0).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Segment(SegmentError::Unusable {
                location: seg.location().clone(),
                reason: format!(
                    "its lock file {loc} is missing (memspace keeps a structured segment's \
                     liveness locks there; a segment copied or restored without it needs an \
                     empty one, owned by the segment's owner, with read and write for those \
                     who may write the segment)"
                ),
            })
        } else {
            os_error("open", &loc, e)
        }
    })?;
    let meta = file.metadata().map_err(|e| os_error("fstat", &loc, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::Segment(SegmentError::Unusable {
            location: loc,
            reason: "it is not a regular file".into(),
        }));
    }
    check_trust(&meta, trust, &loc)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let seg_meta = seg
            .file()
            .metadata()
            .map_err(|e| os_error("fstat", &loc, e))?;
        if meta.uid() != seg_meta.uid() {
            return Err(Error::Segment(SegmentError::ForeignLockFile {
                location: loc,
                owner: meta.uid(),
                segment_owner: seg_meta.uid(),
            }));
        }
    }
    Ok(file)
}

/// Opens the lock file of `location` only to look at its locks (`memspace rm --stale`):
/// `Ok(None)` if there is none.
pub(crate) fn open_to_look(location: &Location) -> Result<Option<File>> {
    let loc = lock_file_location(location);
    match open_at(&loc, false, 0) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(os_error("open", &loc, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_leave_room_for_the_suffix() {
        let longest = format!("/{}", "a".repeat(os::MAX_SHM_NAME - 14));
        assert!(check_name(&Location::Name(longest.clone())).is_ok());
        assert!(check_name(&Location::Name(format!("{longest}a"))).is_err());
        assert!(check_name(&Location::Path("/x".repeat(300).into())).is_ok());
    }

    #[test]
    fn mode_follows_the_write_bits() {
        assert_eq!(lock_file_mode(0o600), 0o600);
        assert_eq!(lock_file_mode(0o644), 0o600);
        assert_eq!(lock_file_mode(0o660), 0o660);
        assert_eq!(lock_file_mode(0o664), 0o660);
        assert_eq!(lock_file_mode(0o622), 0o666);
        assert_eq!(lock_file_mode(0o646), 0o606);
        assert_eq!(lock_file_mode(0o444), 0);
        assert_eq!(lock_file_mode(0o200), 0o600);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn made_with_the_segment_and_removed_first() {
        use crate::shm::header::{Kind, LayoutRequest};
        use crate::shm::structured::Structured;
        use std::os::unix::fs::MetadataExt;
        let loc = crate::testing::unique_location("lockfile", "life");
        let req = LayoutRequest {
            kind: Kind::View,
            attach_slots: 4,
            lock_size: 64,
            data_size: 64,
            kind_param: 0,
        };
        let st = Structured::create(loc.clone(), 0o664, &req, &|_, _| Ok(()), &|_| {}).unwrap();
        let lock = lock_file_location(&loc);
        let Location::Name(lock_name) = &lock else {
            unreachable!()
        };
        let path = std::path::Path::new("/dev/shm").join(lock_name.trim_start_matches('/'));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let opened = Structured::open(loc.clone(), Kind::View, None, &|_| {});
        Segment::unlink(&loc).unwrap();
        let gone = !path.exists();
        drop(st);
        assert_eq!(meta.mode() & 0o7777, 0o660);
        assert_eq!(meta.len(), 0);
        assert!(matches!(
            opened,
            Err(Error::Segment(SegmentError::SharedWritable { .. }))
        ));
        assert!(gone);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn missing_is_refused_and_stale_is_replaced() {
        use crate::shm::header::{Kind, LayoutRequest};
        use crate::shm::structured::Structured;
        let loc = crate::testing::unique_location("lockfile", "stale");
        let req = LayoutRequest {
            kind: Kind::View,
            attach_slots: 4,
            lock_size: 64,
            data_size: 64,
            kind_param: 0,
        };
        let lock = lock_file_location(&loc);
        // A stale lock file of an earlier segment of this name: replaced at creation.
        drop(open_at(&lock, true, 0o644).unwrap());
        let st = Structured::create(loc.clone(), 0o600, &req, &|_, _| Ok(()), &|_| {}).unwrap();
        unlink_at(&lock).unwrap();
        let missing = Structured::open(loc.clone(), Kind::View, None, &|_| {});
        drop(st);
        Segment::unlink(&loc).unwrap();
        assert!(
            matches!(&missing, Err(Error::Segment(SegmentError::Unusable { reason, .. })) if reason.contains("lock file")),
            "{missing:?}"
        );
    }
}
