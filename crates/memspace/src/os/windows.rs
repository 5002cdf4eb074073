//! Windows: not written yet. Everything compiles and reports `Unsupported`, so that the crate
//! builds for the target and callers get a clear error instead of a missing symbol.

use std::fs::File;
use std::io;
use std::path::Path;
use std::ptr::NonNull;

pub(crate) const MAX_SHM_NAME: usize = 255;
pub(crate) const SHM_DIR: Option<&str> = None;

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not supported on Windows yet")
}

pub(crate) fn shm_open(_name: &str, _create: bool, _mode: u32) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn shm_unlink(_name: &str) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn open_file(_path: &Path, _create: bool, _mode: u32) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn reserve(_file: &File, _len: u64) -> io::Result<bool> {
    Err(unsupported())
}

pub(crate) fn reserve_existing(_file: &File, _len: u64) -> io::Result<bool> {
    Err(unsupported())
}

pub(crate) fn open_to_read(_path: &Path) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn map_shared(_file: &File, _len: usize) -> io::Result<NonNull<u8>> {
    Err(unsupported())
}

/// # Safety
/// Never called: no mapping can exist on this platform yet.
pub(crate) unsafe fn unmap(_ptr: NonNull<u8>, _len: usize) {}

pub(crate) fn current_uid() -> u32 {
    0
}
