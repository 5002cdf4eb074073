//! Platforms other than Linux: the wait, lock and liveness primitives are not written yet.
//! Everything compiles; operations that need them report `Unsupported` (through io errors
//! with `ErrorKind::Unsupported`), and waits degrade to short sleeps.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "not supported on this platform yet",
    )
}

#[cfg_attr(loom, allow(dead_code))] // under loom the eventcount waits on a modelled futex
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWait {
    Returned,
    TimedOut,
}

/// # Safety
/// `addr` must be valid; it is not dereferenced here.
#[cfg_attr(loom, allow(dead_code))] // under loom the eventcount waits on a modelled futex
pub(crate) unsafe fn futex_wait(_addr: *const u32, _expected: u32, timeout: Duration) -> FutexWait {
    std::thread::sleep(timeout.min(Duration::from_millis(1)));
    FutexWait::Returned
}

/// # Safety
/// `addr` must be valid; it is not dereferenced here.
#[cfg_attr(loom, allow(dead_code))] // under loom the eventcount waits on a modelled futex
pub(crate) unsafe fn futex_wake(_addr: *const u32, _n: i32) {}

pub(crate) fn ofd_try_lock(_file: &File, _offset: u64, _len: u64) -> io::Result<bool> {
    Err(unsupported())
}

pub(crate) fn ofd_unlock(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn ofd_is_locked(_file: &File, _offset: u64, _len: u64) -> io::Result<bool> {
    Err(unsupported())
}

pub(crate) fn reopen(_file: &File) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn gettid() -> u32 {
    0
}

pub(crate) fn getpid() -> u32 {
    std::process::id()
}

pub(crate) fn process_start_time(_pid: u32) -> u64 {
    0
}

pub(crate) fn monotonic_now() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

pub(crate) fn install_fork_hook() {}
