//! samgate's integration tests: one binary, real PostgreSQL, real HTTP.

#[allow(dead_code, reason = "the harness offers more than every test uses")]
mod harness;

mod admin;
mod admin_activity;
mod admin_customers;
mod admin_feedback;
mod admin_journey;
mod admin_mfa;
mod admin_sso;
mod admin_webhooks;
mod api_keys;
mod browser;
mod cli;
mod consent;
mod contract;
mod customers;
mod doctor;
mod examples;
mod faults;
mod foundation;
mod hardening;
mod id_token;
mod lifecycle;
mod ops;
mod proxy;
mod scale_out;
mod snapshots;
mod vault_at_rest;
mod webhooks;
