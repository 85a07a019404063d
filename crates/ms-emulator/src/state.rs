//! The in-memory world (tenants, users, apps, consents, GDAP, codes, refresh tokens, sign-in
//! transactions) and the shared emulator state around it. One mutex guards the world; it is never
//! held across an `.await`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
use crate::control::Fault;
use crate::keys::KeySet;
use crate::seed::{
    AppSeed, CustomerPolicy, MfaState, MissingConsentError, RelationshipSeed, RelationshipStatus,
    Seed, SubscriptionSeed, TenantSeed, UserSeed,
};

/// Locks a mutex, ignoring poisoning (a panicked handler must not wedge the emulator).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Random URL-safe string of `n` random bytes.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub display_name: String,
    pub default_domain: String,
    pub customers: Vec<Uuid>,
    pub mpn_id: Option<String>,
    pub is_partner: bool,
    pub subscriptions: Vec<SubscriptionSeed>,
    pub created: OffsetDateTime,
    /// Conditional Access applied to partner users' token requests at this authority.
    pub conditional_access: Option<CustomerPolicy>,
    /// The refusal while the app is not consented here.
    pub missing_consent_error: MissingConsentError,
}

#[derive(Clone, Debug)]
pub struct User {
    pub oid: Uuid,
    pub tenant: Uuid,
    pub upn: String,
    pub display_name: String,
    pub password: String,
    pub mfa: MfaState,
    pub disabled: bool,
    pub partner_center_role: Option<String>,
    /// Grants from sign-ins before this instant are revoked (AADSTS50173).
    pub revoked_before: Option<OffsetDateTime>,
    /// Grants whose MFA is older than this instant need a new MFA (AADSTS50076).
    pub mfa_required_after: Option<OffsetDateTime>,
    pub mfa_code: String,
}

#[derive(Clone, Debug)]
pub struct Secret {
    pub value: String,
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug)]
pub struct App {
    pub client_id: Uuid,
    pub display_name: String,
    pub home_tenant: Uuid,
    pub redirect_uris: Vec<String>,
    pub secrets: Vec<Secret>,
    pub certificates: Vec<String>,
    pub multitenant: bool,
    pub app_roles: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Relationship {
    pub id: String,
    pub partner: Uuid,
    pub customer: Uuid,
    pub display_name: String,
    /// The status as set; [`Relationship::status_at`] adds expiry by the clock.
    pub status: RelationshipStatus,
    pub roles: Vec<Uuid>,
    pub duration: String,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    pub activated: Option<OffsetDateTime>,
    /// Explicit `endDateTime`; otherwise activation + duration.
    pub end: Option<OffsetDateTime>,
}

impl Relationship {
    /// Graph's `endDateTime`: explicit, else `activatedDateTime` + `duration` (Graph's rule), else none.
    pub fn end_date_time(&self) -> Option<OffsetDateTime> {
        self.end
            .or_else(|| self.activated.map(|a| a + iso_duration(&self.duration)))
    }

    /// The status at `now`: an active or expiring relationship past its end is `expired`.
    /// UNCONFIRMED: the `expiring` window before the end is not derived.
    pub fn status_at(&self, now: OffsetDateTime) -> RelationshipStatus {
        match self.end_date_time() {
            Some(end) if self.status.grants_access() && end <= now => RelationshipStatus::Expired,
            _ => self.status,
        }
    }

    /// Whether the partner's users get roles in the customer tenant through it at `now`.
    pub fn grants_access_at(&self, now: OffsetDateTime) -> bool {
        self.status_at(now).grants_access() && !self.roles.is_empty()
    }

    /// A status change made now (by a test or the control API). Making an ended relationship
    /// active again (which Graph never does) starts a fresh duration.
    pub fn set_status(&mut self, status: RelationshipStatus, now: OffsetDateTime) {
        let ended = self.end_date_time().is_some_and(|e| e <= now);
        if status.grants_access() && ended {
            self.activated = Some(now);
            self.end = None;
        }
        if status.was_activated() && self.activated.is_none() {
            self.activated = Some(now);
        }
        let ended = matches!(
            status,
            RelationshipStatus::Expired | RelationshipStatus::Terminated
        );
        if ended && self.end_date_time().is_none_or(|e| e > now) {
            self.end = Some(now);
        }
        self.status = status;
        self.last_modified = now;
    }
}

/// An ISO 8601 duration as Graph writes them (`P730D`, `P2Y`, `P1Y6M`, `P4W`); years are 365
/// days, months 30. Unparseable values count as GDAP's maximum, two years.
pub fn iso_duration(text: &str) -> time::Duration {
    let two_years = time::Duration::days(730);
    let Some(rest) = text.strip_prefix('P') else {
        return two_years;
    };
    let date = rest.split('T').next().unwrap_or_default();
    let mut days: i64 = 0;
    let mut number = String::new();
    for ch in date.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let Ok(n) = number.parse::<i64>() else {
            return two_years;
        };
        number.clear();
        days += n * match ch {
            'Y' => 365,
            'M' => 30,
            'W' => 7,
            'D' => 1,
            _ => return two_years,
        };
    }
    if number.is_empty() {
        time::Duration::days(days)
    } else {
        two_years
    }
}

/// A consent grant of an app in a tenant, with the grants PC's applicationconsents recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub display_name: Option<String>,
    pub grants: Vec<serde_json::Value>,
}

impl ConsentRecord {
    /// Whether the consent covers a resource (by app id): a consent without recorded grants (the
    /// consent page, `grant_app_consent`, the seed) covers every resource; otherwise one grant
    /// must name it as `enterpriseApplicationId`.
    pub fn covers(&self, resource_app_id: &str) -> bool {
        self.grants.is_empty()
            || self.grants.iter().any(|g| {
                g.get("enterpriseApplicationId")
                    .or_else(|| g.get("EnterpriseApplicationId"))
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(resource_app_id))
            })
    }
}

/// How the user authenticated, carried from sign-in through every refresh.
#[derive(Clone, Debug)]
pub struct AuthContext {
    pub user: Uuid,
    pub amr: Vec<String>,
    pub auth_time: OffsetDateTime,
}

impl AuthContext {
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|a| a == "mfa")
    }
}

#[derive(Clone, Debug)]
pub struct AuthCode {
    pub client_id: Uuid,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<(String, String)>,
    pub nonce: Option<String>,
    /// Path segment the /authorize request used (GUID, domain, `organizations`, `common`).
    pub authority: String,
    /// The user's home tenant; the code is bound to it.
    pub tenant: Uuid,
    pub auth: AuthContext,
    pub issued_at: OffsetDateTime,
    pub redeemed: bool,
}

#[derive(Clone, Debug)]
pub struct RefreshGrant {
    pub client_id: Uuid,
    pub scopes: Vec<String>,
    pub auth: AuthContext,
    pub issued_at: OffsetDateTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    SignIn,
    Mfa,
    MfaRegistration,
    Consent,
}

/// An in-flight /authorize transaction, keyed by the random `ctx` carried in hidden form fields.
#[derive(Clone, Debug)]
pub struct LoginTxn {
    pub authority: String,
    pub client_id: Uuid,
    pub redirect_uri: String,
    pub response_mode: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<(String, String)>,
    pub login_hint: Option<String>,
    pub prompt: Option<String>,
    pub stage: Stage,
    pub user: Option<Uuid>,
    pub amr: Vec<String>,
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct SsoSession {
    pub auth: AuthContext,
}

/// Everything mutable about the emulated directory.
#[derive(Default)]
pub struct World {
    pub tenants: BTreeMap<Uuid, Tenant>,
    pub users: BTreeMap<Uuid, User>,
    pub apps: BTreeMap<Uuid, App>,
    pub relationships: Vec<Relationship>,
    pub consents: BTreeMap<(Uuid, Uuid), ConsentRecord>,
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub issued_refresh_tokens: Vec<String>,
    pub transactions: HashMap<String, LoginTxn>,
    pub sessions: HashMap<String, SsoSession>,
    /// Lowercased default domain → tenant.
    domains: HashMap<String, Uuid>,
    /// Lowercased UPN → user.
    upns: HashMap<String, Uuid>,
    /// (partner, customer) pairs, mirroring each partner's `customers` list.
    customer_links: HashSet<(Uuid, Uuid)>,
}

/// Where a path segment such as `{tenant}` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    Tenant(Uuid),
    Organizations,
    Common,
}

impl World {
    pub fn from_seed(seed: &Seed, now: OffsetDateTime) -> anyhow::Result<World> {
        let mut world = World::default();
        for t in &seed.tenants {
            world.add_tenant(t, now)?;
        }
        for t in &seed.tenants {
            for c in &t.customers {
                anyhow::ensure!(
                    world.tenants.contains_key(c),
                    "tenant {} lists customer {c}, which is not a tenant of the seed",
                    t.id
                );
            }
        }
        for a in &seed.apps {
            world.add_app(a)?;
        }
        for r in &seed.relationships {
            world.add_relationship(r, now)?;
        }
        for c in &seed.consents {
            anyhow::ensure!(
                world.tenants.contains_key(&c.tenant),
                "consent for unknown tenant {}",
                c.tenant
            );
            anyhow::ensure!(
                world.apps.contains_key(&c.client_id),
                "consent for unknown app {}",
                c.client_id
            );
            world.consents.insert(
                (c.tenant, c.client_id),
                ConsentRecord {
                    display_name: None,
                    grants: Vec::new(),
                },
            );
        }
        Ok(world)
    }

    pub fn add_tenant(&mut self, t: &TenantSeed, now: OffsetDateTime) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.tenants.contains_key(&t.id),
            "duplicate tenant {}",
            t.id
        );
        anyhow::ensure!(
            self.tenant_by_domain(&t.default_domain).is_none(),
            "duplicate domain {}",
            t.default_domain
        );
        let domain = t.default_domain.to_lowercase();
        self.domains.insert(domain.clone(), t.id);
        self.tenants.insert(
            t.id,
            Tenant {
                id: t.id,
                display_name: t.display_name.clone(),
                default_domain: domain,
                customers: Vec::with_capacity(t.customers.len()),
                mpn_id: t.mpn_id.clone(),
                is_partner: t.is_partner,
                subscriptions: t.subscriptions.clone(),
                created: now,
                conditional_access: t.conditional_access,
                missing_consent_error: t.missing_consent_error,
            },
        );
        for c in &t.customers {
            self.link_customer(t.id, *c);
        }
        for u in &t.users {
            self.add_user(t.id, u)?;
        }
        Ok(())
    }

    pub fn add_user(&mut self, tenant: Uuid, u: &UserSeed) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.tenants.contains_key(&tenant),
            "unknown tenant {tenant}"
        );
        anyhow::ensure!(
            self.user_by_upn(&u.upn).is_none(),
            "duplicate user {}",
            u.upn
        );
        anyhow::ensure!(
            !self.users.contains_key(&u.oid),
            "duplicate user oid {}",
            u.oid
        );
        let code: u32 = rand::random_range(100_000..1_000_000);
        self.upns.insert(u.upn.to_lowercase(), u.oid);
        self.users.insert(
            u.oid,
            User {
                oid: u.oid,
                tenant,
                upn: u.upn.clone(),
                display_name: u.display_name.clone(),
                password: u.password.clone(),
                mfa: u.mfa,
                disabled: u.disabled,
                partner_center_role: u.partner_center_role.clone(),
                revoked_before: None,
                mfa_required_after: None,
                mfa_code: code.to_string(),
            },
        );
        Ok(())
    }

    pub fn add_app(&mut self, a: &AppSeed) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.apps.contains_key(&a.client_id),
            "duplicate app {}",
            a.client_id
        );
        anyhow::ensure!(
            self.tenants.contains_key(&a.home_tenant),
            "app home tenant {} unknown",
            a.home_tenant
        );
        self.apps.insert(
            a.client_id,
            App {
                client_id: a.client_id,
                display_name: a.display_name.clone(),
                home_tenant: a.home_tenant,
                redirect_uris: a.redirect_uris.clone(),
                secrets: a
                    .secrets
                    .iter()
                    .map(|s| Secret {
                        value: s.value.clone(),
                        expires_at: s.expires_at,
                    })
                    .collect(),
                certificates: a.certificates.clone(),
                multitenant: a.multitenant,
                app_roles: a.app_roles.clone(),
            },
        );
        Ok(())
    }

    pub fn add_relationship(
        &mut self,
        r: &RelationshipSeed,
        now: OffsetDateTime,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            self.tenants.contains_key(&r.partner),
            "relationship partner {} unknown",
            r.partner
        );
        anyhow::ensure!(
            self.tenants.contains_key(&r.customer),
            "relationship customer {} unknown",
            r.customer
        );
        let id =
            r.id.clone()
                .unwrap_or_else(|| format!("{}-{}", Uuid::new_v4(), Uuid::new_v4()));
        // A seeded relationship was created now; one seeded as already expired or terminated
        // ended now (an expired one had run its whole duration).
        let (activated, end) = match r.status {
            RelationshipStatus::Expired => (
                Some(r.end_date_time.unwrap_or(now) - iso_duration(&r.duration)),
                Some(r.end_date_time.unwrap_or(now)),
            ),
            RelationshipStatus::Terminated => (Some(now), Some(r.end_date_time.unwrap_or(now))),
            s if s.was_activated() => (Some(now), r.end_date_time),
            _ => (None, r.end_date_time),
        };
        self.relationships.push(Relationship {
            id: id.clone(),
            partner: r.partner,
            customer: r.customer,
            display_name: r.display_name.clone(),
            status: r.status,
            roles: r.roles.clone(),
            duration: r.duration.clone(),
            created: now,
            last_modified: now,
            activated,
            end,
        });
        self.link_customer(r.partner, r.customer);
        Ok(id)
    }

    /// Lists `customer` among the partner's customers (once, in arrival order).
    pub fn link_customer(&mut self, partner: Uuid, customer: Uuid) {
        if self.customer_links.insert((partner, customer))
            && let Some(p) = self.tenants.get_mut(&partner)
        {
            p.customers.push(customer);
        }
    }

    /// Whether `customer` is one of the partner's customers.
    pub fn is_customer_of(&self, partner: Uuid, customer: Uuid) -> bool {
        self.customer_links.contains(&(partner, customer))
    }

    pub fn tenant_by_domain(&self, domain: &str) -> Option<&Tenant> {
        self.domains
            .get(&domain.to_lowercase())
            .and_then(|id| self.tenants.get(id))
    }

    pub fn user_by_upn(&self, upn: &str) -> Option<&User> {
        self.upns
            .get(&upn.to_lowercase())
            .and_then(|oid| self.users.get(oid))
    }

    pub fn user_by_upn_mut(&mut self, upn: &str) -> Option<&mut User> {
        let oid = *self.upns.get(&upn.to_lowercase())?;
        self.users.get_mut(&oid)
    }

    /// Resolves a `{tenant}` path segment; `None` = no such tenant.
    pub fn authority(&self, segment: &str) -> Option<Authority> {
        match segment.to_ascii_lowercase().as_str() {
            "organizations" => Some(Authority::Organizations),
            "common" => Some(Authority::Common),
            s => {
                if let Ok(id) = Uuid::parse_str(s) {
                    self.tenants
                        .contains_key(&id)
                        .then_some(Authority::Tenant(id))
                } else {
                    self.tenant_by_domain(s).map(|t| Authority::Tenant(t.id))
                }
            }
        }
    }

    pub fn consented(&self, tenant: Uuid, client_id: Uuid) -> bool {
        self.consents.contains_key(&(tenant, client_id))
    }

    /// True when a GDAP relationship partner → customer grants roles at `now` (`active` or
    /// `expiring`, not past its end, at least one role).
    pub fn gdap_active(&self, partner: Uuid, customer: Uuid, now: OffsetDateTime) -> bool {
        self.relationships
            .iter()
            .any(|r| r.partner == partner && r.customer == customer && r.grants_access_at(now))
    }
}

/// What kind of group a [`Group`] is, as Graph's `groupTypes`/`securityEnabled`/`mailEnabled` show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// A security group whose members a dynamic membership rule picks.
    DynamicSecurity,
    /// A security group with assigned members.
    Security,
    /// A Microsoft 365 group (`groupTypes: ["Unified"]`, mail-enabled).
    Microsoft365,
}

/// A group of a tenant. Groups are derived from the tenant's users, never stored, so every
/// tenant (seeded, added or generated) has them and their members follow user changes.
#[derive(Clone, Debug)]
pub struct Group {
    pub id: Uuid,
    pub display_name: String,
    pub description: String,
    pub mail_nickname: String,
    pub kind: GroupKind,
    /// Member user object ids, in the order the tenant's users are listed.
    pub members: Vec<Uuid>,
}

impl World {
    /// The tenant's users in Graph's listing order (by object id).
    pub fn users_of(&self, tenant: Uuid) -> impl Iterator<Item = &User> {
        self.users.values().filter(move |u| u.tenant == tenant)
    }

    /// The tenant's groups: "All Users" (dynamic, every user), "{tenant name}" (Microsoft 365,
    /// the enabled users) and, in partner tenants, "AdminAgents" (users with the Partner Center
    /// role `AdminAgent`, the group CSP partner tenants have). Ids are UUID v5 of the tenant id.
    /// UNCONFIRMED: names, descriptions and the dynamic rule are the emulator's choice.
    pub fn groups_of(&self, tenant: &Tenant) -> Vec<Group> {
        let users: Vec<&User> = self.users_of(tenant.id).collect();
        let pick = |keep: &dyn Fn(&User) -> bool| -> Vec<Uuid> {
            users.iter().filter(|u| keep(u)).map(|u| u.oid).collect()
        };
        let nickname: String = tenant
            .display_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let mut groups = vec![
            Group {
                id: Uuid::new_v5(&tenant.id, b"group:all-users"),
                display_name: "All Users".to_owned(),
                description: "Every user of the organization.".to_owned(),
                mail_nickname: "AllUsers".to_owned(),
                kind: GroupKind::DynamicSecurity,
                members: pick(&|_| true),
            },
            Group {
                id: Uuid::new_v5(&tenant.id, b"group:organization"),
                display_name: tenant.display_name.clone(),
                description: format!("Everyone at {}.", tenant.display_name),
                mail_nickname: nickname,
                kind: GroupKind::Microsoft365,
                members: pick(&|u| !u.disabled),
            },
        ];
        if tenant.is_partner {
            groups.push(Group {
                id: Uuid::new_v5(&tenant.id, b"group:admin-agents"),
                display_name: "AdminAgents".to_owned(),
                description: "Partner Center admin agents.".to_owned(),
                mail_nickname: "AdminAgents".to_owned(),
                kind: GroupKind::Security,
                members: pick(&|u| {
                    u.partner_center_role
                        .as_deref()
                        .is_some_and(|r| r.eq_ignore_ascii_case("AdminAgent"))
                }),
            });
        }
        groups
    }
}

/// A request to a Partner Center or Graph route, as received.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The HTTP version it came in (`HTTP/1.1`, `HTTP/2.0`).
    #[serde(default)]
    pub version: String,
    /// All headers, in order, as received (non-UTF-8 values lossily converted).
    pub headers: Vec<(String, String)>,
    /// Emulator time of arrival.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl RecordedRequest {
    /// First header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Call counters.
#[derive(Default)]
pub struct Counters {
    /// (tenant segment as sent, lowercased; grant_type) → count.
    pub token: BTreeMap<(String, String), u64>,
    /// Request path → count.
    pub routes: BTreeMap<String, u64>,
}

/// Switches for behaviours Microsoft documents inconsistently or tests want fixed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub id_token_amr: bool,
    pub access_token_lifetime: Option<Duration>,
    pub invalid_client_status: u16,
    pub pc_mfa_enforced: bool,
    pub strict_code_tenant: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            id_token_amr: false,
            access_token_lifetime: None,
            invalid_client_status: 401,
            pc_mfa_enforced: true,
            strict_code_tenant: false,
        }
    }
}

/// State shared by every handler and by [`crate::Control`].
pub struct Shared {
    pub base_url: String,
    pub clock: Clock,
    pub keys: RwLock<KeySet>,
    pub world: Mutex<World>,
    pub faults: Mutex<Vec<Fault>>,
    pub counters: Mutex<Counters>,
    pub recorded: Mutex<Vec<RecordedRequest>>,
    pub settings: Mutex<Settings>,
}

impl Shared {
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs claims with the current key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        self.keys().current().sign(claims)
    }

    pub fn count_route(&self, path: &str) {
        *lock(&self.counters)
            .routes
            .entry(path.to_owned())
            .or_default() += 1;
    }

    pub fn count_token(&self, tenant: &str, grant_type: &str) {
        *lock(&self.counters)
            .token
            .entry((tenant.to_ascii_lowercase(), grant_type.to_owned()))
            .or_default() += 1;
    }
}
