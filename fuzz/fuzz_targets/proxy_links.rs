#![no_main]
//! See `samgate::fuzzing::proxy_links` for the input format and the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| samgate::fuzzing::proxy_links(data));
