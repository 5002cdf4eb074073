//! Fuzz entry points: one plain function over `&[u8]` per target, for everything that parses
//! memory or input. Not an API (hidden from the docs, compiled only with the `fuzzing` feature
//! or for the crate's own tests).
//!
//! Each function decodes its input into a state and a script, runs the code under test on it
//! and checks what must hold whatever the bytes were: no panic, no out-of-bounds access, no
//! loop that does not end, every result within the bounds the caller relies on and, where
//! the input left the structure intact, the same answer as a plain model. A violated
//! property panics, which is how libFuzzer (and the replay test) sees a finding.
//!
//! Callers:
//! - the cargo-fuzz targets in `fuzz/fuzz_targets/` (one file per entry of [`TARGETS`],
//!   nightly, `make fuzz` / `make fuzz-smoke`);
//! - the unit test `replay_corpus` below, which runs every file saved under
//!   `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the same function on
//!   stable, as part of `cargo test`;
//! - the Miri test `miri_smoke` below, which runs each target on a few generated inputs, so
//!   that the channel targets' mapping-like heap arena is checked by Miri too.
//!
//! This module sits above every other one (it may use any of them); nothing imports it.

mod broadcast;
mod channels;
mod data;
mod fs;
mod lock;
mod shared_fs;

pub use broadcast::broadcast;
pub use channels::{queue, ring};
pub use data::{codec, header, parts};
pub use fs::{glob, path};
pub use lock::mutex_word;
pub use shared_fs::shared_fs;

/// A fuzz target's function.
pub type Target = fn(&[u8]);

/// Every target: its name (the file in `fuzz/fuzz_targets/`, the folder in `fuzz/corpus/`)
/// and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("header", header),
    ("ring", ring),
    ("queue", queue),
    ("parts", parts),
    ("codec", codec),
    ("path", path),
    ("glob", glob),
    ("mutex_word", mutex_word),
    ("shared_fs", shared_fs),
    ("broadcast", broadcast),
];

/// A cursor over fuzz input that never fails: past the end it yields zeros, so every input
/// decodes to some state and script.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    pub(crate) fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let src = self.take(2);
        b[..src.len()].copy_from_slice(src);
        u16::from_le_bytes(b)
    }

    pub(crate) fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let src = self.take(8);
        b[..src.len()].copy_from_slice(src);
        u64::from_le_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::TARGETS;
    use std::path::{Path, PathBuf};

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
    }

    /// Every saved input (the corpus libFuzzer grew, and the minimised reproducers of past
    /// findings) through its target. A target without a folder is fine; an unknown folder is
    /// not (a renamed target must take its corpus along).
    #[test]
    #[cfg_attr(miri, ignore)] // file system access; `miri_smoke` covers the targets under Miri
    fn replay_corpus() {
        let mut total = 0;
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                if name.starts_with('.') {
                    continue;
                }
                let target = TARGETS
                    .iter()
                    .find(|(t, _)| *t == name)
                    .unwrap_or_else(|| panic!("{kind}/{name} belongs to no fuzz target"))
                    .1;
                let mut files: Vec<_> = std::fs::read_dir(entry.path())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.is_file())
                    .collect();
                files.sort();
                for f in files {
                    let data = std::fs::read(&f).unwrap();
                    // A panic names the file through the hook's message; say which it was.
                    let r = std::panic::catch_unwind(|| target(&data));
                    assert!(r.is_ok(), "fuzz input {} fails", f.display());
                    total += 1;
                }
            }
        }
        eprintln!("replayed {total} saved fuzz inputs");
    }

    /// One input through one target, for looking at a finding with the test build's panic
    /// message and backtrace: `FUZZ_INPUT=ring:$PWD/fuzz/artifacts/ring/crash-... cargo test
    /// -p memspace --lib fuzzing::tests::one_input -- --nocapture` (an absolute path: tests
    /// run in crates/memspace; nothing happens without the variable).
    #[test]
    #[cfg_attr(miri, ignore)]
    fn one_input() {
        let Ok(spec) = std::env::var("FUZZ_INPUT") else {
            return;
        };
        let (name, file) = spec.split_once(':').expect("FUZZ_INPUT=target:file");
        let data = std::fs::read(file).expect("readable input");
        let target = TARGETS.iter().find(|(t, _)| *t == name).expect("a target");
        (target.1)(&data);
    }

    /// `cases` inputs from a fixed generator through `target`.
    fn generated(name: &str, target: super::Target, cases: usize) {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..cases {
            let len = (next() % 600) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Every other case starts from an all-zero (valid, empty) state with a script
            // of small operation bytes, which reaches the protocols' deeper paths.
            if i % 2 == 0 {
                for (j, b) in data.iter_mut().enumerate() {
                    *b = if j < 64 { 0 } else { *b % 12 };
                }
            }
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(r.is_ok(), "{name} fails on generated case {i}: {data:02x?}");
        }
    }

    /// Each target on a few inputs from a fixed generator (Miri runs this in `make miri`; on
    /// a normal build it is a cheap smoke test).
    #[test]
    fn miri_smoke() {
        let cases = if cfg!(miri) { 6 } else { 200 };
        for &(name, target) in TARGETS {
            // The filesystem stamps nodes with the wall clock, which Miri's isolation refuses;
            // its path and glob code has Miri coverage through the fs::path and fs::glob tests.
            if cfg!(miri) && matches!(name, "path" | "glob") {
                continue;
            }
            // The shared filesystem (wall clock too) runs in `miri_shared_fs`.
            if name == "shared_fs" {
                continue;
            }
            generated(name, target, cases);
        }
    }

    /// The shared filesystem's target on a few generated inputs: `make miri` runs it with
    /// isolation off (the filesystem reads the wall clock and the process id).
    #[test]
    fn miri_shared_fs() {
        generated(
            "shared_fs",
            super::shared_fs,
            if cfg!(miri) { 2 } else { 40 },
        );
    }
}
