//! samgate: the Secure Application Model gateway for Microsoft CSP control panel vendors.
//!
//! The modules, alphabetically; docs/ARCHITECTURE.md gives the map and the dependency direction
//! (`web`, `jobs` and `cli` on top; `db` and `vault` at the bottom).

/// API clients and their keys: issuing, hashing, verifying (cached), scoping.
pub mod api_keys;
/// The application object shared by requests and jobs.
pub mod app;
/// The CPV app's consent in partners' customer tenants: customer pages, grant, remove, bulk runs.
pub mod app_consents;
/// Access-token cache, single-flight refresh, rotation persistence.
pub mod broker;
/// The hasher of the in-memory caches on the proxy's hot path.
pub mod cache;
/// Command line: `serve`, `demo`, `migrate`.
pub mod cli;
/// Time as a parameter.
pub mod clock;
/// Typed configuration from the environment, validated at start.
pub mod config;
/// The customer directory: each partner's customers and GDAP relationships, and the proxy's gate.
pub mod customers;
/// The only place with SQL; migrations.
pub mod db;
/// `samgate doctor`: a configuration checked against the services it names, with fixes.
pub mod doctor;
/// Domain words as types: tenant ids, partner status, customer access facts.
pub mod domain;
/// Fuzz entry points over untrusted-input parsers (used by `fuzz/` and the corpus replay test).
pub mod fuzzing;
/// Typed Microsoft Graph calls samgate makes itself (GDAP relationships).
pub mod graph;
/// The owner of every partner and customer state transition (evidence in, state out).
pub mod health;
/// Microsoft identity platform client: authorize URL, code redemption, refresh, ID tokens, errors.
pub mod identity;
/// Background and on-demand jobs: key rotation, keep-alive, clean-up.
pub mod jobs;
/// Offboarding: app consents removed, grant crypto-shredded, invitations revoked.
pub mod lifecycle;
/// A private PostgreSQL cluster from the machine's own binaries (demo and tests).
pub mod local_pg;
/// Partner consent onboarding: invitations and consent completion.
pub mod onboarding;
/// Typed Partner Center calls samgate makes itself; Partner Center's error model.
pub mod partner_center;
/// The partner directory: cached partner lookups by tenant id, for the proxy's hot path.
pub mod partners;
/// Forwarding rules, header policy, retries and `Retry-After`, call records.
pub mod proxy;
/// Starting the server: the one launch used by `serve`, `demo` and the tests.
pub mod server;
/// CPV staff accounts: roles, Argon2id passwords, throttled sign-in, account changes.
pub mod staff;
/// Logging set-up.
pub mod telemetry;
/// Envelope encryption of secrets at rest; key ring; rotation.
pub mod vault;
/// The only module that knows axum: pages, API, health, middleware, server loop.
pub mod web;
/// Standard Webhooks: outbox, signed at-least-once delivery, secret rotation, SSRF guard.
pub mod webhooks;
