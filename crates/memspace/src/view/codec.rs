//! The tagged value encoding of [`View`](super::View) over plain byte buffers, for channels
//! that carry typed values (`Ring.put_value` / `get_value`).
//!
//! Same table as the module docs of [`view`](super): one tag byte, then the payload
//! (native-endian; `str` and `bytes` with a u32 length). A buffer decodes to exactly one value;
//! trailing bytes, an unknown tag or a length that runs past the end are
//! [`DataError::InvalidData`], never an out-of-bounds read.

use super::{Tag, Value, ValueRef};
use crate::error::{Error, Result};
use crate::view::error::DataError;

/// Appends the encoding of `v` to `out`.
pub fn encode(v: &ValueRef<'_>, out: &mut Vec<u8>) -> Result<()> {
    let len = v.encoded_len().ok_or_else(|| {
        Error::InvalidArgument("a str or bytes value is longer than 4 GiB".into())
    })?;
    out.reserve(len as usize);
    out.push(v.tag() as u8);
    match *v {
        ValueRef::Bool(b) => out.push(u8::from(b)),
        ValueRef::U8(b) => out.push(b),
        ValueRef::I64(x) => out.extend_from_slice(&x.to_ne_bytes()),
        ValueRef::F64(x) => out.extend_from_slice(&x.to_ne_bytes()),
        ValueRef::U64(x) => out.extend_from_slice(&x.to_ne_bytes()),
        ValueRef::I32(x) => out.extend_from_slice(&x.to_ne_bytes()),
        ValueRef::U32(x) => out.extend_from_slice(&x.to_ne_bytes()),
        ValueRef::F32(x) => out.extend_from_slice(&x.to_ne_bytes()),
        ValueRef::Str(s) => {
            out.extend_from_slice(&(s.len() as u32).to_ne_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        ValueRef::Bytes(b) => {
            out.extend_from_slice(&(b.len() as u32).to_ne_bytes());
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

fn invalid(offset: usize, reason: impl Into<String>) -> Error {
    Error::Data(DataError::InvalidData {
        offset: offset as u64,
        reason: reason.into(),
    })
}

fn fixed<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N]> {
    buf.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid(at, format!("the value ends before its {N}-byte payload")))
}

/// Decodes the one value that fills `buf`, whatever its tag.
pub fn decode(buf: &[u8]) -> Result<Value> {
    let Some(&tag) = buf.first() else {
        return Err(invalid(0, "an empty message holds no value"));
    };
    let tag = Tag::from_u8(tag).ok_or_else(|| invalid(0, format!("unknown value tag {tag}")))?;
    let (value, end) = match tag {
        Tag::Bool => match fixed::<1>(buf, 1)?[0] {
            b @ (0 | 1) => (Value::Bool(b == 1), 2),
            b => return Err(invalid(1, format!("bool byte {b} is neither 0 nor 1"))),
        },
        Tag::U8 => (Value::U8(fixed::<1>(buf, 1)?[0]), 2),
        Tag::I64 => (Value::I64(i64::from_ne_bytes(fixed(buf, 1)?)), 9),
        Tag::F64 => (Value::F64(f64::from_ne_bytes(fixed(buf, 1)?)), 9),
        Tag::U64 => (Value::U64(u64::from_ne_bytes(fixed(buf, 1)?)), 9),
        Tag::I32 => (Value::I32(i32::from_ne_bytes(fixed(buf, 1)?)), 5),
        Tag::U32 => (Value::U32(u32::from_ne_bytes(fixed(buf, 1)?)), 5),
        Tag::F32 => (Value::F32(f32::from_ne_bytes(fixed(buf, 1)?)), 5),
        Tag::Str | Tag::Bytes => {
            let len = u32::from_ne_bytes(fixed(buf, 1)?) as usize;
            let body = buf.get(5..5 + len).ok_or_else(|| {
                invalid(1, format!("a length of {len} runs past the value's end"))
            })?;
            let v = if tag == Tag::Bytes {
                Value::Bytes(body.to_vec())
            } else {
                Value::Str(
                    String::from_utf8(body.to_vec())
                        .map_err(|e| invalid(5, format!("string is not valid UTF-8: {e}")))?,
                )
            };
            (v, 5 + len)
        }
    };
    if end != buf.len() {
        return Err(invalid(
            end,
            format!("{} bytes follow the value", buf.len() - end),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_tag() {
        let pairs = [
            (ValueRef::Bool(true), Value::Bool(true)),
            (ValueRef::I64(-5), Value::I64(-5)),
            (ValueRef::F64(1.5), Value::F64(1.5)),
            (ValueRef::Str("héllo"), Value::Str("héllo".into())),
            (ValueRef::Bytes(b"\0b"), Value::Bytes(b"\0b".to_vec())),
            (ValueRef::I32(-7), Value::I32(-7)),
            (ValueRef::U8(255), Value::U8(255)),
            (ValueRef::U32(7), Value::U32(7)),
            (ValueRef::U64(u64::MAX), Value::U64(u64::MAX)),
            (ValueRef::F32(0.25), Value::F32(0.25)),
        ];
        for (v, want) in pairs {
            let mut buf = Vec::new();
            encode(&v, &mut buf).unwrap();
            assert_eq!(buf.len() as u64, v.encoded_len().unwrap());
            assert_eq!(decode(&buf).unwrap(), want);
        }
    }

    #[test]
    fn refuses_malformed_buffers() {
        for bad in [
            &b""[..],
            &[0][..],
            &[99, 1][..],
            &[1, 2][..],
            &[2, 0, 0][..],
            &[4, 10, 0, 0, 0, b'a'][..],
            &[5, 0, 0, 0, 0, 1][..],
            &[4, 1, 0, 0, 0, 0xff][..],
        ] {
            assert!(
                matches!(decode(bad), Err(Error::Data(DataError::InvalidData { .. }))),
                "{bad:?}"
            );
        }
    }
}
