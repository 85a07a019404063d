#![no_main]
//! See `samgate::fuzzing::proxy_headers` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::proxy_headers(data));
