//! The per-file reader/writer lock that an open handle holds for its whole life.
//!
//! It is a *logical* lock (a state word under a short mutex, with a condition variable), not a
//! guard over the data: the data sits behind its own `RwLock`, taken only for the length of one
//! copy. Waiting here never holds the filesystem's tree lock, so one blocked `open` does not
//! stall other operations.
//!
//! Writers are preferred: once a writer waits, new readers wait behind it, so a stream of
//! readers cannot starve a writer. A file removed while someone waited is marked `unlinked`
//! (atomically with the "is it open?" check), and the waiter is told so instead of getting a
//! handle on a file that no longer has a name.
//!
//! A wait sleeps in slices of [`WAIT_SLICE`] and runs the caller's interrupt check between
//! them (with no lock held), like the cross-process locks, so that Python can handle Ctrl-C.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::fs::options::LockKind;
use crate::lock::mutex::WAIT_SLICE;
use crate::lock::Interrupt;

/// Why an acquisition failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AcquireError {
    Timeout,
    Unlinked,
    Interrupted,
}

#[derive(Default)]
struct State {
    readers: u32,
    writer: bool,
    writers_waiting: u32,
    /// Threads blocked in `acquire` (of either kind): a release wakes only if this is not 0,
    /// so the uncontended path makes no system call.
    sleepers: u32,
    unlinked: bool,
}

#[derive(Default)]
pub(crate) struct FileLock {
    state: Mutex<State>,
    cond: Condvar,
}

impl FileLock {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few integers updated in single steps; a panic elsewhere cannot leave
        // it half-written, so a poisoned mutex is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A lock already held by a writer (for a file created by the caller).
    pub(crate) fn new_write_locked() -> Self {
        let lock = Self::default();
        lock.state().writer = true;
        lock
    }

    /// Takes the lock, waiting at most `timeout` (`None`: forever; zero: try once), and
    /// running `interrupt` after every slice of [`WAIT_SLICE`] spent waiting.
    pub(crate) fn acquire(
        &self,
        kind: LockKind,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<(), AcquireError> {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut next_check = start + WAIT_SLICE;
        let mut st = self.state();
        if kind == LockKind::Write {
            st.writers_waiting += 1;
        }
        let res = loop {
            if st.unlinked {
                break Err(AcquireError::Unlinked);
            }
            let free = match kind {
                LockKind::Read => !st.writer && st.writers_waiting == 0,
                LockKind::Write => !st.writer && st.readers == 0,
            };
            if free {
                match kind {
                    LockKind::Read => st.readers += 1,
                    LockKind::Write => st.writer = true,
                }
                break Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break Err(AcquireError::Timeout);
            }
            if now >= next_check {
                // Never call out with the state locked: the check may wait for Python's GIL.
                drop(st);
                let stop = interrupt();
                st = self.state();
                if stop {
                    break Err(AcquireError::Interrupted);
                }
                next_check = Instant::now() + WAIT_SLICE;
                // The lock may have been freed or the file removed meanwhile: look again.
                continue;
            }
            let until = deadline.map_or(next_check, |d| d.min(next_check));
            st.sleepers += 1;
            st = self
                .cond
                .wait_timeout(st, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            st.sleepers -= 1;
        };
        if kind == LockKind::Write {
            st.writers_waiting -= 1;
            if res.is_err() && st.sleepers > 0 {
                // Readers held back by this writer while it waited may go now.
                drop(st);
                self.cond.notify_all();
            }
        }
        res
    }

    /// Releases a lock taken with `acquire` (or `new_write_locked`).
    pub(crate) fn release(&self, kind: LockKind) {
        let mut st = self.state();
        match kind {
            LockKind::Read => st.readers = st.readers.saturating_sub(1),
            LockKind::Write => st.writer = false,
        }
        let wake = st.sleepers > 0;
        drop(st);
        if wake {
            self.cond.notify_all();
        }
    }

    /// Whether any handle holds the lock.
    pub(crate) fn is_locked(&self) -> bool {
        let st = self.state();
        st.writer || st.readers > 0
    }

    /// Marks the file as removed unless it is open; `false` if it is open.
    pub(crate) fn try_unlink(&self) -> bool {
        let mut st = self.state();
        if st.writer || st.readers > 0 {
            return false;
        }
        st.unlinked = true;
        let wake = st.sleepers > 0;
        drop(st);
        if wake {
            self.cond.notify_all();
        }
        true
    }

    /// Undoes [`FileLock::try_unlink`] (an operation that validated several files failed on a
    /// later one).
    pub(crate) fn relink(&self) {
        self.state().unlinked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn readers_share_writers_exclude() {
        let l = FileLock::default();
        l.acquire(LockKind::Read, Some(Duration::ZERO), &mut || false)
            .unwrap();
        l.acquire(LockKind::Read, Some(Duration::ZERO), &mut || false)
            .unwrap();
        assert_eq!(
            l.acquire(LockKind::Write, Some(Duration::ZERO), &mut || false),
            Err(AcquireError::Timeout)
        );
        l.release(LockKind::Read);
        l.release(LockKind::Read);
        l.acquire(LockKind::Write, Some(Duration::ZERO), &mut || false)
            .unwrap();
        assert_eq!(
            l.acquire(LockKind::Read, Some(Duration::from_millis(10)), &mut || {
                false
            }),
            Err(AcquireError::Timeout)
        );
        assert!(!l.try_unlink());
        l.release(LockKind::Write);
        assert!(l.try_unlink());
        assert_eq!(
            l.acquire(LockKind::Read, None, &mut || false),
            Err(AcquireError::Unlinked)
        );
    }

    #[test]
    fn waiting_writer_holds_new_readers_back() {
        let l = Arc::new(FileLock::default());
        l.acquire(LockKind::Read, None, &mut || false).unwrap();
        let l2 = Arc::clone(&l);
        let writer = thread::spawn(move || {
            l2.acquire(LockKind::Write, Some(Duration::from_secs(10)), &mut || {
                false
            })
            .unwrap();
            l2.release(LockKind::Write);
        });
        // Wait until the writer is queued.
        while l.state().writers_waiting == 0 {
            thread::yield_now();
        }
        assert_eq!(
            l.acquire(LockKind::Read, Some(Duration::ZERO), &mut || false),
            Err(AcquireError::Timeout)
        );
        l.release(LockKind::Read);
        writer.join().unwrap();
        l.acquire(LockKind::Read, Some(Duration::ZERO), &mut || false)
            .unwrap();
    }
}
