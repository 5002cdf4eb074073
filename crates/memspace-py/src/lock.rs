//! `memspace.Mutex` and `memspace.RwLock`: cross-process locks that survive a killed holder.
//!
//! GIL rule (see `gil`): a lock is first tried once with the GIL held (no syscall on the fast
//! path); only if that fails and the caller allows waiting is the wait done with the GIL
//! released, checking for signals (Ctrl-C) between the core's wait slices.

use std::path::PathBuf;
use std::sync::Arc;

use memspace::Segment;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::args::{mode_arg, timeout_arg, trust_arg};
use crate::error::IntoPyResult;
use crate::gil::blocking;
use crate::guard::{read_guard, write_guard, HasRwLock, Held, PyLockGuard};
use crate::handle::{at_location, located_handle};

#[pyclass(module = "memspace", name = "Mutex", frozen)]
pub struct PyMutex {
    inner: Arc<memspace::Mutex>,
}

impl PyMutex {
    fn acquire_inner(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let t = timeout_arg(timeout)?;
        let m = &self.inner;
        let died = blocking(py, t, |t, i| m.raw_lock(t, i))?;
        Ok(PyLockGuard::new(Held::Mutex(self.inner.clone()), died))
    }
}

#[pymethods]
impl PyMutex {
    /// Creates a new mutex segment (exclusively).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, mode=0o600))]
    fn create(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        mode: i64,
    ) -> PyResult<Self> {
        let mode = mode_arg(mode)?;
        let m = at_location(py, name, path, |loc| memspace::Mutex::create(loc, mode))?;
        Ok(Self { inner: Arc::new(m) })
    }

    /// Opens an existing mutex segment (`trust`: whose segment to accept).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, trust=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let trust = trust_arg(trust.as_ref())?;
        let m = at_location(py, name, path, |l| memspace::Mutex::open(l.trusting(trust)))?;
        Ok(Self { inner: Arc::new(m) })
    }

    /// Acquires, waiting at most `timeout` seconds (None: no limit; 0: try once).
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        self.acquire_inner(py, timeout)
    }

    /// Releases the mutex held by the calling thread.
    fn release(&self) -> PyResult<()> {
        self.inner.raw_unlock().py_err()
    }

    /// `with mutex(timeout=...) as g:` acquires with a timeout.
    #[pyo3(signature = (timeout=None))]
    fn __call__(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        self.acquire_inner(py, timeout)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<PyLockGuard> {
        self.acquire_inner(py, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.inner.raw_unlock().py_err()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Mutex({})", self.inner.location())
    }
}

/// A writer-preferring cross-process reader/writer lock that survives killed holders.
#[pyclass(module = "memspace", name = "RwLock", frozen)]
pub struct PyRwLock {
    inner: Arc<memspace::RwLock>,
}

#[pymethods]
impl PyRwLock {
    /// Creates a new rwlock segment (exclusively).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, mode=0o600))]
    fn create(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        mode: i64,
    ) -> PyResult<Self> {
        let mode = mode_arg(mode)?;
        let l = at_location(py, name, path, |loc| memspace::RwLock::create(loc, mode))?;
        Ok(Self { inner: Arc::new(l) })
    }

    /// Opens an existing rwlock segment (`trust`: whose segment to accept).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, trust=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let trust = trust_arg(trust.as_ref())?;
        let l = at_location(py, name, path, |l| {
            memspace::RwLock::open(l.trusting(trust))
        })?;
        Ok(Self { inner: Arc::new(l) })
    }

    /// Acquires a shared (read) hold.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let l: Arc<dyn HasRwLock> = self.inner.clone();
        read_guard(py, &l, timeout)
    }

    /// Acquires the exclusive (write) hold.
    #[pyo3(signature = (timeout=None))]
    fn write(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let l: Arc<dyn HasRwLock> = self.inner.clone();
        write_guard(py, &l, timeout)
    }

    /// True if a writer holds or waits for the lock.
    #[getter]
    fn write_locked(&self) -> bool {
        self.inner.raw().is_write_locked()
    }

    /// Number of read holds now.
    #[getter]
    fn reader_count(&self) -> u64 {
        self.inner.raw().reader_count()
    }

    fn __repr__(&self) -> String {
        format!("RwLock({})", self.inner.location())
    }
}

located_handle!(
    PyMutex,
    remove = Segment::unlink,
    |s| s.inner.location(),
    trust = s.inner.reopen_trust()
);
located_handle!(
    PyRwLock,
    remove = Segment::unlink,
    |s| s.inner.location(),
    trust = s.inner.reopen_trust()
);
