//! Linux: futex wait/wake, OFD (open file description) locks, the glibc robust
//! process-shared mutex, thread ids and process start times.
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
pub(crate) fn monotonic_now() -> Duration {
    // SAFETY: all-zero is a valid timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

// ---------------------------------------------------------------------------------------------
// The robust, process-shared, error-checking pthread mutex.

/// Bytes reserved for a `pthread_mutex_t` in shared memory (glibc uses 40 on 64-bit targets,
/// 24 on 32-bit ones).
pub(crate) const PTHREAD_MUTEX_BYTES: usize = 64;
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= PTHREAD_MUTEX_BYTES);
const _: () = assert!(std::mem::align_of::<libc::pthread_mutex_t>() <= 16);

extern "C" {
    // glibc >= 2.30; not (yet) declared by the libc crate.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// What a lock attempt on a robust mutex returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MutexLock {
    /// Acquired normally.
    Acquired,
    /// Acquired; the previous holder died while holding it (`EOWNERDEAD`). The caller must
    /// make it consistent before unlocking.
    OwnerDied,
    /// Not acquired: another thread holds it (try-lock) or the deadline passed.
    Busy,
    /// The calling thread already holds it (`EDEADLK`).
    Deadlock,
    /// Any other error number.
    Error(i32),
}

fn mutex_result(rc: libc::c_int) -> MutexLock {
    match rc {
        0 => MutexLock::Acquired,
        libc::EOWNERDEAD => MutexLock::OwnerDied,
        libc::EBUSY | libc::ETIMEDOUT => MutexLock::Busy,
        libc::EDEADLK => MutexLock::Deadlock,
        e => MutexLock::Error(e),
    }
}

fn attr_result(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Initialises the mutex at `m` as process-shared, robust and error-checking.
///
/// # Safety
/// `m` must be valid for writes of `PTHREAD_MUTEX_BYTES`, suitably aligned, and not in use by
/// any thread (only a segment's creator calls this, before publishing the segment).
pub(crate) unsafe fn robust_mutex_init(m: *mut u8) -> io::Result<()> {
    // SAFETY: all-zero is a valid bit pattern for the attribute object before init.
    let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a local attribute object, initialised first and destroyed last; `m`
    // is valid per the caller's contract.
    unsafe {
        attr_result(libc::pthread_mutexattr_init(&raw mut attr))?;
        let r = (|| {
            attr_result(libc::pthread_mutexattr_setpshared(
                &raw mut attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            attr_result(libc::pthread_mutexattr_setrobust(
                &raw mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            attr_result(libc::pthread_mutexattr_settype(
                &raw mut attr,
                libc::PTHREAD_MUTEX_ERRORCHECK,
            ))?;
            attr_result(libc::pthread_mutex_init(m.cast(), &raw const attr))
        })();
        libc::pthread_mutexattr_destroy(&raw mut attr);
        r
    }
}

/// The bytes `robust_mutex_init` writes into an unlocked mutex (computed once per process on a
/// private copy). Used to validate the type field of a mutex found in shared memory.
pub(crate) fn robust_mutex_template() -> Option<&'static [u8; PTHREAD_MUTEX_BYTES]> {
    static T: std::sync::OnceLock<Option<[u8; PTHREAD_MUTEX_BYTES]>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        #[repr(C, align(16))]
        struct Buf([u8; PTHREAD_MUTEX_BYTES]);
        let mut b = Buf([0; PTHREAD_MUTEX_BYTES]);
        // SAFETY: `b` is a private, aligned, zeroed buffer large enough for a mutex.
        unsafe { robust_mutex_init(b.0.as_mut_ptr()) }.ok()?;
        Some(b.0)
    })
    .as_ref()
}

/// Byte range of glibc's `__kind` field inside `pthread_mutex_t` (`int __lock; unsigned
/// __count; int __owner; unsigned __nusers; int __kind; ...` on every glibc target we build).
pub(crate) const PTHREAD_KIND_RANGE: std::ops::Range<usize> = 16..20;

/// Try-lock.
///
/// # Safety
/// `m` must point at a mutex initialised by [`robust_mutex_init`] in live shared memory.
pub(crate) unsafe fn robust_mutex_trylock(m: *mut u8) -> MutexLock {
    // SAFETY: per the caller's contract.
    mutex_result(unsafe { libc::pthread_mutex_trylock(m.cast()) })
}

/// Lock, waiting until `deadline` on `CLOCK_MONOTONIC` at the latest.
///
/// # Safety
/// As for [`robust_mutex_trylock`].
pub(crate) unsafe fn robust_mutex_lock_until(m: *mut u8, deadline: Duration) -> MutexLock {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(deadline.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(deadline.subsec_nanos() as i32),
    };
    // SAFETY: per the caller's contract; `ts` outlives the call.
    mutex_result(unsafe { pthread_mutex_clocklock(m.cast(), libc::CLOCK_MONOTONIC, &raw const ts) })
}

/// Marks a mutex acquired with `EOWNERDEAD` consistent again.
///
/// # Safety
/// As for [`robust_mutex_trylock`]; the calling thread must hold the mutex.
pub(crate) unsafe fn robust_mutex_consistent(m: *mut u8) -> io::Result<()> {
    // SAFETY: per the caller's contract.
    attr_result(unsafe { libc::pthread_mutex_consistent(m.cast()) })
}

/// Unlocks. `Err(EPERM)` if the calling thread does not hold it.
///
/// # Safety
/// As for [`robust_mutex_trylock`].
pub(crate) unsafe fn robust_mutex_unlock(m: *mut u8) -> io::Result<()> {
    // SAFETY: per the caller's contract.
    attr_result(unsafe { libc::pthread_mutex_unlock(m.cast()) })
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
