//! `_Waiter`: the core's `Waiter` (one thread waiting on many channels' signals at once) for
//! the asyncio layer, `memspace.aio`, whose per-loop thread calls `wait()` with the GIL
//! released and completes futures from what fired.

use memspace::{WaitStatus, Waiter, WatchId};
use pyo3::prelude::*;

use crate::args::timeout_arg;
use crate::signal::PySignal;

/// Waits on many signals from one thread (internal: `memspace.aio` uses it).
#[pyclass(module = "memspace._memspace", name = "_Waiter", frozen)]
pub struct PyWaiter {
    w: Waiter,
}

#[pymethods]
impl PyWaiter {
    /// A waiter with no watches; `threads=True` forces the fallback of kernels without
    /// `futex_waitv` (a helper thread per watched word), for tests.
    #[new]
    #[pyo3(signature = (*, threads=false))]
    fn new(threads: bool) -> Self {
        Self {
            w: if threads {
                Waiter::without_wait_any()
            } else {
                Waiter::new()
            },
        }
    }

    /// Watches `signal` from `key` (what its `prepare()` returned; the waiter now owns that
    /// prepare). Returns the watch's id, or None if the waiter is closed.
    fn watch(&self, signal: &PySignal, key: u32) -> Option<u64> {
        self.w.watch(&signal.sig, key).map(|id| id.0)
    }

    /// Withdraws a watch; False if it already fired.
    fn unwatch(&self, id: u64) -> bool {
        self.w.unwatch(WatchId(id))
    }

    /// Waits (GIL released) at most `timeout` seconds for watches to fire; returns their ids
    /// (empty on timeout), or None once the waiter is closed.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Vec<u64>>> {
        let timeout = timeout_arg(timeout)?;
        let w = &self.w;
        let (status, fired) = py.detach(|| {
            let mut out = Vec::new();
            (w.wait(timeout, &mut out), out)
        });
        Ok(match status {
            WaitStatus::Closed => None,
            WaitStatus::Ready | WaitStatus::TimedOut => {
                Some(fired.into_iter().map(|id| id.0).collect())
            }
        })
    }

    /// Withdraws every watch and wakes the waiting thread.
    fn close(&self) {
        self.w.close();
    }

    /// Watches not yet fired.
    fn __len__(&self) -> usize {
        self.w.len()
    }
}
