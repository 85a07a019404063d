//! What every admin page shares: the layout's data (`PageFrame`) and the plain-words formatting of
//! times, statuses and states.

use time::OffsetDateTime;

use crate::domain::Actor;
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
    /// `dashboard`, `partners`, `invitations`, `activity`, `audit`, `webhooks`, `clients`, `staff`
    /// or `account`.
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

/// One line of an audit event's details: the key in words and its value for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailLine {
    /// `Consecutive failures`.
    pub key: String,
    /// `3`, `yes`, `2026-12-09 10:22 UTC`.
    pub value: String,
}

/// Unix times samgate could have written (2000 to 2100), shown as dates under keys ending `_at`.
const PLAUSIBLE_UNIX_TIMES: std::ops::Range<i64> = 946_684_800..4_102_444_800;

/// Audit details as lines for a small table: no raw JSON at the top level, Unix times as dates.
pub fn detail_lines(details: &serde_json::Value) -> Vec<DetailLine> {
    use serde_json::Value;
    let Value::Object(map) = details else {
        return match details {
            Value::Null => Vec::new(),
            other => vec![DetailLine {
                key: "Details".to_owned(),
                value: scalar(other),
            }],
        };
    };
    map.iter()
        .map(|(key, value)| {
            let as_time = value
                .as_i64()
                .filter(|_| key.ends_with("_at"))
                .filter(|t| PLAUSIBLE_UNIX_TIMES.contains(t))
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            DetailLine {
                key: key_words(key),
                value: match as_time {
                    Some(at) => when(at),
                    None => scalar(value),
                },
            }
        })
        .collect()
}

/// `consecutive_failures` → `Consecutive failures`.
fn key_words(key: &str) -> String {
    let words = key.replace(['_', '.'], " ");
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn scalar(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "none".to_owned(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "none".to_owned(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(_) => compact(value),
    }
}

/// Who did something, for people: a name, and where to read more about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorView {
    /// `Ada Lovelace`, `Partner admin of Contoso`, `samgate (automatic)`.
    pub name: String,
    /// Their other events, or their partner.
    pub link: Option<String>,
}

/// Names an actor: a staff member by `staff_name`, a partner admin by `partner` (its id and
/// name), API clients and unknown stored text as they are stored.
pub fn actor_view(
    actor: &Actor,
    staff_name: Option<&str>,
    partner: Option<(uuid::Uuid, &str)>,
) -> ActorView {
    let stored = actor.to_string();
    let by_actor = || {
        let query = serde_urlencoded::to_string([("actor", &stored)]).unwrap_or_default();
        Some(format!("/admin/audit?{query}"))
    };
    let name = match actor {
        Actor::Staff(_) => staff_name.unwrap_or("A former staff member").to_owned(),
        Actor::PartnerAdmin(_) => match partner {
            Some((id, name)) => {
                return ActorView {
                    name: format!("Partner admin of {name}"),
                    link: Some(format!("/admin/partners/{id}")),
                };
            }
            None => "A partner admin".to_owned(),
        },
        Actor::System => "samgate (automatic)".to_owned(),
        Actor::Cli => "Command line".to_owned(),
        Actor::ApiClient(_)
        | Actor::SsoAccount(_)
        | Actor::Demo
        | Actor::Proxy
        | Actor::Other(_) => stored.clone(),
    };
    ActorView {
        name,
        link: by_actor(),
    }
}

/// Keyset paging: `rows` were read one past `page`. Keeps `page` of them and returns the link to
/// the next page — `base?` the `params`, then `cursor` = `key` of the last row kept — when there is
/// one.
pub fn next_page<T>(
    rows: &mut Vec<T>,
    page: usize,
    base: &str,
    params: &[(&str, &str)],
    cursor: (&str, impl Fn(&T) -> String),
) -> Option<String> {
    if rows.len() <= page {
        return None;
    }
    rows.truncate(page);
    let last = rows.last()?;
    let (name, key) = cursor;
    let key = key(last);
    let mut pairs = params.to_vec();
    pairs.push((name, &key));
    Some(format!(
        "{base}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_details_read_as_words_with_unix_times_as_dates() {
        let details = serde_json::json!({
            "consecutive_failures": 3,
            "expires_at": 1_796_466_120_i64,
            "reconsent": false,
            "scopes": ["a", "b"],
            "code": null,
        });
        let lines = detail_lines(&details);
        let find = |key: &str| {
            lines
                .iter()
                .find(|l| l.key == key)
                .map(|l| l.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(find("Consecutive failures"), "3");
        assert_eq!(find("Expires at"), "2026-12-05 10:22 UTC");
        assert_eq!(find("Reconsent"), "no");
        assert_eq!(find("Scopes"), "a, b");
        assert_eq!(find("Code"), "none");
    }

    #[test]
    fn actors_are_named_and_linked() {
        let partner = uuid::Uuid::nil();
        let staff = actor_view(&Actor::Staff(partner), Some("Ada"), None);
        assert_eq!(staff.name, "Ada");
        assert_eq!(
            staff.link.as_deref(),
            Some("/admin/audit?actor=staff%3A00000000-0000-0000-0000-000000000000")
        );
        let former = actor_view(&Actor::Staff(partner), None, None);
        assert_eq!(former.name, "A former staff member");
        let admin = actor_view(
            &Actor::PartnerAdmin(partner),
            None,
            Some((partner, "Contoso")),
        );
        assert_eq!(admin.name, "Partner admin of Contoso");
        assert_eq!(admin.link, Some(format!("/admin/partners/{partner}")));
        let unnamed = actor_view(&Actor::PartnerAdmin(partner), None, None);
        assert_eq!(unnamed.name, "A partner admin");
        assert_eq!(
            actor_view(&Actor::System, None, None).name,
            "samgate (automatic)"
        );
        assert_eq!(actor_view(&Actor::Cli, None, None).name, "Command line");
        let unknown = actor_view(&Actor::parse("import 2025"), None, None);
        assert_eq!(unknown.name, "import 2025");
        assert_eq!(
            unknown.link.as_deref(),
            Some("/admin/audit?actor=import+2025")
        );
    }

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

#[cfg(test)]
mod next_page_tests {
    use super::next_page;

    #[test]
    fn a_page_read_one_past_its_size_is_cut_and_links_on_from_its_last_row() {
        let mut rows: Vec<u32> = (1..=4).collect();
        let next = next_page(
            &mut rows,
            3,
            "/admin/x",
            &[("q", "a b")],
            ("before", |r: &u32| r.to_string()),
        );
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(next.as_deref(), Some("/admin/x?q=a+b&before=3"));
        let mut rows: Vec<u32> = (1..=3).collect();
        assert_eq!(
            next_page(
                &mut rows,
                3,
                "/admin/x",
                &[],
                ("before", |r: &u32| r.to_string())
            ),
            None
        );
        assert_eq!(rows.len(), 3);
    }
}
