//! How a channel side waits for the other: spin briefly, then sleep on an eventcount in
//! slices, with deadlines on the monotonic clock and the caller's interrupt check between
//! slices.
//!
//! This module owns the waiting loop only. What is waited for is the caller's `check` closure
//! (room for a message, a committed record, ...), and which eventcount it sleeps on is the
//! channel's (each channel lays out its own in its lock area). The other side wakes it after
//! every change that could make `check` succeed; that costs no syscall when nobody sleeps (see
//! `lock::eventcount`).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::lock::eventcount::{EventCount, OsFutex};
use crate::lock::mutex::{Interrupt, WAIT_SLICE};

/// How long a waiter spins (checking the condition) before it sleeps. A futex sleep/wake
/// round trip costs tens of microseconds here (about 70 us measured), a cross-core cache-line
/// round trip about 130 ns: while the other side is streaming, the condition comes true well
/// within this, so neither side enters the kernel; an idle waiter spins this long once, then
/// sleeps until woken.
const SPIN_TIME: Duration = Duration::from_micros(30);

/// Waits for `check` to produce a value: spin, then sleep on `ev` in slices until `deadline`.
/// `Ok(None)` once the deadline has passed; [`Error::Interrupted`] if `interrupt` asks for it
/// between slices.
pub(crate) fn wait_for<T>(
    ev: EventCount<'_>,
    deadline: Option<Instant>,
    interrupt: Interrupt<'_>,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    // The clock is read after every check (a vDSO call, tens of nanoseconds): a check may
    // itself wait (the queue's waits for its locks, up to 20 ms with a stopped holder), and the
    // spin must then end at once rather than after a batch of such checks.
    let spin_until = Instant::now() + SPIN_TIME;
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if Instant::now() >= spin_until {
            break;
        }
        crate::sync::spin_loop();
    }
    loop {
        let key = ev.prepare();
        match check() {
            Ok(Some(v)) => {
                ev.cancel();
                return Ok(Some(v));
            }
            Ok(None) => {}
            Err(e) => {
                ev.cancel();
                return Err(e);
            }
        }
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    ev.cancel();
                    return Ok(None);
                }
                left.min(WAIT_SLICE)
            }
            None => WAIT_SLICE,
        };
        ev.wait(&OsFutex, key, Some(slice));
        if interrupt() {
            return Err(Error::Interrupted);
        }
    }
}

/// The instant `timeout` from now (`None`: no deadline); a timeout too large for the clock is
/// a year.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// The interrupt check that never interrupts.
pub(crate) fn no_interrupt() -> bool {
    false
}

/// A `no_interrupt` check for Rust callers that do not need one.
pub fn never_interrupted() -> impl FnMut() -> bool {
    no_interrupt
}
