//! Uncontended lock+unlock round trips from Rust: memspace's `Mutex` and `RwLock` next to
//! `std::sync::Mutex`. Run with `cargo run --release -p memspace --example bench_locks`.
//! Prints one line per case: median, min and max of 7 runs, in nanoseconds per round trip.

use std::hint::black_box;
use std::time::Instant;

use memspace::{Location, Mutex, RwLock};

const N: u32 = 2_000_000;

fn measure(name: &str, mut f: impl FnMut()) {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / f64::from(N)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "{name:<28} median {:7.1} ns  min {:7.1}  max {:7.1}",
        runs[3], runs[0], runs[6]
    );
}

fn main() -> memspace::Result<()> {
    let base = format!("/memspace-bench-rs-{}", std::process::id());
    let m = Mutex::create_named(&format!("{base}-m"))?;
    let l = RwLock::create_named(&format!("{base}-rw"))?;
    let std_m = std::sync::Mutex::new(0u64);
    measure("std::sync::Mutex", || {
        *black_box(&std_m).lock().unwrap() += 1;
    });
    measure("memspace::Mutex", || {
        drop(black_box(m.lock().unwrap()));
    });
    measure("memspace::RwLock write", || {
        drop(black_box(l.write().unwrap()));
    });
    measure("memspace::RwLock read", || {
        drop(black_box(l.read().unwrap()));
    });
    drop((m, l));
    Mutex::remove(&Location::Name(format!("{base}-m")))?;
    RwLock::remove(&Location::Name(format!("{base}-rw")))?;
    Ok(())
}
