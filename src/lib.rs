//! samgate: the Secure Application Model gateway for Microsoft CSP control panel vendors.
//!
//! The modules, from the edges inwards (dependencies point down this list):

/// The application object shared by requests and jobs.
pub mod app;
/// Command line: `serve`, `demo`, `migrate`.
pub mod cli;
/// Time as a parameter.
pub mod clock;
/// Typed configuration from the environment, validated at start.
pub mod config;
/// The only place with SQL; migrations.
pub mod db;
/// Microsoft identity platform client: authorize URL, code redemption, refresh, ID tokens, errors.
pub mod identity;
/// Background and on-demand jobs: key rotation, keep-alive, clean-up.
pub mod jobs;
/// A private PostgreSQL cluster from the machine's own binaries (demo and tests).
pub mod local_pg;
/// Partner consent onboarding: invitations and consent completion.
pub mod onboarding;
/// Typed Partner Center calls samgate makes itself; Partner Center's error model.
pub mod partner_center;
/// Logging set-up.
pub mod telemetry;
/// Envelope encryption of secrets at rest; key ring; rotation.
pub mod vault;
/// The only module that knows axum: pages, API, health, middleware, server loop.
pub mod web;
/// API clients and their keys: issuing, hashing, verifying (cached), scoping.
pub mod api_keys;
