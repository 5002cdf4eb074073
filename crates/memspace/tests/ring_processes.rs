//! The ring between two real processes: the test binary re-executes itself as the producer.
//!
//! 10^7 messages in total over several batch sizes, random sizes from 0 to the ring's
//! `max_message_size` through a small ring (many wrap-arounds), each carrying its sequence
//! number and a checksum of its body: every one must arrive exactly once, in order, intact.

use std::time::Duration;

use memspace::spsc::{never_interrupted, Ring, RingOptions};
use memspace::Location;

mod common;
use common::{checksum, unique, Reaped};

const CHILD_ENV: &str = "MEMSPACE_TEST_RING_PRODUCER";

/// A deterministic generator both processes run (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Message `i` of the stream seeded `seed` (16 bytes of sequence and checksum, then a body).
fn message(rng: &mut Rng, i: u64, max: usize, out: &mut Vec<u8>) {
    let r = rng.next();
    // Mostly small messages, one in 16 up to the maximum.
    let body_max = if r % 16 == 0 {
        max - 16
    } else {
        48.min(max - 16)
    };
    let len = (r >> 8) as usize % (body_max + 1);
    out.clear();
    out.extend_from_slice(&i.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend((0..len).map(|k| (r >> (k % 8 * 8)) as u8 ^ k as u8));
    let sum = checksum(&out[16..]);
    out[8..16].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn producer_entry() {
    let Ok(arg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = arg.split(',').collect();
    let (name, n, batch): (&str, u64, u64) = (
        parts[0],
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
    );
    let ring = Ring::open(Location::Name(name.to_owned())).unwrap();
    let max = ring.max_message_size() as usize;
    let mut tx = ring.producer().unwrap();
    let mut gen = Rng(0x9e37_79b9_7f4a_7c15 ^ batch);
    let mut interrupt = never_interrupted();
    let mut i = 0;
    let mut batch_buf: Vec<Vec<u8>> = (0..batch).map(|_| Vec::new()).collect();
    while i < n {
        let k = batch.min(n - i);
        for (j, buf) in batch_buf.iter_mut().take(k as usize).enumerate() {
            message(&mut gen, i + j as u64, max, buf);
        }
        let sent = tx
            .push_many(
                batch_buf.iter().take(k as usize).map(Vec::as_slice),
                Some(Duration::from_secs(60)),
                &mut interrupt,
            )
            .unwrap();
        assert_eq!(sent as u64, k);
        i += k;
    }
}

fn stream(n: u64, batch: u64) {
    let name = unique(&format!("ring-{batch}"));
    let loc = Location::Name(name.clone());
    let ring = RingOptions::new(loc.clone(), 1 << 12).create().unwrap();
    let max = ring.max_message_size() as usize;
    let mut rx = ring.consumer().unwrap();
    let mut child = Reaped(
        common::child("producer_entry", CHILD_ENV, &format!("{name},{n},{batch}"))
            .spawn()
            .unwrap(),
    );
    let mut gen = Rng(0x9e37_79b9_7f4a_7c15 ^ batch);
    let mut interrupt = never_interrupted();
    let mut expected = Vec::new();
    let mut got = vec![0u8; max];
    for i in 0..n {
        let m = rx
            .peek_wait(Some(Duration::from_secs(60)), &mut interrupt)
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} never arrived"));
        message(&mut gen, i, max, &mut expected);
        assert_eq!(m.len(), expected.len(), "message {i}: wrong length");
        rx.read(&m, &mut got);
        assert_eq!(&got[..m.len()], &expected[..], "message {i} differs");
        rx.consume(m);
        if i % batch.max(1) == 0 {
            rx.release();
        }
    }
    rx.release();
    assert!(rx.peek().unwrap().is_none(), "more messages than sent");
    assert!(child.wait().unwrap().success());
    Ring::remove(&loc).unwrap();
}

#[test]
fn ten_million_messages_exactly_once_in_order_every_batch_size() {
    // 10^7 in all: most through the batched path, a million each through the others.
    stream(1_000_000, 1);
    stream(1_000_000, 7);
    stream(7_000_000, 64);
    stream(1_000_000, 1000);
}
