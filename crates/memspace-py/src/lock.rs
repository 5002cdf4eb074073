//! `memspace.Mutex` and `memspace.RwLock`: cross-process locks that survive a killed holder.
//!
//! GIL rule (see `gil`): a lock is first tried once with the GIL held (no syscall on the fast
//! path); only if that fails and the caller allows waiting is the wait done with the GIL
//! released, checking for signals (Ctrl-C) between the core's wait slices.

use std::path::PathBuf;
use std::sync::Arc;

use memspace::{Location, Segment};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::args::{location_repr, mode_arg, timeout_arg, trust_arg};
use crate::error::IntoPyResult;
use crate::gil::blocking;
use crate::guard::{read_guard, write_guard, HasRwLock, Held, PyLockGuard};
use crate::handle::{at_location, closing_handle, located_handle, OpenHandle};

/// A cross-process mutex that survives a killed holder.
///
/// `with mutex:` acquires (as with `threading.Lock`); `close()` (or
/// `contextlib.closing(mutex)`) detaches the handle. A guard taken from it keeps the mutex
/// attached for as long as the guard object lives.
#[pyclass(module = "memspace", name = "Mutex", frozen)]
pub struct PyMutex {
    inner: OpenHandle<Arc<memspace::Mutex>>,
    location: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: memspace::Trust,
}

impl PyMutex {
    fn new(m: memspace::Mutex) -> Self {
        Self {
            location: m.location().clone(),
            trust: m.reopen_trust().clone(),
            inner: OpenHandle::new(Arc::new(m), "Mutex"),
        }
    }

    fn acquire_inner(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let t = timeout_arg(timeout)?;
        let m = self.inner.get()?;
        let died = blocking(py, t, |t, i| m.raw_lock(t, i))?;
        Ok(PyLockGuard::new(Held::Mutex(m), died))
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
        Ok(Self::new(m))
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
        Ok(Self::new(m))
    }

    /// Acquires, waiting at most `timeout` seconds (None: no limit; 0: try once).
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        self.acquire_inner(py, timeout)
    }

    /// Releases the mutex held by the calling thread.
    fn release(&self) -> PyResult<()> {
        self.inner.get()?.raw_unlock().py_err()
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
        self.inner.get()?.raw_unlock().py_err()?;
        Ok(false)
    }

    /// Detaches this handle (its attachment slot and mapping are released once no guard taken
    /// from it is alive); the mutex stays for other handles. Closing twice does nothing.
    fn close(&self) {
        drop(self.inner.close());
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!("Mutex({}{state})", location_repr(&self.location))
    }
}

/// A writer-preferring cross-process reader/writer lock that survives killed holders.
#[pyclass(module = "memspace", name = "RwLock", frozen)]
pub struct PyRwLock {
    inner: OpenHandle<Arc<memspace::RwLock>>,
    location: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: memspace::Trust,
}

impl PyRwLock {
    fn new(l: memspace::RwLock) -> Self {
        Self {
            location: l.location().clone(),
            trust: l.reopen_trust().clone(),
            inner: OpenHandle::new(Arc::new(l), "RwLock"),
        }
    }
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
        Ok(Self::new(l))
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
        Ok(Self::new(l))
    }

    /// Acquires a shared (read) hold.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let l: Arc<dyn HasRwLock> = self.inner.get()?;
        read_guard(py, &l, timeout)
    }

    /// Acquires the exclusive (write) hold.
    #[pyo3(signature = (timeout=None))]
    fn write(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let l: Arc<dyn HasRwLock> = self.inner.get()?;
        write_guard(py, &l, timeout)
    }

    /// True if a writer holds or waits for the lock.
    #[getter]
    fn write_locked(&self) -> PyResult<bool> {
        Ok(self.inner.get()?.raw().is_write_locked())
    }

    /// Number of read holds now.
    #[getter]
    fn reader_count(&self) -> PyResult<u64> {
        Ok(self.inner.get()?.raw().reader_count())
    }

    /// Detaches this handle (its attachment slot and mapping are released once no guard taken
    /// from it is alive); the rwlock stays for other handles. Closing twice does nothing.
    fn close(&self) {
        drop(self.inner.close());
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!("RwLock({}{state})", location_repr(&self.location))
    }
}

located_handle!(
    PyMutex,
    remove = Segment::unlink,
    |s| &s.location,
    trust = &s.trust
);
located_handle!(
    PyRwLock,
    remove = Segment::unlink,
    |s| &s.location,
    trust = &s.trust
);
closing_handle!(PyRwLock, |s, _py| {
    s.close();
    PyResult::Ok(())
});
