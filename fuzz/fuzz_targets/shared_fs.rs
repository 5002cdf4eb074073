//! `memspace::fuzzing::shared_fs` under libFuzzer (what it checks: its docs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memspace::fuzzing::shared_fs(data));
