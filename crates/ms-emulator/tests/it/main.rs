//! Integration tests: a real emulator on port 0, driven over HTTP with reqwest.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod harness;

mod control_api;
mod customers;
mod faults;
mod graph;
mod identity;
mod msal;
mod msgraph;
mod partner_center;
mod recorded;
mod refresh;
mod scale;
