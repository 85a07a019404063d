#![no_main]
//! See `samgate::fuzzing::error_bodies` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::error_bodies(data));
