//! Linux: futex wait/wake, OFD (open file description) locks, thread ids, process start
//! times and the fork hook. (The cross-process mutex is memspace's own futex-word protocol,
//! `lock::mutex`, over the futex calls here: no pthread mutex lives in shared memory.)
//!
//! Everything here takes raw pointers into shared memory rather than atomics, so that the
//! only module naming atomics stays `sync`. Callers guarantee the pointers' validity.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Outcome of a futex wait.
#[cfg_attr(loom, allow(dead_code))] // under loom the eventcount waits on a modelled futex
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWait {
    /// Woken, interrupted by a signal, or the word no longer held the expected value.
    Returned,
    /// The timeout elapsed.
    TimedOut,
}

/// Sleeps while the `u32` at `addr` equals `expected`, for at most `timeout`
/// (non-private `FUTEX_WAIT`, so that waiters in other processes share the queue).
///
/// # Safety
/// `addr` must be 4-byte aligned and valid for reads for the duration of the call.
#[cfg_attr(loom, allow(dead_code))] // under loom the eventcount waits on a modelled futex
pub(crate) unsafe fn futex_wait(addr: *const u32, expected: u32, timeout: Duration) -> FutexWait {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: the caller guarantees `addr` is a valid aligned u32; `ts` lives across the
    // call; FUTEX_WAIT ignores the remaining arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            std::ptr::from_ref(&ts),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        FutexWait::TimedOut
    } else {
        FutexWait::Returned
    }
}

/// Wakes up to `n` waiters sleeping on `addr` (non-private `FUTEX_WAKE`).
///
/// # Safety
/// `addr` must be 4-byte aligned and valid for the duration of the call.
#[cfg_attr(loom, allow(dead_code))] // under loom the eventcount waits on a modelled futex
pub(crate) unsafe fn futex_wake(addr: *const u32, n: i32) {
    // SAFETY: the caller guarantees `addr`; FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, n);
    }
}

fn flock_for(offset: u64, len: u64, ty: libc::c_int) -> io::Result<libc::flock> {
    let start =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    fl.l_pid = 0; // required by F_OFD_*
    Ok(fl)
}

/// Tries to take an exclusive OFD lock on `len` bytes at `offset` of `file` without waiting.
/// `Ok(false)` if another open file description holds a conflicting lock.
pub(crate) fn ofd_try_lock(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    let mut fl = flock_for(offset, len, libc::F_WRLCK)?;
    // SAFETY: the descriptor is open; `fl` is a valid flock that outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &raw mut fl) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Releases an OFD lock taken by [`ofd_try_lock`] on the same range.
pub(crate) fn ofd_unlock(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mut fl = flock_for(offset, len, libc::F_UNLCK)?;
    // SAFETY: as in `ofd_try_lock`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &raw mut fl) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True if some *other* open file description holds a *write* (exclusive) lock on any byte of
/// the range. Asking with a read lock (`F_OFD_GETLK` with `F_RDLCK`) reports only the locks
/// that conflict with one, which are write locks: a read lock, which anyone who can read the
/// file may take, is never reported, so it cannot make a dead holder look alive. Every
/// liveness and role lock memspace takes is a write lock ([`ofd_try_lock`]). Locks held
/// through `file`'s own description never conflict with it and are not reported.
pub(crate) fn ofd_is_locked(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    let mut fl = flock_for(offset, len, libc::F_RDLCK)?;
    // SAFETY: as in `ofd_try_lock`; F_OFD_GETLK writes the result into `fl`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &raw mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

/// Opens a new open file description for the same file as `file` (through `/proc/self/fd`),
/// so that OFD locks taken through it are distinct from `file`'s. Works on unlinked files.
pub(crate) fn reopen(file: &File) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Kernel thread id of the calling thread.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Process id of the caller.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// Start time of process `pid` in clock ticks after boot (field 22 of `/proc/PID/stat`), or 0
/// if it cannot be read. Together with the pid it identifies a process across pid reuse.
pub(crate) fn process_start_time(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` now.
#[cfg_attr(loom, allow(dead_code))] // under loom the waits have no clock
pub(crate) fn monotonic_now() -> Duration {
    // SAFETY: all-zero is a valid timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

extern "C" fn after_fork_in_child() {
    crate::sync::bump_fork_generation();
}

/// Registers (once per process) the hook that bumps the fork generation in a forked child.
pub(crate) fn install_fork_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a handler that only performs one atomic increment, which is
        // async-signal-safe and therefore fine in a child after fork.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}
