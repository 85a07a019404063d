//! Who did something: the actor of an audit event and the `created_by`, `revoked_by`,
//! `started_by` or `updated_by` of a row. Stored as text (`staff:<id>`, `partner-admin:<oid>`,
//! `api-client:<id>`, `sso:<oid>`, `cli`, `demo`, `system`, `system:proxy`); text of no known
//! form is kept as it is ([`Actor::Other`]), so an old or hand-written row never breaks a page.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A staff member in the admin UI (`staff:<staff id>`).
    Staff(Uuid),
    /// A partner's admin completing a consent (`partner-admin:<Entra object id>`).
    PartnerAdmin(Uuid),
    /// A backend service through the API (`api-client:<client id>`).
    ApiClient(Uuid),
    /// A Microsoft account signing in to the admin UI before it is known as a staff member
    /// (`sso:<Entra object id>`), e.g. refused for want of MFA.
    SsoAccount(Uuid),
    /// An operator on the command line (`cli`).
    Cli,
    /// The `demo` command seeding its sample data (`demo`).
    Demo,
    /// samgate itself: jobs, health transitions, syncs it starts (`system`).
    System,
    /// samgate's proxy, syncing a directory because a call named a customer it did not know
    /// (`system:proxy`).
    Proxy,
    /// Stored text of no known form; shown as it is rather than refused, because the audit log is
    /// append-only and must stay readable whatever an earlier version or an operator wrote.
    Other(UnknownActor),
}

/// Stored actor text of no known form, only built by parsing, so that [`Actor::Other`] never
/// holds a form the other variants own (`Display` then `parse` gives back the same actor).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownActor(String);

impl UnknownActor {
    /// The text as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const STAFF: &str = Actor::STAFF_PREFIX;
const PARTNER_ADMIN: &str = "partner-admin:";
const API_CLIENT: &str = "api-client:";
const SSO_ACCOUNT: &str = "sso:";
const CLI: &str = "cli";
const DEMO: &str = "demo";
const SYSTEM: &str = "system";
const PROXY: &str = "system:proxy";

impl Actor {
    /// The text before a staff member's id in a stored [`Actor::Staff`] (`staff:<id>`); SQL that
    /// joins stored actors to `staff` builds its match from this, so the form has one spelling.
    /// Plain ASCII with no `LIKE` wildcard and no quote, so it may be put into SQL text as it is.
    pub const STAFF_PREFIX: &str = "staff:";

    /// Reads stored text; never fails (unknown text becomes [`Actor::Other`]).
    pub fn parse(text: &str) -> Self {
        // Only the canonical (hyphenated, lower-case) spelling of an id is the variant's, the one
        // samgate writes: another spelling keeps its text so that it reads back unchanged.
        let id = |prefix: &str| {
            let rest = text.strip_prefix(prefix)?;
            let id = Uuid::parse_str(rest).ok()?;
            (id.to_string() == rest).then_some(id)
        };
        if let Some(id) = id(STAFF) {
            Self::Staff(id)
        } else if let Some(id) = id(PARTNER_ADMIN) {
            Self::PartnerAdmin(id)
        } else if let Some(id) = id(API_CLIENT) {
            Self::ApiClient(id)
        } else if let Some(oid) = id(SSO_ACCOUNT) {
            Self::SsoAccount(oid)
        } else if text == CLI {
            Self::Cli
        } else if text == DEMO {
            Self::Demo
        } else if text == SYSTEM {
            Self::System
        } else if text == PROXY {
            Self::Proxy
        } else {
            Self::Other(UnknownActor(text.to_owned()))
        }
    }

    /// Whether the text is of a known form (an exact actor rather than, say, part of a name).
    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Other(_))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Staff(id) => write!(f, "{STAFF}{id}"),
            Self::PartnerAdmin(oid) => write!(f, "{PARTNER_ADMIN}{oid}"),
            Self::ApiClient(id) => write!(f, "{API_CLIENT}{id}"),
            Self::SsoAccount(oid) => write!(f, "{SSO_ACCOUNT}{oid}"),
            Self::Cli => f.write_str(CLI),
            Self::Demo => f.write_str(DEMO),
            Self::System => f.write_str(SYSTEM),
            Self::Proxy => f.write_str(PROXY),
            Self::Other(text) => f.write_str(text.as_str()),
        }
    }
}

impl FromStr for Actor {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl sqlx::Type<sqlx::Postgres> for Actor {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Actor {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.to_string(), buf)
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for Actor {
    fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::parse(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b1c2d3e-0000-4000-8000-000000000001";

    #[test]
    fn every_actor_round_trips_through_its_stored_text() {
        let id = Uuid::parse_str(ID).expect("uuid");
        for actor in [
            Actor::Staff(id),
            Actor::PartnerAdmin(id),
            Actor::ApiClient(id),
            Actor::SsoAccount(id),
            Actor::Cli,
            Actor::Demo,
            Actor::System,
            Actor::Proxy,
            Actor::parse("import-2025"),
        ] {
            assert_eq!(Actor::parse(&actor.to_string()), actor);
        }
    }

    #[test]
    fn stored_forms_read_as_their_actor() {
        let id = Uuid::parse_str(ID).expect("uuid");
        assert_eq!(Actor::parse(&format!("staff:{ID}")), Actor::Staff(id));
        assert_eq!(
            Actor::parse(&format!("partner-admin:{ID}")),
            Actor::PartnerAdmin(id)
        );
        assert_eq!(
            Actor::parse(&format!("api-client:{ID}")),
            Actor::ApiClient(id)
        );
        assert_eq!(Actor::parse(&format!("sso:{ID}")), Actor::SsoAccount(id));
        assert_eq!(Actor::parse("cli"), Actor::Cli);
        assert_eq!(Actor::parse("demo"), Actor::Demo);
        assert_eq!(Actor::parse("system"), Actor::System);
        assert_eq!(Actor::parse("system:proxy"), Actor::Proxy);
        assert_eq!(Actor::Staff(id).to_string(), format!("staff:{ID}"));
        assert_eq!(Actor::Cli.to_string(), "cli");
        assert_eq!(Actor::System.to_string(), "system");
    }

    #[test]
    fn unknown_text_is_kept_as_it_is() {
        for text in [
            "",
            "CLI",
            "staff:42",
            "staff:",
            "partner-admin:oid",
            "staff:0B1C2D3E-0000-4000-8000-000000000001",
            "staff:0b1c2d3e000040008000000000000001",
            "job:keep-alive",
            "system:",
            "sso:someone",
        ] {
            let actor = Actor::parse(text);
            assert!(!actor.is_known(), "{text:?}");
            assert_eq!(actor.to_string(), text);
            assert_eq!(text.parse::<Actor>(), Ok(actor));
        }
    }
}
