//! Domain words as types: who did something, a partner's health status, a customer's access
//! facts, a webhook delivery's status. Each is an `enum` read from PostgreSQL as itself
//! (`sqlx::Type`, or `try_from` its stored name), never a string compared by literal.

mod actor;
mod customer;
mod partner_status;
mod tenant;
mod webhook_delivery;

pub use actor::{Actor, UnknownActor};
pub use customer::{ConsentState, CustomerRelationship, TokenOutcome};
pub use partner_status::PartnerStatus;
pub use tenant::{MSA_TENANT, TenantId};
pub use webhook_delivery::{DeliveryStatus, UnknownDeliveryStatus};
