//! The hasher of the in-memory caches and maps a proxied call looks into (API keys, partners,
//! tokens, throttling, concurrency slots, HTTP metric handles): foldhash's keyed "quality" variant, seeded per process. The
//! standard library's SipHash was a few percent of a call's instructions (BENCHMARKS.md); the keys
//! are UUIDs and key digests, and a per-process random seed still keeps their placement unknowable
//! from outside.

/// Builds the hasher of one cache.
pub type Hasher = foldhash::quality::RandomState;
