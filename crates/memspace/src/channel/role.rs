//! A role that one live holder at a time may have (the ring's producer and consumer, a
//! broadcast's publisher): a write OFD lock on one byte of the segment's lock file (which a
//! read-only opener of the segment cannot open, so it can neither take nor block a role).
//!
//! The lock is taken (`fcntl(F_OFD_SETLK)`) through a file description private to the role
//! handle. The kernel drops it when the holder dies, however it dies, so claiming a role is a
//! non-blocking lock attempt: it fails while the holder is alive (a stopped process included)
//! and succeeds once it is dead. Which byte stands for which role is the channel's layout;
//! what a new holder continues from is the channel's protocol.
//!
//! After `fork` the child shares the description, hence the lock, with its parent: the role
//! stays the parent's, the child's copy of the handle reports itself inherited and never
//! unlocks.

use std::fs::File;
use std::sync::{Mutex, PoisonError};

use crate::channel::error::ChannelError;
use crate::error::{Error, Result};
use crate::os;
use crate::shm::error::SegmentError;
use crate::shm::structured::Structured;

/// A held role: an OFD lock on the role's byte through a private file description.
#[derive(Debug)]
pub(crate) struct RoleLock {
    file: File,
    offset: u64,
    fork_gen: u64,
    key: Option<HeldKey>,
}

/// Which role byte of which file (device, inode, offset), in which fork generation: the roles
/// this process holds, so that a refused claim can say "another handle in this process"
/// instead of "another live process" (the kernel does not say who holds an OFD lock).
type HeldKey = (u64, u64, u64, u64);

/// The roles held by this process's `RoleLock`s (a handful: a linear scan is enough).
static HELD: Mutex<Vec<HeldKey>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<HeldKey>> {
    // The list holds plain keys: a panic while it was locked cannot leave it half-updated.
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key of the role byte at `offset` of `file`, or None where files have no identity.
fn held_key(file: &File, offset: u64) -> Option<HeldKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().ok()?;
        Some((m.dev(), m.ino(), offset, crate::sync::fork_generation()))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, offset);
        None
    }
}

impl RoleLock {
    /// Claims the role `role` (its name, for the error) whose byte is at `offset` of `st`'s
    /// file; [`ChannelError::RoleTaken`] while a live process holds it.
    pub(crate) fn claim(st: &Structured, offset: u64, role: &'static str) -> Result<RoleLock> {
        let loc = st.location();
        let os_err = |op, e| {
            Error::Segment(SegmentError::Os {
                op,
                location: loc.clone(),
                source: e,
            })
        };
        os::install_fork_hook();
        let file = os::reopen(st.lock_file()).map_err(|e| os_err("reopen", e))?;
        let key = held_key(&file, offset);
        if !os::ofd_try_lock(&file, offset, 1).map_err(|e| os_err("fcntl(F_OFD_SETLK)", e))? {
            return Err(Error::Channel(ChannelError::RoleTaken {
                location: loc.clone(),
                role,
                by_this_process: key.is_some_and(|k| held().contains(&k)),
            }));
        }
        if let Some(k) = key {
            held().push(k);
        }
        Ok(RoleLock {
            file,
            offset,
            fork_gen: crate::sync::fork_generation(),
            key,
        })
    }

    /// True in a process forked after the claim: the role belongs to the parent.
    pub(crate) fn inherited(&self) -> bool {
        self.fork_gen != crate::sync::fork_generation()
    }
}

/// Whether a live process (a stopped one included) holds the role whose byte is at `offset`.
pub(crate) fn is_held(st: &Structured, offset: u64) -> Result<bool> {
    crate::shm::attach::anyone_locks(st.lock_file(), st.location(), offset, 1)
}

impl Drop for RoleLock {
    fn drop(&mut self) {
        // After a fork the description (and the lock) is shared with the parent, which still
        // holds the role: leave it alone.
        if self.fork_gen == crate::sync::fork_generation() {
            let _ = os::ofd_unlock(&self.file, self.offset, 1);
        }
        if let Some(k) = self.key {
            let mut h = held();
            if let Some(i) = h.iter().position(|x| *x == k) {
                h.swap_remove(i);
            }
        }
    }
}
