//! samgate: the Secure Application Model gateway for Microsoft CSP control panel vendors.
//!
//! The modules, from the edges inwards (dependencies point down this list):

/// Command line: `serve`, `demo`, `migrate`.
pub mod cli;
/// The application object shared by requests and jobs.
pub mod app;
/// The only module that knows axum: pages, API, health, middleware, server loop.
pub mod web;
/// Typed configuration from the environment, validated at start.
pub mod config;
/// The only place with SQL; migrations.
pub mod db;
/// A private PostgreSQL cluster from the machine's own binaries (demo and tests).
pub mod local_pg;
/// Logging set-up.
pub mod telemetry;
/// Time as a parameter.
pub mod clock;
/// Envelope encryption of secrets at rest; key ring; rotation.
pub mod vault;
/// Microsoft identity platform client: authorize URL, code redemption, refresh, ID tokens, errors.
pub mod identity;
