//! `Control`: the in-process handle tests use to script the emulator (clock, revocations, MFA
//! policy, faults, counters). The HTTP control API (`/_emulator/…`) calls the same methods.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::SigningKey;
use crate::seed::{
    AppSeed, CustomerOptions, CustomerPolicy, MfaState, MissingConsentError, RelationshipSeed,
    RelationshipStatus, TenantSeed, UserSeed,
};
use crate::state::{ConsentRecord, RecordedRequest, Relationship, Shared, lock};

/// Which requests a [`Fault`] applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteMatch {
    /// Requests whose path starts with `prefix` (and, when given, whose method matches).
    Path {
        /// Path prefix, e.g. `/v1/customers` or `/graph/v1.0/users`.
        prefix: String,
        /// HTTP method (case-insensitive); `None` = any.
        #[serde(default)]
        method: Option<String>,
    },
    /// `POST …/oauth2/v2.0/token` calls with this `grant_type`.
    GrantType(String),
}

/// A scripted failure for the next `times` matching calls.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    /// Which calls fail.
    pub route: RouteMatch,
    /// Response status; `0` = no status override (latency only, then the real handler runs).
    #[serde(default)]
    pub status: u16,
    /// `Retry-After` header value in seconds.
    #[serde(default)]
    pub retry_after: Option<u32>,
    /// Response body; when absent the route family's usual error body is used.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Added latency before responding.
    #[serde(default, rename = "latency_ms", with = "millis")]
    pub latency: Option<Duration>,
    /// Close the connection without a complete response.
    #[serde(default)]
    pub drop_connection: bool,
    /// How many calls the fault applies to.
    #[serde(default = "one")]
    pub times: u32,
    /// When set, each matching call fails with this probability (0.0–1.0) instead of the next
    /// `times` calls failing; the fault stays until cleared.
    #[serde(default)]
    pub fraction: Option<f64>,
}

fn one() -> u32 {
    1
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

impl Fault {
    /// A fault on requests whose path starts with `prefix` (status 500, once).
    pub fn path(prefix: &str) -> Fault {
        Fault::new(RouteMatch::Path {
            prefix: prefix.to_owned(),
            method: None,
        })
    }

    /// A fault on token calls with this grant type (status 500, once).
    pub fn grant_type(grant_type: &str) -> Fault {
        Fault::new(RouteMatch::GrantType(grant_type.to_owned()))
    }

    fn new(route: RouteMatch) -> Fault {
        Fault {
            route,
            status: 500,
            retry_after: None,
            fraction: None,
            body: None,
            latency: None,
            drop_connection: false,
            times: 1,
        }
    }

    /// Restricts a path fault to one HTTP method.
    pub fn method(mut self, method: &str) -> Fault {
        if let RouteMatch::Path { method: m, .. } = &mut self.route {
            *m = Some(method.to_ascii_uppercase());
        }
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Fault {
        self.status = status;
        self
    }

    /// A 429 with `Retry-After: secs`.
    pub fn throttle(self, secs: u32) -> Fault {
        self.status(429).retry_after(secs)
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, secs: u32) -> Fault {
        self.retry_after = Some(secs);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: serde_json::Value) -> Fault {
        self.body = Some(body);
        self
    }

    /// Adds latency; with no status set by [`Fault::status`] afterwards the real handler still runs.
    pub fn latency(mut self, d: Duration) -> Fault {
        self.latency = Some(d);
        self.status = 0;
        self
    }

    /// Drops the connection instead of answering.
    pub fn drop_connection(mut self) -> Fault {
        self.drop_connection = true;
        self
    }

    /// Applies to the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = n;
        self
    }

    /// Fails each matching call with probability `p` until `clear_faults` (load tests).
    pub fn fraction(mut self, p: f64) -> Fault {
        self.fraction = Some(p.clamp(0.0, 1.0));
        self
    }
}

/// Cheap, cloneable handle onto a running emulator's state.
#[derive(Clone)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl Control {
    /// Moves the emulator clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Current emulator time.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.now()
    }

    /// Revokes every refresh token and SSO session of the user (later refreshes get AADSTS50173).
    pub fn revoke_refresh_tokens(&self, upn: &str) {
        let now = self.shared.now();
        let mut w = self.shared.world();
        if let Some(u) = w.user_by_upn_mut(upn) {
            u.revoked_before = Some(now);
            let oid = u.oid;
            w.sessions.retain(|_, s| s.auth.user != oid);
        }
    }

    /// Changes the user's MFA state.
    pub fn set_user_mfa(&self, upn: &str, mfa: MfaState) {
        if let Some(u) = self.shared.world().user_by_upn_mut(upn) {
            u.mfa = mfa;
        }
    }

    /// A Conditional Access change: grants obtained before now need a new MFA (AADSTS50076).
    pub fn require_new_mfa(&self, upn: &str) {
        let now = self.shared.now();
        let mut w = self.shared.world();
        if let Some(u) = w.user_by_upn_mut(upn) {
            u.mfa_required_after = Some(now);
            let oid = u.oid;
            w.sessions.retain(|_, s| s.auth.user != oid);
        }
    }

    /// Disables the account (AADSTS50057 on sign-in and refresh).
    pub fn disable_user(&self, upn: &str) {
        if let Some(u) = self.shared.world().user_by_upn_mut(upn) {
            u.disabled = true;
        }
    }

    /// Re-enables the account.
    pub fn enable_user(&self, upn: &str) {
        if let Some(u) = self.shared.world().user_by_upn_mut(upn) {
            u.disabled = false;
        }
    }

    /// Makes every secret of the app expired (AADSTS7000222).
    pub fn expire_client_secret(&self, client_id: Uuid) {
        let past = self.shared.now() - time::Duration::seconds(1);
        if let Some(app) = self.shared.world().apps.get_mut(&client_id) {
            for s in &mut app.secrets {
                s.expires_at = Some(past);
            }
        }
    }

    /// Adds a client secret to the app.
    pub fn add_client_secret(
        &self,
        client_id: Uuid,
        value: &str,
        expires_at: Option<OffsetDateTime>,
    ) {
        if let Some(app) = self.shared.world().apps.get_mut(&client_id) {
            app.secrets.push(crate::state::Secret {
                value: value.to_owned(),
                expires_at,
            });
        }
    }

    /// Whether v2 ID tokens carry `amr` (Microsoft's docs disagree; default true).
    pub fn set_id_token_amr(&self, include_amr: bool) {
        lock(&self.shared.settings).id_token_amr = include_amr;
    }

    /// Fixes the access-token lifetime (default: random 60–90 minutes, like Microsoft).
    pub fn set_access_token_lifetime(&self, d: Duration) {
        lock(&self.shared.settings).access_token_lifetime = Some(d);
    }

    /// Whether Partner Center rejects app+user tokens without `mfa` in `amr` (default true).
    pub fn set_pc_mfa_enforced(&self, enforced: bool) {
        lock(&self.shared.settings).pc_mfa_enforced = enforced;
    }

    /// HTTP status for `invalid_client` token errors (default 401; UNCONFIRMED, 400 is the other candidate).
    pub fn set_invalid_client_status(&self, status: u16) {
        lock(&self.shared.settings).invalid_client_status = status;
    }

    /// When true, a code is redeemable only at the user's home tenant (GUID or domain), never at
    /// `organizations`/`common` even if /authorize used them (default false).
    pub fn set_strict_code_tenant(&self, strict: bool) {
        lock(&self.shared.settings).strict_code_tenant = strict;
    }

    /// Publishes a new signing key (new `kid`) and signs with it; old keys stay in the JWKS.
    pub fn rotate_signing_key(&self) {
        match SigningKey::generate() {
            Ok(key) => {
                let mut keys = self.shared.keys.write().unwrap_or_else(|e| e.into_inner());
                keys.keys.insert(0, key);
            }
            Err(err) => tracing::error!(error = %err, "signing key generation failed"),
        }
    }

    /// Ends the overlap: removes every key but the current one from the JWKS.
    pub fn retire_previous_keys(&self) {
        let mut keys = self.shared.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.keys.truncate(1);
    }

    /// The `kid`s currently published, current first.
    pub fn signing_key_ids(&self) -> Vec<String> {
        self.shared
            .keys()
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// Scripts a failure for the next matching calls.
    pub fn fail_next(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// The one-time code the MFA page accepts for this user (empty for an unknown user).
    pub fn mfa_code(&self, upn: &str) -> String {
        self.shared
            .world()
            .user_by_upn(upn)
            .map(|u| u.mfa_code.clone())
            .unwrap_or_default()
    }

    /// Number of token calls with this grant type, all tenants.
    pub fn token_calls(&self, grant_type: &str) -> u64 {
        lock(&self.shared.counters)
            .token
            .iter()
            .filter(|((_, g), _)| g == grant_type)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Number of token calls with this grant type at this tenant path segment (GUID, domain,
    /// `organizations`, `common`); a GUID also counts calls made with the tenant's domain.
    pub fn token_calls_for_tenant(&self, tenant: &str, grant_type: &str) -> u64 {
        let entries: Vec<((String, String), u64)> = lock(&self.shared.counters)
            .token
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let w = self.shared.world();
        let wanted = w.authority(tenant);
        entries
            .into_iter()
            .filter(|((t, g), _)| {
                g == grant_type
                    && (t.eq_ignore_ascii_case(tenant)
                        || (wanted.is_some() && w.authority(t) == wanted))
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Number of requests whose path starts with `path_prefix`.
    pub fn route_calls(&self, path_prefix: &str) -> u64 {
        lock(&self.shared.counters)
            .routes
            .iter()
            .filter(|(p, _)| p.starts_with(path_prefix))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Resets all counters.
    pub fn reset_counters(&self) {
        let mut c = lock(&self.shared.counters);
        c.token.clear();
        c.routes.clear();
    }

    /// Partner Center and Graph requests as received (method, path, query, all headers).
    pub fn recorded_requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.recorded).clone()
    }

    /// Forgets recorded requests.
    pub fn clear_recorded_requests(&self) {
        lock(&self.shared.recorded).clear();
    }

    /// Consents the app in the customer tenant (what PC `applicationconsents` POST does).
    pub fn grant_app_consent(&self, customer: Uuid, client_id: Uuid) {
        self.shared
            .world()
            .consents
            .entry((customer, client_id))
            .or_insert(ConsentRecord {
                display_name: None,
                grants: Vec::new(),
            });
    }

    /// Removes the app's consent in the tenant.
    pub fn remove_app_consent(&self, tenant: Uuid, client_id: Uuid) {
        self.shared.world().consents.remove(&(tenant, client_id));
    }

    /// Whether the app is consented in the tenant.
    pub fn app_consented(&self, customer: Uuid, client_id: Uuid) -> bool {
        self.shared.world().consented(customer, client_id)
    }

    /// Every refresh token issued so far, so tests can grep dumps and logs for plaintext leaks.
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        self.shared.world().issued_refresh_tokens.clone()
    }

    /// Adds a tenant (with its users).
    pub fn add_tenant(&self, tenant: TenantSeed) -> anyhow::Result<()> {
        let now = self.shared.now();
        self.shared.world().add_tenant(&tenant, now)
    }

    /// Adds a user to a tenant.
    pub fn add_user(&self, tenant: Uuid, user: UserSeed) -> anyhow::Result<()> {
        self.shared.world().add_user(tenant, &user)
    }

    /// Adds a customer tenant to a partner (without a GDAP relationship).
    pub fn add_customer(&self, partner: Uuid, customer: TenantSeed) -> anyhow::Result<()> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        anyhow::ensure!(
            w.tenants.contains_key(&partner),
            "unknown partner tenant {partner}"
        );
        let id = customer.id;
        if !w.tenants.contains_key(&id) {
            w.add_tenant(&customer, now)?;
        }
        w.link_customer(partner, id);
        Ok(())
    }

    /// Adds `n` generated customers to the partner, each with an active GDAP relationship (see
    /// [`crate::Seed::with_generated_customers`]); returns their tenant ids.
    pub fn add_customers(&self, partner: Uuid, n: usize) -> anyhow::Result<Vec<Uuid>> {
        self.add_generated_customers(partner, n, |_| CustomerOptions::default())
    }

    /// Adds `n` generated customers numbered on from the partner's customer count, each as
    /// `options(index)` says; returns their tenant ids.
    pub fn add_generated_customers(
        &self,
        partner: Uuid,
        n: usize,
        options: impl Fn(usize) -> CustomerOptions,
    ) -> anyhow::Result<Vec<Uuid>> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let first = w
            .tenants
            .get(&partner)
            .map(|p| p.customers.len())
            .ok_or_else(|| anyhow::anyhow!("unknown partner tenant {partner}"))?;
        let mut ids = Vec::with_capacity(n);
        for index in first..first + n {
            let generated = crate::seed::generated_customer(partner, index, &options(index));
            w.add_tenant(&generated.tenant, now)?;
            w.link_customer(partner, generated.tenant.id);
            if let Some(r) = &generated.relationship {
                w.add_relationship(r, now)?;
            }
            if let Some(c) = generated.consent {
                w.consents.insert(
                    (c.tenant, c.client_id),
                    ConsentRecord {
                        display_name: None,
                        grants: Vec::new(),
                    },
                );
            }
            ids.push(generated.tenant.id);
        }
        Ok(ids)
    }

    /// Sets (or with `None` removes) the customer's Conditional Access policy for partner users.
    pub fn set_customer_policy(&self, customer: Uuid, policy: Option<CustomerPolicy>) {
        if let Some(t) = self.shared.world().tenants.get_mut(&customer) {
            t.conditional_access = policy;
        }
    }

    /// Chooses the refusal a refresh at the customer's authority gets while the app is not
    /// consented there (default [`MissingConsentError::ConsentRequired`], AADSTS65001).
    pub fn set_missing_consent_error(&self, customer: Uuid, error: MissingConsentError) {
        if let Some(t) = self.shared.world().tenants.get_mut(&customer) {
            t.missing_consent_error = error;
        }
    }

    /// Adds an app registration.
    pub fn add_app(&self, app: AppSeed) -> anyhow::Result<()> {
        self.shared.world().add_app(&app)
    }

    /// Adds a GDAP relationship; returns its id.
    pub fn add_relationship(&self, relationship: RelationshipSeed) -> anyhow::Result<String> {
        let now = self.shared.now();
        self.shared.world().add_relationship(&relationship, now)
    }

    /// Sets the status of every relationship partner → customer; `expired` and `terminated` end
    /// it now (`endDateTime`), a first `active` sets `activatedDateTime`.
    pub fn set_relationship_status(
        &self,
        partner: Uuid,
        customer: Uuid,
        status: RelationshipStatus,
    ) {
        self.update_relationships(partner, customer, |r, now| r.set_status(status, now));
    }

    /// Sets `endDateTime` of every relationship partner → customer; once the emulator clock
    /// passes it the relationship is `expired` (and refresh tokens get AADSTS50020 there).
    pub fn set_relationship_end(&self, partner: Uuid, customer: Uuid, end: OffsetDateTime) {
        self.update_relationships(partner, customer, |r, _| r.end = Some(end));
    }

    /// Sets the role definition ids of every relationship partner → customer (empty: no access).
    pub fn set_relationship_roles(&self, partner: Uuid, customer: Uuid, roles: Vec<Uuid>) {
        self.update_relationships(partner, customer, |r, _| r.roles = roles.clone());
    }

    fn update_relationships(
        &self,
        partner: Uuid,
        customer: Uuid,
        mut change: impl FnMut(&mut Relationship, OffsetDateTime),
    ) {
        let now = self.shared.now();
        for r in self.shared.world().relationships.iter_mut() {
            if r.partner == partner && r.customer == customer {
                change(r, now);
                r.last_modified = now;
            }
        }
    }
}
