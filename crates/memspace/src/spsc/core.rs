//! The single-producer/single-consumer byte ring: the data path, without waiting.
//!
//! Algorithm: a Lamport ring of variable-length records (see `channel::frame`) addressed by two
//! monotonic 64-bit byte positions, in the style of the Linux `perf` ring and of Disruptor-like
//! SPSC queues:
//!
//! - `head` (the producer's line) counts bytes the producer has **published**. The producer
//!   writes records beyond `head` privately, then Release-stores the new `head`: that single
//!   store commits every record written since the previous one (a batch publishes once).
//! - `tail` (the consumer's line) counts bytes the consumer has **released**. The consumer reads
//!   records between `tail` and an Acquire-loaded `head`, then Release-stores the new `tail`,
//!   which hands the space back to the producer.
//! - Each side caches the other's position privately and reloads it only when its cached view
//!   says "full" (producer) or "empty" (consumer), so the cache line of the other side is touched
//!   once per batch, not once per message.
//!
//! Invariants (checked on every load, since the other side may be dead, buggy or hostile):
//! `tail <= head`, `head - tail <= capacity`, both multiples of 8. Positions never wrap in
//! practice (2^64 bytes), but one read from shared memory may be anything, so position
//! arithmetic is modulo 2^64 (`wrapping_*`; the invariants compare wrapped differences): a
//! position near 2^64 is one more position, never an overflow.
//!
//! Crash semantics follow from the commit rule: a producer that dies before its `head` store
//! published nothing (a half-written record is invisible, and the next producer overwrites it);
//! a consumer that dies before its `tail` store has consumed nothing (the next consumer reads the
//! same records again; no message reported as received is delivered twice, because `get()`
//! returns only after the store).
//!
//! This module owns the protocol and its validation; it never waits, never calls the OS and
//! never touches memory except through a [`Region`].

use crate::channel::frame::{record_size, RecordHeader, Region, HEADER};
use crate::channel::geometry::{Corrupt, Geometry, Line};
use crate::sync::Ordering;

/// The shared control block: `head` and `tail` 128 bytes apart, so that the two sides never
/// write the same cache line.
///
/// Layout (256 bytes, 64-aligned): `head` u64 at 0, `sent` u64 at 8, `tail` u64 at 128,
/// `received` u64 at 136; the rest is reserved (zero). All-zero bytes are the valid initial
/// state (an empty ring at position 0).
#[repr(C)]
pub(crate) struct Control {
    pub(crate) head: Line,
    pub(crate) tail: Line,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Control>() == 256);
    assert!(std::mem::align_of::<Control>() == 64);
};

impl Control {
    /// A fresh control block on the heap (tests and loom models).
    #[cfg(test)]
    pub(crate) fn new() -> Control {
        Control {
            head: Line::new(),
            tail: Line::new(),
        }
    }

    /// Views zero-initialised (or previously used) shared memory as a control block.
    ///
    /// # Safety
    /// `ptr` must be 64-byte aligned, valid for reads and writes of 256 bytes for `'a`, and
    /// accessed by everyone only through atomics (as this module does).
    #[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
    pub(crate) unsafe fn from_ptr<'a>(ptr: *mut u8) -> &'a Control {
        // SAFETY: guaranteed by the caller; `Control` consists of `AtomicU64`s only (same
        // representation as u64, valid for every bit pattern).
        unsafe { &*ptr.cast::<Control>() }
    }
}

/// Checks the shared invariants between a trusted position of ours and one loaded from the
/// other side.
fn check_positions(g: Geometry, tail: u64, head: u64) -> Result<(), Corrupt> {
    let used = head.wrapping_sub(tail);
    if used > g.capacity() || head % 8 != 0 || tail % 8 != 0 {
        return Err(Corrupt(format!(
            "ring positions are impossible (head {head}, tail {tail}, capacity {})",
            g.capacity()
        )));
    }
    Ok(())
}

/// The producer's private state.
#[derive(Debug)]
pub(crate) struct Producer {
    g: Geometry,
    /// End of what has been written (published or not).
    head: u64,
    /// What the consumer sees.
    published: u64,
    /// Last `tail` seen.
    cached_tail: u64,
}

/// Where a reserved message's payload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// Offset of the payload in the region.
    pub(crate) offset: usize,
    /// Payload length.
    pub(crate) len: u64,
}

impl Producer {
    /// Takes over the producer side from the positions in `ctl` (a fresh ring, or one whose
    /// previous producer is gone: anything it wrote but did not publish is discarded).
    pub(crate) fn attach(g: Geometry, ctl: &Control) -> Result<Producer, Corrupt> {
        // SYNC: Acquire pairs with the previous producer's Release store of `head` (a takeover
        // continues exactly after what was published).
        let head = ctl.head.pos.load(Ordering::Acquire);
        // SYNC: Acquire pairs with the consumer's Release store of `tail`.
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        check_positions(g, tail, head)?;
        Ok(Producer {
            g,
            head,
            published: head,
            cached_tail: tail,
        })
    }

    /// True if `need` more bytes fit, reloading `tail` if the cached value says no.
    fn has_room(&mut self, ctl: &Control, need: u64) -> Result<bool, Corrupt> {
        if self.head.wrapping_sub(self.cached_tail) + need <= self.g.capacity() {
            return Ok(true);
        }
        // SYNC: Acquire pairs with the consumer's Release store of `tail`: the consumer has
        // finished reading every byte below it, so we may overwrite them.
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        check_positions(self.g, tail, self.published)?;
        self.cached_tail = tail;
        Ok(self.head.wrapping_sub(tail) + need <= self.g.capacity())
    }

    /// Reserves room for a payload of `len` bytes (writing padding and the header), without
    /// making it visible. Returns `Ok(None)` if the ring is too full now. The caller writes the
    /// payload at the returned offset, then calls [`Producer::commit`] (or abandons it by not
    /// committing: the next reservation reuses the space).
    pub(crate) fn reserve<R: Region>(
        &mut self,
        ctl: &Control,
        region: &R,
        len: u64,
    ) -> Result<Option<Reservation>, Corrupt> {
        debug_assert!(len <= self.g.max_len(), "callers check the message size");
        let rec = record_size(len);
        let off = self.g.offset(self.head);
        let to_end = self.g.capacity() - off;
        let pad = if rec > to_end { to_end } else { 0 };
        if !self.has_room(ctl, pad + rec)? {
            return Ok(None);
        }
        let mut at = off;
        if pad > 0 {
            region.write(
                at as usize,
                &RecordHeader::Padding { len: pad - HEADER }.encode(),
            );
            self.head = self.head.wrapping_add(pad);
            at = 0;
        }
        region.write(at as usize, &RecordHeader::Data { len }.encode());
        Ok(Some(Reservation {
            offset: (at + HEADER) as usize,
            len,
        }))
    }

    /// Makes a reserved message part of the next publication.
    pub(crate) fn commit(&mut self, r: Reservation) {
        self.head = self.head.wrapping_add(record_size(r.len));
    }

    /// Writes one message (reserve, copy, commit). `Ok(false)` if it does not fit now.
    pub(crate) fn try_write<R: Region>(
        &mut self,
        ctl: &Control,
        region: &R,
        data: &[u8],
    ) -> Result<bool, Corrupt> {
        match self.reserve(ctl, region, data.len() as u64)? {
            Some(r) => {
                region.write(r.offset, data);
                self.commit(r);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Publishes everything committed so far; returns false if there was nothing new.
    pub(crate) fn publish(&mut self, ctl: &Control) -> bool {
        if self.head == self.published {
            return false;
        }
        // SYNC: Release pairs with the consumer's Acquire load of `head`: every record byte
        // written before this store is visible to a consumer that sees the new head.
        ctl.head.pos.store(self.head, Ordering::Release);
        self.published = self.head;
        true
    }
}

/// The consumer's private state.
#[derive(Debug)]
pub(crate) struct Consumer {
    g: Geometry,
    /// Start of the next record to read.
    tail: u64,
    /// What the producer may overwrite.
    released: u64,
    /// Last `head` seen.
    cached_head: u64,
}

/// A message found by [`Consumer::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// Offset of the payload in the region.
    pub(crate) offset: usize,
    /// Payload length.
    pub(crate) len: u64,
}

impl Consumer {
    /// Takes over the consumer side from the positions in `ctl` (a fresh ring, or one whose
    /// previous consumer is gone: what it read but did not release is read again).
    pub(crate) fn attach(g: Geometry, ctl: &Control) -> Result<Consumer, Corrupt> {
        // SYNC: Acquire pairs with the previous consumer's Release store of `tail`.
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        // SYNC: Acquire pairs with the producer's Release store of `head`.
        let head = ctl.head.pos.load(Ordering::Acquire);
        check_positions(g, tail, head)?;
        Ok(Consumer {
            g,
            tail,
            released: tail,
            cached_head: head,
        })
    }

    /// Finds the next message without consuming it, skipping padding. `Ok(None)` if empty.
    pub(crate) fn peek<R: Region>(
        &mut self,
        ctl: &Control,
        region: &R,
    ) -> Result<Option<Message>, Corrupt> {
        loop {
            if self.tail == self.cached_head {
                // SYNC: Acquire pairs with the producer's Release store of `head`: every
                // record below it is completely written.
                let head = ctl.head.pos.load(Ordering::Acquire);
                check_positions(self.g, self.tail, head)?;
                self.cached_head = head;
                if self.tail == head {
                    return Ok(None);
                }
            }
            let avail = self.cached_head.wrapping_sub(self.tail);
            let off = self.g.offset(self.tail);
            let to_end = self.g.capacity() - off;
            let mut hdr = [0u8; 8];
            region.read(off as usize, &mut hdr);
            match RecordHeader::decode(hdr) {
                Some(RecordHeader::Padding { len })
                    if len + HEADER == to_end && to_end <= avail =>
                {
                    self.tail = self.tail.wrapping_add(to_end);
                }
                Some(RecordHeader::Data { len })
                    if len <= self.g.max_len()
                        && record_size(len) <= to_end
                        && record_size(len) <= avail =>
                {
                    return Ok(Some(Message {
                        offset: (off + HEADER) as usize,
                        len,
                    }));
                }
                other => {
                    return Err(Corrupt(format!(
                        "invalid record {other:?} ({hdr:02x?}) at position {} \
                         ({avail} bytes published, {to_end} to the end of the lap)",
                        self.tail
                    )))
                }
            }
        }
    }

    /// Consumes the message `peek` returned (not yet visible to the producer).
    pub(crate) fn consume(&mut self, m: Message) {
        self.tail = self.tail.wrapping_add(record_size(m.len));
    }

    /// Reads one message into a new vector. `Ok(None)` if empty.
    #[cfg(test)]
    pub(crate) fn try_read<R: Region>(
        &mut self,
        ctl: &Control,
        region: &R,
    ) -> Result<Option<Vec<u8>>, Corrupt> {
        let Some(m) = self.peek(ctl, region)? else {
            return Ok(None);
        };
        let mut out = vec![0u8; m.len as usize];
        region.read(m.offset, &mut out);
        self.consume(m);
        Ok(Some(out))
    }

    /// Hands everything consumed so far back to the producer; false if nothing new.
    pub(crate) fn release(&mut self, ctl: &Control) -> bool {
        if self.tail == self.released {
            return false;
        }
        // SYNC: Release pairs with the producer's Acquire load of `tail`: our reads of the
        // released records happen before the producer overwrites them.
        ctl.tail.pos.store(self.tail, Ordering::Release);
        self.released = self.tail;
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::channel::frame::HeapRegion;
    use proptest::prelude::*;

    fn ring(cap: u64) -> (Geometry, Control, HeapRegion) {
        let g = Geometry::new(cap, Geometry::max_len_for(cap)).unwrap();
        (g, Control::new(), HeapRegion::new(cap as usize))
    }

    #[test]
    fn fifo_with_wraparound_and_empty_messages() {
        // 128 bytes: two records of up to 24 + 32 bytes plus padding always fit.
        let (g, ctl, region) = ring(128);
        let mut p = Producer::attach(g, &ctl).unwrap();
        let mut c = Consumer::attach(g, &ctl).unwrap();
        for round in 0u8..100 {
            // Two messages per batch, sizes 0..=24 so that laps end at every offset.
            let msgs = [
                vec![round; usize::from(round % 13)],
                vec![!round; usize::from(round % 25)],
            ];
            for m in &msgs {
                assert!(p.try_write(&ctl, &region, m).unwrap());
            }
            assert!(
                c.try_read(&ctl, &region).unwrap().is_none(),
                "nothing visible before publish"
            );
            assert!(p.publish(&ctl));
            for m in &msgs {
                assert_eq!(c.try_read(&ctl, &region).unwrap().as_ref(), Some(m));
            }
            assert!(c.try_read(&ctl, &region).unwrap().is_none());
            assert!(c.release(&ctl));
        }
    }

    #[test]
    fn full_ring_refuses_until_released() {
        let (g, ctl, region) = ring(64);
        let mut p = Producer::attach(g, &ctl).unwrap();
        let mut c = Consumer::attach(g, &ctl).unwrap();
        assert!(p.try_write(&ctl, &region, &[1; 24]).unwrap()); // 32 bytes
        assert!(p.try_write(&ctl, &region, &[2; 24]).unwrap()); // 64: full
        assert!(!p.try_write(&ctl, &region, &[]).unwrap());
        p.publish(&ctl);
        assert_eq!(c.try_read(&ctl, &region).unwrap(), Some(vec![1; 24]));
        assert!(
            !p.try_write(&ctl, &region, &[]).unwrap(),
            "not released yet"
        );
        c.release(&ctl);
        assert!(p.try_write(&ctl, &region, &[]).unwrap());
    }

    #[test]
    fn unpublished_writes_vanish_with_their_producer() {
        let (g, ctl, region) = ring(64);
        let mut p = Producer::attach(g, &ctl).unwrap();
        p.try_write(&ctl, &region, b"kept").unwrap();
        p.publish(&ctl);
        p.try_write(&ctl, &region, b"lost").unwrap();
        // `p` dies here without publishing "lost"; it is never used again.
        let mut p2 = Producer::attach(g, &ctl).unwrap();
        p2.try_write(&ctl, &region, b"next").unwrap();
        p2.publish(&ctl);
        let mut c = Consumer::attach(g, &ctl).unwrap();
        assert_eq!(c.try_read(&ctl, &region).unwrap().unwrap(), b"kept");
        assert_eq!(c.try_read(&ctl, &region).unwrap().unwrap(), b"next");
        assert!(c.try_read(&ctl, &region).unwrap().is_none());
    }

    #[test]
    fn unreleased_reads_are_read_again_by_the_next_consumer() {
        let (g, ctl, region) = ring(64);
        let mut p = Producer::attach(g, &ctl).unwrap();
        p.try_write(&ctl, &region, b"a").unwrap();
        p.try_write(&ctl, &region, b"b").unwrap();
        p.publish(&ctl);
        let mut c = Consumer::attach(g, &ctl).unwrap();
        assert_eq!(c.try_read(&ctl, &region).unwrap().unwrap(), b"a");
        c.release(&ctl);
        assert_eq!(c.try_read(&ctl, &region).unwrap().unwrap(), b"b");
        // `c` dies here without releasing "b"; it is never used again.
        let mut c2 = Consumer::attach(g, &ctl).unwrap();
        assert_eq!(c2.try_read(&ctl, &region).unwrap().unwrap(), b"b");
    }

    #[test]
    fn corrupt_positions_and_records_are_errors() {
        let (g, ctl, region) = ring(64);
        ctl.head.pos.store(72, Ordering::Relaxed); // more than capacity ahead of tail
        assert!(Consumer::attach(g, &ctl).is_err());
        assert!(Producer::attach(g, &ctl).is_err());
        ctl.head.pos.store(12, Ordering::Relaxed); // misaligned
        assert!(Consumer::attach(g, &ctl).is_err());

        let (g, ctl, region2) = {
            drop(region);
            ring(64)
        };
        let mut p = Producer::attach(g, &ctl).unwrap();
        let mut c = Consumer::attach(g, &ctl).unwrap();
        p.try_write(&ctl, &region2, b"hello").unwrap();
        p.publish(&ctl);
        // A length that runs past what was published.
        region2.poke(0, &RecordHeader::Data { len: 17 }.encode());
        assert!(c.peek(&ctl, &region2).is_err());
        // An unknown kind.
        region2.poke(0, &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert!(c.peek(&ctl, &region2).is_err());
        // Padding that does not reach the end of the lap.
        region2.poke(0, &RecordHeader::Padding { len: 0 }.encode());
        assert!(c.peek(&ctl, &region2).is_err());
        // A record longer than max_len.
        region2.poke(
            0,
            &RecordHeader::Data {
                len: u64::from(u32::MAX),
            }
            .encode(),
        );
        assert!(c.peek(&ctl, &region2).is_err());
        // Restored, it reads fine.
        region2.poke(0, &RecordHeader::Data { len: 5 }.encode());
        assert_eq!(c.try_read(&ctl, &region2).unwrap().unwrap(), b"hello");
    }

    #[test]
    fn max_len_message_always_fits_in_an_empty_ring() {
        let (g, ctl, region) = ring(128);
        let mut p = Producer::attach(g, &ctl).unwrap();
        let mut c = Consumer::attach(g, &ctl).unwrap();
        let big = vec![7u8; g.max_len() as usize];
        for skew in 0..20u64 {
            // Move the lap position by a different amount each round, then send the largest.
            let small = vec![1u8; (skew % 5) as usize * 8];
            assert!(p.try_write(&ctl, &region, &small).unwrap());
            p.publish(&ctl);
            c.try_read(&ctl, &region).unwrap().unwrap();
            c.release(&ctl);
            assert!(p.try_write(&ctl, &region, &big).unwrap(), "skew {skew}");
            p.publish(&ctl);
            assert_eq!(c.try_read(&ctl, &region).unwrap().unwrap(), big);
            c.release(&ctl);
        }
    }

    /// Found by the `ring` fuzz target: positions near 2^64 (which a corrupt or hostile
    /// segment may hold) made position arithmetic overflow (a panic in debug builds). They
    /// are positions like any other: the ring runs across the wrap.
    #[test]
    fn positions_wrap_past_2_pow_64() {
        let (g, ctl, region) = ring(64);
        let start = u64::MAX - 15; // 16 bytes before the wrap, 8-aligned
        ctl.head.pos.store(start, Ordering::Relaxed);
        ctl.tail.pos.store(start, Ordering::Relaxed);
        let mut p = Producer::attach(g, &ctl).unwrap();
        let mut c = Consumer::attach(g, &ctl).unwrap();
        for round in 0u8..20 {
            let m = vec![round; usize::from(round % 20)];
            assert!(p.try_write(&ctl, &region, &m).unwrap());
            p.publish(&ctl);
            assert_eq!(c.try_read(&ctl, &region).unwrap(), Some(m));
            c.release(&ctl);
        }
        assert!(ctl.head.pos.load(Ordering::Relaxed) < start, "wrapped");
    }

    proptest! {
        /// Any interleaving of writes, publishes, reads and releases (in one thread) delivers
        /// exactly the published messages, in order.
        #[test]
        fn model(ops in proptest::collection::vec((0u8..4, 0usize..60), 1..300)) {
            let (g, ctl, region) = ring(128);
            let mut p = Producer::attach(g, &ctl).unwrap();
            let mut c = Consumer::attach(g, &ctl).unwrap();
            let mut written = std::collections::VecDeque::new();
            let mut published = 0usize; // how many of `written` are published
            let mut n = 0u32;
            for (op, size) in ops {
                match op {
                    0 => {
                        let size = size.min(g.max_len() as usize);
                        let msg: Vec<u8> = (0..size).map(|i| (n as usize + i) as u8).collect();
                        if p.try_write(&ctl, &region, &msg).unwrap() {
                            written.push_back(msg);
                            n += 1;
                        }
                    }
                    1 => { p.publish(&ctl); published = written.len(); }
                    2 => {
                        if let Some(m) = c.try_read(&ctl, &region).unwrap() {
                            prop_assert!(published > 0);
                            prop_assert_eq!(Some(m), written.pop_front());
                            published -= 1;
                        } else {
                            prop_assert_eq!(published, 0);
                        }
                    }
                    _ => { c.release(&ctl); }
                }
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::channel::frame::HeapRegion;
    use loom::sync::Arc;

    /// Two threads, a 64-byte ring, messages of different sizes that force padding and
    /// wrap-around: every message arrives once, in order, intact, and loom finds no data race
    /// on any payload byte (the region's bytes are loom cells).
    #[test]
    fn commit_and_padding_protocol() {
        loom::model(|| {
            let g = Geometry::new(64, 24).unwrap();
            let ctl = Arc::new(Control::new());
            let region = Arc::new(HeapRegion::new(64));
            let msgs: [&[u8]; 3] = [&[1; 20], &[2; 9], &[3; 17]];
            let (pc, pr) = (ctl.clone(), region.clone());
            let producer = loom::thread::spawn(move || {
                let mut p = Producer::attach(g, &pc).unwrap();
                for m in msgs {
                    while !p.try_write(&pc, &*pr, m).unwrap() {
                        p.publish(&pc);
                        loom::thread::yield_now();
                    }
                    p.publish(&pc);
                }
            });
            let mut c = Consumer::attach(g, &ctl).unwrap();
            for m in msgs {
                loop {
                    if let Some(got) = c.try_read(&ctl, &*region).unwrap() {
                        assert_eq!(got, m);
                        break;
                    }
                    loom::thread::yield_now();
                }
                c.release(&ctl);
            }
            producer.join().unwrap();
        });
    }
}
