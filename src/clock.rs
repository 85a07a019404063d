//! Time as a parameter: production reads the system clock, tests use a manual clock that they
//! advance, so no test sleeps to wait for an expiry.

use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that starts at real time and moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock reading the real time plus an offset that starts at zero.
    pub fn new() -> Self {
        Self {
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let offset = *self.offset.lock().unwrap_or_else(|e| e.into_inner());
        OffsetDateTime::now_utc() + offset
    }
}

/// The one way samgate shows a time to people (pages, the admin UI, the CLI): UTC to the minute,
/// `2026-12-09 10:22 UTC`.
pub fn format_utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// How long ago (or how far ahead) `at` is from `now`, in the largest whole unit:
/// `just now`, `3 hours ago`, `in 12 days`.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - at).whole_seconds();
    let (ahead, seconds) = (seconds < 0, seconds.unsigned_abs());
    if seconds < 60 {
        return "just now".to_owned();
    }
    let (count, unit) = match seconds {
        s if s < 3_600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3_600, "hour"),
        s if s < 86_400 * 60 => (s / 86_400, "day"),
        s if s < 86_400 * 730 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    let plural = if count == 1 { "" } else { "s" };
    if ahead {
        format!("in {count} {unit}{plural}")
    } else {
        format!("{count} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::{format_utc, relative};
    use time::macros::datetime;

    #[test]
    fn times_are_shown_in_utc_to_the_minute() {
        let at = datetime!(2026-12-09 12:22:59 +02:00);
        assert_eq!(format_utc(at), "2026-12-09 10:22 UTC");
    }

    #[test]
    fn relative_times_use_the_largest_whole_unit_in_both_directions() {
        let now = datetime!(2026-12-09 10:00 UTC);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(
            relative(now - time::Duration::minutes(1), now),
            "1 minute ago"
        );
        assert_eq!(relative(now - time::Duration::hours(3), now), "3 hours ago");
        assert_eq!(relative(now + time::Duration::days(12), now), "in 12 days");
        assert_eq!(relative(now + time::Duration::hours(25), now), "in 1 day");
        assert_eq!(
            relative(now - time::Duration::days(90), now),
            "3 months ago"
        );
    }
}
