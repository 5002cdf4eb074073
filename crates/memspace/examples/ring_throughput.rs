//! Two-process ring throughput from Rust: this program is the consumer and re-executes itself
//! as the producer.
//!
//! ```sh
//! cargo run --release --example ring_throughput -- [message-size] [count] [batch]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use memspace::spsc::{never_interrupted, Ring, RingOptions};
use memspace::Location;

fn main() -> Result<(), memspace::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--producer") {
        let ring = Ring::open(Location::Name(args[2].clone()))?;
        let size: usize = args[3].parse().unwrap();
        let count: u64 = args[4].parse().unwrap();
        let batch: u64 = args[5].parse().unwrap();
        let mut tx = ring.producer()?;
        let msg = vec![7u8; size];
        let mut interrupt = never_interrupted();
        let mut sent = 0;
        while sent < count {
            let n = batch.min(count - sent);
            tx.push_many((0..n).map(|_| msg.as_slice()), None, &mut interrupt)?;
            sent += n;
        }
        return Ok(());
    }
    let size: usize = args.get(1).map_or(64, |s| s.parse().unwrap());
    let count: u64 = args.get(2).map_or(50_000_000, |s| s.parse().unwrap());
    let batch: u64 = args.get(3).map_or(256, |s| s.parse().unwrap());
    let name = format!("/memspace-ring-example-{}", std::process::id());
    let ring = RingOptions::new(Location::Name(name.clone()), 1 << 20).create()?;
    let mut rx = ring.consumer()?;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--producer",
            &name,
            &size.to_string(),
            &count.to_string(),
            &batch.to_string(),
        ])
        .spawn()
        .unwrap();
    let mut consume = || -> Result<(u64, f64), memspace::Error> {
        let mut interrupt = never_interrupted();
        let (mut got, mut bytes) = (0u64, 0u64);
        let mut buf = vec![0u8; size];
        let start = Instant::now();
        while got < count {
            let Some(m) = rx.peek_wait(Some(Duration::from_secs(30)), &mut interrupt)? else {
                panic!("producer stalled");
            };
            rx.read(&m, &mut buf);
            bytes += m.len() as u64;
            rx.consume(m);
            got += 1;
            if got % batch == 0 {
                rx.release();
            }
        }
        rx.release();
        Ok((bytes, start.elapsed().as_secs_f64()))
    };
    let result = consume();
    child.wait().unwrap();
    let (bytes, secs) = result?;
    Ring::remove(&Location::Name(name))?;
    println!(
        "{count} messages of {size} B in {secs:.3} s: {:.1} M msg/s, {:.2} GB/s (batch {batch})",
        count as f64 / secs / 1e6,
        bytes as f64 / secs / 1e9
    );
    Ok(())
}
