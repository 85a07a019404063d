#![no_main]
//! See `samgate::fuzzing::oauth_callback` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::oauth_callback(data));
