//! A partner's life after consent: the health state machine (`healthy` ⇄ `degraded`, →
//! `needs_consent`/`mfa_required` on Microsoft's word, → `offboarded`), each change written with
//! its audit record and webhook event in one transaction, and offboarding (app consents removed,
//! grant crypto-shredded, invitations revoked). `health` depends only on `db` and `webhooks`, so
//! the broker can use it; `offboard` sits above the broker.

mod app_consents;
pub mod health;
mod offboard;

pub use offboard::{OffboardError, OffboardReport, offboard};
