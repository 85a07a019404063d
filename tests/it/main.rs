//! samgate's integration tests: one binary, real PostgreSQL, real HTTP.

#[allow(dead_code, reason = "the harness offers more than every test uses")]
mod harness;

mod cli;
mod consent;
mod foundation;
