//! What the integration tests share: unique segment names, re-running this test binary as a
//! child process, and the checksum the streaming tests put in their messages.
//!
//! Each test file is its own crate and includes this module with `mod common;`. Not every file
//! uses every item, so the items only some files use carry `#[allow(dead_code)]` (an `expect`
//! would fail in the files that do use them).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};

/// A segment name that no other test, test binary or test run uses:
/// `/memspace-it-{tag}-{pid}-{n}`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    // SYNC: a counter, nothing else is published through it: any order gives distinct values.
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/memspace-it-{tag}-{}-{n}", std::process::id())
}

/// A path in the temporary directory, unique as [`unique`] names are.
#[allow(dead_code, reason = "used by some of the test files only")]
pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(unique(tag).trim_start_matches('/'))
}

/// A command that re-runs this test binary as a child process: only the test `entry` (a test
/// that returns at once unless `env` is set), with `env=arg` in its environment. The caller
/// sets up its stdio and starts it.
pub fn child(entry: &str, env: &str, arg: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(env, arg);
    cmd
}

/// A child process that is killed (`SIGKILL`) and reaped when dropped, so that a failing test
/// leaves no process behind. Killing one that was already waited for does nothing: `Child`
/// keeps its exit status and never signals a reaped pid.
#[allow(dead_code, reason = "used by some of the test files only")]
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for Reaped {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// FNV-1a over a message body, the checksum the streaming tests send with every message.
#[allow(dead_code, reason = "used by some of the test files only")]
pub fn checksum(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
