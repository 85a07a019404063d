//! Microsoft identity platform client (being written).
pub mod errors;
