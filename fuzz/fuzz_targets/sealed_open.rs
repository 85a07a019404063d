#![no_main]
//! See `samgate::fuzzing::sealed_open` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::sealed_open(data));
