//! Shared-memory segments: named POSIX segments and file-backed ones.
//!
//! A [`Segment`] is exactly the bytes that were asked for, mapped shared and read-write, so that
//! other tools (Python's `multiprocessing.shared_memory`, numpy, C programs) can open the same
//! memory. Structured objects (locks, rings, queues) put their own header inside a segment; a
//! raw segment has none.
//!
//! What this module promises:
//! - creation is exclusive (`O_CREAT | O_EXCL`), the mode is exactly what was asked whatever the
//!   umask, and the space is reserved up front (`posix_fallocate`), so that a full `/dev/shm` is
//!   an [`SegmentError::NoSpace`] at creation and never a `SIGBUS` at first touch;
//! - opening checks that the object is a non-empty regular file before mapping it;
//! - nothing is ever unlinked implicitly: only [`Segment::unlink_named`] / [`Segment::unlink_path`]
//!   (or the owner's explicit request) remove a segment;
//! - every access through [`Segment::read_at`] / [`Segment::write_at`] and friends is
//!   bounds-checked.
//!
//! What it must never do: hand out a `&[u8]` over the mapping. Other processes write this memory
//! at any time, so safe Rust references to it would be unsound; access goes through copies and
//! raw pointers.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::os;
use crate::shm::error::SegmentError;

// Defined here rather than beside the type: checking a location is the segment's rule, and
// `location` stays plain data that every module (the errors included) may import.
impl Location {
    /// Checks the name or path without touching the system.
    pub fn validate(&self) -> Result<()> {
        match self {
            Location::Name(name) => validate_name(name),
            Location::Path(path) => {
                let s = path.as_os_str();
                if s.is_empty() {
                    return Err(Error::InvalidArgument(
                        "segment path must not be empty".into(),
                    ));
                }
                if s.as_encoded_bytes().contains(&0) {
                    return Err(Error::InvalidArgument(
                        "segment path must not contain a NUL byte".into(),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Checks a POSIX segment name: a leading `/`, no other `/`, no NUL, not empty, not longer
/// than the platform allows.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::Segment(SegmentError::InvalidName {
            name: name.to_owned(),
            reason,
        }))
    };
    let Some(rest) = name.strip_prefix('/') else {
        return bad("a segment name must start with '/' (like \"/demo\")");
    };
    if rest.is_empty() {
        return bad("a segment name needs at least one character after '/'");
    }
    if rest.contains('/') {
        return bad("a segment name must not contain '/' after the first character");
    }
    if rest.contains('\0') {
        return bad("a segment name must not contain a NUL character");
    }
    if rest == "." || rest == ".." {
        return bad("'.' and '..' are not segment names");
    }
    if rest.len() > os::MAX_SHM_NAME {
        return bad(if cfg!(target_os = "macos") {
            "a segment name is limited to 30 bytes after '/' on this platform"
        } else {
            "a segment name is limited to 255 bytes after '/' on this platform"
        });
    }
    Ok(())
}

/// How [`SegmentOptions::build`] treats an existing segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create; fail with [`SegmentError::AlreadyExists`] if something is there.
    CreateNew,
    /// Open; fail with [`SegmentError::NotFound`] if nothing is there.
    OpenExisting,
    /// Open if present, otherwise create.
    OpenOrCreate,
}

/// The largest segment memspace will create: beyond this a size is almost certainly a bug
/// (a negative number cast to unsigned, a unit mix-up), and refusing it early is kinder than an
/// `ENOMEM` from the kernel.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 46; // 64 TiB

/// Builder for [`Segment`]s.
///
/// ```
/// use memspace::{OpenMode, SegmentOptions};
/// let dir = std::env::temp_dir().join(format!("memspace-doc-opts-{}", std::process::id()));
/// let seg = SegmentOptions::path(&dir).size(64).mode(0o600).open_mode(OpenMode::OpenOrCreate).build()?;
/// assert_eq!(seg.len(), 64);
/// memspace::Segment::unlink_path(&dir)?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    location: Location,
    size: Option<u64>,
    mode: u32,
    open_mode: OpenMode,
}

impl SegmentOptions {
    /// Options for a POSIX shared-memory segment called `name` (e.g. `"/demo"`).
    pub fn named(name: impl Into<String>) -> Self {
        Self::at(Location::Name(name.into()))
    }

    /// Options for a file-backed segment at `path`.
    pub fn path(path: impl AsRef<Path>) -> Self {
        Self::at(Location::Path(path.as_ref().to_path_buf()))
    }

    /// Options for a segment at `location`.
    pub fn at(location: Location) -> Self {
        Self {
            location,
            size: None,
            mode: 0o600,
            open_mode: OpenMode::OpenExisting,
        }
    }

    /// Size in bytes: required to create; when opening, the least size the segment must have.
    #[must_use]
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Permission bits at creation (default `0o600`), applied exactly, whatever the umask.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// What to do about an existing segment (default [`OpenMode::OpenExisting`]).
    #[must_use]
    pub fn open_mode(mut self, open_mode: OpenMode) -> Self {
        self.open_mode = open_mode;
        self
    }

    /// Creates a new segment ([`OpenMode::CreateNew`]).
    pub fn create(self) -> Result<Segment> {
        self.open_mode(OpenMode::CreateNew).build()
    }

    /// Opens an existing segment ([`OpenMode::OpenExisting`]).
    pub fn open(self) -> Result<Segment> {
        self.open_mode(OpenMode::OpenExisting).build()
    }

    /// Creates or opens according to [`SegmentOptions::open_mode`].
    pub fn build(self) -> Result<Segment> {
        self.location.validate()?;
        if self.mode > 0o7777 {
            return Err(Error::InvalidArgument(format!(
                "mode {:#o} is not a permission mode (at most 0o7777)",
                self.mode
            )));
        }
        if let Some(size) = self.size {
            check_size(size)?;
        }
        match self.open_mode {
            OpenMode::CreateNew => self.do_create(),
            OpenMode::OpenExisting => self.do_open(),
            OpenMode::OpenOrCreate => match self.do_create() {
                Err(Error::Segment(SegmentError::AlreadyExists { .. })) => self.do_open(),
                other => other,
            },
        }
    }

    fn do_create(&self) -> Result<Segment> {
        let Some(size) = self.size else {
            return Err(Error::InvalidArgument(
                "a size is required to create a segment".into(),
            ));
        };
        let loc = &self.location;
        let file = match loc {
            Location::Name(n) => os::shm_open(n, true, self.mode),
            Location::Path(p) => os::open_file(p, true, self.mode),
        }
        .map_err(|e| match loc {
            // ENOENT from an exclusive create means the directory is missing, not the file.
            Location::Path(p) if e.kind() == io::ErrorKind::NotFound => {
                Error::Segment(SegmentError::NoDirectory {
                    location: loc.clone(),
                    directory: p
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or_else(|| Path::new("."))
                        .to_path_buf(),
                })
            }
            _ => os_error("create", loc, e),
        })?;
        // From here on the object exists: undo the creation on every failure path, so that a
        // failed create leaves nothing behind.
        let result = (|| {
            os::set_mode(&file, self.mode).map_err(|e| os_error("fchmod", loc, e))?;
            os::reserve(&file, size).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    Error::Segment(SegmentError::NoSpace {
                        location: loc.clone(),
                        requested: size,
                    })
                } else {
                    os_error("posix_fallocate", loc, e)
                }
            })?;
            Segment::map(file, loc.clone(), size)
        })();
        if result.is_err() {
            let _ = remove(loc);
        }
        result
    }

    fn do_open(&self) -> Result<Segment> {
        let loc = &self.location;
        let file = match loc {
            Location::Name(n) => os::shm_open(n, false, 0),
            Location::Path(p) => os::open_file(p, false, 0),
        }
        .map_err(|e| os_error("open", loc, e))?;
        let meta = file.metadata().map_err(|e| os_error("fstat", loc, e))?;
        if !meta.file_type().is_file() {
            return Err(Error::Segment(SegmentError::Unusable {
                location: loc.clone(),
                reason: "it is not a regular file".into(),
            }));
        }
        let size = meta.len();
        if size == 0 {
            return Err(Error::Segment(SegmentError::Unusable {
                location: loc.clone(),
                reason: "it is empty (0 bytes); it may still be being created".into(),
            }));
        }
        if let Some(min) = self.size {
            if size < min {
                return Err(Error::Segment(SegmentError::Unusable {
                    location: loc.clone(),
                    reason: format!("it has {size} bytes, fewer than the {min} expected"),
                }));
            }
        }
        check_size(size)?;
        Segment::map(file, loc.clone(), size)
    }
}

fn check_size(size: u64) -> Result<()> {
    if size == 0 {
        return Err(Error::InvalidArgument(
            "segment size must be at least 1 byte".into(),
        ));
    }
    if size > MAX_SEGMENT_SIZE || usize::try_from(size).is_err() {
        return Err(Error::InvalidArgument(format!(
            "segment size {size} is too large (the limit is {MAX_SEGMENT_SIZE} bytes)"
        )));
    }
    Ok(())
}

pub(crate) fn os_error(op: &'static str, loc: &Location, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::AlreadyExists => Error::Segment(SegmentError::AlreadyExists {
            location: loc.clone(),
        }),
        io::ErrorKind::NotFound => Error::Segment(SegmentError::NotFound {
            location: loc.clone(),
        }),
        io::ErrorKind::PermissionDenied => Error::Segment(SegmentError::PermissionDenied {
            location: loc.clone(),
        }),
        _ if e.raw_os_error() == Some(libc::ENOSPC) => Error::Segment(SegmentError::NoSpace {
            location: loc.clone(),
            requested: 0,
        }),
        _ => Error::Segment(SegmentError::Os {
            op,
            location: loc.clone(),
            source: e,
        }),
    }
}

fn remove(loc: &Location) -> Result<()> {
    loc.validate()?;
    match loc {
        Location::Name(n) => os::shm_unlink(n),
        Location::Path(p) => std::fs::remove_file(p),
    }
    .map_err(|e| os_error("unlink", loc, e))
}

/// A mapped shared-memory segment.
///
/// Dropping it unmaps it; it never removes the segment.
pub struct Segment {
    ptr: NonNull<u8>,
    len: usize,
    location: Location,
    // Kept open so that `fstat`-style questions stay answerable and the identity of the
    // mapped object is pinned.
    file: File,
}

// SAFETY: the mapping is process-wide memory owned by this value; all access goes through
// raw pointers and copies, never through references, so moving it between threads is fine.
unsafe impl Send for Segment {}
// SAFETY: concurrent `read_at`/`write_at` from several threads are copies into and out of
// shared memory that other processes race on anyway; no `&`/`&mut` over the mapping exists.
unsafe impl Sync for Segment {}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("location", &self.location)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Segment {
    fn map(file: File, location: Location, size: u64) -> Result<Segment> {
        let len = usize::try_from(size)
            .map_err(|_| Error::InvalidArgument(format!("segment size {size} is too large")))?;
        let ptr = os::map_shared(&file, len).map_err(|e| os_error("mmap", &location, e))?;
        Ok(Segment {
            ptr,
            len,
            location,
            file,
        })
    }

    /// Creates a new POSIX segment of `size` bytes with mode `0o600`.
    pub fn create_named(name: &str, size: u64) -> Result<Segment> {
        SegmentOptions::named(name).size(size).create()
    }

    /// Opens an existing POSIX segment; its size is taken from the segment.
    pub fn open_named(name: &str) -> Result<Segment> {
        SegmentOptions::named(name).open()
    }

    /// Opens an existing file-backed segment; its size is taken from the file.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Segment> {
        SegmentOptions::path(path).open()
    }

    /// Removes the POSIX segment `name`. Processes that have it mapped keep their mapping.
    pub fn unlink_named(name: &str) -> Result<()> {
        remove(&Location::Name(name.to_owned()))
    }

    /// Removes the file-backed segment at `path`.
    pub fn unlink_path(path: impl AsRef<Path>) -> Result<()> {
        remove(&Location::Path(path.as_ref().to_path_buf()))
    }

    /// Removes the segment at `location`.
    pub fn unlink(location: &Location) -> Result<()> {
        remove(location)
    }

    /// Where this segment lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: segments have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the mapping. Valid for [`Segment::len`] bytes while `self` lives. Other
    /// processes may write to it at any time: never make a reference over it.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Checks that `offset..offset+len` lies inside the segment and returns `offset` as usize.
    pub fn check_range(&self, offset: u64, len: u64) -> Result<usize> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len as u64 => Ok(offset as usize),
            _ => Err(Error::Segment(SegmentError::OutOfBounds {
                offset,
                len,
                size: self.len as u64,
            })),
        }
    }

    /// Copies `out.len()` bytes starting at `offset` out of the segment.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        let off = self.check_range(offset, out.len() as u64)?;
        // SAFETY: the range was checked to lie inside the live mapping; `out` is a distinct
        // Rust buffer, so the regions cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), out.as_mut_ptr(), out.len());
        }
        Ok(())
    }

    /// Copies `data` into the segment at `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let off = self.check_range(offset, data.len() as u64)?;
        // SAFETY: the range was checked to lie inside the live mapping; `data` is a Rust
        // buffer outside it (callers cannot hold a reference into the mapping).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(off), data.len());
        }
        Ok(())
    }

    /// Reads a native-endian `u64` at `offset`. An 8-byte aligned read is a single atomic
    /// load with acquire ordering; an unaligned one is a plain copy.
    pub fn read_u64(&self, offset: u64) -> Result<u64> {
        let off = self.check_range(offset, 8)?;
        // SAFETY: the 8 bytes lie inside the live mapping (checked above).
        let p = unsafe { self.ptr.as_ptr().add(off) };
        if (p as usize) % 8 == 0 {
            // SAFETY: `p` is 8-aligned and valid for 8 bytes for the life of the mapping.
            Ok(unsafe { crate::sync::load_u64_acquire(p) })
        } else {
            // SAFETY: valid for 8 bytes; read_unaligned has no alignment requirement.
            Ok(unsafe { std::ptr::read_unaligned(p.cast::<u64>()) })
        }
    }

    /// Writes a native-endian `u64` at `offset`; atomic with release ordering when 8-byte
    /// aligned.
    pub fn write_u64(&self, offset: u64, value: u64) -> Result<()> {
        let off = self.check_range(offset, 8)?;
        // SAFETY: the 8 bytes lie inside the live mapping (checked above).
        let p = unsafe { self.ptr.as_ptr().add(off) };
        if (p as usize) % 8 == 0 {
            // SAFETY: `p` is 8-aligned and valid for 8 bytes for the life of the mapping.
            unsafe { crate::sync::store_u64_release(p, value) };
        } else {
            // SAFETY: valid for 8 bytes; write_unaligned has no alignment requirement.
            unsafe { std::ptr::write_unaligned(p.cast::<u64>(), value) };
        }
        Ok(())
    }

    /// Reads a native-endian `i64` at `offset` (see [`Segment::read_u64`]).
    pub fn read_i64(&self, offset: u64) -> Result<i64> {
        self.read_u64(offset).map(|v| v as i64)
    }

    /// Writes a native-endian `i64` at `offset` (see [`Segment::write_u64`]).
    pub fn write_i64(&self, offset: u64, value: i64) -> Result<()> {
        self.write_u64(offset, value as u64)
    }

    /// Reads a native-endian `f64` at `offset` (see [`Segment::read_u64`]).
    pub fn read_f64(&self, offset: u64) -> Result<f64> {
        self.read_u64(offset).map(f64::from_bits)
    }

    /// Writes a native-endian `f64` at `offset` (see [`Segment::write_u64`]).
    pub fn write_f64(&self, offset: u64, value: f64) -> Result<()> {
        self.write_u64(offset, value.to_bits())
    }

    /// Fills `len` bytes at `offset` with `byte`.
    pub fn fill(&self, offset: u64, len: u64, byte: u8) -> Result<()> {
        let off = self.check_range(offset, len)?;
        // SAFETY: the range lies inside the live mapping (checked above).
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(off), byte, len as usize) };
        Ok(())
    }

    /// The open file behind the mapping (for `fstat`, locks on it, ...).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `Segment::map`, and `self` is going
        // away, so no pointer derived from it is used afterwards by safe code.
        unsafe { os::unmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        crate::testing::unique_name("seg", tag)
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", "x", "/", "/a/b", "/a\0b", "/.", "/.."] {
            assert!(
                matches!(
                    validate_name(bad),
                    Err(Error::Segment(SegmentError::InvalidName { .. }))
                ),
                "{bad:?}"
            );
        }
        assert!(validate_name(&format!("/{}", "a".repeat(os::MAX_SHM_NAME))).is_ok());
        assert!(validate_name(&format!("/{}", "a".repeat(os::MAX_SHM_NAME + 1))).is_err());
        assert!(validate_name("/ok-name_1.2").is_ok());
    }

    #[test]
    fn create_write_open_read_unlink() {
        let name = unique("rw");
        let a = Segment::create_named(&name, 4096).unwrap();
        assert_eq!(a.len(), 4096);
        a.write_at(10, b"abc").unwrap();
        a.write_u64(16, 0xdead_beef).unwrap();
        let b = Segment::open_named(&name).unwrap();
        let mut out = [0u8; 3];
        b.read_at(10, &mut out).unwrap();
        assert_eq!(&out, b"abc");
        assert_eq!(b.read_u64(16).unwrap(), 0xdead_beef);
        assert!(matches!(
            Segment::create_named(&name, 1),
            Err(Error::Segment(SegmentError::AlreadyExists { .. }))
        ));
        Segment::unlink_named(&name).unwrap();
        assert!(matches!(
            Segment::open_named(&name),
            Err(Error::Segment(SegmentError::NotFound { .. }))
        ));
        assert!(matches!(
            Segment::unlink_named(&name),
            Err(Error::Segment(SegmentError::NotFound { .. }))
        ));
    }

    #[test]
    fn bounds_are_checked() {
        let name = unique("bounds");
        let s = Segment::create_named(&name, 16).unwrap();
        Segment::unlink_named(&name).unwrap();
        assert!(s.write_at(16, b"").is_ok());
        assert!(matches!(
            s.write_at(15, b"ab"),
            Err(Error::Segment(SegmentError::OutOfBounds { .. }))
        ));
        assert!(s.read_u64(9).is_err());
        assert!(s.read_u64(8).is_ok());
        assert!(s.read_u64(u64::MAX).is_err());
        assert!(s.fill(u64::MAX, 2, 0).is_err());
        // Unaligned access works and round-trips.
        s.write_i64(3, -5).unwrap();
        assert_eq!(s.read_i64(3).unwrap(), -5);
    }

    #[test]
    fn sizes_are_validated() {
        let name = unique("size");
        assert!(matches!(
            Segment::create_named(&name, 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Segment::create_named(&name, u64::MAX),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            SegmentOptions::named(&name).create(),
            Err(Error::InvalidArgument(_))
        ));
        // Nothing was left behind by the refusals.
        assert!(matches!(
            Segment::open_named(&name),
            Err(Error::Segment(SegmentError::NotFound { .. }))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn mode_is_exact_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let name = unique("mode");
        let s = SegmentOptions::named(&name)
            .size(8)
            .mode(0o640)
            .create()
            .unwrap();
        let mode = s.file().metadata().unwrap().permissions().mode() & 0o7777;
        Segment::unlink_named(&name).unwrap();
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn file_backed_persists_and_refuses_too_small() {
        let path = std::env::temp_dir().join(unique("file").trim_start_matches('/'));
        {
            let s = SegmentOptions::path(&path).size(32).create().unwrap();
            s.write_at(0, b"persist").unwrap();
        }
        let s = Segment::open_path(&path).unwrap();
        let mut out = [0u8; 7];
        s.read_at(0, &mut out).unwrap();
        assert_eq!(&out, b"persist");
        assert!(matches!(
            SegmentOptions::path(&path).size(33).open(),
            Err(Error::Segment(SegmentError::Unusable { .. }))
        ));
        Segment::unlink_path(&path).unwrap();
    }

    #[test]
    fn open_or_create() {
        let name = unique("ooc");
        let a = SegmentOptions::named(&name)
            .size(8)
            .open_mode(OpenMode::OpenOrCreate)
            .build()
            .unwrap();
        a.write_u64(0, 7).unwrap();
        let b = SegmentOptions::named(&name)
            .size(8)
            .open_mode(OpenMode::OpenOrCreate)
            .build()
            .unwrap();
        assert_eq!(b.read_u64(0).unwrap(), 7);
        Segment::unlink_named(&name).unwrap();
    }
}
