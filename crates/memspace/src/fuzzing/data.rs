//! Decoders of bytes that come from shared memory: the segment header, the parts frame, the
//! tagged value codec.

use super::Input;
use crate::location::Location;
use crate::mpmc::parts::{self as p, PartsLayout};
use crate::shm::header::{self as h, Geometry, Kind, HEADER_SIZE, MAX_ATTACH_SLOTS};
use crate::view::{codec as c, Value, ValueRef};

/// Segment header validation (`Geometry::decode`) of 128 bytes against a claimed file size.
///
/// The input's first byte picks how the header is made: raw bytes, or a valid header (laid
/// out from input-chosen sizes) with input bytes xor-ed in, and either way with the checksum
/// resealed or not (a fuzzer would not find a valid FNV checksum by itself). Whatever
/// `decode` accepts must be self-consistent: every area aligned, in order, inside the file,
/// and re-encoding the geometry gives back the same immutable bytes.
pub fn header(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let mut bytes = [0u8; HEADER_SIZE];
    let file_size;
    if flags & 1 == 0 {
        let raw = inp.take(HEADER_SIZE);
        bytes[..raw.len()].copy_from_slice(raw);
        file_size = inp.u64();
    } else {
        let g = planned(&mut inp);
        bytes = g.encode();
        for (b, x) in bytes.iter_mut().zip(inp.take(HEADER_SIZE)) {
            *b ^= x;
        }
        // Mostly the planned size, sometimes near it, sometimes anything.
        file_size = match flags >> 4 {
            0..=9 => g.total_size,
            10..=13 => g
                .total_size
                .wrapping_add(u64::from(inp.u8()))
                .wrapping_sub(128),
            _ => inp.u64(),
        };
    }
    if flags & 2 != 0 {
        let sum = h::header_checksum(&bytes);
        bytes[112..120].copy_from_slice(&sum.to_ne_bytes());
    }
    let loc = Location::Name("/fuzz".to_owned());
    let _ = h::kind_from_prefix(&bytes, file_size);
    let Ok(g) = Geometry::decode(&bytes, file_size, &loc) else {
        return;
    };
    assert_eq!(g.total_size, file_size);
    assert!((1..=MAX_ATTACH_SLOTS).contains(&g.attach_slots));
    let mut prev_end = HEADER_SIZE as u64;
    for (off, len) in [
        (g.attach_off, h::table_bytes(g.attach_slots)),
        (g.lock_off, g.lock_size),
        (g.data_off, g.data_size),
    ] {
        assert_eq!(off % h::AREA_ALIGN, 0, "area misaligned");
        assert!(off >= prev_end, "areas overlap");
        let end = off.checked_add(len).expect("area end overflows");
        assert!(end <= file_size, "area outside the file");
        prev_end = end;
    }
    let again = g.encode();
    assert_eq!(
        again[..h::STATE_OFFSET],
        bytes[..h::STATE_OFFSET],
        "an accepted header does not re-encode to itself"
    );
}

/// A geometry laid out like `Geometry::plan`, from input-chosen sizes (without asking the
/// operating system for the creator's identity).
fn planned(inp: &mut Input<'_>) -> Geometry {
    let kind = Kind::from_u32(u32::from(inp.u8() % 7) + 1).expect("1..=7 are kinds");
    let slots = u32::from(inp.u16()) % MAX_ATTACH_SLOTS + 1;
    let lock_size = u64::from(inp.u16());
    let data_size = u64::from(inp.u16()) * u64::from(inp.u8() % 4 + 1);
    let up = |v: u64| (v + h::AREA_ALIGN - 1) & !(h::AREA_ALIGN - 1);
    let attach_off = HEADER_SIZE as u64;
    let lock_off = up(attach_off + h::table_bytes(slots));
    let data_off = up(lock_off + lock_size);
    Geometry {
        kind,
        layout_minor: h::LAYOUT_MINOR,
        total_size: up(data_off + data_size),
        attach_off,
        attach_slots: slots,
        lock_off,
        lock_size,
        data_off,
        data_size,
        kind_param: inp.u64(),
        creator_pid: u32::from(inp.u16()),
        creator_uid: 1000,
        creator_start: inp.u64(),
        created_ns: inp.u64(),
    }
}

/// `mpmc::parts::decode` of an arbitrary message, and of a valid one built from
/// input-chosen lengths and then damaged. Accepted tables lie after the header and inside the
/// message; an undamaged message decodes to its own layout.
pub fn parts(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let mut msg = if flags & 1 == 0 {
        inp.rest().to_vec()
    } else {
        let n = usize::from(inp.u8() % 9);
        let lens: Vec<usize> = (0..n).map(|_| usize::from(inp.u8())).collect();
        let layout = PartsLayout::new(&lens).expect("small parts fit");
        let bodies: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0xa5; l]).collect();
        let slices: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let msg = layout.encode(&slices);
        assert_eq!(p::decode(&msg).expect("a valid message"), layout.parts());
        assert!(p::is_parts(&msg));
        msg
    };
    // Damage: the remaining input as (offset, byte) pairs.
    while !inp.is_empty() && !msg.is_empty() {
        let at = usize::from(inp.u16()) % msg.len();
        msg[at] = inp.u8();
    }
    if flags & 2 != 0 {
        let cut = usize::from(inp.u16()) % (msg.len() + 1);
        msg.truncate(cut);
    }
    if let Ok(parts) = p::decode(&msg) {
        let table_end = 8 + 16 * parts.len();
        for r in parts {
            assert!(r.start >= table_end, "part inside the table");
            assert!(
                r.start <= r.end && r.end <= msg.len(),
                "part outside the message"
            );
        }
    }
}

/// The view codec (`view::codec::decode`): any buffer decodes to an error or to one value
/// that encodes back to exactly the same bytes (the encoding is canonical).
pub fn codec(data: &[u8]) {
    let Ok(v) = c::decode(data) else {
        return;
    };
    let r = match &v {
        Value::Bool(b) => ValueRef::Bool(*b),
        Value::I64(x) => ValueRef::I64(*x),
        Value::F64(x) => ValueRef::F64(*x),
        Value::Str(s) => ValueRef::Str(s),
        Value::Bytes(b) => ValueRef::Bytes(b),
        Value::I32(x) => ValueRef::I32(*x),
        Value::U8(x) => ValueRef::U8(*x),
        Value::U32(x) => ValueRef::U32(*x),
        Value::U64(x) => ValueRef::U64(*x),
        Value::F32(x) => ValueRef::F32(*x),
    };
    let mut out = Vec::new();
    c::encode(&r, &mut out).expect("a decoded value encodes");
    assert_eq!(out, data, "decode then encode changed the bytes");
}
