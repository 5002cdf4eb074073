//! One message made of several byte parts, each readable in place at an aligned offset: the
//! frame of `Queue.put_object` (a pickle and its out-of-band buffers), usable for any
//! scatter/gather message.
//!
//! # Format (little-endian)
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | `magic` | the 4 bytes [`MAGIC`] |
//! | 4 | `count` | u32: number of parts |
//! | 8 | `table` | `count` × (u64 offset, u64 length) of each part, from the message start |
//! | ... | parts | part *i* at `table[i].offset`, a multiple of [`ALIGN`]; gaps are zero |
//!
//! [`PartsLayout`] places parts one after the other, each at the next multiple of [`ALIGN`]
//! after the table and the previous part. [`decode`] accepts any table whose parts lie after
//! the table and inside the message, and nothing else: a message comes from shared memory, so
//! it is untrusted.

use std::ops::Range;

use crate::error::{Error, Result};

/// First bytes of a parts message (`0x89` keeps it from ever being text or a pickle).
pub const MAGIC: [u8; 4] = *b"\x89msp";
/// Alignment of every part from the start of the message.
pub const ALIGN: usize = 64;
const FIXED: usize = 8;
const ENTRY: usize = 16;

fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

/// Where each part of a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsLayout {
    parts: Vec<Range<usize>>,
    total: usize,
}

impl PartsLayout {
    /// Lays out parts of the given lengths; `InvalidArgument` if the message would not fit in
    /// memory (or has more than `u32::MAX` parts).
    pub fn new(lens: &[usize]) -> Result<PartsLayout> {
        let too_big = || Error::InvalidArgument("the message parts are too large".into());
        let count = u32::try_from(lens.len()).map_err(|_| too_big())?;
        let mut end = (count as usize)
            .checked_mul(ENTRY)
            .and_then(|t| t.checked_add(FIXED))
            .ok_or_else(too_big)?;
        let mut parts = Vec::with_capacity(lens.len());
        for &len in lens {
            let start = align_up(end).ok_or_else(too_big)?;
            end = start.checked_add(len).ok_or_else(too_big)?;
            parts.push(start..end);
        }
        Ok(PartsLayout { parts, total: end })
    }

    /// Length of the whole message.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Where each part lies in the message.
    pub fn parts(&self) -> &[Range<usize>] {
        &self.parts
    }

    /// Writes the header, the table and the zero gaps (everything but the parts' bytes) into
    /// `out`, which must be [`total`](Self::total) bytes long.
    pub fn write_frame(&self, out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.total,
            "the buffer must hold the whole message"
        );
        self.each_frame_piece(|at, bytes| out[at..at + bytes.len()].copy_from_slice(bytes));
    }

    /// Calls `put(offset, bytes)` for every piece of the message that is not a part's bytes:
    /// the header and table, then each zero gap. With [`parts`](Self::parts), this writes a
    /// whole message wherever it goes (e.g. straight into a queue reservation).
    pub fn each_frame_piece(&self, mut put: impl FnMut(usize, &[u8])) {
        let mut head = Vec::with_capacity(FIXED + ENTRY * self.parts.len());
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for p in &self.parts {
            head.extend_from_slice(&(p.start as u64).to_le_bytes());
            head.extend_from_slice(&(p.len() as u64).to_le_bytes());
        }
        put(0, &head);
        let zeros = [0u8; ALIGN];
        let mut end = head.len();
        for p in &self.parts {
            if p.start > end {
                put(end, &zeros[..p.start - end]);
            }
            end = p.end;
        }
    }

    /// The whole message as one buffer (tests and small messages).
    pub fn encode(&self, parts: &[&[u8]]) -> Vec<u8> {
        assert_eq!(parts.len(), self.parts.len(), "one slice per part");
        let mut out = vec![0u8; self.total];
        self.write_frame(&mut out);
        for (r, p) in self.parts.iter().zip(parts) {
            out[r.clone()].copy_from_slice(p);
        }
        out
    }
}

/// Whether `msg` starts like a parts message (cheap; [`decode`] validates).
pub fn is_parts(msg: &[u8]) -> bool {
    msg.starts_with(&MAGIC)
}

/// The parts of a message, validated: `InvalidArgument` if it is not a parts message or its
/// table points outside it.
pub fn decode(msg: &[u8]) -> Result<Vec<Range<usize>>> {
    let bad = |why: &str| Error::InvalidArgument(format!("not a valid parts message: {why}"));
    if msg.len() < FIXED || !is_parts(msg) {
        return Err(bad("no parts header"));
    }
    let count = u32::from_le_bytes(msg[4..8].try_into().expect("4 bytes")) as usize;
    let table_end = count
        .checked_mul(ENTRY)
        .and_then(|t| t.checked_add(FIXED))
        .filter(|&e| e <= msg.len())
        .ok_or_else(|| bad("the part table is longer than the message"))?;
    let word = |at: usize| u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"));
    (0..count)
        .map(|i| {
            let e = FIXED + i * ENTRY;
            let (off, len) = (word(e), word(e + 8));
            let start = usize::try_from(off).ok().filter(|&s| s >= table_end);
            let end = start.and_then(|s| usize::try_from(len).ok().and_then(|l| s.checked_add(l)));
            match (start, end) {
                (Some(s), Some(e)) if e <= msg.len() => Ok(s..e),
                _ => Err(bad(&format!("part {i} lies outside the message"))),
            }
        })
        .collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_aligns_every_part() {
        let l = PartsLayout::new(&[5, 0, 100]).unwrap();
        assert_eq!(l.parts(), &[64..69, 128..128, 128..228]);
        assert_eq!(l.total(), 228);
        let m = l.encode(&[b"hello", b"", &[7; 100]]);
        assert_eq!(&m[..4], &MAGIC);
        assert_eq!(decode(&m).unwrap(), l.parts());
        assert!(m[69..128].iter().all(|&b| b == 0));
        assert_eq!(PartsLayout::new(&[]).unwrap().total(), 8);
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(decode(b"").is_err());
        assert!(decode(b"\x80\x05pickle").is_err());
        let mut m = PartsLayout::new(&[10]).unwrap().encode(&[&[1; 10]]);
        m[4] = 200; // count past the end
        assert!(decode(&m).is_err());
        let mut m = PartsLayout::new(&[10]).unwrap().encode(&[&[1; 10]]);
        m[16] = 255; // length past the end
        assert!(decode(&m).is_err());
        let mut m = PartsLayout::new(&[10]).unwrap().encode(&[&[1; 10]]);
        m[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // offset overflow
        assert!(decode(&m).is_err());
        let mut m = PartsLayout::new(&[10]).unwrap().encode(&[&[1; 10]]);
        m[8..16].copy_from_slice(&0u64.to_le_bytes()); // overlaps the table
        assert!(decode(&m).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
            let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
            let l = PartsLayout::new(&lens).unwrap();
            let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let m = l.encode(&slices);
            let got = decode(&m).unwrap();
            prop_assert_eq!(got.len(), parts.len());
            for (r, p) in got.iter().zip(&parts) {
                prop_assert_eq!(r.start % ALIGN, 0);
                prop_assert_eq!(&m[r.clone()], p.as_slice());
            }
        }

        #[test]
        fn decode_never_panics_or_escapes(m in proptest::collection::vec(any::<u8>(), 0..300), magic in any::<bool>()) {
            let mut m = m;
            if magic && m.len() >= 8 {
                m[..4].copy_from_slice(&MAGIC);
                let count = u32::from(m[4] % 8);
                m[4..8].copy_from_slice(&count.to_le_bytes());
            }
            if let Ok(parts) = decode(&m) {
                for r in parts {
                    prop_assert!(r.end <= m.len());
                }
            }
        }
    }
}
