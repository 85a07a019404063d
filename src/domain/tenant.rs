//! Microsoft tenant ids.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// The tenant of personal Microsoft accounts; never a CSP partner.
pub const MSA_TENANT: Uuid = Uuid::from_u128(0x9188040d_6c67_4c5b_b112_36a304b66dad);

/// A Microsoft Entra tenant id (a GUID).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// The GUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for TenantId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl FromStr for TenantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Microsoft writes tenant ids hyphenated and lower-case.
        write!(f, "{}", self.0.hyphenated())
    }
}
