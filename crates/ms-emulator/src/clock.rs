//! The emulator clock: real time plus an offset that the control API advances.
//! Every expiry (codes, tokens, refresh-token inactivity, secrets) is judged against it.

use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// Real time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset: Mutex<Duration>,
}

impl Clock {
    /// Current emulator time.
    pub fn now(&self) -> OffsetDateTime {
        let offset = *self.offset.lock().unwrap_or_else(|e| e.into_inner());
        OffsetDateTime::now_utc() + offset
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset += by;
    }
}
