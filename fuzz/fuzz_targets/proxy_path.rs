#![no_main]
//! See `samgate::fuzzing::proxy_path` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::proxy_path(data));
