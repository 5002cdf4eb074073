//! Multi-process tests of the shared filesystem: real processes (this test binary re-run with
//! `MEMSPACE_SFS_CHILD` set) writing, reading and being killed with SIGKILL at random points.
//!
//! Every file a writer publishes is named by the hash of its content, so any reader can
//! check every file it reads; after every kill the parent runs the full invariant check.

#![cfg(target_os = "linux")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use memspace::fs::{OpenMode, SharedFileSystem, SharedFsOptions};
use memspace::Location;

mod common;
use common::{checksum, unique, Reaped};

const CHILD_ENV: &str = "MEMSPACE_SFS_CHILD";
/// Writer processes in the chaos test.
const WRITERS: u64 = 3;

/// A small xorshift generator (no dependency; only spread matters).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn content(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(64),
        1 | 2 => rng.below(8 << 10),
        _ => rng.below(96 << 10),
    } as usize;
    let mut v = vec![0u8; len];
    let mut x = rng.next();
    for b in &mut v {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        *b = (x >> 56) as u8;
    }
    v
}

fn hash_name(data: &[u8]) -> String {
    format!("{:016x}-{}", checksum(data), data.len())
}

/// Checks one published file: its name is the hash and length of its content.
fn verify(name: &str, data: &[u8]) -> bool {
    name == hash_name(data)
}

/// A writer: publishes files (several writes into a temporary name, then a rename), rewrites
/// and removes its own files, holds some open, until killed.
fn writer(fs: &SharedFileSystem, id: u64, seed: u64) {
    let mut rng = Rng(seed | 1);
    let dir = format!("/w{id}");
    fs.mkdir(&dir, true).unwrap();
    let mut held = Vec::new();
    let mut k = 0u64;
    loop {
        k += 1;
        match rng.below(10) {
            0..=5 => {
                let data = content(&mut rng);
                let tmp = format!("{dir}/tmp-{seed}-{k}");
                let Ok(mut f) = fs.open_file(&tmp, OpenMode::Write, 0, Some(Duration::ZERO)) else {
                    // Full (nodes or quota): make room by removing one of its files.
                    if let Ok(names) = fs.listdir(&dir) {
                        if let Some(n) = names.first() {
                            let _ = fs.remove_file(&format!("{dir}/{n}"));
                        }
                    }
                    continue;
                };
                let mut rest = &data[..];
                let mut ok = true;
                while !rest.is_empty() {
                    let n = (rng.below(16 << 10) as usize + 1).min(rest.len());
                    if f.write(&rest[..n]).is_err() {
                        ok = false;
                        break;
                    }
                    rest = &rest[n..];
                }
                if f.close().is_err() || !ok {
                    let _ = fs.remove_file(&tmp);
                    continue;
                }
                let dst = format!("{dir}/{}", hash_name(&data));
                if fs.rename(&tmp, &dst).is_err() {
                    let _ = fs.remove_file(&tmp);
                }
            }
            6 => {
                if let Ok(names) = fs.listdir(&dir) {
                    if let Some(n) = names.get(rng.below(names.len() as u64) as usize) {
                        let _ = fs.remove_file(&format!("{dir}/{n}"));
                    }
                }
            }
            7 => {
                if let Ok(names) = fs.listdir(&dir) {
                    if let Some(n) = names.get(rng.below(names.len() as u64) as usize) {
                        if let Ok(h) = fs.open_file(
                            &format!("{dir}/{n}"),
                            OpenMode::Read,
                            0,
                            Some(Duration::ZERO),
                        ) {
                            held.push(h);
                        }
                    }
                }
                if held.len() > 3 {
                    held.remove(0);
                }
            }
            8 => {
                let sub = format!("{dir}/sub{}", rng.below(3));
                let _ =
                    fs.import_tree(&[(&format!("{sub}/a"), b"a"), (&format!("{sub}/b"), b"bb")]);
                let _ = fs.rmtree(&sub);
            }
            _ => {
                // Rewrite an own file in place (r+b), then put the right name back.
                if let Ok(names) = fs.listdir(&dir) {
                    if let Some(n) = names.iter().find(|n| !n.starts_with("tmp")) {
                        let p = format!("{dir}/{n}");
                        if let Ok(mut f) =
                            fs.open_file(&p, OpenMode::ReadWrite, 0, Some(Duration::ZERO))
                        {
                            let data = f.read_to_end().unwrap_or_default();
                            let _ = f.seek(0, 0);
                            let _ = f.write(&data);
                            let _ = f.close();
                        }
                    }
                }
            }
        }
    }
}

/// A reader: reads every published file (handles and views) and checks it; exits non-zero at
/// the first torn or wrong file. Reports how many it checked on stdout every second.
fn reader(fs: &SharedFileSystem, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut checked = 0u64;
    while Instant::now() < end {
        for p in fs.file_paths("/", false).unwrap() {
            let name = p.rsplit('/').next().unwrap();
            if name.starts_with("tmp") || p.contains("/sub") {
                continue;
            }
            let data = if checked % 2 == 0 {
                match fs.view(&p) {
                    // SAFETY: the view's bytes are valid and immutable while it lives.
                    Ok(v) => unsafe { std::slice::from_raw_parts(v.as_ptr(), v.len()) }.to_vec(),
                    Err(_) => continue,
                }
            } else {
                match fs.open_file(&p, OpenMode::Read, 0, Some(Duration::from_millis(200))) {
                    Ok(mut f) => f.read_to_end().unwrap(),
                    Err(_) => continue,
                }
            };
            assert!(
                verify(name, &data),
                "torn or wrong file {p}: {} bytes",
                data.len()
            );
            checked += 1;
        }
    }
    println!("CHECKED {checked}");
}

#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let fs = SharedFileSystem::open(Location::Name(parts[1].to_owned())).unwrap();
    match parts[0] {
        "writer" => writer(&fs, parts[2].parse().unwrap(), parts[3].parse().unwrap()),
        "reader" => reader(&fs, parts[2].parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
}

fn spawn(spec: &str, out: Stdio) -> Reaped {
    Reaped(
        common::child("child_entry", CHILD_ENV, spec)
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

struct Remove(Location);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = SharedFileSystem::remove(&self.0);
    }
}

/// SIGKILL a random writer every 50 ms for `MEMSPACE_SFS_CHAOS_SECS` (default 20) seconds
/// while the others and a reader work; after every kill the full invariant check passes,
/// and a watchdog fails the test if the filesystem makes no progress for 1 s.
#[test]
fn chaos_sigkill_writers() {
    let secs: u64 = std::env::var("MEMSPACE_SFS_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let name = unique("sfs-chaos");
    let loc = Location::Name(name.clone());
    let fs = SharedFileSystem::create(
        loc.clone(),
        &SharedFsOptions::new()
            .max_quota(16 << 20)
            .max_nodes(4096)
            .max_open(256),
    )
    .unwrap();
    let _rm = Remove(loc);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut writers: Vec<Reaped> = (0..WRITERS)
        .map(|i| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            spawn(&format!("writer:{name}:{i}:{seed}"), Stdio::null())
        })
        .collect();
    let mut reader = spawn(&format!("reader:{name}:{secs}"), Stdio::piped());
    let start = Instant::now();
    let (mut kills, mut checks) = (0u64, 0u64);
    let mut last_gen = fs.info().unwrap().generation;
    let mut last_move = Instant::now();
    let mut longest = Duration::ZERO;
    let mut rng = Rng(seed);
    let mut tick = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        // One kill per 50 ms tick (the respawn and the check take part of the tick).
        tick += Duration::from_millis(50);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        let i = rng.below(WRITERS) as usize;
        writers[i].kill().unwrap();
        writers[i].wait().unwrap();
        kills += 1;
        let rep = fs.fsck(true).unwrap();
        assert!(rep.is_ok(), "after kill {kills}: {:?}", rep.problems);
        assert_eq!(rep.used_bytes, rep.charged_bytes);
        checks += 1;
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        writers[i] = spawn(&format!("writer:{name}:{i}:{seed}"), Stdio::null());
        let g = fs.info().unwrap().generation;
        if g == last_gen {
            assert!(
                last_move.elapsed() < Duration::from_secs(1),
                "no progress for 1 s after {kills} kills"
            );
        } else {
            longest = longest.max(last_move.elapsed());
            last_gen = g;
            last_move = Instant::now();
        }
    }
    drop(writers);
    let out = reader.wait_with_output_reaped();
    let rep = fs.fsck(true).unwrap();
    assert!(rep.is_ok(), "at the end: {:?}", rep.problems);
    assert_eq!(rep.dead_entries, 0);
    assert_eq!(rep.open_entries, 0);
    // With everyone gone, `used` is exactly the committed files' charge.
    assert_eq!(fs.stats().unwrap().used_bytes, rep.charged_bytes);
    let info = fs.info().unwrap();
    assert!(info.generation > 1000, "too little happened: {info:?}");
    eprintln!(
        "chaos: {kills} kills, {checks} fsck passes, longest stall {longest:?}, reader: {}; {} commits, {} files at the end",
        out.trim(),
        info.generation,
        info.files
    );
    assert!(out.contains("CHECKED"), "the reader failed: {out}");
}

trait WaitOut {
    fn wait_with_output_reaped(&mut self) -> String;
}
impl WaitOut for Reaped {
    fn wait_with_output_reaped(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        let st = self.0.wait().unwrap();
        assert!(st.success(), "reader exited with {st}: {s}");
        s
    }
}
