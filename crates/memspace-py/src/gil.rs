//! GIL release and interruptible waits.
//!
//! The rule everywhere: a call first tries once with the GIL held (no syscall on the fast
//! path); only a call that has to wait releases the GIL, and then runs Python's signal
//! handlers between the core's wait slices, so that Ctrl-C interrupts it.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use memspace::lock::Interrupt;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use crate::error::IntoPyResult;

/// Runs `op(timeout, interrupt)`: once as a try with the GIL held, then (if it timed out at
/// once and waiting is allowed) with the GIL released and Python's signal handlers run between
/// slices.
pub(crate) fn blocking<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    op: impl Fn(Option<Duration>, Interrupt<'_>) -> memspace::Result<T> + Sync,
) -> PyResult<T> {
    match op(Some(Duration::ZERO), &mut || false) {
        Err(e) if e.is_timeout() && timeout != Some(Duration::ZERO) => {}
        r => return r.py_err(),
    }
    detached(py, |interrupt| op(timeout, interrupt))
}

/// Runs `op` with the GIL released, running Python's signal handlers between the core's wait
/// slices; a handler's exception (e.g. `KeyboardInterrupt`) abandons the wait and is raised.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    op: impl FnOnce(Interrupt<'_>) -> memspace::Result<T> + Send,
) -> PyResult<T> {
    let mut pending: Option<PyErr> = None;
    let r = py.detach(|| {
        op(
            #[allow(clippy::redundant_closure_for_method_calls)] // the lifetime needs the closure
            &mut || match Python::attach(|py| py.check_signals()) {
                Ok(()) => false,
                Err(e) => {
                    pending = Some(e);
                    true
                }
            },
        )
    });
    match r {
        Err(e) if e.is_interrupted() => {
            Err(pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted")))
        }
        r => r.py_err(),
    }
}

/// Locks a handle's own mutex; if another thread holds it (possibly while waiting with the
/// GIL released), waits for it without holding the GIL, so that the holder can finish.
pub(crate) fn lock_unheld<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(TryLockError::Poisoned(p)) => return p.into_inner(),
            // Wait for the holder without the GIL (it may need the GIL to finish), then try
            // again with it: a guard cannot cross the GIL boundary.
            Err(TryLockError::WouldBlock) => py.detach(|| drop(m.lock())),
        }
    }
}
