//! Domain words as types: a partner's health status and a customer's access facts. Each is an
//! `enum` stored in PostgreSQL as itself (`sqlx::Type`), never a string compared by literal.

mod customer;
mod partner_status;
mod tenant;

pub use customer::{ConsentState, CustomerRelationship, TokenOutcome};
pub use partner_status::PartnerStatus;
pub use tenant::{MSA_TENANT, TenantId};
