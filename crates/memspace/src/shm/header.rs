//! The header every structured segment starts with, and the geometry derived from it.
//!
//! This module owns the first [`HEADER_SIZE`] bytes of a structured segment (lock, view,
//! record, ring, queue, shared filesystem) and the rules for laying out the rest: the
//! attachment table, the kind's lock area and its data area, each 64-byte aligned. It never
//! interprets what lies behind those offsets.
//!
//! # Encoding (layout 2.1; all integers native-endian, `#[repr(C)]`, 128 bytes)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `magic` | `[u8; 8]` | `b"MEMSPACE"` |
//! | 8 | `layout_major` | u16 | 2 (1: the mutexes were glibc's `pthread_mutex_t`); another major is refused |
//! | 10 | `layout_minor` | u16 | 1 (0: a queue's lock area had no task accounting); a higher minor only adds fields in reserved space or behind a kind's areas, which the kind checks by their sizes |
//! | 12 | `endian` | u32 | `0x0102_0304` as written by the creator (byte-swapped = other byte order) |
//! | 16 | `kind` | u32 | [`Kind`] |
//! | 20 | `header_size` | u32 | 128 |
//! | 24 | `total_size` | u64 | the segment's size in bytes (must equal the file size) |
//! | 32 | `attach_off` | u64 | offset of the attachment table (see `attach`) |
//! | 40 | `attach_slots` | u32 | number of slots, `1..=MAX_ATTACH_SLOTS` |
//! | 44 | `attach_slot_size` | u32 | bytes per slot record (32) |
//! | 48 | `lock_off` | u64 | offset of the kind's lock area |
//! | 56 | `lock_size` | u64 | its size |
//! | 64 | `data_off` | u64 | offset of the kind's data area |
//! | 72 | `data_size` | u64 | its size |
//! | 80 | `kind_param` | u64 | kind-specific immutable parameter (a record's layout fingerprint) |
//! | 88 | `creator_pid` | u32 | pid of the creator |
//! | 92 | `creator_uid` | u32 | effective uid of the creator |
//! | 96 | `creator_start` | u64 | creator's start time, clock ticks after boot (`/proc/PID/stat`) |
//! | 104 | `created_ns` | u64 | creation time, ns since the Unix epoch |
//! | 112 | `checksum` | u64 | FNV-1a 64 over bytes 0..112 (every immutable field) |
//! | 120 | `state` | u32 (atomic) | [`STATE_INITIALIZING`] 0, [`STATE_READY`] 1, [`STATE_POISONED`] 2 |
//! | 124 | reserved | u32 | 0 |
//!
//! The creator writes every field with `state` = INITIALIZING (the fresh file is zero), sets up
//! the areas behind the header, then Release-stores READY. An opener Acquire-loads `state`
//! (waiting a bounded time while it is INITIALIZING) and then validates every field against
//! the file's real size before using any offset. Validation never writes to the segment.

use crate::error::{Error, Result};
use crate::location::Location;
use crate::shm::error::SegmentError;

/// `b"MEMSPACE"`.
pub const MAGIC: [u8; 8] = *b"MEMSPACE";
/// Layout major version this build reads and writes.
pub const LAYOUT_MAJOR: u16 = 2;
/// Layout minor version this build writes.
pub const LAYOUT_MINOR: u16 = 1;
/// The endianness marker as the creator writes it.
pub const ENDIAN_MARK: u32 = 0x0102_0304;
/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 128;
/// Alignment of every area behind the header (one cache line).
pub const AREA_ALIGN: u64 = 64;
/// Largest attachment table memspace creates or accepts.
pub const MAX_ATTACH_SLOTS: u32 = 1024;
/// Byte offset of the `state` word.
pub const STATE_OFFSET: usize = 120;

// The attachment table's size is part of the layout planned here; what its bytes mean is
// `attach`'s (see its encoding table), which builds on this module and never the reverse.

/// Bytes of one attachment slot record.
pub const SLOT_SIZE: usize = 32;
/// Bytes of the attachment table before its first slot record.
pub const TABLE_HEADER: u64 = 64;

/// Bytes the attachment table of `slots` slots occupies.
pub fn table_bytes(slots: u32) -> u64 {
    TABLE_HEADER + u64::from(slots) * SLOT_SIZE as u64
}

/// The creator has not finished (the zero state of a fresh file).
pub const STATE_INITIALIZING: u32 = 0;
/// Usable.
pub const STATE_READY: u32 = 1;
/// Found corrupt; openers refuse it.
pub const STATE_POISONED: u32 = 2;

/// What a structured segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// A robust mutex ([`crate::lock::Mutex`]).
    Mutex = 1,
    /// A writer-preferring reader/writer lock ([`crate::lock::RwLock`]).
    RwLock = 2,
    /// A typed view ([`crate::view::View`]).
    View = 3,
    /// A fixed-layout record (a view with a declared layout).
    Record = 4,
    /// A single-producer/single-consumer ring ([`crate::spsc::Ring`]).
    Ring = 5,
    /// A multi-producer/multi-consumer queue ([`crate::mpmc::Queue`]).
    Queue = 6,
    /// A shared filesystem (reserved: no segment holds one yet).
    FileSystem = 7,
    /// A one-publisher/many-subscriber broadcast ([`crate::broadcast::Broadcast`]).
    Broadcast = 8,
}

impl Kind {
    /// The kind's name as `memspace ls` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mutex => "mutex",
            Kind::RwLock => "rwlock",
            Kind::View => "view",
            Kind::Record => "record",
            Kind::Ring => "ring",
            Kind::Queue => "queue",
            Kind::FileSystem => "fs",
            Kind::Broadcast => "broadcast",
        }
    }

    /// Decodes a `kind` field.
    pub fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            1 => Kind::Mutex,
            2 => Kind::RwLock,
            3 => Kind::View,
            4 => Kind::Record,
            5 => Kind::Ring,
            6 => Kind::Queue,
            7 => Kind::FileSystem,
            8 => Kind::Broadcast,
            _ => return None,
        })
    }
}

/// The header as stored (see the module docs for each field).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
#[allow(missing_docs)]
pub struct RawHeader {
    pub magic: [u8; 8],
    pub layout_major: u16,
    pub layout_minor: u16,
    pub endian: u32,
    pub kind: u32,
    pub header_size: u32,
    pub total_size: u64,
    pub attach_off: u64,
    pub attach_slots: u32,
    pub attach_slot_size: u32,
    pub lock_off: u64,
    pub lock_size: u64,
    pub data_off: u64,
    pub data_size: u64,
    pub kind_param: u64,
    pub creator_pid: u32,
    pub creator_uid: u32,
    pub creator_start: u64,
    pub created_ns: u64,
    pub checksum: u64,
    pub state: u32,
    pub reserved: u32,
}

const _: () = assert!(std::mem::size_of::<RawHeader>() == HEADER_SIZE);
const _: () = assert!(std::mem::offset_of!(RawHeader, kind) == 16);
const _: () = assert!(std::mem::offset_of!(RawHeader, kind_param) == 80);
const _: () = assert!(std::mem::offset_of!(RawHeader, checksum) == CHECKSUM_OFFSET);
const _: () = assert!(std::mem::offset_of!(RawHeader, state) == STATE_OFFSET);

const CHECKSUM_OFFSET: usize = 112;

impl RawHeader {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        // SAFETY: RawHeader is repr(C), 128 bytes, made only of integers with no padding
        // (checked by the size assertion: the fields add up to exactly 128).
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::from_ref(self).cast::<u8>(),
                out.as_mut_ptr(),
                HEADER_SIZE,
            );
        }
        out
    }

    /// Reads a header from bytes (any bit pattern is a valid `RawHeader`).
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> RawHeader {
        // SAFETY: every bit pattern is a valid RawHeader (integers only); read_unaligned has no
        // alignment requirement and reads exactly size_of::<RawHeader>() == 128 bytes.
        unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<RawHeader>()) }
    }
}

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Checksum over the immutable part of a header.
pub fn header_checksum(bytes: &[u8; HEADER_SIZE]) -> u64 {
    fnv1a64(&bytes[..CHECKSUM_OFFSET])
}

/// What a kind asks for when it creates a segment.
#[derive(Debug, Clone, Copy)]
pub struct LayoutRequest {
    /// The kind.
    pub kind: Kind,
    /// Attachment slots (how many processes may be attached at once).
    pub attach_slots: u32,
    /// Bytes of lock area.
    pub lock_size: u64,
    /// Bytes of data area.
    pub data_size: u64,
    /// Kind-specific immutable parameter.
    pub kind_param: u64,
}

/// The validated geometry of a structured segment, snapshotted at attach time. Every offset
/// and size here was checked against the segment's real size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// The kind.
    pub kind: Kind,
    /// Layout minor version of the creator.
    pub layout_minor: u16,
    /// Total size in bytes.
    pub total_size: u64,
    /// Offset of the attachment table.
    pub attach_off: u64,
    /// Its number of slots.
    pub attach_slots: u32,
    /// Offset of the lock area.
    pub lock_off: u64,
    /// Its size.
    pub lock_size: u64,
    /// Offset of the data area.
    pub data_off: u64,
    /// Its size.
    pub data_size: u64,
    /// Kind-specific parameter.
    pub kind_param: u64,
    /// Creator's pid.
    pub creator_pid: u32,
    /// Creator's uid.
    pub creator_uid: u32,
    /// Creator's start time (clock ticks after boot).
    pub creator_start: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
}

fn align_up(v: u64) -> Option<u64> {
    v.checked_add(AREA_ALIGN - 1).map(|x| x & !(AREA_ALIGN - 1))
}

impl Geometry {
    /// Lays out a new segment for `req`.
    pub fn plan(req: &LayoutRequest) -> Result<Geometry> {
        if req.attach_slots == 0 || req.attach_slots > MAX_ATTACH_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "attachment slots must be in 1..={MAX_ATTACH_SLOTS}, not {}",
                req.attach_slots
            )));
        }
        let too_big = || Error::InvalidArgument("requested sizes are too large".into());
        let attach_off = HEADER_SIZE as u64;
        let attach_end = attach_off + table_bytes(req.attach_slots);
        let lock_off = align_up(attach_end).ok_or_else(too_big)?;
        let data_off = lock_off
            .checked_add(req.lock_size)
            .and_then(align_up)
            .ok_or_else(too_big)?;
        let total = data_off
            .checked_add(req.data_size)
            .and_then(align_up)
            .ok_or_else(too_big)?;
        Ok(Geometry {
            kind: req.kind,
            layout_minor: LAYOUT_MINOR,
            total_size: total,
            attach_off,
            attach_slots: req.attach_slots,
            lock_off,
            lock_size: req.lock_size,
            data_off,
            data_size: req.data_size,
            kind_param: req.kind_param,
            creator_pid: crate::os::getpid(),
            creator_uid: crate::os::current_uid(),
            creator_start: crate::os::process_start_time(crate::os::getpid()),
            created_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        })
    }

    /// The header bytes for this geometry, checksum filled in, state INITIALIZING.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let raw = RawHeader {
            magic: MAGIC,
            layout_major: LAYOUT_MAJOR,
            layout_minor: self.layout_minor,
            endian: ENDIAN_MARK,
            kind: self.kind as u32,
            header_size: HEADER_SIZE as u32,
            total_size: self.total_size,
            attach_off: self.attach_off,
            attach_slots: self.attach_slots,
            attach_slot_size: SLOT_SIZE as u32,
            lock_off: self.lock_off,
            lock_size: self.lock_size,
            data_off: self.data_off,
            data_size: self.data_size,
            kind_param: self.kind_param,
            creator_pid: self.creator_pid,
            creator_uid: self.creator_uid,
            creator_start: self.creator_start,
            created_ns: self.created_ns,
            checksum: 0,
            state: STATE_INITIALIZING,
            reserved: 0,
        };
        let mut bytes = raw.to_bytes();
        let sum = header_checksum(&bytes);
        bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_ne_bytes());
        bytes
    }

    /// Validates header bytes read from a segment of `file_size` bytes at `location`.
    /// Checks everything except `state` (which the caller has already Acquire-loaded).
    #[allow(clippy::too_many_lines)] // one flat list of checks reads best in one place
    pub fn decode(
        bytes: &[u8; HEADER_SIZE],
        file_size: u64,
        location: &Location,
    ) -> Result<Geometry> {
        let bad = |reason: String| {
            Error::Segment(SegmentError::IncompatibleLayout {
                location: location.clone(),
                reason,
            })
        };
        let h = RawHeader::from_bytes(bytes);
        if h.magic != MAGIC {
            return Err(bad(format!(
                "not a memspace structured segment (magic {:02x?}, expected {:02x?})",
                h.magic, MAGIC
            )));
        }
        if h.endian != ENDIAN_MARK {
            return Err(bad(if h.endian == ENDIAN_MARK.swap_bytes() {
                "created on a machine with the other byte order".to_owned()
            } else {
                format!(
                    "endianness marker {:#010x}, expected {ENDIAN_MARK:#010x}",
                    h.endian
                )
            }));
        }
        if h.layout_major != LAYOUT_MAJOR {
            return Err(bad(format!(
                "layout version {}.{}, this memspace reads {LAYOUT_MAJOR}.x",
                h.layout_major, h.layout_minor
            )));
        }
        let sum = header_checksum(bytes);
        if h.checksum != sum {
            return Err(bad(format!(
                "header checksum {:#018x}, computed {sum:#018x}",
                h.checksum
            )));
        }
        if h.header_size as usize != HEADER_SIZE {
            return Err(bad(format!(
                "header size {}, expected {HEADER_SIZE}",
                h.header_size
            )));
        }
        let Some(kind) = Kind::from_u32(h.kind) else {
            return Err(bad(format!("unknown kind {}", h.kind)));
        };
        if h.total_size != file_size {
            return Err(bad(format!(
                "header says {} bytes, the segment has {file_size}",
                h.total_size
            )));
        }
        if h.attach_slots == 0 || h.attach_slots > MAX_ATTACH_SLOTS {
            return Err(bad(format!(
                "{} attachment slots (1..={MAX_ATTACH_SLOTS} allowed)",
                h.attach_slots
            )));
        }
        if h.attach_slot_size as usize != SLOT_SIZE {
            return Err(bad(format!(
                "attachment slot size {}, expected {}",
                h.attach_slot_size, SLOT_SIZE
            )));
        }
        let aligned = |v: u64| v % AREA_ALIGN == 0;
        let areas = [
            (
                "attachment table",
                h.attach_off,
                table_bytes(h.attach_slots),
            ),
            ("lock area", h.lock_off, h.lock_size),
            ("data area", h.data_off, h.data_size),
        ];
        let mut prev_end = HEADER_SIZE as u64;
        for (name, off, len) in areas {
            let end = off.checked_add(len);
            match end {
                Some(end) if aligned(off) && off >= prev_end && end <= file_size => {
                    prev_end = end;
                }
                _ => {
                    return Err(bad(format!(
                        "{name} at {off}+{len} does not fit in {file_size} bytes after {prev_end}"
                    )))
                }
            }
        }
        Ok(Geometry {
            kind,
            layout_minor: h.layout_minor,
            total_size: h.total_size,
            attach_off: h.attach_off,
            attach_slots: h.attach_slots,
            lock_off: h.lock_off,
            lock_size: h.lock_size,
            data_off: h.data_off,
            data_size: h.data_size,
            kind_param: h.kind_param,
            creator_pid: h.creator_pid,
            creator_uid: h.creator_uid,
            creator_start: h.creator_start,
            created_ns: h.created_ns,
        })
    }
}

/// What `memspace ls` shows for the first bytes of a segment: `"raw"` unless it carries a
/// memspace magic, then the kind name, or `"corrupt"` if the header does not validate.
pub fn kind_from_prefix(prefix: &[u8], file_size: u64) -> String {
    let Ok(bytes) = <&[u8; HEADER_SIZE]>::try_from(prefix.get(..HEADER_SIZE).unwrap_or(&[])) else {
        return "raw".to_owned();
    };
    if bytes[..8] != MAGIC {
        return "raw".to_owned();
    }
    let loc = Location::Name(String::new());
    match Geometry::decode(bytes, file_size, &loc) {
        Ok(g) => g.kind.name().to_owned(),
        Err(_) => "corrupt".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> LayoutRequest {
        LayoutRequest {
            kind: Kind::View,
            attach_slots: 8,
            lock_size: 200,
            data_size: 1000,
            kind_param: 7,
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // Geometry::plan reads /proc and the wall clock
    fn roundtrip_and_alignment() {
        let g = Geometry::plan(&req()).unwrap();
        assert_eq!(g.lock_off % 64, 0);
        assert_eq!(g.data_off % 64, 0);
        assert!(g.data_off >= g.lock_off + 200);
        assert!(g.total_size >= g.data_off + 1000);
        let b = g.encode();
        let loc = Location::Name("/x".into());
        assert_eq!(Geometry::decode(&b, g.total_size, &loc).unwrap(), g);
        assert_eq!(kind_from_prefix(&b, g.total_size), "view");
        assert_eq!(kind_from_prefix(&[0u8; 200], 200), "raw");
    }

    #[test]
    #[cfg_attr(miri, ignore)] // Geometry::plan reads /proc and the wall clock
    fn every_single_byte_corruption_is_refused() {
        let g = Geometry::plan(&req()).unwrap();
        let good = g.encode();
        let loc = Location::Name("/x".into());
        for i in 0..CHECKSUM_OFFSET + 8 {
            for flip in [1u8, 0x80, 0xff] {
                let mut b = good;
                b[i] ^= flip;
                assert!(
                    Geometry::decode(&b, g.total_size, &loc).is_err(),
                    "byte {i} ^ {flip:#x} accepted"
                );
            }
        }
        // Wrong file size.
        assert!(Geometry::decode(&good, g.total_size + 64, &loc).is_err());
        assert!(Geometry::decode(&good, g.total_size - 1, &loc).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // Geometry::plan reads /proc and the wall clock
    fn inconsistent_sizes_with_valid_checksum_are_refused() {
        let g = Geometry::plan(&req()).unwrap();
        let loc = Location::Name("/x".into());
        let reseal = |mut h: RawHeader| {
            h.checksum = 0;
            let mut b = h.to_bytes();
            let sum = header_checksum(&b);
            b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_ne_bytes());
            b
        };
        let base = RawHeader::from_bytes(&g.encode());
        let cases: Vec<RawHeader> = vec![
            RawHeader {
                data_size: u64::MAX,
                ..base
            },
            RawHeader {
                lock_off: g.attach_off,
                ..base
            },
            RawHeader {
                attach_slots: 0,
                ..base
            },
            RawHeader {
                attach_slots: MAX_ATTACH_SLOTS + 1,
                ..base
            },
            RawHeader {
                data_off: g.data_off + 1,
                ..base
            },
            RawHeader { kind: 99, ..base },
            RawHeader {
                layout_major: LAYOUT_MAJOR + 1,
                ..base
            },
            RawHeader {
                layout_major: 1,
                ..base
            },
            RawHeader {
                endian: ENDIAN_MARK.swap_bytes(),
                ..base
            },
        ];
        for h in cases {
            assert!(Geometry::decode(&reseal(h), g.total_size, &loc).is_err());
        }
    }
}
