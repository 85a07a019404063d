#![no_main]
//! See `samgate::fuzzing::id_token` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::id_token(data));
