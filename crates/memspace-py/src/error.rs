//! Maps every core error to the Python exception a Python user expects.
//!
//! One `match` over `memspace::Error`, with a nested `match` per domain enum (`SegmentError`,
//! `LockError`, `ChannelError`, `DataError`), and no catch-all arm at any level: adding a
//! variant to any of the core's error enums without deciding its Python face here is a compile
//! error (which is why none of them is `#[non_exhaustive]`).
//! memspace's own exception classes are defined in Python (`memspace/errors.py`, so that they can
//! derive from both `MemspaceError` and a builtin) and looked up once.

use memspace::{ChannelError, DataError, Error, LockError, SegmentError};
use pyo3::exceptions::{
    PyBlockingIOError, PyFileExistsError, PyFileNotFoundError, PyIndexError, PyIsADirectoryError,
    PyKeyboardInterrupt, PyMemoryError, PyNotADirectoryError, PyNotImplementedError, PyOSError,
    PyOverflowError, PyPermissionError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Looks up `memspace.errors.<name>` once per interpreter.
fn memspace_exc<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<Bound<'py, PyType>> {
    cell.import(py, "memspace.errors", name).cloned()
}

macro_rules! exc_type {
    ($fn:ident, $name:literal) => {
        pub(crate) fn $fn(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
            static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
            memspace_exc(py, &CELL, $name)
        }
    };
}

exc_type!(layout_error, "LayoutError");
exc_type!(quota_exceeded_error, "MFSQuotaExceededError");
exc_type!(node_limit_error, "MFSNodeLimitExceededError");

/// `io.UnsupportedOperation`, looked up once.
fn unsupported_operation(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    CELL.import(py, "io", "UnsupportedOperation").cloned()
}

/// Builds `cls(a, b)` for the two-integer constructors of the quota errors.
fn new_err2(cls: PyResult<Bound<'_, PyType>>, a: u64, b: u64) -> PyErr {
    match cls.and_then(|c| c.call1((a, b))) {
        Ok(obj) => PyErr::from_value(obj),
        Err(e) => e,
    }
}

exc_type!(corrupt_error, "CorruptSegmentError");
exc_type!(lock_error, "LockError");
exc_type!(role_taken_error, "RoleTakenError");

/// Builds `cls(errno, message)` (the `OSError` form) or `cls(message)`.
fn new_err(
    py: Python<'_>,
    cls: PyResult<Bound<'_, PyType>>,
    errno: Option<i32>,
    msg: String,
) -> PyErr {
    match cls {
        Ok(cls) => {
            let args = match errno {
                Some(e) => (e, msg).into_pyobject(py).map(pyo3::BoundObject::into_any),
                None => (msg,).into_pyobject(py).map(pyo3::BoundObject::into_any),
            };
            match args.and_then(|a| cls.call1(a.cast_into::<pyo3::types::PyTuple>()?)) {
                Ok(obj) => PyErr::from_value(obj),
                Err(e) => e,
            }
        }
        Err(e) => e,
    }
}

/// Converts a core error into the matching Python exception.
pub(crate) fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    let errno = err.raw_os_error();
    let os_error = |errno: Option<i32>, msg: String| match errno {
        Some(e) => PyOSError::new_err((e, msg)),
        None => PyOSError::new_err(msg),
    };
    match err {
        Error::Segment(e) => match e {
            SegmentError::InvalidName { .. } => PyValueError::new_err(msg),
            SegmentError::AlreadyExists { .. } => PyFileExistsError::new_err((errno, msg)),
            SegmentError::NotFound { .. } => PyFileNotFoundError::new_err((errno, msg)),
            SegmentError::PermissionDenied { .. } => PyPermissionError::new_err((errno, msg)),
            SegmentError::NoSpace { .. }
            | SegmentError::Os { .. }
            | SegmentError::AttachmentTableFull { .. } => os_error(errno, msg),
            SegmentError::OutOfBounds { .. } => PyIndexError::new_err(msg),
            SegmentError::Unusable { .. }
            | SegmentError::WrongKind { .. }
            | SegmentError::IncompatibleLayout { .. }
            | SegmentError::NotReady { .. } => {
                Python::attach(|py| new_err(py, layout_error(py), None, msg))
            }
            SegmentError::Corrupt { .. } => {
                Python::attach(|py| new_err(py, corrupt_error(py), None, msg))
            }
        },
        Error::Lock(e) => match e {
            LockError::Timeout { .. } => PyTimeoutError::new_err(msg),
            LockError::WouldDeadlock { .. } | LockError::NotHeld { .. } => {
                Python::attach(|py| new_err(py, lock_error(py), None, msg))
            }
        },
        Error::Channel(e) => match e {
            ChannelError::RoleTaken { .. } => {
                Python::attach(|py| new_err(py, role_taken_error(py), None, msg))
            }
            ChannelError::Timeout { .. } => PyTimeoutError::new_err(msg),
        },
        Error::Data(e) => match e {
            DataError::TagMismatch { .. } => PyTypeError::new_err(msg),
            DataError::InvalidData { .. } => PyValueError::new_err(msg),
            DataError::ValueOutOfRange { .. } => PyOverflowError::new_err(msg),
        },
        Error::InvalidArgument(_) | Error::PathTraversal { .. } => PyValueError::new_err(msg),
        Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
        Error::Unsupported { .. } => PyNotImplementedError::new_err(msg),
        Error::PathExists { .. } => PyFileExistsError::new_err((errno, msg)),
        Error::NoSuchPath { .. } => PyFileNotFoundError::new_err((errno, msg)),
        Error::IsADirectory { .. } => PyIsADirectoryError::new_err((errno, msg)),
        Error::NotADirectory { .. } => PyNotADirectoryError::new_err((errno, msg)),
        Error::QuotaExceeded {
            requested,
            available,
        } => Python::attach(|py| new_err2(quota_exceeded_error(py), requested, available)),
        Error::NodeLimitExceeded { current, limit } => {
            Python::attach(|py| new_err2(node_limit_error(py), current, limit))
        }
        Error::LockTimeout { .. } | Error::FileBusy { .. } => {
            PyBlockingIOError::new_err((errno, msg))
        }
        Error::UnsupportedOperation(_) => {
            Python::attach(|py| new_err(py, unsupported_operation(py), None, msg))
        }
        Error::OutOfMemory { .. } => PyMemoryError::new_err(msg),
    }
}

/// `Result<T, memspace::Error>` -> `PyResult<T>`.
pub(crate) trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for memspace::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A `memspace.LockError` with a message of the bindings' own.
pub(crate) fn lock_error_msg(msg: &str) -> PyErr {
    Python::attach(|py| new_err(py, lock_error(py), None, msg.to_owned()))
}
