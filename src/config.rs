//! Typed configuration from the environment, validated once at start.
//!
//! Every variable is documented here and in `.env.sample`. A bad or missing value fails start-up
//! with a message naming the variable; all problems are reported at once. Secrets are secret types.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

use crate::vault::KeyRing;

/// Everything samgate needs to run, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL connection string (may hold a password, hence secret).
    pub database_url: SecretString,
    /// `SAMGATE_LISTEN`: address to bind, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `SAMGATE_PUBLIC_URL`: the URL people and Microsoft reach samgate at (redirect URI base).
    pub public_url: Url,
    /// `SAMGATE_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `SAMGATE_TRUSTED_PROXIES`: comma-separated addresses or CIDRs of the reverse proxies in
    /// front of samgate, whose `X-Forwarded-For` is believed (sign-in throttling per address).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `SAMGATE_METRICS_LISTEN`: serve `/metrics` on this address only (e.g. `127.0.0.1:9090`)
    /// instead of on the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// `SAMGATE_MAX_BODY_BYTES`: largest accepted request body on pages and the management API.
    pub max_body_bytes: usize,
    /// `SAMGATE_REQUEST_TIMEOUT_SECS`: deadline for page and management requests.
    pub request_timeout: Duration,
    /// `SAMGATE_CPV_NAME`: the control panel's name, shown to partner admins.
    pub cpv_name: String,
    /// `SAMGATE_SUPPORT_URL` and `SAMGATE_SUPPORT_EMAIL`: where partner admins get help (optional;
    /// shown on the invitation, success and error pages).
    pub support: SupportContact,
    /// `SAMGATE_INVITATION_TTL_HOURS`: default lifetime of an invitation link (default 168 = 7 days).
    pub invitation_ttl: Duration,
    /// The CPV's Microsoft app and the Microsoft endpoints it talks to.
    pub microsoft: MicrosoftConfig,
    /// `SAMGATE_KEKS` or `SAMGATE_KEKS_FILE`, and `SAMGATE_ACTIVE_KEK`: the key-encryption keys.
    pub key_ring: KeyRing,
    /// Proxy limits and timeouts.
    pub proxy: ProxyConfig,
    /// Keep-alive, webhooks and housekeeping.
    pub lifecycle: LifecycleConfig,
    /// The customer directory and per-customer access.
    pub customers: CustomersConfig,
    /// `SAMGATE_APP_CONSENT_GRANTS`: what the CPV app asks for in customer tenants (admin UI).
    pub app_consent_grants: Vec<AppConsentGrant>,
    /// `SAMGATE_STAFF_SSO_TENANT`: the CPV's own Entra tenant (GUID); when set, staff may also
    /// sign in with Microsoft (OpenID Connect through the CPV app). Unset: local accounts only.
    pub staff_sso_tenant: Option<Uuid>,
}

/// Where partner admins can get help; either part may be absent.
#[derive(Debug, Clone, Default)]
pub struct SupportContact {
    /// A help page.
    pub url: Option<Url>,
    /// A support mailbox.
    pub email: Option<String>,
}

impl SupportContact {
    /// Whether any contact is configured.
    pub fn is_set(&self) -> bool {
        self.url.is_some() || self.email.is_some()
    }
}

/// One address, no display name, no spaces: what a `mailto:` link can carry safely.
fn is_plain_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text.len() <= 254
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.+-_".contains(c))
        && !domain.contains('@')
}

/// Grant keep-alive, webhook delivery and housekeeping settings.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `SAMGATE_BACKGROUND_JOBS`: run keep-alive, webhook delivery and housekeeping inside `serve`
    /// (default true); set false when `samgate worker` runs them in a separate deployment.
    pub background_jobs: bool,
    /// `SAMGATE_KEEPALIVE_AFTER_DAYS`: refresh grants not refreshed for this many days (default
    /// 14, at most 60). Microsoft ends a refresh token after 90 days without use; 14 leaves room
    /// for weeks of failed attempts (Microsoft outages, a stopped worker) before that happens.
    pub keepalive_after: time::Duration,
    /// `SAMGATE_KEEPALIVE_INTERVAL_SECS`: how often the keep-alive cycle runs (default 300).
    pub keepalive_interval: Duration,
    /// `SAMGATE_KEEPALIVE_CONCURRENCY`: refreshes in flight per instance (default 8).
    pub keepalive_concurrency: usize,
    /// `SAMGATE_KEEPALIVE_JITTER_MS`: random delay before each refresh, up to this (default 250),
    /// so many partners do not hit Microsoft at the same instant. It is taken inside a concurrency
    /// slot, so it also paces the sweep: 8 slots × 125 ms on average ≈ 64 refreshes/s, 100,000
    /// grants in about 26 minutes (BENCHMARKS.md).
    pub keepalive_jitter: Duration,
    /// `SAMGATE_WEBHOOKS_ALLOW_PRIVATE`: let webhook URLs reach loopback, link-local and private
    /// addresses (default false: the SSRF guard refuses them).
    pub webhooks_allow_private: bool,
    /// `SAMGATE_WEBHOOK_SECRET_OVERLAP_HOURS`: how long a rotated-out secret keeps signing (default 24).
    pub webhook_secret_overlap: time::Duration,
    /// `SAMGATE_WEBHOOK_POLL_SECS`: how often the delivery worker looks for due deliveries (default 5).
    pub webhook_poll_interval: Duration,
    /// `SAMGATE_WEBHOOK_MAX_ATTEMPTS`: attempts before a delivery is given up (default 12, ~1.5 days).
    pub webhook_max_attempts: u32,
    /// `SAMGATE_HOUSEKEEPING_INTERVAL_SECS`: how often housekeeping runs (default 3600).
    pub housekeeping_interval: Duration,
    /// `SAMGATE_PROXY_CALL_RETENTION_DAYS`: proxy call records kept this long (default 30).
    pub proxy_call_retention: time::Duration,
    /// `SAMGATE_WEBHOOK_RETENTION_DAYS`: delivered webhooks kept this long (default 30).
    pub webhook_retention: time::Duration,
}

/// The customer directory (each partner's customers and GDAP relationships) and the memory of
/// refusals at customer authorities.
#[derive(Debug, Clone)]
pub struct CustomersConfig {
    /// `SAMGATE_CUSTOMER_SYNC_INTERVAL_SECS`: how old a partner's directory may get before the
    /// scheduled sync reads it again (default 21600 = 6 h).
    pub sync_interval: time::Duration,
    /// `SAMGATE_CUSTOMER_SYNC_CONCURRENCY`: partners synced at once per instance (default 2).
    pub sync_concurrency: usize,
    /// `SAMGATE_CUSTOMER_UNKNOWN_RESYNC_SECS`: when the proxy meets a customer id the directory
    /// does not know, it reads the directory again unless it did within this time (default 300).
    pub unknown_resync: time::Duration,
    /// `SAMGATE_CUSTOMER_REFUSAL_MEMORY_SECS`: how long a refusal at a customer's authority is
    /// answered from memory without asking Microsoft again (default 300).
    pub refusal_memory: Duration,
    /// `SAMGATE_CUSTOMER_TRANSIENT_MEMORY_SECS`: the same for a transient failure (default 30).
    pub transient_memory: Duration,
}

/// Limits and timeouts of the proxy API.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `SAMGATE_PROXY_MAX_BODY_BYTES`: largest request body forwarded (default 32 MiB).
    pub max_body_bytes: usize,
    /// `SAMGATE_PROXY_FIRST_BYTE_TIMEOUT_SECS`: deadline for Microsoft's response headers (default 60).
    pub first_byte_timeout: Duration,
    /// `SAMGATE_PROXY_TIMEOUT_SECS`: deadline for a whole call, body included (default 300).
    pub total_timeout: Duration,
    /// `SAMGATE_PROXY_DEFAULT_BUDGET_SECS`: how long samgate may wait on Microsoft's
    /// `Retry-After` when the caller sends no `X-Samgate-Deadline` (default 10).
    pub default_budget: Duration,
    /// `SAMGATE_PROXY_CLIENT_CONCURRENCY`: concurrent calls per API client (default 256).
    pub client_concurrency: usize,
    /// `SAMGATE_PROXY_PARTNER_CONCURRENCY`: concurrent calls per partner (default 64); one API
    /// client may hold at most half of them, so another client of the partner always finds room.
    pub partner_concurrency: usize,
    /// `SAMGATE_CALL_RECORD_QUEUE`: call records held in memory before they are dropped (default 10000).
    pub call_record_queue: usize,
}

/// The CPV's multitenant Entra app and the Microsoft endpoints of its cloud.
#[derive(Debug, Clone)]
pub struct MicrosoftConfig {
    /// `SAMGATE_AUTHORITY_URL`: the identity platform (default `https://login.microsoftonline.com`).
    pub authority_url: Url,
    /// `SAMGATE_PARTNER_CENTER_URL`: Partner Center REST (default `https://api.partnercenter.microsoft.com`).
    pub partner_center_url: Url,
    /// `SAMGATE_GRAPH_URL`: Microsoft Graph (default `https://graph.microsoft.com`).
    pub graph_url: Url,
    /// `SAMGATE_PARTNER_CENTER_RESOURCE`: the resource id in Partner Center scopes.
    pub partner_center_resource: String,
    /// `SAMGATE_GRAPH_RESOURCE`: the resource id in Graph scopes.
    pub graph_resource: String,
    /// `SAMGATE_CLIENT_ID`: the app (client) id of the CPV's multitenant app.
    pub client_id: Uuid,
    /// `SAMGATE_CLIENT_SECRET`, or `SAMGATE_CLIENT_CERTIFICATE_FILE` + `SAMGATE_CLIENT_KEY_FILE`.
    pub credential: ClientCredentialConfig,
    /// `SAMGATE_CONSENT_GRAPH_SCOPES`: delegated Graph permissions requested at consent (space
    /// separated, e.g. `Directory.Read.All`); empty by default.
    pub graph_scopes: Vec<String>,
    /// `SAMGATE_EXTRA_CA_FILE`: a PEM certificate to trust in addition to the system roots (the
    /// emulator's self-signed certificate, a corporate TLS proxy).
    pub extra_ca_file: Option<PathBuf>,
    /// `SAMGATE_CLOUD`: a label stored with each grant (`global`, `usgov`, `china`).
    pub cloud: String,
    /// `SAMGATE_CPV_TENANT`: the CPV's own Entra tenant (GUID), where the app is registered;
    /// `samgate doctor` requests an app-only token there to prove the credential works.
    pub cpv_tenant: Option<Uuid>,
}

/// How samgate proves the app's identity to the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientCredentialConfig {
    /// A client secret (simple; Microsoft recommends certificates for production).
    Secret(SecretString),
    /// A certificate registered on the app; samgate signs client assertions with its key.
    Certificate {
        /// PEM file of the certificate (its SHA-256 thumbprint goes into `x5t#S256`).
        certificate_file: PathBuf,
        /// PEM file of the PKCS#8 private key.
        key_file: PathBuf,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shipping.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `text` or `json`, got `{other}`")),
        }
    }
}

/// Start-up refused: one line per missing or malformed variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}\nEvery variable, its default and how to generate secrets is described in .env.sample.", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// Each problem names its variable first.
    pub problems: Vec<String>,
}

/// Reads variables through a lookup function and collects every problem instead of stopping at the
/// first one.
pub struct EnvReader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl<'a> EnvReader<'a> {
    /// A reader over `lookup` (the process environment in production, a map in tests).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    /// An absolute http(s) URL with a default.
    pub fn optional_url(&mut self, name: &str, default: &str) -> Url {
        let fallback = Url::parse(default).expect("built-in default URLs are valid");
        let url = self.optional(name, fallback.clone(), "an absolute http(s) URL");
        if matches!(url.scheme(), "http" | "https") {
            url
        } else {
            self.problems
                .push(format!("{name} must be an http or https URL"));
            fallback
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be present; `hint` says what a good value looks like.
    pub fn required<T: FromStr>(&mut self, name: &str, hint: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => {
                self.problems.push(format!("{name} is not set ({hint})"));
                None
            }
            Some(value) => self.parse(name, &value, hint),
        }
    }

    /// A secret that must be present; its value never appears in a message.
    pub fn required_secret(&mut self, name: &str, hint: &str) -> Option<SecretString> {
        match self.raw(name) {
            None => {
                self.problems.push(format!("{name} is not set ({hint})"));
                None
            }
            Some(value) => Some(SecretString::from(value)),
        }
    }

    /// An optional secret.
    pub fn optional_secret(&mut self, name: &str) -> Option<SecretString> {
        self.raw(name).map(SecretString::from)
    }

    /// A variable with a default.
    pub fn optional<T: FromStr>(&mut self, name: &str, default: T, hint: &str) -> T
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => default,
            Some(value) => self.parse(name, &value, hint).unwrap_or(default),
        }
    }

    /// An optional variable without a default.
    pub fn maybe<T: FromStr>(&mut self, name: &str, hint: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.raw(name)?;
        self.parse(name, &value, hint)
    }

    fn parse<T: FromStr>(&mut self, name: &str, value: &str, hint: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        match value.trim().parse::<T>() {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                // Parse errors of secrets are never built from their value; these are plain settings.
                self.problems
                    .push(format!("{name} is malformed: {err} ({hint})"));
                None
            }
        }
    }

    /// Records a problem found while combining values.
    pub fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// `Ok(())` when nothing was wrong.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment (after an optional `.env`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; `serve` uses the environment, tests use maps.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let database_url = env.required_secret(
            "DATABASE_URL",
            "a PostgreSQL URL such as postgres://samgate:…@db.internal/samgate",
        );
        let listen = env.optional(
            "SAMGATE_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address and port such as 0.0.0.0:8080",
        );
        let public_url: Option<Url> = env.required(
            "SAMGATE_PUBLIC_URL",
            "the external URL of samgate such as https://samgate.example.com",
        );
        if let Some(url) = &public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            env.problem("SAMGATE_PUBLIC_URL must be an http or https URL".into());
        }
        let log_format = env.optional("SAMGATE_LOG_FORMAT", LogFormat::Text, "text or json");
        let trusted_proxies = read_trusted_proxies(&mut env);
        let metrics_listen = env.maybe(
            "SAMGATE_METRICS_LISTEN",
            "an address and port such as 127.0.0.1:9090",
        );
        let max_body_bytes = env.optional(
            "SAMGATE_MAX_BODY_BYTES",
            64 * 1024,
            "a number of bytes such as 65536",
        );
        let request_timeout = Duration::from_secs(env.optional(
            "SAMGATE_REQUEST_TIMEOUT_SECS",
            30,
            "whole seconds such as 30",
        ));
        let cpv_name = env.optional("SAMGATE_CPV_NAME", "samgate".to_owned(), "a display name");
        let support = SupportContact {
            url: env.maybe(
                "SAMGATE_SUPPORT_URL",
                "a URL such as https://help.example.com/samgate",
            ),
            email: env.maybe::<String>(
                "SAMGATE_SUPPORT_EMAIL",
                "an e-mail address such as support@example.com",
            ),
        };
        if let Some(url) = &support.url
            && !matches!(url.scheme(), "http" | "https")
        {
            env.problem("SAMGATE_SUPPORT_URL must be an http or https URL".into());
        }
        if let Some(email) = &support.email
            && !is_plain_email(email)
        {
            env.problem(
                "SAMGATE_SUPPORT_EMAIL must be one e-mail address such as support@example.com"
                    .into(),
            );
        }
        let invitation_ttl = Duration::from_secs(
            3600 * env.optional::<u64>(
                "SAMGATE_INVITATION_TTL_HOURS",
                168,
                "whole hours such as 168",
            ),
        );
        let microsoft = read_microsoft(&mut env);
        let key_ring = read_key_ring(&mut env);
        let proxy = read_proxy(&mut env);
        let lifecycle = read_lifecycle(&mut env);
        let customers = read_customers(&mut env);
        let app_consent_grants = read_app_consent_grants(&mut env);
        let staff_sso_tenant = env.maybe(
            "SAMGATE_STAFF_SSO_TENANT",
            "the CPV's Entra tenant id, a GUID such as 00000000-0000-0000-0000-000000000000",
        );
        env.finish()?;
        // finish() returned Ok, so every required value is present.
        match (database_url, public_url, microsoft, key_ring) {
            (Some(database_url), Some(public_url), Some(microsoft), Some(key_ring)) => Ok(Self {
                database_url,
                listen,
                public_url,
                log_format,
                metrics_listen,
                trusted_proxies,
                max_body_bytes,
                request_timeout,
                cpv_name,
                support,
                invitation_ttl,
                microsoft,
                key_ring,
                proxy,
                lifecycle,
                customers,
                app_consent_grants,
                staff_sso_tenant,
            }),
            _ => Err(ConfigError {
                problems: vec!["internal: a required value was lost".into()],
            }),
        }
    }

    /// The redirect URI registered on the app: `{public_url}/oauth/callback`.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/oauth/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }

    /// The staff sign-in redirect URI (register it on the app when staff SSO is on):
    /// `{public_url}/admin/login/sso/callback`.
    pub fn staff_sso_redirect_uri(&self) -> String {
        format!(
            "{}/admin/login/sso/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }

    /// Whether cookies must carry `Secure` (the public URL is https).
    pub fn public_url_is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The CPV's own tenant: `SAMGATE_CPV_TENANT`, else `SAMGATE_STAFF_SSO_TENANT` (which must be
    /// the same tenant, since staff sign in through the CPV's app there).
    pub fn cpv_tenant(&self) -> Option<Uuid> {
        self.microsoft.cpv_tenant.or(self.staff_sso_tenant)
    }
}

fn read_microsoft(env: &mut EnvReader<'_>) -> Option<MicrosoftConfig> {
    let authority_url =
        env.optional_url("SAMGATE_AUTHORITY_URL", "https://login.microsoftonline.com");
    let partner_center_url = env.optional_url(
        "SAMGATE_PARTNER_CENTER_URL",
        "https://api.partnercenter.microsoft.com",
    );
    let graph_url = env.optional_url("SAMGATE_GRAPH_URL", "https://graph.microsoft.com");
    let partner_center_resource = env.optional(
        "SAMGATE_PARTNER_CENTER_RESOURCE",
        "https://api.partnercenter.microsoft.com".to_owned(),
        "a resource URI",
    );
    let graph_resource = env.optional(
        "SAMGATE_GRAPH_RESOURCE",
        "https://graph.microsoft.com".to_owned(),
        "a resource URI",
    );
    let client_id: Option<Uuid> = env.required(
        "SAMGATE_CLIENT_ID",
        "the application (client) id of the CPV's multitenant app, a GUID",
    );
    let secret = env.optional_secret("SAMGATE_CLIENT_SECRET");
    let certificate_file: Option<PathBuf> = env.maybe("SAMGATE_CLIENT_CERTIFICATE_FILE", "a path");
    let key_file: Option<PathBuf> = env.maybe("SAMGATE_CLIENT_KEY_FILE", "a path");
    let credential = match (secret, certificate_file, key_file) {
        (_, Some(certificate_file), Some(key_file)) => Some(ClientCredentialConfig::Certificate {
            certificate_file,
            key_file,
        }),
        (Some(secret), None, None) => Some(ClientCredentialConfig::Secret(secret)),
        (_, Some(_), None) | (_, None, Some(_)) => {
            env.problem(
                "SAMGATE_CLIENT_CERTIFICATE_FILE and SAMGATE_CLIENT_KEY_FILE must be set together"
                    .into(),
            );
            None
        }
        (None, None, None) => {
            env.problem(
                "SAMGATE_CLIENT_SECRET is not set (or set SAMGATE_CLIENT_CERTIFICATE_FILE and \
                 SAMGATE_CLIENT_KEY_FILE for a certificate credential, which Microsoft recommends)"
                    .into(),
            );
            None
        }
    };
    let graph_scopes = env
        .optional(
            "SAMGATE_CONSENT_GRAPH_SCOPES",
            String::new(),
            "space separated",
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let extra_ca_file = env.maybe("SAMGATE_EXTRA_CA_FILE", "a path to a PEM certificate");
    let cloud = env.optional(
        "SAMGATE_CLOUD",
        "global".to_owned(),
        "global, usgov or china",
    );
    let cpv_tenant = env.maybe(
        "SAMGATE_CPV_TENANT",
        "the CPV's Entra tenant id, a GUID such as 00000000-0000-0000-0000-000000000000",
    );
    Some(MicrosoftConfig {
        authority_url,
        partner_center_url,
        graph_url,
        partner_center_resource,
        graph_resource,
        client_id: client_id?,
        credential: credential?,
        graph_scopes,
        extra_ca_file,
        cloud,
        cpv_tenant,
    })
}

fn read_customers(env: &mut EnvReader<'_>) -> CustomersConfig {
    let secs = |env: &mut EnvReader<'_>, name: &str, default: u64| {
        Duration::from_secs(env.optional(name, default, "whole seconds").max(1))
    };
    let sync_interval = secs(env, "SAMGATE_CUSTOMER_SYNC_INTERVAL_SECS", 21_600);
    let unknown_resync = secs(env, "SAMGATE_CUSTOMER_UNKNOWN_RESYNC_SECS", 300);
    let sync_concurrency: usize = env.optional("SAMGATE_CUSTOMER_SYNC_CONCURRENCY", 2, "a count");
    CustomersConfig {
        sync_interval: time::Duration::try_from(sync_interval).unwrap_or(time::Duration::HOUR),
        sync_concurrency: sync_concurrency.max(1),
        unknown_resync: time::Duration::try_from(unknown_resync)
            .unwrap_or(time::Duration::minutes(5)),
        refusal_memory: secs(env, "SAMGATE_CUSTOMER_REFUSAL_MEMORY_SECS", 300),
        transient_memory: secs(env, "SAMGATE_CUSTOMER_TRANSIENT_MEMORY_SECS", 30),
    }
}

fn read_lifecycle(env: &mut EnvReader<'_>) -> LifecycleConfig {
    let secs = |env: &mut EnvReader<'_>, name: &str, default: u64| {
        Duration::from_secs(env.optional(name, default, "whole seconds").max(1))
    };
    let days = |env: &mut EnvReader<'_>, name: &str, default: i64| {
        time::Duration::days(env.optional(name, default, "whole days").max(1))
    };
    let keepalive_days: i64 = env.optional("SAMGATE_KEEPALIVE_AFTER_DAYS", 14, "whole days");
    if !(1..=60).contains(&keepalive_days) {
        env.problem(format!(
            "SAMGATE_KEEPALIVE_AFTER_DAYS must be between 1 and 60 (refresh tokens die after 90 days \
             without use), got {keepalive_days}"
        ));
    }
    let keepalive_concurrency: usize = env.optional("SAMGATE_KEEPALIVE_CONCURRENCY", 8, "a count");
    if keepalive_concurrency == 0 {
        env.problem("SAMGATE_KEEPALIVE_CONCURRENCY must be at least 1".into());
    }
    LifecycleConfig {
        background_jobs: env.optional("SAMGATE_BACKGROUND_JOBS", true, "true or false"),
        keepalive_after: time::Duration::days(keepalive_days),
        keepalive_interval: secs(env, "SAMGATE_KEEPALIVE_INTERVAL_SECS", 300),
        keepalive_concurrency: keepalive_concurrency.max(1),
        keepalive_jitter: Duration::from_millis(env.optional(
            "SAMGATE_KEEPALIVE_JITTER_MS",
            250,
            "milliseconds",
        )),
        webhooks_allow_private: env.optional(
            "SAMGATE_WEBHOOKS_ALLOW_PRIVATE",
            false,
            "true or false",
        ),
        webhook_secret_overlap: time::Duration::hours(env.optional(
            "SAMGATE_WEBHOOK_SECRET_OVERLAP_HOURS",
            24,
            "whole hours",
        )),
        webhook_poll_interval: secs(env, "SAMGATE_WEBHOOK_POLL_SECS", 5),
        webhook_max_attempts: env
            .optional("SAMGATE_WEBHOOK_MAX_ATTEMPTS", 12, "a count")
            .max(1),
        housekeeping_interval: secs(env, "SAMGATE_HOUSEKEEPING_INTERVAL_SECS", 3600),
        proxy_call_retention: days(env, "SAMGATE_PROXY_CALL_RETENTION_DAYS", 30),
        webhook_retention: days(env, "SAMGATE_WEBHOOK_RETENTION_DAYS", 30),
    }
}

fn read_trusted_proxies(env: &mut EnvReader<'_>) -> Vec<ipnet::IpNet> {
    let text = env.optional(
        "SAMGATE_TRUSTED_PROXIES",
        String::new(),
        "addresses or CIDRs",
    );
    let mut nets = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item
            .parse::<ipnet::IpNet>()
            .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => nets.push(net),
            Err(_) => env.problem(format!(
                "SAMGATE_TRUSTED_PROXIES is malformed: `{item}` is not an address or CIDR"
            )),
        }
    }
    nets
}

fn read_proxy(env: &mut EnvReader<'_>) -> ProxyConfig {
    let secs = |env: &mut EnvReader<'_>, name: &str, default: u64| {
        Duration::from_secs(env.optional(name, default, "whole seconds"))
    };
    ProxyConfig {
        max_body_bytes: env.optional("SAMGATE_PROXY_MAX_BODY_BYTES", 32 * 1024 * 1024, "bytes"),
        first_byte_timeout: secs(env, "SAMGATE_PROXY_FIRST_BYTE_TIMEOUT_SECS", 60),
        total_timeout: secs(env, "SAMGATE_PROXY_TIMEOUT_SECS", 300),
        default_budget: secs(env, "SAMGATE_PROXY_DEFAULT_BUDGET_SECS", 10),
        client_concurrency: env.optional("SAMGATE_PROXY_CLIENT_CONCURRENCY", 256, "a count"),
        partner_concurrency: env.optional("SAMGATE_PROXY_PARTNER_CONCURRENCY", 64, "a count"),
        call_record_queue: env.optional("SAMGATE_CALL_RECORD_QUEUE", 10_000, "a count"),
    }
}

fn read_key_ring(env: &mut EnvReader<'_>) -> Option<KeyRing> {
    let active = env.raw("SAMGATE_ACTIVE_KEK");
    let inline = env.raw("SAMGATE_KEKS");
    let file = env.raw("SAMGATE_KEKS_FILE");
    let parsed = match (inline, file) {
        (Some(keks), None) => KeyRing::parse(&keks, active.as_deref()).map_err(|e| e.to_string()),
        (None, Some(path)) => {
            KeyRing::from_file(std::path::Path::new(&path), active.as_deref()).map_err(|e| e.to_string())
        }
        (Some(_), Some(_)) => Err("set SAMGATE_KEKS or SAMGATE_KEKS_FILE, not both".to_owned()),
        (None, None) => Err(
            "SAMGATE_KEKS is not set (key-encryption keys as `1:<base64 of 32 bytes>`; generate one \
             with `samgate keys generate`), or set SAMGATE_KEKS_FILE"
                .to_owned(),
        ),
    };
    match parsed {
        Ok(ring) => Some(ring),
        Err(problem) => {
            env.problem(problem);
            None
        }
    }
}

/// One resource's delegated permissions that the CPV app is granted in a customer tenant through
/// Partner Center's `applicationconsents` (`applicationGrants[]` item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConsentGrant {
    /// The resource's app id, e.g. Microsoft Graph `00000003-0000-0000-c000-000000000000`.
    pub enterprise_application_id: Uuid,
    /// Permission names, e.g. `User.Read.All`.
    pub scopes: Vec<String>,
}

/// Microsoft Graph's app id.
pub const GRAPH_APP_ID: Uuid = uuid::uuid!("00000003-0000-0000-c000-000000000000");

/// Parses `SAMGATE_APP_CONSENT_GRANTS`: `resource=Scope,Scope;resource=Scope` (`;` or a newline
/// between resources); the error names what is wrong.
pub fn parse_app_consent_grants(text: &str) -> Result<Vec<AppConsentGrant>, String> {
    let mut grants: Vec<AppConsentGrant> = Vec::new();
    for part in text.split([';', '\n']) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (resource, scopes) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not resource-app-id=Scope,Scope"))?;
        let resource = Uuid::parse_str(resource.trim())
            .map_err(|_| format!("{resource:?} is not a resource app id (a GUID)"))?;
        let scopes: Vec<String> = scopes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if scopes.is_empty()
            || scopes.iter().any(|s| {
                !s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            })
        {
            return Err(format!(
                "the permissions of {resource} must be names such as User.Read.All"
            ));
        }
        if grants
            .iter()
            .any(|g| g.enterprise_application_id == resource)
        {
            return Err(format!("{resource} is listed twice"));
        }
        grants.push(AppConsentGrant {
            enterprise_application_id: resource,
            scopes,
        });
    }
    if grants.is_empty() {
        return Err("no grant is listed".to_owned());
    }
    Ok(grants)
}

fn read_app_consent_grants(env: &mut EnvReader<'_>) -> Vec<AppConsentGrant> {
    let default = vec![AppConsentGrant {
        enterprise_application_id: GRAPH_APP_ID,
        scopes: vec!["User.Read.All".to_owned()],
    }];
    match env.raw("SAMGATE_APP_CONSENT_GRANTS") {
        None => default,
        Some(text) => parse_app_consent_grants(&text).unwrap_or_else(|problem| {
            env.problem(format!(
                "SAMGATE_APP_CONSENT_GRANTS is malformed: {problem} (e.g. \
                 00000003-0000-0000-c000-000000000000=User.Read.All,Directory.Read.All)"
            ));
            default
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variable names a text mentions (`SAMGATE_…` and `DATABASE_URL`).
    fn variables(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (at, _) in text.match_indices("SAMGATE_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.len() > "SAMGATE_".len() && !name.ends_with('_') {
                out.insert(name);
            }
        }
        if text.contains("DATABASE_URL") {
            out.insert("DATABASE_URL".to_owned());
        }
        out
    }

    #[test]
    fn env_sample_lists_exactly_the_variables_samgate_reads() {
        let sample = variables(include_str!("../.env.sample"));
        // Every file that reads the environment: the service's configuration, the CLI (its flags,
        // SAMGATE_ENV_FILE), the demo and the private PostgreSQL.
        let read: std::collections::BTreeSet<String> = [
            include_str!("config.rs"),
            include_str!("cli/mod.rs"),
            include_str!("cli/clients.rs"),
            include_str!("cli/doctor.rs"),
            include_str!("cli/invitations.rs"),
            include_str!("cli/keys.rs"),
            include_str!("cli/partners.rs"),
            include_str!("cli/serve.rs"),
            include_str!("cli/staff.rs"),
            include_str!("cli/webhooks.rs"),
            include_str!("cli/demo.rs"),
            include_str!("local_pg.rs"),
        ]
        .into_iter()
        .flat_map(variables)
        .collect();
        let missing: Vec<&String> = read.iter().filter(|v| !sample.contains(*v)).collect();
        assert!(missing.is_empty(), ".env.sample does not list {missing:?}");
        let unknown: Vec<&String> = sample.iter().filter(|v| !read.contains(*v)).collect();
        assert!(
            unknown.is_empty(),
            ".env.sample lists variables nobody reads: {unknown:?}"
        );
    }
    use std::collections::HashMap;

    const VALID: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://samgate@db/samgate"),
        ("SAMGATE_PUBLIC_URL", "https://samgate.example.com"),
        ("SAMGATE_CLIENT_ID", "6f1c2b0e-3b7e-4a51-9a0e-2f4c8d9b1a77"),
        ("SAMGATE_CLIENT_SECRET", "app-secret-value-never-printed"),
        (
            "SAMGATE_KEKS",
            "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
    ];

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = VALID
            .iter()
            .chain(pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&move |name| map.get(name).cloned())
    }

    #[test]
    fn every_missing_required_variable_is_named() {
        let err = Config::from_lookup(&|_| None).expect_err("empty environment must be refused");
        let text = err.to_string();
        for variable in [
            "DATABASE_URL is not set",
            "SAMGATE_PUBLIC_URL is not set",
            "SAMGATE_CLIENT_ID is not set",
            "SAMGATE_CLIENT_SECRET is not set",
            "SAMGATE_KEKS is not set",
        ] {
            assert!(text.contains(variable), "{variable}: {text}");
        }
    }

    #[test]
    fn a_complete_environment_is_accepted() {
        let config = config_from(&[]).expect("valid");
        assert_eq!(
            config.redirect_uri(),
            "https://samgate.example.com/oauth/callback"
        );
        assert_eq!(
            config.microsoft.authority_url.as_str(),
            "https://login.microsoftonline.com/"
        );
    }

    #[test]
    fn a_half_configured_certificate_credential_is_refused() {
        let err = config_from(&[("SAMGATE_CLIENT_CERTIFICATE_FILE", "/etc/samgate/app.pem")])
            .expect_err("certificate without key");
        assert!(err.to_string().contains("must be set together"), "{err}");
    }

    #[test]
    fn a_short_key_encryption_key_is_refused_without_echoing_it() {
        let err = config_from(&[("SAMGATE_KEKS", "1:c2hvcnQta2V5")]).expect_err("short key");
        let text = err.to_string();
        assert!(text.contains("SAMGATE_KEKS"), "{text}");
        assert!(!text.contains("c2hvcnQta2V5"), "{text}");
    }

    #[test]
    fn malformed_values_are_named_with_their_variable() {
        let err = config_from(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("SAMGATE_PUBLIC_URL", "not a url"),
            ("SAMGATE_LISTEN", "everywhere"),
            ("SAMGATE_LOG_FORMAT", "xml"),
        ])
        .expect_err("malformed values must be refused");
        let text = err.to_string();
        assert!(text.contains("SAMGATE_PUBLIC_URL is malformed"), "{text}");
        assert!(text.contains("SAMGATE_LISTEN is malformed"), "{text}");
        assert!(text.contains("SAMGATE_LOG_FORMAT is malformed"), "{text}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = config_from(&[(
            "DATABASE_URL",
            "postgres://samgate:hunter2-very-secret@db/samgate",
        )])
        .expect("valid configuration");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-very-secret"), "{debug}");
        assert!(!debug.contains("app-secret-value-never-printed"), "{debug}");
        assert!(
            !debug.contains("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            "{debug}"
        );
        assert!(config.public_url_is_https());
    }

    #[test]
    fn app_consent_grants_default_to_graph_and_parse_several_resources() {
        let config = config_from(&[]).expect("valid");
        assert_eq!(config.app_consent_grants.len(), 1);
        assert_eq!(
            config.app_consent_grants[0].enterprise_application_id,
            GRAPH_APP_ID
        );
        let grants = parse_app_consent_grants(
            "00000003-0000-0000-c000-000000000000=User.Read.All, Directory.Read.All; \
             797f4846-ba00-4fd7-ba43-dac1f8f63013=user_impersonation",
        )
        .expect("two resources");
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].scopes, ["User.Read.All", "Directory.Read.All"]);
        let err = config_from(&[("SAMGATE_APP_CONSENT_GRANTS", "graph=User.Read.All")])
            .expect_err("not a GUID");
        assert!(
            err.to_string().contains("SAMGATE_APP_CONSENT_GRANTS"),
            "{err}"
        );
    }
}
