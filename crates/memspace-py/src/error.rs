//! Maps every core error to the Python exception a Python user expects.
//!
//! One `match` over `memspace::Error`, with a nested `match` per domain enum (`SegmentError`,
//! `LockError`, `ChannelError`, `DataError`, `FsError`), and no catch-all arm at any level: adding a
//! variant to any of the core's error enums without deciding its Python face here is a compile
//! error (which is why none of them is `#[non_exhaustive]`).
//! memspace's own exception classes are defined in Python (`memspace/errors.py`, so that they can
//! derive from both `MemspaceError` and a builtin) and looked up once.

use memspace::fs::FsError;
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
exc_type!(lagged_error, "Lagged");
exc_type!(queue_busy_error, "QueueBusy");

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
            SegmentError::NotFound { .. } | SegmentError::NoDirectory { .. } => {
                PyFileNotFoundError::new_err((errno, msg))
            }
            SegmentError::PermissionDenied { .. } => PyPermissionError::new_err((errno, msg)),
            SegmentError::NotOwned { owner, .. } => PyPermissionError::new_err((
                errno,
                format!(
                    "{msg}: another user may have created it first to make you use its \
                     contents (a queue's pickles run code in whoever unpickles them), so it is \
                     not opened. If you share it with uid {owner} on purpose, open it with \
                     trust={owner}"
                ),
            )),
            SegmentError::ForeignLockFile { .. } => PyPermissionError::new_err((
                errno,
                format!(
                    "{msg}: memspace keeps the segment's liveness locks there, and a lock file \
                     made by someone else could fake them, so the segment is not opened"
                ),
            )),
            SegmentError::SharedWritable { .. } => PyPermissionError::new_err((
                errno,
                format!(
                    "{msg}: whoever may write it can change what you read (a queue's pickles \
                     run code in whoever unpickles them), so it is not opened. If that \
                     sharing is deliberate, open it with trust=<uid of its owner> \
                     (trust=os.geteuid() for your own) or trust=\"any\""
                ),
            )),
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
            ChannelError::TaskDoneTooOften { .. } => PyValueError::new_err(msg),
            // `memspace.Lagged(count)` words its own message.
            ChannelError::Lagged { missed, .. } => {
                Python::attach(
                    |py| match lagged_error(py).and_then(|c| c.call1((missed,))) {
                        Ok(obj) => PyErr::from_value(obj),
                        Err(e) => e,
                    },
                )
            }
            ChannelError::Busy { .. } => {
                Python::attach(|py| new_err(py, queue_busy_error(py), None, msg))
            }
        },
        Error::Data(e) => match e {
            DataError::TagMismatch { .. } => PyTypeError::new_err(msg),
            DataError::InvalidData { .. } => PyValueError::new_err(msg),
            DataError::ValueOutOfRange { .. } => PyOverflowError::new_err(msg),
        },
        Error::InvalidArgument(_) => PyValueError::new_err(msg),
        Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
        Error::Unsupported { .. } => PyNotImplementedError::new_err(msg),
        Error::Fs(e) => fs_to_py(e),
    }
}

/// Converts a filesystem error into the exception D-MemFS raises, with D-MemFS's wording
/// (the core's `Display` is not the Python message). One exhaustive `match`: a new
/// `FsError` variant without a Python face here is a compile error.
fn fs_to_py(err: FsError) -> PyErr {
    let errno = err.raw_os_error();
    match err {
        FsError::NoSuchPath { path } => {
            PyFileNotFoundError::new_err((errno, format!("no such file or directory: '{path}'")))
        }
        FsError::NoParentDirectory {
            path,
            parent,
            parent_is_file,
        } => PyFileNotFoundError::new_err((
            errno,
            if parent_is_file {
                format!("cannot create '{path}': '{parent}' is a file, not a directory")
            } else {
                format!("cannot create '{path}': parent directory '{parent}' does not exist")
            },
        )),
        FsError::PathExists { path } => {
            PyFileExistsError::new_err((errno, format!("file exists: '{path}'")))
        }
        FsError::IsADirectory { path } => {
            PyIsADirectoryError::new_err((errno, format!("is a directory: '{path}'")))
        }
        FsError::NotADirectory { path } => {
            PyNotADirectoryError::new_err((errno, format!("not a directory: '{path}'")))
        }
        FsError::PathTraversal { path } => {
            PyValueError::new_err(format!("path traversal attempt detected: '{path}'"))
        }
        // These two word their own message (memspace/errors.py), as dmemfs's do.
        FsError::QuotaExceeded {
            requested,
            available,
        } => Python::attach(|py| new_err2(quota_exceeded_error(py), requested, available)),
        FsError::NodeLimitExceeded { current, limit } => {
            Python::attach(|py| new_err2(node_limit_error(py), current, limit))
        }
        FsError::LockTimeout { path, kind } => PyBlockingIOError::new_err((
            errno,
            format!(
                "could not acquire the {} lock on '{path}' within the timeout",
                kind.as_str()
            ),
        )),
        FsError::FileBusy { path } => {
            PyBlockingIOError::new_err((errno, format!("file is open: '{path}'")))
        }
        FsError::OutOfMemory { requested } => {
            PyMemoryError::new_err(format!("memory allocation of {requested} bytes failed"))
        }
        FsError::NotReadable { mode } => {
            unsupported_operation_err(&format!("not readable in mode '{}'", mode.as_str()))
        }
        FsError::NotWritable { mode } => {
            unsupported_operation_err(&format!("not writable in mode '{}'", mode.as_str()))
        }
        FsError::PromotionDisabled => unsupported_operation_err(
            "Random-access write on a sequential-only file: promotion is disabled \
             (default_storage='sequential').",
        ),
        FsError::PromotionTooLarge { size, limit } => unsupported_operation_err(&format!(
            "Cannot promote SequentialMemoryFile: size {size} exceeds hard limit {limit}."
        )),
        FsError::Closed => PyValueError::new_err("I/O operation on closed file."),
        FsError::WriteOverflow { offset, len } => {
            PyValueError::new_err(format!("write of {len} bytes at offset {offset} overflows"))
        }
        FsError::SeekBeforeStart { .. } => {
            PyValueError::new_err("seek offset must be >= 0 for SEEK_SET")
        }
        FsError::SeekPastEnd { .. } => PyValueError::new_err(
            "Seeking past end-of-file (SEEK_END with positive offset) is not supported in MFS.",
        ),
        FsError::InvalidWhence { whence } => PyValueError::new_err(format!(
            "Invalid whence value: {whence}. Must be 0, 1, or 2."
        )),
        FsError::NegativePosition { position } => {
            PyValueError::new_err(format!("Resulting cursor position {position} is negative."))
        }
        FsError::PositionTooLarge { position } => {
            PyValueError::new_err(format!("seek position {position} is too large"))
        }
        FsError::RootOperation { op } => {
            PyValueError::new_err(format!("Cannot {op} the root directory."))
        }
        FsError::NoSpace { requested, pinned } => PyOSError::new_err((
            errno,
            format!(
                "no space left in the shared filesystem for {requested} bytes \
                 ({pinned} bytes are held by old versions that live views may still see)"
            ),
        )),
        FsError::MetadataFull { what } => {
            PyOSError::new_err((errno, format!("the shared filesystem's {what} is full")))
        }
        FsError::IntoOwnSubtree { src, dst } => {
            PyValueError::new_err(format!("Cannot move '{src}' into its own subtree '{dst}'."))
        }
    }
}

/// An `io.UnsupportedOperation` with a message of the bindings' own.
pub(crate) fn unsupported_operation_err(msg: &str) -> PyErr {
    Python::attach(|py| new_err(py, unsupported_operation(py), None, msg.to_owned()))
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

/// `queue.Empty` or `queue.Full` (`which`), the exceptions of every channel.
pub(crate) fn queue_exc(py: Python<'_>, which: &'static str) -> PyErr {
    static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let cell = if which == "Empty" { &EMPTY } else { &FULL };
    match cell.import(py, "queue", which) {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

/// Whether `e` is a `memspace.QueueBusy` (the core's `ChannelError::Busy`).
pub(crate) fn is_busy(py: Python<'_>, e: &PyErr) -> bool {
    queue_busy_error(py).is_ok_and(|t| e.is_instance(py, &t))
}

/// Whether `e` is a `queue.Full` (a `memspace.QueueBusy` is one too).
pub(crate) fn is_full(py: Python<'_>, e: &PyErr) -> bool {
    static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    FULL.import(py, "queue", "Full")
        .is_ok_and(|t| e.is_instance(py, t))
}

/// Maps the core's timeout while waiting for room to `queue.Full`.
pub(crate) fn full_on_timeout<T>(py: Python<'_>, r: PyResult<T>) -> PyResult<T> {
    match r {
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) => {
            Err(queue_exc(py, "Full"))
        }
        r => r,
    }
}
