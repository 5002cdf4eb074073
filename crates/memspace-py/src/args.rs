//! Argument conversion shared by every class: where a segment lives, modes, timeouts, sizes,
//! bytes-like data and type errors.
//!
//! Every conversion here refuses bad input with the builtin exception a Python user expects
//! (`TypeError`, `ValueError`, `BufferError`) before any memory is touched.

use std::path::PathBuf;
use std::time::Duration;

use memspace::{Location, Trust};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PyMemoryView, PyString};

/// Builds the location from the `name` / `path` pair, refusing both or neither, and a name
/// that is a file path (`"/tmp/ring"`): that one is told to pass `path=`.
pub(crate) fn location(name: Option<String>, path: Option<PathBuf>) -> PyResult<Location> {
    match (name, path) {
        (Some(n), None) if n.chars().skip(1).any(|c| c == '/') => {
            Err(PyValueError::new_err(format!(
                "{n:?} looks like a file path, not a segment name: pass path={n:?} for a \
                 file-backed segment (a segment name is one component, like \"/ring\")"
            )))
        }
        (Some(n), None) => Ok(Location::Name(n)),
        (None, Some(p)) => Ok(Location::Path(p)),
        (Some(_), Some(_)) => Err(PyTypeError::new_err(
            "give either a name or path=..., not both",
        )),
        (None, None) => Err(PyTypeError::new_err(
            "a segment needs a name (like \"/demo\") or path=...",
        )),
    }
}

/// The POSIX name of a location, or None.
pub(crate) fn name_of(loc: &Location) -> Option<&str> {
    match loc {
        Location::Name(n) => Some(n),
        Location::Path(_) => None,
    }
}

/// The file path of a location, or None.
pub(crate) fn path_of(loc: &Location) -> Option<PathBuf> {
    match loc {
        Location::Path(p) => Some(p.clone()),
        Location::Name(_) => None,
    }
}

/// `name="/x"` or `path="/tmp/x"`, as `__repr__` shows a location.
pub(crate) fn location_repr(loc: &Location) -> String {
    match loc {
        Location::Name(n) => format!("name={n:?}"),
        Location::Path(p) => format!("path={:?}", p.display().to_string()),
    }
}

/// Converts a Python offset, length or count, refusing negatives with `ValueError`.
pub(crate) fn non_negative(value: i64, what: &str) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{what} must be >= 0, not {value}")))
}

/// An int as `i128`: `TypeError` for anything else (`what` names the argument), and
/// `OverflowError` beyond what any of memspace's integer types holds.
fn int_of(value: &Bound<'_, PyAny>, what: &str) -> PyResult<i128> {
    if !value.is_instance_of::<PyInt>() {
        return Err(bad_type(&format!("{what} must be an int"), value));
    }
    value
        .extract::<i128>()
        .map_err(|_| PyOverflowError::new_err(format!("{what} is far too large")))
}

/// A size or count given as a Python int (extracted as `i128`): `ValueError` for a negative
/// one (instead of `PyO3`'s "can't convert negative int to unsigned"), `OverflowError` above
/// 2**64 - 1.
pub(crate) fn u64_arg(v: i128, what: &str) -> PyResult<u64> {
    if v < 0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be >= 0, not {v}"
        )));
    }
    u64::try_from(v)
        .map_err(|_| PyOverflowError::new_err(format!("{what} must be < 2**64, not {v}")))
}

/// A value for a signed 64-bit slot: `OverflowError` naming the range (and the unsigned
/// alternative), instead of "Python int too large to convert to C long".
pub(crate) fn i64_value(value: &Bound<'_, PyAny>, unsigned_alternative: &str) -> PyResult<i64> {
    let v = int_of(value, "the value")?;
    i64::try_from(v).map_err(|_| {
        PyOverflowError::new_err(format!(
            "{v} does not fit in a signed 64-bit integer (-2**63 ..= 2**63 - 1){}",
            if v > 0 { unsigned_alternative } else { "" }
        ))
    })
}

/// A value for an unsigned 64-bit slot: `OverflowError` naming the range (and the signed
/// alternative for a negative value).
pub(crate) fn u64_value(value: &Bound<'_, PyAny>, signed_alternative: &str) -> PyResult<u64> {
    let v = int_of(value, "the value")?;
    u64::try_from(v).map_err(|_| {
        PyOverflowError::new_err(format!(
            "{v} does not fit in an unsigned 64-bit integer (0 ..= 2**64 - 1){}",
            if v < 0 { signed_alternative } else { "" }
        ))
    })
}

/// Permission bits for a new segment: `0..=0o777` (setuid, setgid and sticky bits are
/// refused).
pub(crate) fn mode_arg(mode: i64) -> PyResult<u32> {
    u32::try_from(mode)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "mode must be permission bits in 0..=0o777 (no setuid, setgid or sticky bit), \
                 not {mode:#o}"
            ))
        })
}

/// The `trust=` argument of every `open()`: whose segment to accept (`memspace::Trust`).
///
/// `None` (the default): only the caller's own, writable by nobody else. A uid (`int`) or a
/// collection of uids: segments owned by the caller or by one of them, whatever their mode.
/// `"any"`: any owner and mode.
pub(crate) fn trust_arg(trust: Option<&Bound<'_, PyAny>>) -> PyResult<Trust> {
    const WHAT: &str = "trust must be None, a uid, a collection of uids or \"any\"";
    let Some(t) = trust.filter(|t| !t.is_none()) else {
        return Ok(Trust::Private);
    };
    let uid = |v: &Bound<'_, PyAny>| -> PyResult<u32> {
        if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
            return Err(bad_type(&format!("{WHAT}; a uid is an int"), v));
        }
        v.extract::<i64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n != u32::MAX)
            .ok_or_else(|| PyValueError::new_err(format!("{v} is not a user id")))
    };
    if let Ok(s) = t.cast::<PyString>() {
        return match s.to_str()? {
            "any" => Ok(Trust::Anyone),
            other => Err(PyValueError::new_err(format!("{WHAT}, not {other:?}"))),
        };
    }
    if t.is_instance_of::<PyInt>() && !t.is_instance_of::<PyBool>() {
        return Ok(Trust::Owners(vec![uid(t)?]));
    }
    // bytes-like objects iterate as ints: never a collection of uids.
    if t.is_instance_of::<PyBool>()
        || t.is_instance_of::<PyBytes>()
        || t.is_instance_of::<PyByteArray>()
        || t.is_instance_of::<PyMemoryView>()
    {
        return Err(bad_type(WHAT, t));
    }
    let Ok(items) = t.try_iter() else {
        return Err(bad_type(WHAT, t));
    };
    let mut uids = Vec::new();
    for item in items {
        uids.push(uid(&item?)?);
    }
    Ok(Trust::Owners(uids))
}

/// A wait's timeout in seconds: `None` (or infinity) waits without limit, `0` tries once,
/// a negative number or NaN is a `ValueError`. The one meaning of `timeout=` for segments,
/// locks and channels. (The filesystem's `lock_timeout=` follows D-MemFS instead: see
/// [`lock_timeout_arg`].)
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

/// `timeout_arg`, with `block=False` meaning "try once" (the `queue.Queue` convention).
pub(crate) fn block_timeout_arg(block: bool, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    let t = timeout_arg(timeout)?;
    Ok(if block { t } else { Some(Duration::ZERO) })
}

/// The filesystem's `lock_timeout=` (D-MemFS semantics): `None` means the filesystem's
/// default, a negative number means "do not wait", NaN is a `ValueError`.
pub(crate) fn lock_timeout_arg(secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_nan() => Err(PyValueError::new_err("lock timeout must not be NaN")),
        Some(s) => Ok(Some(Duration::try_from_secs_f64(s.max(0.0)).map_err(
            |_| PyValueError::new_err(format!("lock timeout {s} is out of range")),
        )?)),
    }
}

/// The arguments of every channel's `create()`, checked.
pub(crate) struct ChannelArgs {
    pub(crate) location: Location,
    pub(crate) capacity: u64,
    pub(crate) max_message_size: Option<u64>,
    pub(crate) mode: u32,
}

/// Checks `create(name, capacity, *, path, max_message_size, mode)` of a channel.
pub(crate) fn channel_args(
    name: Option<String>,
    capacity: Option<i64>,
    path: Option<PathBuf>,
    max_message_size: Option<i64>,
    mode: i64,
) -> PyResult<ChannelArgs> {
    let location = location(name, path)?;
    let (capacity, max_message_size) = channel_sizes(capacity, max_message_size)?;
    Ok(ChannelArgs {
        location,
        capacity,
        max_message_size,
        mode: mode_arg(mode)?,
    })
}

/// Checks the `capacity` and `max_message_size` arguments of a channel's `create()`.
fn channel_sizes(
    capacity: Option<i64>,
    max_message_size: Option<i64>,
) -> PyResult<(u64, Option<u64>)> {
    let Some(capacity) = capacity else {
        return Err(PyTypeError::new_err("create() needs a capacity in bytes"));
    };
    let cap = u64::try_from(capacity)
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| PyValueError::new_err(format!("capacity must be > 0, not {capacity}")))?;
    let max_len = max_message_size
        .map(|m| {
            u64::try_from(m).ok().filter(|m| *m > 0).ok_or_else(|| {
                PyValueError::new_err(format!("max_message_size must be > 0, not {m}"))
            })
        })
        .transpose()?;
    Ok((cap, max_len))
}

/// The Python `trust=` value that means `trust` (the inverse of [`trust_arg`]), for pickling.
pub(crate) fn trust_to_py(py: Python<'_>, trust: &Trust) -> PyResult<Py<PyAny>> {
    use pyo3::IntoPyObjectExt;
    match trust {
        Trust::Private => Ok(py.None()),
        Trust::Owners(uids) => uids.clone().into_py_any(py),
        Trust::Anyone => "any".into_py_any(py),
    }
}

/// The name of an object's type, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// `TypeError("<what>, not <type>")`.
pub(crate) fn bad_type(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("{what}, not {}", type_name(obj)))
}

/// A bytes-like object's buffer, or the `TypeError` Python itself gives for a non-buffer.
pub(crate) fn buffer_of(obj: &Bound<'_, PyAny>) -> PyResult<PyUntypedBuffer> {
    PyUntypedBuffer::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "a bytes-like object is required, not {}",
            type_name(obj)
        ))
    })
}

/// A bytes-like argument: `bytes` borrowed directly, anything else through the buffer protocol
/// (C-contiguous only).
pub(crate) enum Data<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyUntypedBuffer),
}

impl Data<'_> {
    pub(crate) fn from<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Data<'py>> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Data::Bytes(b.clone()));
        }
        let buf = buffer_of(obj)?;
        if !buf.is_c_contiguous() {
            return Err(PyBufferError::new_err("data must be a C-contiguous buffer"));
        }
        Ok(Data::Buffer(buf))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Data::Bytes(b) => b.as_bytes(),
            // SAFETY: the exporter keeps `len_bytes` contiguous bytes at `buf_ptr` while the
            // buffer is held (it is, for as long as `self` lives).
            Data::Buffer(b) => unsafe {
                std::slice::from_raw_parts(b.buf_ptr().cast::<u8>(), b.len_bytes())
            },
        }
    }
}
