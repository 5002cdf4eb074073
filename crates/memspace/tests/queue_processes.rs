//! The queue between real processes: 4 producer and 4 consumer processes (the test binary
//! re-executes itself), 10^6 messages per producer, variable sizes, each carrying its producer,
//! sequence number and a checksum of its body. The received multiset must equal the sent one:
//! nothing lost, nothing duplicated, every body intact, and each producer's messages in order.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use memspace::mpmc::{Queue, QueueOptions};
use memspace::Location;

mod common;
use common::{checksum, unique, Reaped};

const ROLE_ENV: &str = "MEMSPACE_TEST_QUEUE_ROLE";
const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;
const PER_PRODUCER: u64 = 1_000_000;

fn never() -> bool {
    false
}

/// Message `i` of producer `p`: 8 bytes producer, 8 bytes sequence, 8 bytes checksum, body.
fn message(p: u64, i: u64, out: &mut Vec<u8>) {
    let r = (i ^ (p << 40)).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let len = if r % 64 == 0 {
        (r >> 8) % 2000
    } else {
        (r >> 8) % 40
    } as usize;
    out.clear();
    out.extend_from_slice(&p.to_le_bytes());
    out.extend_from_slice(&i.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend((0..len).map(|k| (r >> (k % 8 * 8)) as u8 ^ k as u8));
    let sum = checksum(&out[24..]);
    out[16..24].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn child_entry() {
    let Ok(arg) = std::env::var(ROLE_ENV) else {
        return;
    };
    let parts: Vec<&str> = arg.split(',').collect();
    let q = Queue::open(Location::Name(parts[1].to_owned())).unwrap();
    let mut interrupt = never;
    if parts[0] == "producer" {
        let p: u64 = parts[2].parse().unwrap();
        let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| Vec::new()).collect();
        let mut i = 0;
        while i < PER_PRODUCER {
            let k = 32.min(PER_PRODUCER - i) as usize;
            for (j, b) in bufs.iter_mut().take(k).enumerate() {
                message(p, i + j as u64, b);
            }
            let items: Vec<&[u8]> = bufs.iter().take(k).map(Vec::as_slice).collect();
            let mut done = 0;
            while done < k {
                done += q
                    .push_many(
                        &items[done..],
                        Some(Duration::from_secs(60)),
                        &mut interrupt,
                    )
                    .unwrap();
            }
            i += k as u64;
        }
    } else {
        // Consumer: report (producer, sequence) pairs on stdout, in the order taken, until
        // the queue has been empty for a while after the parent says all producers are done
        // (the parent closes our stdin).
        let mut out = std::io::BufWriter::new(std::fs::File::create(parts[2]).unwrap());
        let mut last = vec![None::<u64>; PRODUCERS as usize];
        let stdin_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stdin_done.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        loop {
            // Busy: the consumer lock was kept by another consumer throughout (one preempted
            // while holding it, on a loaded machine): try again, as for an empty queue.
            let ms = match q.pop_many(64, Some(Duration::from_millis(100)), &mut interrupt) {
                Ok(ms) => ms,
                Err(memspace::Error::Channel(memspace::ChannelError::Busy { .. })) => Vec::new(),
                Err(e) => panic!("{e}"),
            };
            if ms.is_empty() {
                if stdin_done.load(std::sync::atomic::Ordering::SeqCst) && q.is_empty() {
                    break;
                }
                continue;
            }
            for m in ms {
                let p = u64::from_le_bytes(m[..8].try_into().unwrap());
                let i = u64::from_le_bytes(m[8..16].try_into().unwrap());
                let sum = u64::from_le_bytes(m[16..24].try_into().unwrap());
                assert_eq!(checksum(&m[24..]), sum, "message {p}/{i} corrupt");
                let mut want = Vec::new();
                message(p, i, &mut want);
                assert_eq!(m, want, "message {p}/{i} differs");
                if let Some(l) = last[p as usize] {
                    assert!(i > l, "producer {p}: {i} after {l}");
                }
                last[p as usize] = Some(i);
                writeln!(out, "{p} {i}").unwrap();
            }
        }
        out.flush().unwrap();
    }
}

#[test]
fn four_by_four_processes_million_each_exactly_once() {
    if std::env::var(ROLE_ENV).is_ok() {
        return;
    }
    let name = unique("queue");
    let loc = Location::Name(name.clone());
    let q = QueueOptions::new(loc.clone(), 1 << 16).create().unwrap();
    let spawn = |role: String, stdin: Stdio, stdout: Stdio| {
        Reaped(
            common::child("child_entry", ROLE_ENV, &role)
                .stdin(stdin)
                .stdout(stdout)
                .spawn()
                .unwrap(),
        )
    };
    let logs: Vec<String> = (0..CONSUMERS)
        .map(|c| {
            common::temp_path(&format!("queue-log-{c}"))
                .display()
                .to_string()
        })
        .collect();
    let mut consumers: Vec<_> = logs
        .iter()
        .map(|log| {
            spawn(
                format!("consumer,{name},{log}"),
                Stdio::piped(),
                Stdio::null(),
            )
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| spawn(format!("producer,{name},{p}"), Stdio::null(), Stdio::null()))
        .collect();
    for mut p in producers {
        assert!(p.wait().unwrap().success(), "a producer failed");
    }
    for c in &mut consumers {
        drop(c.stdin.take());
    }
    let mut counts = vec![vec![0u32; PER_PRODUCER as usize]; PRODUCERS as usize];
    for (mut c, log) in consumers.into_iter().zip(&logs) {
        assert!(c.wait().unwrap().success(), "a consumer failed");
        for line in BufReader::new(std::fs::File::open(log).unwrap()).lines() {
            let line = line.unwrap();
            let (p, i) = line.split_once(' ').unwrap();
            counts[p.parse::<usize>().unwrap()][i.parse::<usize>().unwrap()] += 1;
        }
        std::fs::remove_file(log).unwrap();
    }
    for (p, c) in counts.iter().enumerate() {
        let lost = c.iter().filter(|&&n| n == 0).count();
        let dup = c.iter().filter(|&&n| n > 1).count();
        assert_eq!((lost, dup), (0, 0), "producer {p}: lost, duplicated");
    }
    assert!(q.is_empty());
    Queue::remove(&loc).unwrap();
}
