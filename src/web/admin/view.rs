//! What every admin page shares: the layout's data (`PageFrame`) and the plain-words formatting of
//! times, statuses and states.

use time::OffsetDateTime;

use crate::staff::Role;

/// Data the admin layout needs: who is signed in, the CSRF token for the forms, the nav section.
#[derive(Debug, Clone)]
pub struct PageFrame {
    /// Signed-in member's name.
    pub staff_name: String,
    /// Their role.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
    /// `dashboard`, `partners`, `invitations`, `audit`, `clients`, `staff` or `account`.
    pub section: &'static str,
    /// The message the previous action left (shown once, above the page).
    pub flash: Option<super::flash::Flash>,
}

impl PageFrame {
    /// The layout for a page shown without knowing who is signed in (error pages): the
    /// navigation, no account controls.
    pub fn anonymous() -> Self {
        Self {
            staff_name: String::new(),
            role: Role::Viewer,
            csrf: String::new(),
            section: "",
            flash: None,
        }
    }

    /// Whether the account controls (name, sign out) are shown.
    pub fn signed_in(&self) -> bool {
        !self.staff_name.is_empty()
    }

    /// Whether the Staff page is shown in the nav.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether partner and invitation actions are shown.
    pub fn is_operator(&self) -> bool {
        self.role.allows(Role::Operator)
    }

    /// `aria-current` for a nav link.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// The link a partner admin opens: `{public_url}/consent/{token}` (shown once).
pub fn consent_link(
    state: &crate::app::AppState,
    token: &crate::onboarding::InvitationToken,
) -> String {
    crate::onboarding::consent_link(&state.config.public_url, token)
}

/// `2026-11-28 14:03 UTC` ([`crate::clock::format_utc`], the format of every page and the CLI).
pub fn when(at: OffsetDateTime) -> String {
    crate::clock::format_utc(at)
}

/// [`when`], or `fallback` when there is no time.
pub fn when_or(at: Option<OffsetDateTime>, fallback: &str) -> String {
    at.map_or_else(|| fallback.to_owned(), when)
}

/// Partner statuses in the order the dashboard shows them.
pub const STATUSES: [&str; 6] = [
    "healthy",
    "needs_consent",
    "mfa_required",
    "degraded",
    "pending",
    "offboarded",
];

/// A partner status in plain words.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "healthy" => "Healthy",
        "needs_consent" => "Needs consent",
        "mfa_required" => "MFA required",
        "degraded" => "Degraded",
        "pending" => "Pending",
        "offboarded" => "Offboarded",
        _ => "Unknown",
    }
}

/// The badge colour class of a status.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "healthy" => "ok",
        "needs_consent" | "mfa_required" => "warn",
        "degraded" => "bad",
        _ => "neutral",
    }
}

/// A partner status for a template.
#[derive(Debug, Clone)]
pub struct StatusBadge {
    /// Stored value.
    pub value: &'static str,
    /// Plain words.
    pub label: &'static str,
    /// CSS class.
    pub class: &'static str,
}

impl StatusBadge {
    /// The badge of a stored status.
    pub fn of(status: &str) -> Self {
        let value = STATUSES
            .into_iter()
            .find(|s| *s == status)
            .unwrap_or("unknown");
        Self {
            value,
            label: status_label(status),
            class: status_class(status),
        }
    }
}

/// The operator advice samgate has for a stored Microsoft error code (`AADSTS70043` or `70043`).
pub fn advice_for(code: Option<&str>) -> Option<&'static str> {
    let digits = code?.trim().trim_start_matches("AADSTS");
    let number: u64 = digits.parse().ok()?;
    crate::identity::errors::lookup_code(number).map(|(_, advice)| advice)
}

/// Audit details for people: `{"a":1}` → `a: 1`; nested values stay JSON.
pub fn compact(details: &serde_json::Value) -> String {
    match details {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc_to_the_minute() {
        let at = time::macros::datetime!(2026-11-28 14:03:59 +02:00);
        assert_eq!(when(at), "2026-11-28 12:03 UTC");
        assert_eq!(when_or(None, "never"), "never");
    }

    #[test]
    fn every_status_has_words_and_a_colour() {
        for status in STATUSES {
            assert_ne!(status_label(status), "Unknown");
            assert_eq!(StatusBadge::of(status).value, status);
        }
    }
}
