//! Multi-process crash tests of the Rust API: a child process (this test binary re-run with
//! `MEMSPACE_CRASH_CHILD` set) takes a lock, reports it, and is killed with SIGKILL; the
//! parent must get the lock within the 100 ms promise and be told `owner_died`. And a child
//! whose held mutex is written over by the parent releases it without crashing.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use memspace::{Location, Mutex, RwLock, Segment};

mod common;
use common::{unique, Reaped};

const CHILD_ENV: &str = "MEMSPACE_CRASH_CHILD";

/// In the child: take the lock named in the environment as asked, say so, and wait to die.
#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child: nothing to do
    };
    let (what, name) = spec.split_once(':').expect("what:name");
    let loc = Location::Name(name.to_owned());
    match what {
        "mutex" => {
            let m = Mutex::open(loc).unwrap();
            let g = m.lock().unwrap();
            println!("MEMSPACE-CHILD-HOLDS");
            std::thread::sleep(Duration::from_secs(3600));
            drop(g);
        }
        "read" | "write" => {
            let l = RwLock::open(loc).unwrap();
            if what == "read" {
                let g = l.read().unwrap();
                println!("MEMSPACE-CHILD-HOLDS");
                std::thread::sleep(Duration::from_secs(3600));
                drop(g);
            } else {
                let g = l.write().unwrap();
                println!("MEMSPACE-CHILD-HOLDS");
                std::thread::sleep(Duration::from_secs(3600));
                drop(g);
            }
        }
        "release" => {
            // Hold, wait for the parent's word, release, and say how the release went.
            let m = Mutex::open(loc).unwrap();
            m.raw_lock(None, &mut || false).unwrap();
            println!("MEMSPACE-CHILD-HOLDS");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            match m.raw_unlock() {
                Ok(()) => println!("MEMSPACE-CHILD-RELEASED"),
                Err(e) => println!("MEMSPACE-CHILD-REFUSED {e}"),
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Starts a child that takes the lock `name` as `what` says, and returns once it holds it.
fn spawn_holder(what: &str, name: &str) -> Reaped {
    spawn_holder_with(what, name).0
}

/// [`spawn_holder`], also returning the rest of the child's stdout (its stdin is piped).
fn spawn_holder_with(what: &str, name: &str) -> (Reaped, BufReader<std::process::ChildStdout>) {
    let mut child = Reaped(
        common::child("child_entry", CHILD_ENV, &format!("{what}:{name}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        if line.contains("MEMSPACE-CHILD-HOLDS") {
            break;
        }
    }
    (child, out)
}

fn kill(mut child: Reaped) -> Instant {
    let t = Instant::now();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    t
}

#[test]
fn killed_mutex_holder_is_replaced_with_owner_died() {
    let n = unique("crash-mutex");
    let m = Mutex::create_named(&n).unwrap();
    for _ in 0..3 {
        let child = spawn_holder("mutex", &n);
        assert!(matches!(
            m.lock_timeout(Duration::from_millis(50)),
            Err(memspace::Error::Lock(memspace::LockError::Timeout { .. }))
        ));
        let killed = kill(child);
        let g = m.lock_timeout(Duration::from_secs(5)).unwrap();
        assert!(killed.elapsed() < Duration::from_millis(100));
        assert!(g.owner_died());
    }
    Mutex::remove(&Location::Name(n)).unwrap();
}

#[test]
fn killed_writer_lets_readers_in_and_killed_reader_lets_writer_in() {
    let n = unique("crash-rw");
    let l = RwLock::create_named(&n).unwrap();

    let child = spawn_holder("write", &n);
    assert!(l
        .read_with(Some(Duration::from_millis(50)), &mut || false)
        .is_err());
    let killed = kill(child);
    let r = l
        .read_with(Some(Duration::from_secs(5)), &mut || false)
        .unwrap();
    assert!(killed.elapsed() < Duration::from_millis(100));
    assert!(r.owner_died());
    drop(r);

    let child = spawn_holder("read", &n);
    assert!(l
        .write_with(Some(Duration::from_millis(50)), &mut || false)
        .is_err());
    let killed = kill(child);
    let w = l
        .write_with(Some(Duration::from_secs(5)), &mut || false)
        .unwrap();
    assert!(killed.elapsed() < Duration::from_millis(100));
    assert!(w.owner_died());
    drop(w);
    RwLock::remove(&Location::Name(n)).unwrap();
}

/// The word of a held mutex written over by another process (8 bytes at each offset of the
/// 128-byte area in turn): the holder's release never crashes it (it releases, or refuses to
/// write over a word that names someone else), and the next locker gets the lock or a
/// `Corrupt` error, within its timeout. With glibc's robust mutex the release wrote through
/// the robust-list pointers kept in the area and the holder died of SIGSEGV.
#[test]
fn stray_write_into_a_held_mutex_never_kills_its_holder() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for offset in (0..128u64).step_by(8) {
        let n = unique("crash-stray");
        let m = Mutex::create_named(&n).unwrap();
        let raw = Segment::open_named(&n).unwrap();
        let mut hdr = [0u8; 8];
        raw.read_at(48, &mut hdr).unwrap(); // the header's lock_off
        let area = u64::from_ne_bytes(hdr);
        let (mut child, mut out) = spawn_holder_with("release", &n);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        raw.write_at(area + offset, &seed.to_ne_bytes()).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "offset {offset}: the holder ended with {status}"
        );
        assert!(
            line.contains("MEMSPACE-CHILD-RELEASED") || line.contains("MEMSPACE-CHILD-REFUSED"),
            "offset {offset}: {line:?}"
        );
        let t0 = Instant::now();
        match m.lock_timeout(Duration::from_secs(1)) {
            Ok(_) | Err(memspace::Error::Segment(memspace::SegmentError::Corrupt { .. })) => {}
            Err(e) => panic!("offset {offset}: a later locker got {e}"),
        }
        assert!(t0.elapsed() < Duration::from_millis(1500));
        drop((m, raw));
        Mutex::remove(&Location::Name(n)).unwrap();
    }
}
