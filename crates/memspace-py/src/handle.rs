//! What every segment handle class shares: the core object held until `close()`,
//! `name`/`path`, `remove()`/`unlink()`, pickling by reference, the closing context manager,
//! and the module functions that reopen and inspect segments.
//!
//! The two macros write each class's common methods once, as a second `#[pymethods]` block
//! (`PyO3`'s `multiple-pymethods`), so that a class file holds only what is its own.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use memspace::{Location, Trust};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::args::{location, name_of, path_of, trust_to_py};
use crate::error::IntoPyResult;

/// A handle's core object (a ring, a queue, a lock, a view: each a cheap clone of an `Arc`)
/// until `close()`.
///
/// Lifetime rule: an operation clones the object out ([`OpenHandle::get`]) and works on its
/// clone, so `close()` only drops the handle's own reference and returns at once, whatever
/// other threads are doing. The attachment slot and the mapping go when the last clone does:
/// at once if nothing else holds one, else when the operation in progress ends or the last
/// zero-copy view or lock guard taken from the handle is dropped. The lock is held only to
/// clone or take (no Python code runs under it), so it never blocks for long.
pub(crate) struct OpenHandle<T> {
    inner: Mutex<Option<T>>,
    class: &'static str,
}

impl<T: Clone> OpenHandle<T> {
    /// Holds `value` for a handle of the Python class `class` (named in the closed error).
    pub(crate) fn new(value: T, class: &'static str) -> Self {
        Self {
            inner: Mutex::new(Some(value)),
            class,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        // Cloning or taking an Option cannot leave it half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A clone of the object, or `ValueError` after `close()`.
    pub(crate) fn get(&self) -> PyResult<T> {
        self.lock()
            .clone()
            .ok_or_else(|| PyValueError::new_err(format!("operation on a closed {}", self.class)))
    }

    /// Drops the handle's reference (the object goes when the last clone does). Returns the
    /// object if it was still open, so that the caller can finish with it.
    pub(crate) fn close(&self) -> Option<T> {
        self.lock().take()
    }

    /// True after `close()`.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().is_none()
    }
}

/// `__reduce__` of a handle: unpickling calls `_reopen(cls, name, path, trust)`, which opens
/// the same segment (so a handle can be passed to a spawned process) with the trust that
/// accepted it here (see `memspace::Segment::reopen_trust`).
pub(crate) fn reduce<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    loc: &Location,
    trust: &Trust,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
    let reopen = py.import("memspace._memspace")?.getattr("_reopen")?;
    let args = PyTuple::new(
        py,
        [
            cls.clone().into_any().unbind(),
            name_of(loc).into_py_any(py)?,
            path_of(loc).into_py_any(py)?,
            trust_to_py(py, trust)?,
        ],
    )?;
    Ok((reopen, args))
}

/// Runs `f` (a core create or open) on the location given as a `name`/`path` pair, with the
/// GIL released (creation reserves space and may touch the disk).
pub(crate) fn at_location<T: Send>(
    py: Python<'_>,
    name: Option<String>,
    path: Option<PathBuf>,
    f: impl FnOnce(Location) -> memspace::Result<T> + Send,
) -> PyResult<T> {
    let loc = location(name, path)?;
    py.detach(|| f(loc)).py_err()
}

/// Writes the methods every handle of a structured segment has: the `name` and `path`
/// getters, the static `remove(name=None, *, path=None)` and the instance `unlink()` (both
/// through `$remove`, a core function taking `&Location`) and `__reduce__` (pickling by
/// reference). `|$s| $loc` gives the handle's location from `&self`, and `trust = $trust`
/// (with the same `$s`) the trust that opens it again; both are kept apart from the core
/// object, so that all of these work after `close()` too. With `own_reduce` instead of
/// `trust = ...`, the class writes its own `__reduce__` (a broadcast's reopens with its role).
macro_rules! located_handle {
    ($cls:ty, remove = $remove:path, |$s:ident| $loc:expr, trust = $trust:expr) => {
        $crate::handle::located_handle!($cls, remove = $remove, |$s| $loc, own_reduce);

        #[pyo3::pymethods]
        impl $cls {
            /// Pickles as a reference: unpickling opens the same segment by name or path.
            fn __reduce__<'py>(
                slf: &pyo3::Bound<'py, Self>,
            ) -> PyResult<(
                pyo3::Bound<'py, pyo3::PyAny>,
                pyo3::Bound<'py, pyo3::types::PyTuple>,
            )> {
                let $s = slf.get();
                $crate::handle::reduce(slf.py(), slf.get_type().as_any(), $loc, $trust)
            }
        }
    };
    ($cls:ty, remove = $remove:path, |$s:ident| $loc:expr, own_reduce) => {
        #[pyo3::pymethods]
        impl $cls {
            /// The POSIX name, or None for a file-backed segment.
            #[getter]
            fn name(&self) -> Option<String> {
                let $s = self;
                $crate::args::name_of($loc).map(str::to_owned)
            }

            /// The file path, or None for a POSIX segment.
            #[getter]
            fn path(&self) -> Option<std::path::PathBuf> {
                let $s = self;
                $crate::args::path_of($loc)
            }

            /// Removes the segment at a name or path; processes that have it open keep it.
            #[staticmethod]
            #[pyo3(signature = (name=None, *, path=None))]
            fn remove(name: Option<String>, path: Option<std::path::PathBuf>) -> PyResult<()> {
                use $crate::error::IntoPyResult;
                $remove(&$crate::args::location(name, path)?).py_err()
            }

            /// Removes this handle's segment (like `remove(name)`); the handle stays usable
            /// until closed, as do other processes' handles.
            fn unlink(&self) -> PyResult<()> {
                use $crate::error::IntoPyResult;
                let $s = self;
                $remove($loc).py_err()
            }
        }
    };
}
pub(crate) use located_handle;

/// Writes `__enter__` (returns the handle) and `__exit__` (calls `$close`, never suppresses
/// the exception) for a handle whose `with` block closes it.
macro_rules! closing_handle {
    ($cls:ty, |$s:ident, $py:ident| $close:expr) => {
        #[pyo3::pymethods]
        impl $cls {
            fn __enter__(slf: pyo3::Bound<'_, Self>) -> pyo3::Bound<'_, Self> {
                slf
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(
                &self,
                $py: pyo3::Python<'_>,
                _args: &pyo3::Bound<'_, pyo3::types::PyTuple>,
            ) -> PyResult<bool> {
                let $s = self;
                $close?;
                Ok(false)
            }
        }
    };
}
pub(crate) use closing_handle;

/// Unpickling helper: `cls.open(name, path=path, trust=trust)`.
#[pyfunction]
#[pyo3(signature = (cls, name, path, trust=None))]
pub(crate) fn _reopen<'py>(
    cls: &Bound<'py, PyAny>,
    name: Option<String>,
    path: Option<PathBuf>,
    trust: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(cls.py());
    kwargs.set_item("path", path)?;
    kwargs.set_item("trust", trust)?;
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

/// The header of the segment at a name or path, read without attaching (for the CLI): None
/// for a segment without a memspace header, else a dict with `kind` (its name, or None when
/// the header is invalid), `state` ("initializing", "ready", "poisoned" or
/// "unknown state N"), `data_size`, `creator_pid`, `created_ns` and `invalid` (why the
/// header cannot be used, or None).
#[pyfunction]
#[pyo3(signature = (name=None, *, path=None))]
pub(crate) fn _header_report(
    py: Python<'_>,
    name: Option<String>,
    path: Option<PathBuf>,
) -> PyResult<Option<Bound<'_, PyDict>>> {
    use memspace::shm::header::{STATE_INITIALIZING, STATE_POISONED, STATE_READY};
    let loc = location(name, path)?;
    let Some(r) = py
        .detach(|| memspace::shm::structured::header_report(&loc))
        .py_err()?
    else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("kind", r.kind.map(memspace::Kind::name))?;
    d.set_item(
        "state",
        r.state.map(|s| match s {
            STATE_INITIALIZING => "initializing".to_owned(),
            STATE_READY => "ready".to_owned(),
            STATE_POISONED => "poisoned".to_owned(),
            other => format!("unknown state {other}"),
        }),
    )?;
    d.set_item("data_size", r.data_size)?;
    d.set_item("creator_pid", r.creator_pid)?;
    d.set_item("created_ns", r.created_ns)?;
    d.set_item("invalid", r.invalid)?;
    Ok(Some(d))
}
