//! A partner's health status (`partners.status`, a text column with a CHECK constraint).

use std::fmt;
use std::str::FromStr;

/// Where a partner stands; only `health::partner` moves a partner from one status to another.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    /// Known (an invitation names it) but never consented.
    Pending,
    /// Its grant works.
    Healthy,
    /// Microsoft's token service failed for it several times in a row; samgate keeps trying.
    Degraded,
    /// Microsoft no longer accepts its grant: its admin must consent again.
    NeedsConsent,
    /// Its admin must sign in again with multi-factor authentication.
    MfaRequired,
    /// Offboarded: its grant is destroyed.
    Offboarded,
}

impl PartnerStatus {
    /// Every status, in the order the admin UI lists them.
    pub const ALL: [PartnerStatus; 6] = [
        Self::Healthy,
        Self::Degraded,
        Self::NeedsConsent,
        Self::MfaRequired,
        Self::Pending,
        Self::Offboarded,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::NeedsConsent => "needs_consent",
            Self::MfaRequired => "mfa_required",
            Self::Offboarded => "offboarded",
        }
    }

    /// Whether the partner's grant may be used for calls (healthy or degraded).
    pub fn is_usable(self) -> bool {
        matches!(self, Self::Healthy | Self::Degraded)
    }
}

impl fmt::Display for PartnerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name samgate does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown partner status {0:?}")]
pub struct UnknownStatus(String);

impl FromStr for PartnerStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl PartialEq<&str> for PartnerStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl sqlx::Type<sqlx::Postgres> for PartnerStatus {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for PartnerStatus {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for PartnerStatus {
    fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(text.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_stored_name() {
        for status in PartnerStatus::ALL {
            assert_eq!(status.as_str().parse::<PartnerStatus>().ok(), Some(status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status.as_str()))
            );
        }
        assert!("Healthy".parse::<PartnerStatus>().is_err());
    }
}
