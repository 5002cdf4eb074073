//! `memspace.Mutex`, `memspace.RwLock` and their guard `memspace.LockGuard`.
//!
//! GIL rule: a lock is first tried once with the GIL held (no syscall on the fast path);
//! only if that fails and the caller allows waiting is the wait done with the GIL released,
//! checking for signals (Ctrl-C) between the core's wait slices.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memspace::lock::{Interrupt, ShmRwLock};
use memspace::{Location, Segment};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::IntoPyObjectExt;

use crate::error::IntoPyResult;
use crate::shm::location;

/// Converts a Python timeout (seconds; None = no limit; 0 = try once).
pub(crate) fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be None or a number >= 0, not {t}"
        ))),
        Some(t) if t.is_infinite() => Ok(None),
        Some(t) => Ok(Duration::try_from_secs_f64(t).ok()),
    }
}

/// Runs `op(timeout, interrupt)`: once as a try with the GIL held, then (if it was busy and
/// waiting is allowed) with the GIL released and Python's signal handlers run between slices.
pub(crate) fn blocking<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    op: impl Fn(Option<Duration>, Interrupt<'_>) -> memspace::Result<T> + Sync,
) -> PyResult<T> {
    match op(Some(Duration::ZERO), &mut || false) {
        Err(memspace::Error::Lock(memspace::LockError::Timeout { .. }))
            if timeout != Some(Duration::ZERO) => {}
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
        Err(memspace::Error::Interrupted) => {
            Err(pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted")))
        }
        r => r.py_err(),
    }
}

fn name_of(loc: &Location) -> Option<&str> {
    match loc {
        Location::Name(n) => Some(n),
        Location::Path(_) => None,
    }
}

fn path_of(loc: &Location) -> Option<PathBuf> {
    match loc {
        Location::Path(p) => Some(p.clone()),
        Location::Name(_) => None,
    }
}

pub(crate) fn mode_arg(mode: i64) -> PyResult<u32> {
    u32::try_from(mode)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| PyValueError::new_err(format!("mode must be in 0..=0o7777, not {mode:#o}")))
}

pub(crate) fn reduce<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    loc: &Location,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
    let reopen = py.import("memspace._memspace")?.getattr("_reopen")?;
    let args = PyTuple::new(
        py,
        [
            cls.clone().into_any().unbind(),
            name_of(loc).into_py_any(py)?,
            path_of(loc).into_py_any(py)?,
        ],
    )?;
    Ok((reopen, args))
}

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

/// A cross-process mutex that survives a killed holder.
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
        let loc = location(name, path)?;
        let mode = mode_arg(mode)?;
        let m = py.detach(|| memspace::Mutex::create(loc, mode)).py_err()?;
        Ok(Self { inner: Arc::new(m) })
    }

    /// Opens an existing mutex segment.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn open(py: Python<'_>, name: Option<String>, path: Option<PathBuf>) -> PyResult<Self> {
        let loc = location(name, path)?;
        let m = py.detach(|| memspace::Mutex::open(loc)).py_err()?;
        Ok(Self { inner: Arc::new(m) })
    }

    /// Removes a mutex segment by name or path.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn remove(name: Option<String>, path: Option<PathBuf>) -> PyResult<()> {
        Segment::unlink(&location(name, path)?).py_err()
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

    /// The POSIX name, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        name_of(self.inner.location())
    }

    /// The file path, or None.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        path_of(self.inner.location())
    }

    fn __repr__(&self) -> String {
        format!("Mutex({})", self.inner.location())
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        reduce(
            slf.py(),
            slf.get_type().as_any(),
            slf.get().inner.location(),
        )
    }
}

/// A writer-preferring cross-process reader/writer lock that survives killed holders.
#[pyclass(module = "memspace", name = "RwLock", frozen)]
pub struct PyRwLock {
    inner: Arc<memspace::RwLock>,
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
        let loc = location(name, path)?;
        let mode = mode_arg(mode)?;
        let l = py.detach(|| memspace::RwLock::create(loc, mode)).py_err()?;
        Ok(Self { inner: Arc::new(l) })
    }

    /// Opens an existing rwlock segment.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn open(py: Python<'_>, name: Option<String>, path: Option<PathBuf>) -> PyResult<Self> {
        let loc = location(name, path)?;
        let l = py.detach(|| memspace::RwLock::open(loc)).py_err()?;
        Ok(Self { inner: Arc::new(l) })
    }

    /// Removes an rwlock segment by name or path.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn remove(name: Option<String>, path: Option<PathBuf>) -> PyResult<()> {
        Segment::unlink(&location(name, path)?).py_err()
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

    /// The POSIX name, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        name_of(self.inner.location())
    }

    /// The file path, or None.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        path_of(self.inner.location())
    }

    fn __repr__(&self) -> String {
        format!("RwLock({})", self.inner.location())
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        reduce(
            slf.py(),
            slf.get_type().as_any(),
            slf.get().inner.location(),
        )
    }
}

/// Unpickling helper: `cls.open(name, path=path)`.
#[pyfunction]
pub(crate) fn _reopen<'py>(
    cls: &Bound<'py, PyAny>,
    name: Option<String>,
    path: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = pyo3::types::PyDict::new(cls.py());
    kwargs.set_item("path", path)?;
    cls.call_method("open", (name,), Some(&kwargs))
}

/// Whether the structured segment at a name or path has no live attachment: True (stale),
/// False (in use), None (not a memspace structured segment).
#[pyfunction]
#[pyo3(signature = (name=None, *, path=None))]
pub(crate) fn _staleness(
    py: Python<'_>,
    name: Option<String>,
    path: Option<PathBuf>,
) -> PyResult<Option<bool>> {
    use memspace::shm::structured::{staleness, Staleness};
    let loc = location(name, path)?;
    let s = py.detach(|| staleness(&loc)).py_err()?;
    Ok(match s {
        Staleness::NotStructured => None,
        Staleness::InUse => Some(false),
        Staleness::Stale => Some(true),
    })
}

/// Refuses non-str/non-type tags early with `TypeError`.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

pub(crate) fn bad_type(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{what}, not {}", type_name(obj)))
}
