//! POSIX shared memory, files and mappings.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::ptr::NonNull;

/// Longest POSIX shared-memory name, leading slash excluded.
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(crate) const MAX_SHM_NAME: usize = 30; // PSHMNAMLEN is 31 including the slash
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
pub(crate) const MAX_SHM_NAME: usize = 255; // NAME_MAX of the tmpfs behind /dev/shm

/// Where the kernel shows POSIX segments as files, if it does.
#[cfg(target_os = "linux")]
pub(crate) const SHM_DIR: Option<&str> = Some("/dev/shm");
#[cfg(not(target_os = "linux"))]
pub(crate) const SHM_DIR: Option<&str> = None;

/// Flags of every open of a segment's file (and its lock file): never follow a symbolic link
/// in the last component, never make a terminal the controlling one, never block (a FIFO or a
/// device planted under the name), and close on exec. The caller checks what was opened with
/// `fstat` before mapping anything.
const SAFE_OPEN_FLAGS: libc::c_int =
    libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `shm_open(name, O_RDWR [| O_CREAT | O_EXCL] | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, mode)`
/// (glibc and musl pass the extra flags on to `open`).
pub(crate) fn shm_open(name: &str, create: bool, mode: u32) -> io::Result<File> {
    let cname = cstring(name)?;
    let mut flags = libc::O_RDWR | SAFE_OPEN_FLAGS;
    if create {
        flags |= libc::O_CREAT | libc::O_EXCL;
    }
    // `c_uint`: on macOS shm_open is variadic (mode_t is u16 there and would not promote).
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; the flags and
    // mode are plain integers.
    let fd = unsafe { libc::shm_open(cname.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful shm_open and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let cname = cstring(name)?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::shm_unlink(cname.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens (or exclusively creates) a regular file for a file-backed segment, read-write,
/// without following a symbolic link (see `SAFE_OPEN_FLAGS`). An exclusive create never
/// follows one anyway: `O_CREAT | O_EXCL` fails with `EEXIST` on any link, dangling or not.
pub(crate) fn open_file(path: &Path, create: bool, mode: u32) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).custom_flags(SAFE_OPEN_FLAGS);
    if create {
        opts.create_new(true).mode(mode);
    }
    opts.open(path)
}

/// Opens a file read-only to look at it (`memspace ls`), with the same care as a segment:
/// no symbolic link followed, no FIFO waited on, no terminal adopted.
pub(crate) fn open_to_read(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(SAFE_OPEN_FLAGS)
        .open(path)
}

/// Sets the permission bits exactly, whatever the umask was at creation.
pub(crate) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Reserves `len` bytes of backing store so that later accesses cannot fault for lack of
/// space. Returns `Ok(false)` when the file system cannot reserve (the file is then only
/// extended), `Err` with `ENOSPC` when there is no room.
pub(crate) fn reserve(file: &File, len: u64) -> io::Result<bool> {
    let off = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: the descriptor is open for writing for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off) };
        match rc {
            0 => return Ok(true),
            libc::EINVAL | libc::EOPNOTSUPP => {}
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
    // SAFETY: as above; ftruncate only changes the file's length.
    if unsafe { libc::ftruncate(file.as_raw_fd(), off) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(false)
}

/// Reserves the backing store of an existing file of `len` bytes whose blocks may not all be
/// allocated (a sparse file), so that touching its pages cannot fault for lack of space.
/// Never changes the file's size or contents, and never falls back to writing (glibc's
/// `posix_fallocate` emulation writes bytes, which would race with the file's live writers):
/// `Ok(false)` where the file system cannot reserve, `Err` with `ENOSPC` when there is no room.
pub(crate) fn reserve_existing(file: &File, len: u64) -> io::Result<bool> {
    let off = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let reserved = {
        // SAFETY: the descriptor is open for writing for the duration of the call.
        // FALLOC_FL_KEEP_SIZE: allocate, never extend (a peer may have shrunk the file since
        // its size was read; growing it back is not ours to do).
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, off) };
        if rc == 0 {
            Ok(true)
        } else {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => Ok(false),
                _ => Err(e),
            }
        }
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let reserved = {
        let _ = (file, off);
        Ok(false)
    };
    reserved
}

/// Maps `len` bytes of `file` shared and read-write.
pub(crate) fn map_shared(file: &File, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh mapping chosen by the kernel (null hint) aliases no Rust object; the
    // descriptor is valid for the call; len > 0 is checked by every caller.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))
}

/// Unmaps a region returned by [`map_shared`].
///
/// # Safety
/// `ptr`/`len` must be exactly a live mapping from [`map_shared`], and no reference into it
/// may be used afterwards.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: guaranteed by the caller. munmap of a valid mapping cannot fail.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

/// Effective user id of this process.
pub(crate) fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
