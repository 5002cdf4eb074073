//! Typed views: a data area behind an rwlock, read and written as tagged values, and fixed
//! records whose fields are read and written atomically in place.
//!
//! This module owns the data area of `view` and `record` segments. Every tagged read happens
//! under the read lock and every tagged write under the write lock, so no reader sees a torn
//! value. Every offset and length — given by the caller or read from the data area — is
//! checked against the data area's size from the validated geometry before memory is touched.
//!
//! # Tagged encoding (native-endian, unaligned)
//!
//! Each value is one tag byte followed by its payload:
//!
//! | tag | type | payload |
//! |---:|---|---|
//! | 1 | `bool` | 1 byte, 0 or 1 |
//! | 2 | `i64` (Python `int`) | 8 bytes |
//! | 3 | `f64` (Python `float`) | 8 bytes |
//! | 4 | `str` | u32 byte length + UTF-8 bytes |
//! | 5 | `bytes` | u32 byte length + bytes |
//! | 6 | `i32` | 4 bytes |
//! | 7 | `u8` | 1 byte |
//! | 8 | `u32` | 4 bytes |
//! | 9 | `u64` | 8 bytes |
//! | 10 | `f32` | 4 bytes |
//!
//! Reading with another tag than the one stored is [`DataError::TagMismatch`] (Python
//! `TypeError`); a zeroed area holds no values (tag 0).
//!
//! # Reads: optimistic, validated, with the read lock as fallback
//!
//! The data area starts with a 64-byte prefix holding `vseq` (u32, atomic), a sequence
//! counter in the style of a seqlock (Lameter; Boehm, "Can seqlocks get along with
//! programming language memory models?", 2012). Every write, under the write lock, makes
//! `vseq` odd before touching the data and even (one higher) after. A tagged read first tries
//! without any lock: it loads `vseq` (Acquire), decodes into private memory — every length and
//! offset bounds-checked, so even a torn value cannot make it read outside the area or
//! allocate more than the area holds — and keeps the result only if `vseq` is unchanged and
//! even afterwards (Acquire fence, then load). Otherwise (a writer is active or holds the write
//! lock — as for a group of writes under `write_lock()` — or a few retries failed) it reads
//! under the read lock. Either way no reader ever returns a torn value, and
//! an uncontended read writes nothing to shared memory. A writer that dies mid-write leaves
//! `vseq` odd: reads then take the read lock (which recovers the dead writer) until the next
//! write makes it even again.
//!
//! # Records
//!
//! A record segment (kind `record`) has the same rwlock and a data area laid out like a C
//! struct (natural alignment). Single fields are read and written with atomic loads and stores
//! of their natural width (so a field is never torn); multi-field updates take the write lock.
//! The layout's fingerprint is stored as the header's `kind_param`, so opening a record with
//! another definition is refused.

pub mod codec;
pub(crate) mod error;

use std::time::Duration;

pub use error::DataError;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::mutex::{Interrupt, DEFAULT_SLOTS};
use crate::lock::rwlock::ShmRwLock;
use crate::shm::error::SegmentError;
use crate::shm::header::Kind;
use crate::shm::segment::{OpenTarget, Segment};
use crate::sync::Ordering;

/// The type tag of an encoded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// `bool`.
    Bool = 1,
    /// `i64`.
    I64 = 2,
    /// `f64`.
    F64 = 3,
    /// UTF-8 string.
    Str = 4,
    /// Bytes.
    Bytes = 5,
    /// `i32`.
    I32 = 6,
    /// `u8`.
    U8 = 7,
    /// `u32`.
    U32 = 8,
    /// `u64`.
    U64 = 9,
    /// `f32`.
    F32 = 10,
}

impl Tag {
    /// Decodes a tag byte.
    pub fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Bool,
            2 => Tag::I64,
            3 => Tag::F64,
            4 => Tag::Str,
            5 => Tag::Bytes,
            6 => Tag::I32,
            7 => Tag::U8,
            8 => Tag::U32,
            9 => Tag::U64,
            10 => Tag::F32,
            _ => return None,
        })
    }

    /// Parses a tag name (`"int"`/`"i64"`, `"float"`/`"f64"`, `"bool"`, `"str"`, `"bytes"`,
    /// `"i32"`, `"u8"`, `"u32"`, `"u64"`, `"f32"`).
    pub fn parse(s: &str) -> Option<Tag> {
        Some(match s {
            "bool" => Tag::Bool,
            "int" | "i64" => Tag::I64,
            "float" | "f64" => Tag::F64,
            "str" => Tag::Str,
            "bytes" => Tag::Bytes,
            "i32" => Tag::I32,
            "u8" => Tag::U8,
            "u32" => Tag::U32,
            "u64" => Tag::U64,
            "f32" => Tag::F32,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Bool => "bool",
            Tag::I64 => "i64",
            Tag::F64 => "f64",
            Tag::Str => "str",
            Tag::Bytes => "bytes",
            Tag::I32 => "i32",
            Tag::U8 => "u8",
            Tag::U32 => "u32",
            Tag::U64 => "u64",
            Tag::F32 => "f32",
        }
    }
}

/// A value to write (borrowing strings and bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// `bool`.
    Bool(bool),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
    /// UTF-8 string.
    Str(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
    /// `i32`.
    I32(i32),
    /// `u8`.
    U8(u8),
    /// `u32`.
    U32(u32),
    /// `u64`.
    U64(u64),
    /// `f32`.
    F32(f32),
}

/// A value read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
    /// UTF-8 string.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// `i32`.
    I32(i32),
    /// `u8`.
    U8(u8),
    /// `u32`.
    U32(u32),
    /// `u64`.
    U64(u64),
    /// `f32`.
    F32(f32),
}

impl ValueRef<'_> {
    /// The tag it is written with.
    pub fn tag(&self) -> Tag {
        match self {
            ValueRef::Bool(_) => Tag::Bool,
            ValueRef::I64(_) => Tag::I64,
            ValueRef::F64(_) => Tag::F64,
            ValueRef::Str(_) => Tag::Str,
            ValueRef::Bytes(_) => Tag::Bytes,
            ValueRef::I32(_) => Tag::I32,
            ValueRef::U8(_) => Tag::U8,
            ValueRef::U32(_) => Tag::U32,
            ValueRef::U64(_) => Tag::U64,
            ValueRef::F32(_) => Tag::F32,
        }
    }

    /// Encoded size in bytes (tag included); `None` if a string or bytes is longer than
    /// `u32::MAX`.
    pub fn encoded_len(&self) -> Option<u64> {
        Some(
            1 + match self {
                ValueRef::Bool(_) | ValueRef::U8(_) => 1,
                ValueRef::I32(_) | ValueRef::U32(_) | ValueRef::F32(_) => 4,
                ValueRef::I64(_) | ValueRef::F64(_) | ValueRef::U64(_) => 8,
                ValueRef::Str(s) => 4 + u64::from(u32::try_from(s.len()).ok()?),
                ValueRef::Bytes(b) => 4 + u64::from(u32::try_from(b.len()).ok()?),
            },
        )
    }
}

/// A primitive field type of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prim {
    /// `bool` (1 byte).
    Bool,
    /// `i8`.
    I8,
    /// `u8`.
    U8,
    /// `i16`.
    I16,
    /// `u16`.
    U16,
    /// `i32`.
    I32,
    /// `u32`.
    U32,
    /// `i64`.
    I64,
    /// `u64`.
    U64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl Prim {
    /// Parses a field type name.
    pub fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "bool" => Prim::Bool,
            "i8" => Prim::I8,
            "u8" => Prim::U8,
            "i16" => Prim::I16,
            "u16" => Prim::U16,
            "i32" => Prim::I32,
            "u32" => Prim::U32,
            "i64" | "int" => Prim::I64,
            "u64" => Prim::U64,
            "f32" => Prim::F32,
            "f64" | "float" => Prim::F64,
            _ => return None,
        })
    }

    /// Size (and alignment) in bytes.
    pub fn size(self) -> u64 {
        match self {
            Prim::Bool | Prim::I8 | Prim::U8 => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 | Prim::F32 => 4,
            Prim::I64 | Prim::U64 | Prim::F64 => 8,
        }
    }
}

/// A primitive value, as raw bits of its width (sign- or zero-extended by the caller's
/// interpretation of [`Prim`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrimValue {
    /// Booleans.
    Bool(bool),
    /// Signed integers.
    Int(i64),
    /// Unsigned integers.
    UInt(u64),
    /// Floats.
    Float(f64),
}

/// Bytes before the user's data in a view's data area (holding `vseq`).
const PREFIX: u64 = 64;
/// Optimistic read attempts before falling back to the read lock.
const OPTIMISTIC_TRIES: u32 = 4;

/// A view or record segment: an rwlock in front of a data area.
///
/// ```
/// use memspace::view::{Tag, Value, ValueRef, View};
/// use memspace::Location;
/// let loc = Location::Name(format!("/memspace-doc-view-{}", std::process::id()));
/// let v = View::create(loc.clone(), 256, 0o600)?;
/// let end = v.write_values(0, &[ValueRef::Str("hi"), ValueRef::I64(7)], None, &mut || false)?;
/// let (vals, at) = v.read_values(0, &[Tag::Str, Tag::I64], None, &mut || false)?;
/// assert_eq!(vals, vec![Value::Str("hi".into()), Value::I64(7)]);
/// assert_eq!(at, end);
/// assert!(v.read_values(0, &[Tag::F64], None, &mut || false).is_err()); // wrong tag
/// View::remove(&loc)?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Debug)]
pub struct View {
    l: ShmRwLock,
    vseq: *mut u8,
    data: *mut u8,
    size: u64,
}

// SAFETY: `data` points into the mapping owned by `l`, alive as long as `self`; all accesses
// are bounds-checked copies or atomics under the rwlock protocol.
unsafe impl Send for View {}
// SAFETY: as above.
unsafe impl Sync for View {}

fn check(size: u64, offset: u64, len: u64) -> Result<usize> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(offset as usize),
        _ => Err(Error::Segment(SegmentError::OutOfBounds {
            offset,
            len,
            size,
        })),
    }
}

impl View {
    /// Creates a view segment with a data area of `size` bytes (zeroed).
    pub fn create(location: Location, size: u64, mode: u32) -> Result<View> {
        Self::create_kind(location, size, mode, Kind::View, 0)
    }

    /// Creates a record segment of `size` bytes with layout fingerprint `fingerprint`.
    pub fn create_record(
        location: Location,
        size: u64,
        mode: u32,
        fingerprint: u64,
    ) -> Result<View> {
        Self::create_kind(location, size, mode, Kind::Record, fingerprint)
    }

    fn create_kind(
        location: Location,
        size: u64,
        mode: u32,
        kind: Kind,
        param: u64,
    ) -> Result<View> {
        if size == 0 {
            return Err(Error::InvalidArgument(
                "a view needs a data size of at least 1 byte".into(),
            ));
        }
        let total = size
            .checked_add(PREFIX)
            .ok_or_else(|| Error::InvalidArgument(format!("view size {size} is too large")))?;
        let l = ShmRwLock::create(
            location,
            mode,
            kind,
            DEFAULT_SLOTS,
            total,
            param,
            &|_, _| Ok(()),
        )?;
        Self::wrap(l)
    }

    /// Opens a view segment (a [`Location`], or one with a [`Trust`](crate::Trust)).
    pub fn open(location: impl Into<OpenTarget>) -> Result<View> {
        Self::wrap(ShmRwLock::open(location, Kind::View, None)?)
    }

    /// Opens a record segment whose layout fingerprint must be `fingerprint`.
    pub fn open_record(location: impl Into<OpenTarget>, fingerprint: u64) -> Result<View> {
        Self::wrap(ShmRwLock::open(location, Kind::Record, Some(fingerprint))?)
    }

    /// Removes the segment.
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    fn wrap(l: ShmRwLock) -> Result<View> {
        let base = l.structured().data_ptr();
        let area = l.structured().geometry().data_size;
        if area <= PREFIX {
            return Err(Error::Segment(SegmentError::IncompatibleLayout {
                location: l.location().clone(),
                reason: format!("data area of {area} bytes is too small for a view"),
            }));
        }
        // SAFETY: the data area (validated geometry) has more than PREFIX bytes.
        let data = unsafe { base.add(PREFIX as usize) };
        Ok(View {
            l,
            vseq: base,
            data,
            size: area - PREFIX,
        })
    }

    fn vseq(&self) -> &crate::sync::AtomicU32 {
        // SAFETY: the data area starts 64-aligned inside the mapping, which lives as long as
        // `self`; the prefix holds nothing else.
        unsafe { crate::sync::atomic_u32(self.vseq) }
    }

    /// Runs `write` under the write lock, with `vseq` odd while it runs.
    fn locked_write<T>(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
        write: impl FnOnce() -> T,
    ) -> Result<T> {
        self.l.with_write(timeout, interrupt, |_died| {
            let v = self.vseq();
            // SYNC: Relaxed: only writers store `vseq`, and we hold the write lock.
            let odd = v.load(Ordering::Relaxed) | 1;
            // SYNC: Relaxed store then Release fence: the odd value is ordered before the data
            // writes below; pairs with the Acquire fence in `optimistic`.
            v.store(odd, Ordering::Relaxed);
            crate::sync::fence(Ordering::Release);
            let out = write();
            // SYNC: Release pairs with the Acquire load at the start of `optimistic`: a reader
            // that sees this value sees all the data written above.
            v.store(odd.wrapping_add(1), Ordering::Release);
            out
        })
    }

    /// Runs the decoding `read` without a lock if no writer interferes (see the module docs);
    /// `None` if it must be done under the read lock. `read` must be safe on torn data (it
    /// only copies bounds-checked ranges into private memory).
    fn optimistic<T>(&self, read: impl Fn() -> Result<T>) -> Option<Result<T>> {
        let v = self.vseq();
        for _ in 0..OPTIMISTIC_TRIES {
            // SYNC: Acquire pairs with the Release store at the end of `locked_write`.
            let s1 = v.load(Ordering::Acquire);
            // A writer in the middle of a write, or holding the write lock for a group of
            // writes (`write_lock()`), sends us to the read lock; a write that starts after
            // this check changes `vseq` and fails the validation below.
            if s1 & 1 == 1 || self.l.is_write_locked() {
                return None;
            }
            let r = read();
            // SYNC: the Acquire fence orders the data reads above before the re-check below;
            // pairs with the Release fence in `locked_write`.
            crate::sync::fence(Ordering::Acquire);
            // SYNC: Relaxed: ordered by the fence above.
            if v.load(Ordering::Relaxed) == s1 {
                return Some(r);
            }
        }
        None
    }

    /// The rwlock in front of the data.
    pub fn lock(&self) -> &ShmRwLock {
        &self.l
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.l.location()
    }

    /// The trust that opens this view again in another process (for pickling).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.l.structured().reopen_trust()
    }

    /// Size of the data area in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the data area (offset 0 of [`View::read_bytes`], a record's first field) starts
    /// in the segment: what a program that maps the segment itself must add to a field's
    /// offset. Such a program bypasses the rwlock and the sequence word that readers validate
    /// against, so it may read torn values and its writes are not seen as one update.
    pub fn data_offset(&self) -> u64 {
        self.l.structured().geometry().data_off + PREFIX
    }

    /// Writes `values` one after the other from `offset` under the write lock; returns the
    /// offset after the last one. Nothing is written if they do not all fit.
    pub fn write_values(
        &self,
        offset: u64,
        values: &[ValueRef<'_>],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<u64> {
        let mut total: u64 = 0;
        for v in values {
            let n = v.encoded_len().ok_or_else(|| {
                Error::InvalidArgument("a str or bytes value is longer than 4 GiB".into())
            })?;
            total = total.saturating_add(n);
        }
        let start = check(self.size, offset, total)?;
        // `owner_died` is not reported: the values written replace what a dead writer left.
        self.locked_write(timeout, interrupt, || {
            let mut pos = start;
            for v in values {
                // SAFETY: [start, start+total) was checked to lie in the data area, and each
                // value writes exactly its encoded_len within it; we hold the write lock.
                unsafe { pos = self.put(pos, v) };
            }
        })?;
        Ok(offset + total)
    }

    /// # Safety
    /// `pos..pos+v.encoded_len()` must lie in the data area and the write lock be held.
    unsafe fn put(&self, pos: usize, v: &ValueRef<'_>) -> usize {
        // SAFETY: per the function contract.
        unsafe {
            let p = self.data.add(pos);
            p.write(v.tag() as u8);
            let p = p.add(1);
            let n = match *v {
                ValueRef::Bool(b) => {
                    p.write(u8::from(b));
                    1
                }
                ValueRef::U8(b) => {
                    p.write(b);
                    1
                }
                ValueRef::I64(x) => wr(p, &x.to_ne_bytes()),
                ValueRef::F64(x) => wr(p, &x.to_ne_bytes()),
                ValueRef::U64(x) => wr(p, &x.to_ne_bytes()),
                ValueRef::I32(x) => wr(p, &x.to_ne_bytes()),
                ValueRef::U32(x) => wr(p, &x.to_ne_bytes()),
                ValueRef::F32(x) => wr(p, &x.to_ne_bytes()),
                ValueRef::Str(s) => {
                    let n = wr(p, &(s.len() as u32).to_ne_bytes());
                    n + wr(p.add(n), s.as_bytes())
                }
                ValueRef::Bytes(b) => {
                    let n = wr(p, &(b.len() as u32).to_ne_bytes());
                    n + wr(p.add(n), b)
                }
            };
            pos + 1 + n
        }
    }

    /// Reads one value of each tag in `tags`, one after the other from `offset`, under the
    /// read lock; returns them and the offset after the last.
    pub fn read_values(
        &self,
        offset: u64,
        tags: &[Tag],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<(Vec<Value>, u64)> {
        check(self.size, offset, 0)?;
        let read = || {
            let mut out = Vec::with_capacity(tags.len().min(self.size as usize));
            let mut pos = offset;
            for &t in tags {
                let (v, next) = self.get(pos, t)?;
                out.push(v);
                pos = next;
            }
            Ok((out, pos))
        };
        if let Some(r) = self.optimistic(read) {
            return r;
        }
        self.l.with_read(timeout, interrupt, |_died| read())?
    }

    /// Reads one value of type `tag` at `offset` under the read lock; returns it and the
    /// offset after it.
    pub fn read_value(
        &self,
        offset: u64,
        tag: Tag,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<(Value, u64)> {
        check(self.size, offset, 0)?;
        if let Some(r) = self.optimistic(|| self.get(offset, tag)) {
            return r;
        }
        self.l
            .with_read(timeout, interrupt, |_died| self.get(offset, tag))?
    }

    fn bytes_at(&self, pos: u64, len: u64) -> Result<Vec<u8>> {
        let start = check(self.size, pos, len)?;
        let mut v = vec![0u8; len as usize];
        // SAFETY: the range lies in the data area (checked); `v` is a separate buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.data.add(start), v.as_mut_ptr(), v.len()) };
        Ok(v)
    }

    // Inlined so that the bytes stay in a register: returned through the stack, the
    // `Result<[u8; N]>` layout made the decoder stall on store forwarding.
    #[allow(clippy::inline_always)] // measured: see the comment above
    #[inline(always)]
    fn fixed<const N: usize>(&self, pos: u64) -> Result<[u8; N]> {
        let start = check(self.size, pos, N as u64)?;
        // SAFETY: the N bytes lie in the data area (checked); read_unaligned has no alignment
        // requirement and any bytes are a valid [u8; N].
        Ok(unsafe { std::ptr::read_unaligned(self.data.add(start).cast::<[u8; N]>()) })
    }

    /// Decodes one value with tag `want` at `pos` (read lock held by the caller).
    // Inlined for the same reason as `fixed` (the returned enum was read back with
    // overlapping loads that stalled on store forwarding).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn get(&self, pos: u64, want: Tag) -> Result<(Value, u64)> {
        let [tag] = self.fixed::<1>(pos)?;
        if tag != want as u8 {
            return Err(Error::Data(DataError::TagMismatch {
                offset: pos,
                expected: want.name(),
                found: Tag::from_u8(tag).map_or_else(
                    || {
                        if tag == 0 {
                            "nothing (zeroed memory)".to_owned()
                        } else {
                            format!("unknown tag {tag}")
                        }
                    },
                    |t| t.name().to_owned(),
                ),
            }));
        }
        let p = pos + 1;
        Ok(match want {
            Tag::Bool => {
                let [b] = self.fixed::<1>(p)?;
                if b > 1 {
                    return Err(Error::Data(DataError::InvalidData {
                        offset: p,
                        reason: format!("bool byte {b} is neither 0 nor 1"),
                    }));
                }
                (Value::Bool(b == 1), p + 1)
            }
            Tag::U8 => (Value::U8(self.fixed::<1>(p)?[0]), p + 1),
            Tag::I64 => (Value::I64(i64::from_ne_bytes(self.fixed(p)?)), p + 8),
            Tag::F64 => (Value::F64(f64::from_ne_bytes(self.fixed(p)?)), p + 8),
            Tag::U64 => (Value::U64(u64::from_ne_bytes(self.fixed(p)?)), p + 8),
            Tag::I32 => (Value::I32(i32::from_ne_bytes(self.fixed(p)?)), p + 4),
            Tag::U32 => (Value::U32(u32::from_ne_bytes(self.fixed(p)?)), p + 4),
            Tag::F32 => (Value::F32(f32::from_ne_bytes(self.fixed(p)?)), p + 4),
            Tag::Str | Tag::Bytes => {
                let len = u64::from(u32::from_ne_bytes(self.fixed(p)?));
                // Bounds-checked before allocating: a corrupt length cannot allocate more
                // than the data area holds.
                let b = self.bytes_at(p + 4, len)?;
                let next = p + 4 + len;
                if want == Tag::Bytes {
                    (Value::Bytes(b), next)
                } else {
                    let s = String::from_utf8(b).map_err(|e| {
                        Error::Data(DataError::InvalidData {
                            offset: p + 4,
                            reason: format!("string is not valid UTF-8: {e}"),
                        })
                    })?;
                    (Value::Str(s), next)
                }
            }
        })
    }

    /// Zeroes the data area under the write lock.
    pub fn zero(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<()> {
        self.locked_write(timeout, interrupt, || {
            // SAFETY: the whole data area, which we hold the write lock on.
            unsafe { std::ptr::write_bytes(self.data, 0, self.size as usize) };
        })
    }

    /// Copies `len` bytes at `offset` under the read lock.
    pub fn read_bytes(
        &self,
        offset: u64,
        len: u64,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Vec<u8>> {
        check(self.size, offset, len)?;
        if let Some(r) = self.optimistic(|| self.bytes_at(offset, len)) {
            return r;
        }
        self.l
            .with_read(timeout, interrupt, |_died| self.bytes_at(offset, len))?
    }

    /// Atomically loads the record field of type `prim` at `offset` (which must be aligned
    /// to the field's size).
    pub fn load_field(&self, prim: Prim, offset: u64) -> Result<PrimValue> {
        let p = self.field_ptr(prim, offset)?;
        // SAFETY: `p` is inside the data area and aligned to the field's size (checked by
        // field_ptr; the data area is 64-aligned).
        // SYNC: Acquire pairs with the Release store in `store_field` (another process's).
        let v = unsafe {
            match prim.size() {
                1 => u64::from(crate::sync::atomic_u8(p).load(Ordering::Acquire)),
                2 => u64::from(crate::sync::atomic_u16(p).load(Ordering::Acquire)),
                4 => u64::from(crate::sync::atomic_u32(p).load(Ordering::Acquire)),
                _ => crate::sync::atomic_u64(p).load(Ordering::Acquire),
            }
        };
        Ok(match prim {
            Prim::Bool => PrimValue::Bool(v != 0),
            Prim::I8 => PrimValue::Int(i64::from(v as u8 as i8)),
            Prim::I16 => PrimValue::Int(i64::from(v as u16 as i16)),
            Prim::I32 => PrimValue::Int(i64::from(v as u32 as i32)),
            Prim::I64 => PrimValue::Int(v as i64),
            Prim::U8 | Prim::U16 | Prim::U32 | Prim::U64 => PrimValue::UInt(v),
            Prim::F32 => PrimValue::Float(f64::from(f32::from_bits(v as u32))),
            Prim::F64 => PrimValue::Float(f64::from_bits(v)),
        })
    }

    /// Atomically stores a record field. Integers must fit the field
    /// ([`DataError::ValueOutOfRange`] otherwise); floats are rounded to `f32` for `f32` fields.
    pub fn store_field(&self, prim: Prim, offset: u64, value: PrimValue) -> Result<()> {
        let p = self.field_ptr(prim, offset)?;
        let range = |ok: bool, v: &dyn std::fmt::Display| {
            if ok {
                Ok(())
            } else {
                Err(Error::Data(DataError::ValueOutOfRange {
                    value: v.to_string(),
                    ty: prim_name(prim),
                }))
            }
        };
        let bits: u64 = match (prim, value) {
            (Prim::Bool, PrimValue::Bool(b)) => u64::from(b),
            (Prim::F32, PrimValue::Float(f)) => u64::from((f as f32).to_bits()),
            (Prim::F64, PrimValue::Float(f)) => f.to_bits(),
            (Prim::I8 | Prim::I16 | Prim::I32 | Prim::I64, PrimValue::Int(i)) => {
                let bits = prim.size() * 8;
                let (lo, hi) = if bits == 64 {
                    (i64::MIN, i64::MAX)
                } else {
                    (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
                };
                range(i >= lo && i <= hi, &i)?;
                i as u64
            }
            (Prim::I8 | Prim::I16 | Prim::I32 | Prim::I64, PrimValue::UInt(u)) => {
                let bits = prim.size() * 8;
                range(u < (1u64 << (bits - 1)), &u)?;
                u
            }
            (Prim::U8 | Prim::U16 | Prim::U32 | Prim::U64, PrimValue::UInt(u)) => {
                let bits = prim.size() * 8;
                range(bits == 64 || u < (1u64 << bits), &u)?;
                u
            }
            (Prim::U8 | Prim::U16 | Prim::U32 | Prim::U64, PrimValue::Int(i)) => {
                let bits = prim.size() * 8;
                range(i >= 0 && (bits == 64 || (i as u64) < (1u64 << bits)), &i)?;
                i as u64
            }
            (_, v) => {
                return Err(Error::InvalidArgument(format!(
                    "a {} field cannot hold {v:?}",
                    prim_name(prim)
                )))
            }
        };
        // SAFETY: as in `load_field`.
        // SYNC: Release pairs with the Acquire load in `load_field`.
        unsafe {
            match prim.size() {
                1 => crate::sync::atomic_u8(p).store(bits as u8, Ordering::Release),
                2 => crate::sync::atomic_u16(p).store(bits as u16, Ordering::Release),
                4 => crate::sync::atomic_u32(p).store(bits as u32, Ordering::Release),
                _ => crate::sync::atomic_u64(p).store(bits, Ordering::Release),
            }
        }
        Ok(())
    }

    fn field_ptr(&self, prim: Prim, offset: u64) -> Result<*mut u8> {
        let n = prim.size();
        let start = check(self.size, offset, n)?;
        if offset % n != 0 {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} of a {} field is not {n}-byte aligned",
                prim_name(prim)
            )));
        }
        // SAFETY: inside the data area (checked).
        Ok(unsafe { self.data.add(start) })
    }
}

fn prim_name(p: Prim) -> &'static str {
    match p {
        Prim::Bool => "bool",
        Prim::I8 => "i8",
        Prim::U8 => "u8",
        Prim::I16 => "i16",
        Prim::U16 => "u16",
        Prim::I32 => "i32",
        Prim::U32 => "u32",
        Prim::I64 => "i64",
        Prim::U64 => "u64",
        Prim::F32 => "f32",
        Prim::F64 => "f64",
    }
}

/// Copies `b` to `p`, returning its length.
///
/// # Safety
/// `p` must be valid for `b.len()` bytes of writes and not overlap `b`.
unsafe fn wr(p: *mut u8, b: &[u8]) -> usize {
    // SAFETY: per the function contract.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()) };
    b.len()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_mismatch_and_bounds() {
        let name = crate::testing::unique_name("view", "roundtrip");
        let v = View::create(Location::Name(name.clone()), 64, 0o600).unwrap();
        let vals = [
            ValueRef::Str("héllo"),
            ValueRef::I64(-3),
            ValueRef::Bool(true),
            ValueRef::F32(1.5),
            ValueRef::Bytes(b"\x00\x01"),
        ];
        let end = v.write_values(0, &vals, None, &mut || false).unwrap();
        let tags = [Tag::Str, Tag::I64, Tag::Bool, Tag::F32, Tag::Bytes];
        let (got, end2) = v.read_values(0, &tags, None, &mut || false).unwrap();
        assert_eq!(end, end2);
        assert_eq!(
            got,
            vec![
                Value::Str("héllo".into()),
                Value::I64(-3),
                Value::Bool(true),
                Value::F32(1.5),
                Value::Bytes(vec![0, 1])
            ]
        );
        assert!(matches!(
            v.read_values(0, &[Tag::I64], None, &mut || false),
            Err(Error::Data(DataError::TagMismatch { .. }))
        ));
        assert!(matches!(
            v.write_values(60, &[ValueRef::I64(1)], None, &mut || false),
            Err(Error::Segment(SegmentError::OutOfBounds { .. }))
        ));
        // A corrupt length cannot read past the end.
        v.write_values(0, &[ValueRef::Bytes(b"ab")], None, &mut || false)
            .unwrap();
        v.structured_segment_for_test()
            .write_at(
                v.l.structured().geometry().data_off + PREFIX + 1,
                &u32::MAX.to_ne_bytes(),
            )
            .unwrap();
        assert!(matches!(
            v.read_values(0, &[Tag::Bytes], None, &mut || false),
            Err(Error::Segment(SegmentError::OutOfBounds { .. }))
        ));
        v.zero(None, &mut || false).unwrap();
        assert!(matches!(
            v.read_values(0, &[Tag::Bytes], None, &mut || false),
            Err(Error::Data(DataError::TagMismatch { .. }))
        ));
        View::remove(&Location::Name(name)).unwrap();
    }

    impl View {
        fn structured_segment_for_test(&self) -> &Segment {
            self.l.structured().segment()
        }
    }
}
