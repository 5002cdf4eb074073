//! Python values <-> the core's tagged values (`memspace::view`): the one conversion used by
//! `View`, `Record` fields and the ring's `put_value`/`get_value`.

use memspace::view::{Tag, Value, ValueRef};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyString};
use pyo3::IntoPyObjectExt;

use crate::args::bad_type;

/// An owned form of a Python value, so that borrowed `ValueRef`s can outlive the GIL.
pub(crate) enum Owned<'py> {
    Plain(ValueRef<'static>),
    Str(Bound<'py, PyString>),
    Bytes(Bound<'py, PyBytes>),
    Buf(Vec<u8>),
}

pub(crate) fn tag_arg(tag: &Bound<'_, PyAny>) -> PyResult<Tag> {
    if let Ok(s) = tag.cast::<PyString>() {
        let s = s.to_str()?;
        return Tag::parse(s).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown tag {s:?} (use bool, int/i64, float/f64, str, bytes, i32, u8, u32, u64 or f32)"
            ))
        });
    }
    let py = tag.py();
    for (ty, t) in [
        (py.get_type::<PyBool>(), Tag::Bool),
        (py.get_type::<PyInt>(), Tag::I64),
        (py.get_type::<PyFloat>(), Tag::F64),
        (py.get_type::<PyString>(), Tag::Str),
        (py.get_type::<PyBytes>(), Tag::Bytes),
    ] {
        if tag.is(&ty) {
            return Ok(t);
        }
    }
    Err(bad_type(
        "a tag must be a str such as \"i32\" or one of bool, int, float, str, bytes",
        tag,
    ))
}

pub(crate) fn int_as<T: TryFrom<i128> + TryFrom<i64>>(
    v: &Bound<'_, PyAny>,
    tag: Tag,
) -> PyResult<T> {
    // Fast path: most ints fit an i64 (a much cheaper conversion than i128).
    if let Ok(i) = v.extract::<i64>() {
        return T::try_from(i)
            .map_err(|_| PyOverflowError::new_err(format!("{i} does not fit in {}", tag.name())));
    }
    let i: i128 = v
        .extract()
        .map_err(|_| PyOverflowError::new_err(format!("int too large for {}", tag.name())))?;
    T::try_from(i)
        .map_err(|_| PyOverflowError::new_err(format!("{i} does not fit in {}", tag.name())))
}

pub(crate) fn to_owned_value<'py>(v: &Bound<'py, PyAny>, tag: Option<Tag>) -> PyResult<Owned<'py>> {
    let is_bool = v.is_instance_of::<PyBool>();
    let is_int = !is_bool && v.is_instance_of::<PyInt>();
    let is_float = v.is_instance_of::<PyFloat>();
    let tag = match tag {
        Some(t) => t,
        None if is_bool => Tag::Bool,
        None if is_int => Tag::I64,
        None if is_float => Tag::F64,
        None if v.is_instance_of::<PyString>() => Tag::Str,
        None if v.is_instance_of::<PyBytes>()
            || v.is_instance_of::<PyByteArray>()
            || v.is_instance_of::<pyo3::types::PyMemoryView>() =>
        {
            Tag::Bytes
        }
        None => {
            return Err(bad_type(
                "a value must be bool, int, float, str or a bytes-like object",
                v,
            ))
        }
    };
    let wrong = || {
        bad_type(
            &format!(
                "a {} value must be given as {}",
                tag.name(),
                match tag {
                    Tag::Bool => "a bool",
                    Tag::F64 | Tag::F32 => "a float or int",
                    Tag::Str => "a str",
                    Tag::Bytes => "a bytes-like object",
                    _ => "an int",
                }
            ),
            v,
        )
    };
    Ok(match tag {
        Tag::Bool if is_bool => Owned::Plain(ValueRef::Bool(v.extract()?)),
        Tag::I64 if is_int => Owned::Plain(ValueRef::I64(int_as(v, tag)?)),
        Tag::I32 if is_int => Owned::Plain(ValueRef::I32(int_as(v, tag)?)),
        Tag::U8 if is_int => Owned::Plain(ValueRef::U8(int_as(v, tag)?)),
        Tag::U32 if is_int => Owned::Plain(ValueRef::U32(int_as(v, tag)?)),
        Tag::U64 if is_int => Owned::Plain(ValueRef::U64(int_as(v, tag)?)),
        Tag::F64 if is_float || is_int => Owned::Plain(ValueRef::F64(v.extract()?)),
        Tag::F32 if is_float || is_int => {
            let f: f64 = v.extract()?;
            if f.is_finite() && f.abs() > f64::from(f32::MAX) {
                return Err(PyOverflowError::new_err(format!("{f} does not fit in f32")));
            }
            Owned::Plain(ValueRef::F32(f as f32))
        }
        Tag::Str => Owned::Str(v.cast::<PyString>().map_err(|_| wrong())?.clone()),
        Tag::Bytes => {
            if let Ok(b) = v.cast::<PyBytes>() {
                Owned::Bytes(b.clone())
            } else if v.is_instance_of::<PyByteArray>()
                || v.is_instance_of::<pyo3::types::PyMemoryView>()
            {
                let buf = pyo3::buffer::PyBuffer::<u8>::get(v)?;
                Owned::Buf(buf.to_vec(v.py())?)
            } else {
                return Err(wrong());
            }
        }
        _ => return Err(wrong()),
    })
}

pub(crate) fn as_ref<'a>(o: &'a Owned<'_>) -> PyResult<ValueRef<'a>> {
    Ok(match o {
        Owned::Plain(v) => *v,
        Owned::Str(s) => ValueRef::Str(s.to_str()?),
        Owned::Bytes(b) => ValueRef::Bytes(b.as_bytes()),
        Owned::Buf(b) => ValueRef::Bytes(b),
    })
}

pub(crate) fn to_py(py: Python<'_>, v: Value) -> PyResult<Py<PyAny>> {
    match v {
        Value::Bool(b) => b.into_py_any(py),
        Value::I64(x) => x.into_py_any(py),
        Value::F64(x) => x.into_py_any(py),
        Value::Str(s) => s.into_py_any(py),
        Value::Bytes(b) => PyBytes::new(py, &b).into_py_any(py),
        Value::I32(x) => x.into_py_any(py),
        Value::U8(x) => x.into_py_any(py),
        Value::U32(x) => x.into_py_any(py),
        Value::U64(x) => x.into_py_any(py),
        Value::F32(x) => f64::from(x).into_py_any(py),
    }
}
