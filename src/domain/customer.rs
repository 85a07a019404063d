//! What samgate knows of one (partner, customer tenant) pair, as PostgreSQL enums.

use serde::Serialize;

/// The partner's delegated access to the customer (`customer_relationship`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "customer_relationship", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CustomerRelationship {
    /// Never read.
    Unknown,
    /// Partner Center lists the customer; GDAP could not be read.
    Listed,
    /// An active GDAP relationship with at least one role.
    GdapActive,
    /// GDAP relationships exist, none active.
    GdapExpired,
    /// GDAP was read: there is no relationship.
    None,
}

impl CustomerRelationship {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Listed => "listed",
            Self::GdapActive => "gdap_active",
            Self::GdapExpired => "gdap_expired",
            Self::None => "none",
        }
    }

    /// Whether samgate knows the partner cannot act in the customer tenant.
    pub fn denies_access(self) -> bool {
        matches!(self, Self::GdapExpired | Self::None)
    }
}

/// The CPV app's consent in the customer tenant (`customer_consent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "customer_consent", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Not granted (or removed) as far as samgate knows.
    None,
    /// Granted with the scopes samgate is configured to grant.
    Granted,
    /// Granted with other scopes than the configured ones: re-apply.
    Stale,
}

impl ConsentState {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Granted => "granted",
            Self::Stale => "stale",
        }
    }
}

/// The last answer of the token endpoint at the customer's authority (`customer_token_outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "customer_token_outcome", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TokenOutcome {
    /// No token asked for yet.
    Unknown,
    /// A token was issued.
    Ok,
    /// Microsoft refused; the row carries the code, class and advice.
    Refused,
}

impl TokenOutcome {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ok => "ok",
            Self::Refused => "refused",
        }
    }
}
