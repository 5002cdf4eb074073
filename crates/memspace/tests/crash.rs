//! Multi-process crash tests of the Rust API: a child process (this test binary re-run with
//! `MEMSPACE_CRASH_CHILD` set) takes a lock, reports it, and is killed with SIGKILL; the
//! parent must get the lock at once and be told `owner_died`.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use memspace::{Location, Mutex, RwLock};

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
        other => panic!("unknown child role {other}"),
    }
}

/// Starts a child that takes the lock `name` as `what` says, and returns once it holds it.
fn spawn_holder(what: &str, name: &str) -> Reaped {
    let mut child = Reaped(
        common::child("child_entry", CHILD_ENV, &format!("{what}:{name}"))
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
    child
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
