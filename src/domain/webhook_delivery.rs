//! Where a webhook delivery stands (`webhook_deliveries.status`, a text column with a CHECK
//! constraint): the worker moves it, a replay puts it back to pending.

use std::fmt;
use std::str::FromStr;

/// A delivery's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not yet accepted by the receiver; attempted when due.
    Pending,
    /// Accepted (a 2xx answer).
    Delivered,
    /// Given up after the configured number of attempts.
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order the admin UI offers them.
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery status name samgate does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown delivery status {0:?} (known: pending, delivered, failed)")]
pub struct UnknownDeliveryStatus(String);

impl FromStr for DeliveryStatus {
    type Err = UnknownDeliveryStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownDeliveryStatus(s.to_owned()))
    }
}

impl TryFrom<String> for DeliveryStatus {
    type Error = UnknownDeliveryStatus;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_delivery_status_round_trips_through_its_stored_name() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>().ok(), Some(status));
        }
        assert!("Delivered".parse::<DeliveryStatus>().is_err());
    }
}
