//! The guard every lock hands out (`memspace.LockGuard`), and the read/write acquisition shared
//! by the classes with an rwlock in front (`RwLock`, `View`).
//!
//! Dropping a guard does not release the lock: see [`PyLockGuard`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memspace::lock::ShmRwLock;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::args::timeout_arg;
use crate::gil::blocking;

/// Something with an rwlock in front (an `RwLock` or a `View`).
pub(crate) trait HasRwLock: Send + Sync {
    fn rw(&self) -> &ShmRwLock;
}

impl HasRwLock for memspace::RwLock {
    fn rw(&self) -> &ShmRwLock {
        self.raw()
    }
}

impl HasRwLock for memspace::View {
    fn rw(&self) -> &ShmRwLock {
        self.lock()
    }
}

pub(crate) enum Held {
    Mutex(Arc<memspace::Mutex>),
    Read(Arc<dyn HasRwLock>),
    Write(Arc<dyn HasRwLock>),
}

impl Held {
    fn release(&self) -> memspace::Result<()> {
        match self {
            Held::Mutex(m) => m.raw_unlock(),
            Held::Read(l) => l.rw().raw_read_unlock(),
            Held::Write(l) => l.rw().raw_write_unlock(),
        }
    }
}

/// A held lock: a context manager that releases it on exit.
///
/// Dropping a guard does not release the lock (so that `mutex.acquire()` ... `mutex.release()`
/// works as with `threading.Lock`, and so that a guard collected on another thread cannot
/// release from the wrong thread): release it with `with`, `release()`, or the lock's own
/// `release()`.
#[pyclass(module = "memspace", name = "LockGuard", frozen)]
pub struct PyLockGuard {
    held: Held,
    owner_died: bool,
    holding: AtomicBool,
}

impl PyLockGuard {
    pub(crate) fn new(held: Held, owner_died: bool) -> Self {
        Self {
            held,
            owner_died,
            holding: AtomicBool::new(true),
        }
    }
}

#[pymethods]
impl PyLockGuard {
    /// True if a previous holder died while holding the lock and this acquisition replaced
    /// it: the protected data may be half-updated.
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// True until the lock is released.
    #[getter]
    fn held(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Releases the lock (`memspace.LockError` if already released or not held by this
    /// thread).
    fn release(&self) -> PyResult<()> {
        if !self.holding.swap(false, Ordering::AcqRel) {
            return Err(crate::error::lock_error_msg(
                "this guard was already released",
            ));
        }
        match self.held.release() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.holding.store(true, Ordering::Release);
                Err(crate::error::to_py(e))
            }
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if self.holding.load(Ordering::Acquire) {
            self.release()?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let what = match self.held {
            Held::Mutex(_) => "mutex",
            Held::Read(_) => "read",
            Held::Write(_) => "write",
        };
        format!(
            "LockGuard({what}, held={}, owner_died={})",
            if self.held() { "True" } else { "False" },
            if self.owner_died { "True" } else { "False" }
        )
    }
}

pub(crate) fn read_guard(
    py: Python<'_>,
    l: &Arc<dyn HasRwLock>,
    timeout: Option<f64>,
) -> PyResult<PyLockGuard> {
    let t = timeout_arg(timeout)?;
    let died = blocking(py, t, |t, i| l.rw().raw_read(t, i))?;
    Ok(PyLockGuard::new(Held::Read(l.clone()), died))
}

pub(crate) fn write_guard(
    py: Python<'_>,
    l: &Arc<dyn HasRwLock>,
    timeout: Option<f64>,
) -> PyResult<PyLockGuard> {
    let t = timeout_arg(timeout)?;
    let died = blocking(py, t, |t, i| l.rw().raw_write(t, i))?;
    Ok(PyLockGuard::new(Held::Write(l.clone()), died))
}
