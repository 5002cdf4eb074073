//! `memspace::fuzzing::broadcast` under libFuzzer (what it checks: its docs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memspace::fuzzing::broadcast(data));
