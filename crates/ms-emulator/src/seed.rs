//! The seed: tenants, users, apps, consents and GDAP relationships the emulator starts with.
//! Serde (JSON or TOML) plus small builders for tests; `Seed::demo` is the demo/test world and
//! `Seed::with_generated_customers` makes partners with thousands of customers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod generated;

pub use generated::CustomerOptions;
pub(crate) use generated::customer as generated_customer;

/// Whether and how a user does multi-factor authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MfaState {
    /// MFA is required and registered: the sign-in asks for a one-time code.
    #[default]
    Registered,
    /// MFA is required but not registered: sign-in stops at "More information required" (AADSTS50079).
    NotRegistered,
    /// No MFA step; tokens carry `amr: ["pwd"]` only.
    NotRequired,
}

/// Everything the emulator knows at start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    /// Partner and customer tenants.
    pub tenants: Vec<TenantSeed>,
    /// App registrations (the CPV app and others).
    pub apps: Vec<AppSeed>,
    /// GDAP relationships partner → customer.
    pub relationships: Vec<RelationshipSeed>,
    /// App consents that already exist (tenant-wide grants of an app in a tenant).
    pub consents: Vec<ConsentSeed>,
}

/// One Entra tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantSeed {
    /// Tenant id (`tid`).
    pub id: Uuid,
    /// Organization name.
    pub display_name: String,
    /// Initial verified domain, e.g. `contoso.onmicrosoft.com`.
    pub default_domain: String,
    /// Users homed in this tenant.
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Customer tenant ids (each must itself be a tenant of the seed) when this is a partner.
    #[serde(default)]
    pub customers: Vec<Uuid>,
    /// Partner network (MPN) id.
    #[serde(default)]
    pub mpn_id: Option<String>,
    /// True for CSP partner tenants (Partner Center accepts their tokens).
    #[serde(default)]
    pub is_partner: bool,
    /// Subscriptions shown by Partner Center for this tenant as a customer.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSeed>,
    /// A Conditional Access policy of this tenant that refuses partner users' refresh tokens at
    /// its authority (`block`, `require_compliant_device`, `require_stronger_auth`).
    #[serde(default)]
    pub conditional_access: Option<CustomerPolicy>,
    /// What a partner user's refresh at this tenant's authority gets while the app has no consent
    /// here (`consent_required` = 65001, `app_not_found` = 700016, `partner_not_authorized` = 90099).
    #[serde(default)]
    pub missing_consent_error: MissingConsentError,
}

/// A customer tenant's Conditional Access policy that applies to partner (GDAP) users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerPolicy {
    /// Block access: AADSTS53003 (`invalid_grant`, suberror `message_only`).
    Block,
    /// Require a compliant device; a server has none: AADSTS53000.
    RequireCompliantDevice,
    /// Require an authentication the partner's grant cannot carry (sign-in frequency "every
    /// time", an authentication strength): AADSTS50076 (`basic_action`), even for MFA grants.
    RequireStrongerAuth,
}

/// Which refusal a partner user's refresh at a customer authority gets while the app is not
/// consented there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingConsentError {
    /// AADSTS65001 `invalid_grant`, suberror `consent_required` (what partners report seeing).
    #[default]
    ConsentRequired,
    /// AADSTS700016 `unauthorized_client`: the app has no service principal in the tenant.
    AppNotFound,
    /// AADSTS90099: the app is not authorized for partner delegated administrators.
    PartnerNotAuthorized,
}

/// Graph's `delegatedAdminRelationshipStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RelationshipStatus {
    /// `created`.
    Created,
    /// `approvalPending`.
    ApprovalPending,
    /// `approved`.
    Approved,
    /// `activating`.
    Activating,
    /// `active`.
    Active,
    /// `expiring`.
    Expiring,
    /// `expired`.
    Expired,
    /// `terminationRequested`.
    TerminationRequested,
    /// `terminating`.
    Terminating,
    /// `terminated`.
    Terminated,
}

impl RelationshipStatus {
    /// Every status, in Graph's lifecycle order.
    pub const ALL: [RelationshipStatus; 10] = [
        RelationshipStatus::Created,
        RelationshipStatus::ApprovalPending,
        RelationshipStatus::Approved,
        RelationshipStatus::Activating,
        RelationshipStatus::Active,
        RelationshipStatus::Expiring,
        RelationshipStatus::Expired,
        RelationshipStatus::TerminationRequested,
        RelationshipStatus::Terminating,
        RelationshipStatus::Terminated,
    ];

    /// Graph's spelling, e.g. `approvalPending`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationshipStatus::Created => "created",
            RelationshipStatus::ApprovalPending => "approvalPending",
            RelationshipStatus::Approved => "approved",
            RelationshipStatus::Activating => "activating",
            RelationshipStatus::Active => "active",
            RelationshipStatus::Expiring => "expiring",
            RelationshipStatus::Expired => "expired",
            RelationshipStatus::TerminationRequested => "terminationRequested",
            RelationshipStatus::Terminating => "terminating",
            RelationshipStatus::Terminated => "terminated",
        }
    }

    /// Whether the relationship's roles work in the customer tenant (`active`, `expiring`).
    pub fn grants_access(self) -> bool {
        matches!(
            self,
            RelationshipStatus::Active | RelationshipStatus::Expiring
        )
    }

    /// Whether the relationship was active at some point (so it has an `activatedDateTime`).
    pub fn was_activated(self) -> bool {
        matches!(
            self,
            RelationshipStatus::Active
                | RelationshipStatus::Expiring
                | RelationshipStatus::Expired
                | RelationshipStatus::TerminationRequested
                | RelationshipStatus::Terminating
                | RelationshipStatus::Terminated
        )
    }
}

impl fmt::Display for RelationshipStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RelationshipStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<RelationshipStatus, String> {
        RelationshipStatus::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown relationship status '{s}'"))
    }
}

/// One user account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserSeed {
    /// Object id (`oid`).
    pub oid: Uuid,
    /// User principal name (sign-in name).
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Password accepted by the sign-in page.
    pub password: String,
    /// MFA policy for the user.
    #[serde(default)]
    pub mfa: MfaState,
    /// Disabled accounts cannot sign in or refresh (AADSTS50057).
    #[serde(default)]
    pub disabled: bool,
    /// Partner Center role, e.g. `AdminAgent`.
    #[serde(default)]
    pub partner_center_role: Option<String>,
}

/// One app registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppSeed {
    /// Application (client) id.
    pub client_id: Uuid,
    /// Display name shown on the consent page.
    pub display_name: String,
    /// Tenant where the app is registered.
    pub home_tenant: Uuid,
    /// Registered redirect URIs (exact match).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Client secrets.
    #[serde(default)]
    pub secrets: Vec<SecretSeed>,
    /// Certificate credentials: PEM certificates or PEM public keys.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Multitenant ("Accounts in any organizational directory").
    #[serde(default = "yes")]
    pub multitenant: bool,
    /// Application permissions put into app-only tokens as `roles`.
    #[serde(default)]
    pub app_roles: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One client secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretSeed {
    /// The secret value the client sends.
    pub value: String,
    /// Expiry (RFC 3339); `None` = never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A GDAP relationship that gives the partner's users access in the customer tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelationshipSeed {
    /// Relationship id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Partner tenant id.
    pub partner: Uuid,
    /// Customer tenant id.
    pub customer: Uuid,
    /// Display name.
    #[serde(default = "default_relationship_name")]
    pub display_name: String,
    /// Graph status (`active`, `approvalPending`, `expired`, `terminated`, ...).
    #[serde(default = "default_relationship_status")]
    pub status: RelationshipStatus,
    /// Unified role definition ids granted; none means no access in the customer tenant.
    #[serde(default = "default_roles")]
    pub roles: Vec<Uuid>,
    /// ISO 8601 duration.
    #[serde(default = "default_duration")]
    pub duration: String,
    /// Graph's `endDateTime` (RFC 3339); absent = activation + `duration`. Once it has passed the
    /// relationship is `expired`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub end_date_time: Option<OffsetDateTime>,
}

fn default_relationship_name() -> String {
    "GDAP relationship".to_owned()
}
fn default_status() -> String {
    "active".to_owned()
}
fn default_relationship_status() -> RelationshipStatus {
    RelationshipStatus::Active
}
fn default_duration() -> String {
    "P730D".to_owned()
}
pub(crate) fn default_roles() -> Vec<Uuid> {
    // Directory Readers, User Administrator and Cloud Application Administrator role template
    // ids: what a CPV asks for to read and manage users and to consent its app (applicationconsents
    // needs one of `partner_center::APP_CONSENT_ROLES`).
    vec![
        Uuid::from_u128(0x88d8e3e3_8f55_4a1e_953a_9b9898b8876b),
        Uuid::from_u128(0xfe930be7_5e62_47db_91af_98c3a49a38b1),
        Uuid::from_u128(0x158c047a_c907_4556_b7ef_446551a6b5f7),
    ]
}

/// An existing consent of an app in a tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentSeed {
    /// Tenant where the app is consented.
    pub tenant: Uuid,
    /// The consented app.
    pub client_id: Uuid,
}

/// A subscription listed by Partner Center for a customer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubscriptionSeed {
    /// Subscription id.
    pub id: Uuid,
    /// Offer name, e.g. `Microsoft 365 Business Premium`.
    pub offer_name: String,
    /// Seats.
    pub quantity: u32,
    /// `active`, `suspended`, ...
    #[serde(default = "default_status")]
    pub status: String,
}

impl Seed {
    /// An empty seed.
    pub fn new() -> Seed {
        Seed::default()
    }

    /// Adds a tenant.
    pub fn with_tenant(mut self, tenant: TenantSeed) -> Seed {
        self.tenants.push(tenant);
        self
    }

    /// Adds an app.
    pub fn with_app(mut self, app: AppSeed) -> Seed {
        self.apps.push(app);
        self
    }

    /// Adds an active GDAP relationship partner → customer.
    pub fn with_relationship(mut self, partner: Uuid, customer: Uuid) -> Seed {
        self.relationships
            .push(RelationshipSeed::active(partner, customer));
        self
    }

    /// Adds a GDAP relationship as given (status, roles, end).
    pub fn with_relationship_seed(mut self, relationship: RelationshipSeed) -> Seed {
        self.relationships.push(relationship);
        self
    }

    /// Adds an app consent in a tenant.
    pub fn with_consent(mut self, tenant: Uuid, client_id: Uuid) -> Seed {
        self.consents.push(ConsentSeed { tenant, client_id });
        self
    }

    /// Adds `n` customer tenants to the partner (a tenant of this seed), numbered from the
    /// partner's current customer count: ids from [`Seed::generated_customer_id`], names
    /// "Customer 0042 Ltd", and what `options(index)` says (default: active GDAP, no consent).
    pub fn with_generated_customers(
        mut self,
        partner: Uuid,
        n: usize,
        options: impl Fn(usize) -> CustomerOptions,
    ) -> Seed {
        let position = self.tenants.iter().position(|t| t.id == partner);
        let first = position.map_or(0, |p| self.tenants[p].customers.len());
        self.tenants.reserve(n);
        self.relationships.reserve(n);
        for index in first..first + n {
            let generated = generated::customer(partner, index, &options(index));
            if let Some(p) = position {
                self.tenants[p].customers.push(generated.tenant.id);
            }
            self.tenants.push(generated.tenant);
            self.relationships.extend(generated.relationship);
            self.consents.extend(generated.consent);
        }
        self
    }

    /// Tenant id of the partner's generated customer number `index` (deterministic).
    pub fn generated_customer_id(partner: Uuid, index: usize) -> Uuid {
        generated::customer_id(partner, index)
    }

    /// Parses a seed file: TOML when `path` ends in `.toml`, JSON otherwise.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Seed> {
        let text = std::fs::read_to_string(path)?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            Ok(toml::from_str(&text)?)
        } else {
            Ok(serde_json::from_str(&text)?)
        }
    }

    /// Finds a user by UPN (case-insensitive).
    pub fn user(&self, upn: &str) -> Option<&UserSeed> {
        self.tenants
            .iter()
            .flat_map(|t| t.users.iter())
            .find(|u| u.upn.eq_ignore_ascii_case(upn))
    }

    /// Finds a tenant by display name.
    pub fn tenant_named(&self, name: &str) -> Option<&TenantSeed> {
        self.tenants.iter().find(|t| t.display_name == name)
    }

    /// The demo/test world: one CPV app, two partner tenants ("Contoso Partners", "Fabrikam IT"),
    /// each with one admin agent (MFA registered, password [`DEMO_PASSWORD`]) and two customers with
    /// active GDAP relationships; the app is consented in neither customer yet.
    pub fn demo(redirect_uri: &str) -> Seed {
        Seed::demo_with(redirect_uri, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    }

    /// [`Seed::demo`] with a chosen client id and secret.
    pub fn demo_with(redirect_uri: &str, client_id: Uuid, client_secret: &str) -> Seed {
        let cpv_tenant = TenantSeed::new(
            DEMO_CPV_TENANT,
            "SAM Gateway Vendor",
            "samvendor.onmicrosoft.com",
        );
        let app = AppSeed::new(client_id, "samgate CPV", DEMO_CPV_TENANT)
            .with_redirect_uri(redirect_uri)
            .with_secret(client_secret);
        let mut seed = Seed::new().with_tenant(cpv_tenant).with_app(app);
        let partners = [
            (
                DEMO_CONTOSO,
                "Contoso Partners",
                "contosopartners",
                "Contoso",
                0xc0_u128,
            ),
            (
                DEMO_FABRIKAM,
                "Fabrikam IT",
                "fabrikamit",
                "Fabrikam",
                0xfa_u128,
            ),
        ];
        for (pid, name, domain, short, n) in partners {
            let admin = UserSeed::new(&format!("admin@{domain}.onmicrosoft.com"), DEMO_PASSWORD)
                .with_oid(Uuid::from_u128(0x0a000000_0000_4000_8000_000000000000 | n))
                .with_display_name(&format!("{short} Admin Agent"));
            let mut partner = TenantSeed::new(pid, name, &format!("{domain}.onmicrosoft.com"))
                .partner(&format!("{}", 6_000_000 + n))
                .with_user(admin);
            for (i, customer_name) in [
                format!("{short} Customer One"),
                format!("{short} Customer Two"),
            ]
            .into_iter()
            .enumerate()
            {
                let idx = i as u128 + 1;
                let cid = Uuid::from_u128(0xc0570000_0000_4000_8000_000000000000 | (n << 8) | idx);
                let cdomain = format!("{}cust{}.onmicrosoft.com", short.to_lowercase(), idx);
                let customer = TenantSeed::new(cid, &customer_name, &cdomain)
                    .with_user(
                        UserSeed::new(&format!("alex@{cdomain}"), DEMO_PASSWORD)
                            .with_display_name("Alex Wilber"),
                    )
                    .with_user(
                        UserSeed::new(&format!("megan@{cdomain}"), DEMO_PASSWORD)
                            .with_display_name("Megan Bowen"),
                    )
                    .with_subscription("Microsoft 365 Business Premium", 10 * idx as u32);
                partner.customers.push(cid);
                seed.tenants.push(customer);
                seed = seed.with_relationship(pid, cid);
            }
            seed.tenants.push(partner);
        }
        seed
    }
}

impl Seed {
    /// Adds two demo customers to "Contoso Partners" (when the seed has it) that show refusals at
    /// a customer authority: [`DEMO_CONTOSO_CUSTOMER_BLOCKED`] (active GDAP, the apps consented,
    /// Conditional Access `block`: AADSTS53003) and [`DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP`] (a Partner Center customer
    /// without a GDAP relationship: AADSTS50020). The `ms-emulator` binary's demo world has them.
    pub fn with_demo_edge_cases(mut self) -> Seed {
        let Some(position) = self.tenants.iter().position(|t| t.id == DEMO_CONTOSO) else {
            return self;
        };
        let blocked = TenantSeed::new(
            DEMO_CONTOSO_CUSTOMER_BLOCKED,
            "Contoso Customer Blocked",
            "contosocust3.onmicrosoft.com",
        )
        .with_user(
            UserSeed::new("alex@contosocust3.onmicrosoft.com", DEMO_PASSWORD)
                .with_display_name("Alex Wilber"),
        )
        .with_conditional_access(CustomerPolicy::Block);
        let without_gdap = TenantSeed::new(
            DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP,
            "Contoso Customer Without GDAP",
            "contosocust4.onmicrosoft.com",
        )
        .with_user(
            UserSeed::new("alex@contosocust4.onmicrosoft.com", DEMO_PASSWORD)
                .with_display_name("Alex Wilber"),
        );
        self.tenants[position].customers.extend([
            DEMO_CONTOSO_CUSTOMER_BLOCKED,
            DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP,
        ]);
        self.tenants.extend([blocked, without_gdap]);
        // Consented, so that the policy is what refuses there.
        let apps: Vec<Uuid> = self.apps.iter().map(|a| a.client_id).collect();
        for client_id in apps {
            self = self.with_consent(DEMO_CONTOSO_CUSTOMER_BLOCKED, client_id);
        }
        self.with_relationship(DEMO_CONTOSO, DEMO_CONTOSO_CUSTOMER_BLOCKED)
    }
}

/// Demo customer of Contoso with Conditional Access `block` (see [`Seed::with_demo_edge_cases`]).
pub const DEMO_CONTOSO_CUSTOMER_BLOCKED: Uuid =
    Uuid::from_u128(0xc0570000_0000_4000_8000_00000000c003);
/// Demo customer of Contoso without GDAP (see [`Seed::with_demo_edge_cases`]).
pub const DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP: Uuid =
    Uuid::from_u128(0xc0570000_0000_4000_8000_00000000c004);
/// Client id of the demo CPV app.
pub const DEMO_CLIENT_ID: Uuid = Uuid::from_u128(0x5a3e6a7e_0000_4c9a_9d3e_00000000c0de);
/// Client secret of the demo CPV app.
pub const DEMO_CLIENT_SECRET: &str = "demo-cpv-secret-value";
/// Password of every demo user.
pub const DEMO_PASSWORD: &str = "Passw0rd!demo";
/// Tenant of the demo CPV app.
pub const DEMO_CPV_TENANT: Uuid = Uuid::from_u128(0x5a3e0000_0000_4000_8000_00000000000a);
/// Tenant id of "Contoso Partners".
pub const DEMO_CONTOSO: Uuid = Uuid::from_u128(0xc0470500_0000_4000_8000_0000000000c0);
/// Tenant id of "Fabrikam IT".
pub const DEMO_FABRIKAM: Uuid = Uuid::from_u128(0xfab41c00_0000_4000_8000_0000000000fa);
/// UPN of the Contoso Partners admin agent.
pub const DEMO_CONTOSO_ADMIN: &str = "admin@contosopartners.onmicrosoft.com";
/// UPN of the Fabrikam IT admin agent.
pub const DEMO_FABRIKAM_ADMIN: &str = "admin@fabrikamit.onmicrosoft.com";

impl TenantSeed {
    /// A tenant with no users.
    pub fn new(id: Uuid, display_name: &str, default_domain: &str) -> TenantSeed {
        TenantSeed {
            id,
            display_name: display_name.to_owned(),
            default_domain: default_domain.to_owned(),
            users: Vec::new(),
            customers: Vec::new(),
            mpn_id: None,
            is_partner: false,
            subscriptions: Vec::new(),
            conditional_access: None,
            missing_consent_error: MissingConsentError::default(),
        }
    }

    /// Gives the tenant a Conditional Access policy that refuses partner users' refreshes.
    pub fn with_conditional_access(mut self, policy: CustomerPolicy) -> TenantSeed {
        self.conditional_access = Some(policy);
        self
    }

    /// Chooses the refusal a refresh at this tenant gets while the app is not consented here.
    pub fn with_missing_consent_error(mut self, error: MissingConsentError) -> TenantSeed {
        self.missing_consent_error = error;
        self
    }

    /// Marks the tenant as a CSP partner with an MPN id.
    pub fn partner(mut self, mpn_id: &str) -> TenantSeed {
        self.is_partner = true;
        self.mpn_id = Some(mpn_id.to_owned());
        self
    }

    /// Adds a user.
    pub fn with_user(mut self, user: UserSeed) -> TenantSeed {
        self.users.push(user);
        self
    }

    /// Adds a customer tenant id.
    pub fn with_customer(mut self, customer: Uuid) -> TenantSeed {
        self.customers.push(customer);
        self
    }

    /// Adds a subscription.
    pub fn with_subscription(mut self, offer_name: &str, quantity: u32) -> TenantSeed {
        self.subscriptions.push(SubscriptionSeed {
            id: Uuid::new_v4(),
            offer_name: offer_name.to_owned(),
            quantity,
            status: "active".to_owned(),
        });
        self
    }
}

impl UserSeed {
    /// A user with MFA registered, enabled, role `AdminAgent`.
    pub fn new(upn: &str, password: &str) -> UserSeed {
        let local = upn.split('@').next().unwrap_or(upn);
        UserSeed {
            oid: Uuid::new_v4(),
            upn: upn.to_owned(),
            display_name: local.to_owned(),
            password: password.to_owned(),
            mfa: MfaState::Registered,
            disabled: false,
            partner_center_role: Some("AdminAgent".to_owned()),
        }
    }

    /// Sets the object id.
    pub fn with_oid(mut self, oid: Uuid) -> UserSeed {
        self.oid = oid;
        self
    }

    /// Sets the display name.
    pub fn with_display_name(mut self, name: &str) -> UserSeed {
        self.display_name = name.to_owned();
        self
    }

    /// Sets the MFA state.
    pub fn with_mfa(mut self, mfa: MfaState) -> UserSeed {
        self.mfa = mfa;
        self
    }

    /// Marks the user disabled.
    pub fn disabled(mut self) -> UserSeed {
        self.disabled = true;
        self
    }
}

impl AppSeed {
    /// A multitenant app with no credentials.
    pub fn new(client_id: Uuid, display_name: &str, home_tenant: Uuid) -> AppSeed {
        AppSeed {
            client_id,
            display_name: display_name.to_owned(),
            home_tenant,
            redirect_uris: Vec::new(),
            secrets: Vec::new(),
            certificates: Vec::new(),
            multitenant: true,
            app_roles: Vec::new(),
        }
    }

    /// Adds a redirect URI.
    pub fn with_redirect_uri(mut self, uri: &str) -> AppSeed {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    /// Adds a secret that never expires.
    pub fn with_secret(mut self, value: &str) -> AppSeed {
        self.secrets.push(SecretSeed {
            value: value.to_owned(),
            expires_at: None,
        });
        self
    }

    /// Adds a certificate credential (PEM certificate or PEM public key).
    pub fn with_certificate(mut self, pem: &str) -> AppSeed {
        self.certificates.push(pem.to_owned());
        self
    }
}

impl RelationshipSeed {
    /// An active relationship with default roles.
    pub fn active(partner: Uuid, customer: Uuid) -> RelationshipSeed {
        RelationshipSeed {
            id: None,
            partner,
            customer,
            display_name: default_relationship_name(),
            status: RelationshipStatus::Active,
            roles: default_roles(),
            duration: default_duration(),
            end_date_time: None,
        }
    }

    /// Sets the status.
    pub fn with_status(mut self, status: RelationshipStatus) -> RelationshipSeed {
        self.status = status;
        self
    }

    /// Sets the granted role definition ids (empty: the relationship grants nothing).
    pub fn with_roles(mut self, roles: Vec<Uuid>) -> RelationshipSeed {
        self.roles = roles;
        self
    }

    /// Sets `endDateTime`.
    pub fn with_end_date_time(mut self, end: OffsetDateTime) -> RelationshipSeed {
        self.end_date_time = Some(end);
        self
    }

    /// Sets the relationship id.
    pub fn with_id(mut self, id: &str) -> RelationshipSeed {
        self.id = Some(id.to_owned());
        self
    }

    /// Sets the display name.
    pub fn with_display_name(mut self, name: &str) -> RelationshipSeed {
        self.display_name = name.to_owned();
        self
    }
}
