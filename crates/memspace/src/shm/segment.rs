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
//! - files are opened with `O_NOFOLLOW | O_NOCTTY | O_NONBLOCK` (a symbolic link, a FIFO or a
//!   device planted under the name is never followed, waited on or adopted as a terminal), and
//!   opening checks with `fstat` that the object is a non-empty regular file before mapping it;
//! - opening refuses, unless the caller opts in with a [`Trust`], a segment that another user
//!   owns or that group or other may write: another local user may have created it first
//!   (name squatting) to feed the opener its contents. The owner is the file's `st_uid`,
//!   compared with this process's effective uid, never a value read from the segment;
//! - opening a sparse file (fewer blocks allocated than its size, as other tools make
//!   segments with `ftruncate` alone) reserves its space first, so a full file system is an
//!   [`SegmentError::NoSpace`] at open rather than a `SIGBUS` at the first write;
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
    if rest.ends_with(LOCK_FILE_SUFFIX) {
        return bad("names ending in \".memspace-lock\" are memspace's lock files");
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

/// The suffix of the lock file that holds a structured segment's liveness and role locks,
/// beside the segment (`/jobs` -> `/jobs.memspace-lock`, `a/q.bin` -> `a/q.bin.memspace-lock`).
pub const LOCK_FILE_SUFFIX: &str = ".memspace-lock";

/// Where the lock file of the structured segment at `location` lives (see
/// [`LOCK_FILE_SUFFIX`]). A raw segment has none.
pub fn lock_file_location(location: &Location) -> Location {
    match location {
        Location::Name(n) => Location::Name(format!("{n}{LOCK_FILE_SUFFIX}")),
        Location::Path(p) => {
            let mut s = p.as_os_str().to_owned();
            s.push(LOCK_FILE_SUFFIX);
            Location::Path(s.into())
        }
    }
}

/// Whose segments an opener accepts.
///
/// A segment is a file that other local users may have made first, under the name or path the
/// opener expects, to feed it their contents (a queue's pickles run code in whoever unpickles
/// them). So by default ([`Trust::Private`]) an opener refuses a segment that is not owned by
/// its effective uid, or that group or other may write. Deliberately shared segments are opened
/// by naming whom to trust. The owner is always the file's `st_uid` from `fstat`, compared with
/// `geteuid()`; nothing read from the segment takes part.
///
/// ```
/// use memspace::{Location, Trust};
/// // Opened by the members of a team, owned by uid 1001, mode 0o660:
/// let target = Location::Name("/team-jobs".into()).trusting(Trust::Owners(vec![1001]));
/// # let _ = target;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trust {
    /// Only a segment owned by this process's effective uid that neither group nor other may
    /// write (the default).
    #[default]
    Private,
    /// A segment owned by this process's effective uid or by one of these uids, whatever its
    /// permission bits say: sharing with those users, and with whoever its mode lets write it,
    /// is deliberate. An empty list accepts this process's own segments with any mode.
    Owners(Vec<u32>),
    /// Any owner and any permission bits: for segments whose every possible writer is trusted.
    Anyone,
}

/// A location together with the [`Trust`] to open it with: what every structured kind's
/// `open` takes. A plain [`Location`] converts into one with the default trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTarget {
    /// Where the segment lives.
    pub location: Location,
    /// Whose segment to accept there.
    pub trust: Trust,
}

impl From<Location> for OpenTarget {
    fn from(location: Location) -> Self {
        OpenTarget {
            location,
            trust: Trust::default(),
        }
    }
}

impl Location {
    /// This location, opened with `trust` instead of the default [`Trust::Private`].
    #[must_use]
    pub fn trusting(self, trust: Trust) -> OpenTarget {
        OpenTarget {
            location: self,
            trust,
        }
    }
}

/// Applies `trust` to an opened file's `fstat` result (see [`Trust`]).
#[cfg(unix)]
pub(crate) fn check_trust(meta: &std::fs::Metadata, trust: &Trust, loc: &Location) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = meta.uid();
    let euid = os::current_uid();
    let mode = meta.mode() & 0o7777;
    let owner_ok = match trust {
        Trust::Private => owner == euid,
        Trust::Owners(uids) => owner == euid || uids.contains(&owner),
        Trust::Anyone => true,
    };
    if !owner_ok {
        return Err(Error::Segment(SegmentError::NotOwned {
            location: loc.clone(),
            owner,
            euid,
        }));
    }
    if *trust == Trust::Private && mode & 0o022 != 0 {
        return Err(Error::Segment(SegmentError::SharedWritable {
            location: loc.clone(),
            mode,
        }));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_trust(
    _meta: &std::fs::Metadata,
    _trust: &Trust,
    _loc: &Location,
) -> Result<()> {
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
    trust: Trust,
    reserve_on_open: bool,
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
            trust: Trust::Private,
            reserve_on_open: true,
        }
    }

    /// Size in bytes: required to create; when opening, the least size the segment must have.
    #[must_use]
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Permission bits at creation (default `0o600`, at most `0o777`: setuid, setgid and sticky
    /// bits are refused), applied exactly, whatever the umask.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whose existing segment to accept (default [`Trust::Private`]; see [`Trust`]).
    #[must_use]
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Whether opening a sparse file reserves its space (default true). Off only for
    /// look-only opens (`memspace rm --stale`), which must change nothing.
    #[must_use]
    pub(crate) fn reserve_on_open(mut self, reserve: bool) -> Self {
        self.reserve_on_open = reserve;
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
        if self.mode > 0o777 {
            return Err(Error::InvalidArgument(format!(
                "mode {:#o} is not a segment's permission mode: at most 0o777 \
                 (setuid, setgid and sticky bits are refused)",
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
            // Our own segment, with the mode we chose: any mode of ours is trusted again.
            Segment::map(file, loc.clone(), size, Trust::Owners(Vec::new()))
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
        check_trust(&meta, &self.trust, loc)?;
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
        if self.reserve_on_open && is_sparse(&meta) {
            os::reserve_existing(&file, size).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    Error::Segment(SegmentError::NoSpace {
                        location: loc.clone(),
                        requested: size,
                    })
                } else {
                    os_error("fallocate", loc, e)
                }
            })?;
        }
        Segment::map(file, loc.clone(), size, self.trust.clone())
    }
}

/// Whether fewer bytes are allocated to the file than its size (then touching a page may
/// need space the file system no longer has: `SIGBUS`).
#[cfg(unix)]
fn is_sparse(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512) < meta.len()
}

#[cfg(not(unix))]
fn is_sparse(_meta: &std::fs::Metadata) -> bool {
    false
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
        // `O_NOFOLLOW` met a symbolic link in the last component.
        _ if e.raw_os_error() == Some(libc::ELOOP) => Error::Segment(SegmentError::Unusable {
            location: loc.clone(),
            reason: "it is a symbolic link (memspace never follows one to a segment)".into(),
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
    // The lock file of a structured segment goes first: a creator can make a new segment
    // under this name only once the old one is gone, so this never removes the lock file of
    // a segment created meanwhile. A raw segment has none (NotFound); any other failure
    // leaves an orphan that the next creation of this name replaces.
    let _ = unlink_one(&lock_file_location(loc));
    unlink_one(loc).map_err(|e| os_error("unlink", loc, e))
}

fn unlink_one(loc: &Location) -> io::Result<()> {
    match loc {
        Location::Name(n) => os::shm_unlink(n),
        Location::Path(p) => std::fs::remove_file(p),
    }
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
    reopen_trust: Trust,
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
    fn map(file: File, location: Location, size: u64, reopen_trust: Trust) -> Result<Segment> {
        let len = usize::try_from(size)
            .map_err(|_| Error::InvalidArgument(format!("segment size {size} is too large")))?;
        let ptr = os::map_shared(&file, len).map_err(|e| os_error("mmap", &location, e))?;
        Ok(Segment {
            ptr,
            len,
            location,
            file,
            reopen_trust,
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

    /// The [`Trust`] that opens this same segment again (another process it is passed to by
    /// pickling): the trust it was opened with, or, for a segment this process created, its
    /// own segments whatever their mode (the creator chose it).
    pub fn reopen_trust(&self) -> &Trust {
        &self.reopen_trust
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

    #[cfg(unix)]
    #[test]
    fn open_or_create_applies_the_trust_rule_to_what_it_finds() {
        let name = unique("ooc-shared");
        let _s = SegmentOptions::named(&name)
            .size(8)
            .mode(0o666)
            .create()
            .unwrap();
        let found = SegmentOptions::named(&name)
            .size(8)
            .open_mode(OpenMode::OpenOrCreate)
            .build();
        Segment::unlink_named(&name).unwrap();
        assert!(matches!(
            found,
            Err(Error::Segment(SegmentError::SharedWritable { .. }))
        ));
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

    #[test]
    fn special_mode_bits_are_refused() {
        let name = unique("special");
        for mode in [0o4600, 0o2600, 0o1600, 0o7777] {
            assert!(matches!(
                SegmentOptions::named(&name).size(8).mode(mode).create(),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            Segment::open_named(&name),
            Err(Error::Segment(SegmentError::NotFound { .. }))
        ));
    }

    #[test]
    fn lock_file_names_are_reserved() {
        assert!(validate_name("/jobs.memspace-lock").is_err());
        assert_eq!(
            lock_file_location(&Location::Name("/jobs".into())),
            Location::Name("/jobs.memspace-lock".into())
        );
        assert_eq!(
            lock_file_location(&Location::Path("/a/q.bin".into())),
            Location::Path("/a/q.bin.memspace-lock".into())
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_never_followed() {
        let dir = std::env::temp_dir().join(unique("link").trim_start_matches('/'));
        std::fs::create_dir(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, b"victim").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let opened = SegmentOptions::path(&link).open();
        let created = SegmentOptions::path(&link).size(8).create();
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("nothing"), &dangling).unwrap();
        let created_dangling = SegmentOptions::path(&dangling).size(8).create();
        let nothing_made = !dir.join("nothing").exists();
        let untouched = std::fs::read(&target).unwrap() == b"victim";
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(&opened, Err(Error::Segment(SegmentError::Unusable { reason, .. })) if reason.contains("symbolic link")),
            "{opened:?}"
        );
        assert!(matches!(
            created,
            Err(Error::Segment(SegmentError::AlreadyExists { .. }))
        ));
        assert!(matches!(
            created_dangling,
            Err(Error::Segment(SegmentError::AlreadyExists { .. }))
        ));
        assert!(nothing_made && untouched);
    }

    #[cfg(unix)]
    #[test]
    fn group_or_other_writable_needs_trust() {
        let name = unique("trust");
        let _s = SegmentOptions::named(&name)
            .size(8)
            .mode(0o620)
            .create()
            .unwrap();
        let private = Segment::open_named(&name);
        let own = SegmentOptions::named(&name)
            .trust(Trust::Owners(vec![]))
            .open();
        let anyone = SegmentOptions::named(&name).trust(Trust::Anyone).open();
        Segment::unlink_named(&name).unwrap();
        assert!(
            matches!(
                private,
                Err(Error::Segment(SegmentError::SharedWritable {
                    mode: 0o620,
                    ..
                }))
            ),
            "{private:?}"
        );
        assert!(own.is_ok() && anyone.is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn another_owner_needs_trust() {
        use std::os::unix::fs::MetadataExt;
        if os::current_uid() != 0 {
            return; // giving a file away needs root
        }
        let path = std::env::temp_dir().join(unique("owner").trim_start_matches('/'));
        let s = SegmentOptions::path(&path).size(8).create().unwrap();
        std::os::unix::fs::fchown(s.file(), Some(65534), None).unwrap();
        let private = SegmentOptions::path(&path).open();
        let other = SegmentOptions::path(&path)
            .trust(Trust::Owners(vec![1234]))
            .open();
        let named = SegmentOptions::path(&path)
            .trust(Trust::Owners(vec![65534]))
            .open();
        let owner = s.file().metadata().unwrap().uid();
        Segment::unlink_path(&path).unwrap();
        assert_eq!(owner, 65534);
        assert!(matches!(
            private,
            Err(Error::Segment(SegmentError::NotOwned {
                owner: 65534,
                euid: 0,
                ..
            }))
        ));
        assert!(matches!(
            other,
            Err(Error::Segment(SegmentError::NotOwned { .. }))
        ));
        assert!(named.is_ok());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sparse_file_is_reserved_when_opened() {
        use std::os::unix::fs::MetadataExt;
        // In /dev/shm (tmpfs, which reserves); made as other tools make segments.
        let name = unique("sparse");
        let file = std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'));
        std::fs::File::create(&file)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let before = std::fs::metadata(&file).unwrap().blocks() * 512;
        let s = Segment::open_named(&name).unwrap();
        let after = s.file().metadata().unwrap().blocks() * 512;
        let len = s.len();
        Segment::unlink_named(&name).unwrap();
        assert!(before < 1 << 20);
        assert!(after >= 1 << 20);
        assert_eq!(len, 1 << 20);
    }
}
