//! The broadcast between real processes: the test binary re-executes itself as subscribers
//! (or as a publisher that is killed mid-stream).
//!
//! Every message carries its sequence number and a checksum of its body, random sizes from 0
//! to the broadcast's `max_message_size` through a small area (many wrap-arounds): every
//! subscriber must get every message published after it subscribed exactly once, in order,
//! intact.

use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Stdio};
use std::time::{Duration, Instant};

use memspace::broadcast::{Broadcast, BroadcastOptions, Overflow, Subscriber};
use memspace::spsc::never_interrupted;
use memspace::{ChannelError, Error, Location};

mod common;
use common::{checksum, unique, Reaped};

const SUBSCRIBER_ENV: &str = "MEMSPACE_TEST_BCAST_SUBSCRIBER";
const PUBLISHER_ENV: &str = "MEMSPACE_TEST_BCAST_PUBLISHER";
/// A wait this long means the broadcast is stuck: fail instead of hanging.
const STUCK: Duration = Duration::from_secs(60);

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Message `i` (16 bytes of sequence and checksum, then a body of a random size).
fn message(rng: &mut Rng, i: u64, max: usize, out: &mut Vec<u8>) {
    let r = rng.next();
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

/// The sequence number of an intact message (panics on a torn one).
fn check(m: &[u8]) -> u64 {
    assert!(m.len() >= 16, "a message of {} bytes", m.len());
    let sum = u64::from_le_bytes(m[8..16].try_into().unwrap());
    assert_eq!(sum, checksum(&m[16..]), "torn message");
    u64::from_le_bytes(m[..8].try_into().unwrap())
}

/// Subscriber child: `name,last[,stall_at]`. Subscribes, prints "ready", then reads (one
/// message at a time for the first thousand, then in batches) checking that the messages are
/// consecutive and intact, until the one with sequence `last`; prints "first count". With
/// `stall_at`, it stops reading after that many messages and sleeps (to be killed).
#[test]
fn subscriber_entry() {
    let Ok(arg) = std::env::var(SUBSCRIBER_ENV) else {
        return;
    };
    let parts: Vec<&str> = arg.split(',').collect();
    let (name, last) = (parts[0], parts[1].parse::<u64>().unwrap());
    let stall_at = parts.get(2).map(|s| s.parse::<u64>().unwrap());
    let b = Broadcast::open(Location::Name(name.to_owned())).unwrap();
    let mut rx = b.subscribe().unwrap();
    println!("ready");
    let mut interrupt = never_interrupted();
    let mut first = None;
    let mut count = 0u64;
    loop {
        if stall_at.is_some_and(|s| count >= s) {
            std::thread::sleep(Duration::from_secs(600));
        }
        let batch = if count < 1000 {
            rx.recv(Some(STUCK), &mut interrupt)
                .unwrap()
                .into_iter()
                .collect()
        } else {
            rx.recv_many(512, Some(STUCK), &mut interrupt).unwrap()
        };
        assert!(!batch.is_empty(), "no message within {STUCK:?}");
        for m in batch {
            let seq = check(&m);
            let first = *first.get_or_insert(seq);
            assert_eq!(seq, first + count, "lost, repeated or reordered");
            count += 1;
            if seq == last {
                println!("{first} {count}");
                assert!(rx.try_recv().unwrap().is_none(), "more messages than sent");
                return;
            }
        }
    }
}

fn spawn_subscriber(name: &str, arg: &str) -> (Reaped, BufReader<ChildStdout>) {
    let mut child = Reaped(
        common::child("subscriber_entry", SUBSCRIBER_ENV, &format!("{name},{arg}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    // (The test harness prints its own lines first.)
    while !next_line(&mut out).ends_with("ready") {}
    (child, out)
}

fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    assert!(
        out.read_line(&mut line).unwrap() > 0,
        "the child ended early"
    );
    line.trim().to_owned()
}

/// The subscriber's "first count" line.
fn result_of(out: &mut BufReader<ChildStdout>) -> (u64, u64) {
    loop {
        let line = next_line(out);
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        if let [first, count] = v[..] {
            return (first, count);
        }
    }
}

#[test]
fn four_subscriber_processes_a_million_messages_exactly_once_in_order() {
    let name = unique("bcast-million");
    let loc = Location::Name(name.clone());
    let b = BroadcastOptions::new(loc.clone(), 1 << 14)
        .create()
        .unwrap();
    let max = b.max_message_size() as usize;
    let n = 1_000_000u64;
    let subs: Vec<_> = (0..4)
        .map(|_| spawn_subscriber(&name, &(n - 1).to_string()))
        .collect();
    let mut tx = b.publisher().unwrap();
    let mut gen = Rng(0x9e37_79b9_7f4a_7c15);
    let mut interrupt = never_interrupted();
    let mut buf = Vec::new();
    // The first thousand one at a time, the rest in batches of every size up to 100.
    for i in 0..1000 {
        message(&mut gen, i, max, &mut buf);
        tx.push(&buf, Some(STUCK), &mut interrupt).unwrap();
    }
    let mut i = 1000;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    while i < n {
        let k = (i % 100 + 1).min(n - i);
        batch.resize_with(k as usize, Vec::new);
        for (j, m) in batch.iter_mut().enumerate() {
            message(&mut gen, i + j as u64, max, m);
        }
        let sent = tx
            .push_many(batch.iter().map(Vec::as_slice), Some(STUCK), &mut interrupt)
            .unwrap();
        assert_eq!(sent as u64, k);
        i += k;
    }
    for (mut child, mut out) in subs {
        assert_eq!(result_of(&mut out), (0, n));
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(b.info().unwrap().published, n);
    Broadcast::remove(&loc).unwrap();
}

#[test]
fn a_killed_subscriber_stops_holding_back_and_a_late_one_sees_the_rest() {
    let name = unique("bcast-kill");
    let loc = Location::Name(name.clone());
    let b = BroadcastOptions::new(loc.clone(), 1 << 12)
        .create()
        .unwrap();
    let max = b.max_message_size() as usize;
    let n = 60_000u64;
    let (mut steady, mut steady_out) = spawn_subscriber(&name, &(n - 1).to_string());
    let (mut doomed, _doomed_out) = spawn_subscriber(&name, &format!("{},2000", n - 1));
    let mut tx = b.publisher().unwrap();
    let mut gen = Rng(7);
    let mut interrupt = never_interrupted();
    let mut buf = Vec::new();
    let mut late = None;
    let mut killed = false;
    let mut i = 0;
    while i < n {
        if i == 20_000 && late.is_none() {
            late = Some(spawn_subscriber(&name, &(n - 1).to_string()));
        }
        message(&mut gen, i, max, &mut buf);
        match tx.push(&buf, Some(Duration::from_millis(300)), &mut interrupt) {
            Ok(()) => i += 1,
            // A slow (descheduled) steady subscriber: wait again.
            Err(Error::Channel(ChannelError::Timeout { .. })) if i < 2000 || killed => {}
            Err(Error::Channel(ChannelError::Timeout { .. })) => {
                // The stalled subscriber (alive) holds the publisher back until it dies.
                doomed.kill().unwrap();
                doomed.wait().unwrap();
                killed = true;
                let t0 = Instant::now();
                tx.push(&buf, Some(STUCK), &mut interrupt).unwrap();
                assert!(t0.elapsed() < Duration::from_secs(10), "dropped at once");
                i += 1;
            }
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    assert!(
        killed,
        "the stalled subscriber never held the publisher back"
    );
    assert_eq!(result_of(&mut steady_out), (0, n));
    assert!(steady.wait().unwrap().success());
    let (mut late, mut late_out) = late.unwrap();
    let (first, count) = result_of(&mut late_out);
    assert!(first >= 20_000, "the late subscriber saw message {first}");
    assert_eq!(first + count, n);
    assert!(late.wait().unwrap().success());
    Broadcast::remove(&loc).unwrap();
}

/// Publisher child: `name,overflow`. Publishes messages of the stream until it is killed.
#[test]
fn publisher_entry() {
    let Ok(arg) = std::env::var(PUBLISHER_ENV) else {
        return;
    };
    let (name, seed) = arg.split_once(',').unwrap();
    let b = Broadcast::open(Location::Name(name.to_owned())).unwrap();
    let max = b.max_message_size() as usize;
    let mut tx = b.publisher().unwrap();
    let mut gen = Rng(seed.parse().unwrap());
    let mut buf = Vec::new();
    for i in 0.. {
        message(&mut gen, i, max, &mut buf);
        tx.push(&buf, Some(STUCK), &mut never_interrupted())
            .unwrap();
    }
}

/// Takes a batch, checking it: (messages received, messages missed).
fn take(
    rx: &mut Subscriber,
    overflow: Overflow,
    timeout: Duration,
    expected: &mut u64,
) -> (u64, u64) {
    match rx.recv_many(64, Some(timeout), &mut never_interrupted()) {
        Ok(ms) => {
            for m in &ms {
                let seq = check(m);
                assert!(seq >= *expected, "repeated or reordered");
                if overflow == Overflow::Block {
                    assert_eq!(seq, *expected, "lost");
                }
                *expected = seq + 1;
            }
            (ms.len() as u64, 0)
        }
        Err(Error::Channel(ChannelError::Lagged { missed, .. })) => {
            assert_eq!(overflow, Overflow::Overwrite);
            (0, missed)
        }
        Err(e) => panic!("{e}"),
    }
}

fn killed_publisher(overflow: Overflow) {
    let name = unique("bcast-pubkill");
    let loc = Location::Name(name.clone());
    let b = BroadcastOptions::new(loc.clone(), 1 << 12)
        .overflow(overflow)
        .create()
        .unwrap();
    let mut rx = b.subscribe().unwrap();
    for round in 0..30u64 {
        let mut child = Reaped(
            common::child(
                "publisher_entry",
                PUBLISHER_ENV,
                &format!("{name},{}", round + 1),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        );
        let mut expected = 0u64; // every publisher starts its sequence at 0
        let (mut got, mut missed) = (0u64, 0u64);
        let until = Instant::now() + Duration::from_millis(20 + (round % 7) * 15);
        while Instant::now() < until || got == 0 {
            let (g, m) = take(&mut rx, overflow, STUCK, &mut expected);
            got += g;
            missed += m;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // What the dead publisher published is all there, intact; then nothing.
        loop {
            let (g, m) = take(&mut rx, overflow, Duration::ZERO, &mut expected);
            if g + m == 0 {
                break;
            }
            missed += m;
        }
        assert!(overflow == Overflow::Overwrite || missed == 0);
    }
    Broadcast::remove(&loc).unwrap();
}

#[test]
fn a_killed_publisher_never_delivers_half_a_message_block() {
    killed_publisher(Overflow::Block);
}

#[test]
fn a_killed_publisher_never_delivers_half_a_message_overwrite() {
    killed_publisher(Overflow::Overwrite);
}

#[test]
fn overwrite_mode_counts_what_a_stalled_subscriber_missed_exactly() {
    let loc = Location::Name(unique("bcast-lag"));
    let b = BroadcastOptions::new(loc.clone(), 1 << 12)
        .overflow(Overflow::Overwrite)
        .create()
        .unwrap();
    let mut rx = Broadcast::open(loc.clone()).unwrap().subscribe().unwrap();
    let mut tx = b.publisher().unwrap();
    let max = b.max_message_size() as usize;
    let mut gen = Rng(3);
    let mut buf = Vec::new();
    let n = 100_000u64;
    for i in 0..n {
        message(&mut gen, i, max, &mut buf);
        assert!(tx.try_push(&buf).unwrap(), "overwrite mode never refuses");
    }
    assert_eq!(rx.lag().unwrap(), n);
    let missed = match rx.recv(Some(Duration::ZERO), &mut never_interrupted()) {
        Err(Error::Channel(ChannelError::Lagged { missed, .. })) => missed,
        other => panic!("expected a lag, got {other:?}"),
    };
    let mut next = missed;
    while let Some(m) = rx.try_recv().unwrap() {
        assert_eq!(check(&m), next);
        next += 1;
    }
    assert_eq!(
        next, n,
        "what it missed plus what it received is everything"
    );
    assert_eq!(rx.missed(), missed);
    Broadcast::remove(&loc).unwrap();
}
