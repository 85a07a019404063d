//! A partner's end of life: offboarding (app consents removed, grant crypto-shredded,
//! invitations revoked). Health transitions live in `crate::health`.

mod offboard;

pub use offboard::{OffboardError, OffboardReport, offboard};
