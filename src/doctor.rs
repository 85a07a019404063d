//! `samgate doctor`: checks a configuration against the services it names, in a fixed order, and
//! says for each check whether it is fine or who must fix what.
//!
//! Every check is bounded by a timeout. Findings carry no secret: tokens are dropped unread,
//! opened secrets are dropped at once, and Microsoft's free-text descriptions are not repeated.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use time::OffsetDateTime;
use url::Url;

use crate::app;
use crate::config::{ClientCredentialConfig, Config, ConfigError};
use crate::db;
use crate::db::grants::SealedKind;
use crate::identity::{IdentityClient, IdentityError, certificate};
use crate::vault::{Purpose, SealContext, Vault, VaultError};

/// What doctor checks, in the order it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The environment parses into a configuration.
    Configuration,
    /// `DATABASE_URL` accepts a connection.
    Database,
    /// The embedded migrations are the applied ones.
    Migrations,
    /// Every stored sealed secret opens with the key ring.
    KeyRing,
    /// The app's credential gets an app-only token in the CPV's tenant.
    AppCredential,
    /// The certificate credential's validity (only with a certificate).
    AppCertificate,
    /// The consent redirect URI samgate sends.
    RedirectUri,
    /// The staff sign-in redirect URI (only with staff SSO).
    StaffSsoRedirectUri,
    /// Partner Center answers.
    PartnerCenter,
    /// Microsoft Graph answers.
    Graph,
}

impl Check {
    /// The words a person reads on the check's line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Configuration => "configuration loads",
            Self::Database => "database reachable",
            Self::Migrations => "migrations applied",
            Self::KeyRing => "key ring opens every stored secret",
            Self::AppCredential => "app credential",
            Self::AppCertificate => "app certificate",
            Self::RedirectUri => "redirect URI",
            Self::StaffSsoRedirectUri => "staff sign-in redirect URI",
            Self::PartnerCenter => "Partner Center reachable",
            Self::Graph => "Graph reachable",
        }
    }
}

/// A check's verdict. `Skip` means a check it depends on failed, so it could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Works.
    Ok,
    /// Works now, but needs attention soon (e.g. a certificate expiring within 30 days).
    Warn,
    /// Does not work; `fix` says who acts and how.
    Fail,
    /// Not checked because an earlier check it needs failed.
    Skip,
}

impl Status {
    /// The four-letter word at the start of the line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Its verdict.
    pub status: Status,
    /// What was found (never a secret).
    pub detail: String,
    /// Who must do what, for `Warn` and `Fail`.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: Check, detail: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(check: Check, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn warn(check: Check, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            ..Self::fail(check, detail, fix)
        }
    }

    fn skip(check: Check, needs: Check) -> Self {
        Self {
            check,
            status: Status::Skip,
            detail: format!("not checked: needs \"{}\"", needs.label()),
            fix: None,
        }
    }
}

/// All findings, in check order.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Report {
    /// The lines.
    pub findings: Vec<Finding>,
}

impl Report {
    /// How many checks failed (the command exits 1 when any did).
    pub fn failures(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.status == Status::Fail)
            .count()
    }
}

/// How long each check may take; the key-ring check, which reads every sealed row, gets
/// [`KEY_RING_TIMEOUT_FACTOR`] times as long.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The per-check deadline.
    pub timeout: Duration,
}

/// The key-ring check's deadline as a multiple of [`Options::timeout`].
pub const KEY_RING_TIMEOUT_FACTOR: u32 = 6;

/// A certificate credential ending within this many days is a warning.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// Runs every check against what `config` names (the result of reading the environment the way
/// `serve` does) and returns the findings in order.
pub async fn examine(config: Result<Config, ConfigError>, options: Options) -> Report {
    let mut findings = Vec::new();
    let config = match config {
        Ok(config) => {
            findings.push(Finding::ok(
                Check::Configuration,
                "every variable is present and well-formed",
            ));
            config
        }
        Err(err) => {
            findings.push(Finding::fail(
                Check::Configuration,
                err.problems.join("; "),
                "an operator sets the variables named here; .env.sample describes every \
                 variable, its default and how to generate secrets",
            ));
            for check in [
                Check::Database,
                Check::Migrations,
                Check::KeyRing,
                Check::AppCredential,
                Check::RedirectUri,
                Check::PartnerCenter,
                Check::Graph,
            ] {
                findings.push(Finding::skip(check, Check::Configuration));
            }
            return Report { findings };
        }
    };

    let (database, pool) = within(options.timeout, Check::Database, connect(&config)).await;
    findings.push(database);
    match pool {
        Some(pool) => {
            let (migrations, ()) =
                within(options.timeout, Check::Migrations, migrations(&pool)).await;
            let schema_usable = migrations.status != Status::Fail;
            findings.push(migrations);
            if schema_usable {
                let vault = Vault::new(config.key_ring.clone());
                let (ring, ()) = within(
                    options.timeout * KEY_RING_TIMEOUT_FACTOR,
                    Check::KeyRing,
                    key_ring(&pool, &vault),
                )
                .await;
                findings.push(ring);
            } else {
                findings.push(Finding::skip(Check::KeyRing, Check::Migrations));
            }
            pool.close().await;
        }
        None => {
            findings.push(Finding::skip(Check::Migrations, Check::Database));
            findings.push(Finding::skip(Check::KeyRing, Check::Database));
        }
    }

    let http = app::outbound_client(&config);
    let (credential, partner_center, graph) = match &http {
        Ok(http) => {
            let pc_url =
                crate::partner_center::reachability_url(&config.microsoft.partner_center_url);
            let graph_url = crate::graph::reachability_url(&config.microsoft.graph_url);
            let ((credential, ()), (partner_center, ()), (graph, ())) = tokio::join!(
                within(
                    options.timeout,
                    Check::AppCredential,
                    app_credential(&config, http.clone()),
                ),
                within(
                    options.timeout,
                    Check::PartnerCenter,
                    reachable(
                        http,
                        Check::PartnerCenter,
                        pc_url,
                        "SAMGATE_PARTNER_CENTER_URL",
                        options.timeout,
                    ),
                ),
                within(
                    options.timeout,
                    Check::Graph,
                    reachable(
                        http,
                        Check::Graph,
                        graph_url,
                        "SAMGATE_GRAPH_URL",
                        options.timeout
                    ),
                ),
            );
            (credential, partner_center, graph)
        }
        Err(err) => {
            let fail = |check| {
                Finding::fail(
                    check,
                    format!("no outbound HTTP client: {err:#}"),
                    "an operator points SAMGATE_EXTRA_CA_FILE at a readable PEM certificate, or \
                     unsets it",
                )
            };
            (
                fail(Check::AppCredential),
                fail(Check::PartnerCenter),
                fail(Check::Graph),
            )
        }
    };
    findings.push(credential);
    if let ClientCredentialConfig::Certificate {
        certificate_file, ..
    } = &config.microsoft.credential
    {
        findings.push(app_certificate(certificate_file, OffsetDateTime::now_utc()));
    }
    findings.push(redirect_uri_finding(
        Check::RedirectUri,
        &config.redirect_uri(),
    ));
    if config.staff_sso_tenant.is_some() {
        findings.push(redirect_uri_finding(
            Check::StaffSsoRedirectUri,
            &config.staff_sso_redirect_uri(),
        ));
    }
    findings.push(partner_center);
    findings.push(graph);
    Report { findings }
}

/// Runs a check, turning a missed deadline into its failure.
async fn within<T: Default>(
    timeout: Duration,
    check: Check,
    work: impl Future<Output = (Finding, T)>,
) -> (Finding, T) {
    match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            let fix = match check {
                Check::Database | Check::Migrations | Check::KeyRing => {
                    "a database administrator checks that PostgreSQL is reachable from this host \
                     and not overloaded or locked; run doctor again with a longer --timeout for \
                     a large database"
                }
                _ => {
                    "the network team checks that this host reaches the service (firewall, DNS, \
                     proxy); run doctor again with a longer --timeout for a slow link"
                }
            };
            (
                Finding::fail(
                    check,
                    format!("no result within {} s", timeout.as_secs()),
                    fix,
                ),
                T::default(),
            )
        }
    }
}

async fn connect(config: &Config) -> (Finding, Option<PgPool>) {
    let fix = "an operator checks DATABASE_URL (host, port, database, user, password) and that \
               PostgreSQL accepts connections from this host";
    // The URL may hold a password: neither it nor the parser's message is repeated.
    let Ok(options) = PgConnectOptions::from_str(config.database_url.expose_secret()) else {
        return (
            Finding::fail(
                Check::Database,
                "DATABASE_URL is not a valid PostgreSQL URL",
                fix,
            ),
            None,
        );
    };
    let pool = match db::connect(options, 2).await {
        Ok(pool) => pool,
        Err(err) => {
            return (
                Finding::fail(Check::Database, format!("cannot connect: {err}"), fix),
                None,
            );
        }
    };
    match db::server_version(&pool).await {
        Ok(version) => (
            Finding::ok(Check::Database, format!("PostgreSQL {version}")),
            Some(pool),
        ),
        Err(err) => (
            Finding::fail(Check::Database, format!("cannot query: {err}"), fix),
            None,
        ),
    }
}

/// How the applied migrations differ from the ones this build embeds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationGaps {
    /// Embedded, never applied.
    pub missing: Vec<i64>,
    /// Recorded as failed partway.
    pub failed: Vec<i64>,
    /// Applied from SQL that differs from this build's (checksum mismatch).
    pub changed: Vec<i64>,
    /// Applied, but unknown to this build (a newer samgate migrated the database).
    pub unknown: Vec<i64>,
}

impl MigrationGaps {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.failed.is_empty()
            && self.changed.is_empty()
            && self.unknown.is_empty()
    }
}

/// Compares the embedded migrations `(version, checksum)` with the applied rows.
pub fn compare_migrations(
    embedded: &[(i64, &[u8])],
    applied: &[db::AppliedMigration],
) -> MigrationGaps {
    let mut gaps = MigrationGaps::default();
    for (version, checksum) in embedded {
        match applied.iter().find(|a| a.version == *version) {
            None => gaps.missing.push(*version),
            Some(row) if !row.success => gaps.failed.push(*version),
            Some(row) if row.checksum != *checksum => gaps.changed.push(*version),
            Some(_) => {}
        }
    }
    gaps.unknown = applied
        .iter()
        .filter(|a| !embedded.iter().any(|(version, _)| *version == a.version))
        .map(|a| a.version)
        .collect();
    gaps
}

fn versions(list: &[i64]) -> String {
    list.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn migrations(pool: &PgPool) -> (Finding, ()) {
    let embedded: Vec<(i64, &[u8])> = db::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.checksum.as_ref()))
        .collect();
    let applied = match db::applied_migrations(pool).await {
        Ok(applied) => applied,
        Err(err) => {
            return (
                Finding::fail(
                    Check::Migrations,
                    format!("cannot read _sqlx_migrations: {err}"),
                    "an operator gives the DATABASE_URL role read access to its database",
                ),
                (),
            );
        }
    };
    let Some(applied) = applied else {
        return (
            Finding::fail(
                Check::Migrations,
                format!(
                    "no migration was ever applied ({} expected)",
                    embedded.len()
                ),
                "an operator runs `samgate migrate` (or starts `samgate serve` without \
                 --skip-migrations)",
            ),
            (),
        );
    };
    let gaps = compare_migrations(&embedded, &applied);
    let sessions = db::session_store_exists(pool).await.unwrap_or(false);
    if gaps.is_empty() && sessions {
        let latest = embedded.iter().map(|(v, _)| *v).max().unwrap_or(0);
        return (
            Finding::ok(
                Check::Migrations,
                format!("all {} applied (latest {latest})", embedded.len()),
            ),
            (),
        );
    }
    let mut details = Vec::new();
    let mut fixes = Vec::new();
    if !gaps.missing.is_empty() || !sessions {
        if !gaps.missing.is_empty() {
            details.push(format!("not applied: {}", versions(&gaps.missing)));
        }
        if !sessions {
            details.push("the session store (tower_sessions.session) is missing".to_owned());
        }
        fixes.push(
            "an operator runs `samgate migrate` with this build (or starts `samgate serve` \
             without --skip-migrations)",
        );
    }
    if !gaps.failed.is_empty() {
        details.push(format!("failed partway: {}", versions(&gaps.failed)));
        fixes.push(
            "a database administrator completes or undoes the failed migration's statements by \
             hand (migrations/<version>_*.sql), deletes its row from _sqlx_migrations, then runs \
             `samgate migrate`",
        );
    }
    if !gaps.changed.is_empty() {
        details.push(format!(
            "applied from different SQL than this build's (checksum mismatch): {}",
            versions(&gaps.changed)
        ));
        fixes.push(
            "merged migrations are never edited: an operator deploys the samgate build that \
             migrated this database, and a developer restores the original migration files",
        );
    }
    if !gaps.unknown.is_empty() {
        details.push(format!(
            "applied but unknown to this build (a newer samgate migrated the database): {}",
            versions(&gaps.unknown)
        ));
        fixes.push("an operator deploys the samgate version that migrated this database");
    }
    (
        Finding::fail(Check::Migrations, details.join("; "), fixes.join("; ")),
        (),
    )
}

fn purpose_of(kind: SealedKind) -> Purpose {
    match kind {
        SealedKind::RefreshToken => crate::onboarding::REFRESH_TOKEN_PURPOSE,
        SealedKind::WebhookSecret => crate::webhooks::SECRET_PURPOSE,
        SealedKind::StaffTotpSecret => crate::staff::mfa::TOTP_SECRET_PURPOSE,
    }
}

async fn key_ring(pool: &PgPool, vault: &Vault) -> (Finding, ()) {
    let read_fix = "an operator gives the DATABASE_URL role read access to its tables";
    let missing = match app::keks_missing_from_ring(pool, vault).await {
        Ok(missing) => missing,
        Err(err) => {
            return (
                Finding::fail(
                    Check::KeyRing,
                    format!("cannot count sealed rows: {err}"),
                    read_fix,
                ),
                (),
            );
        }
    };
    let mut opened: BTreeMap<SealedKind, u64> = BTreeMap::new();
    let mut refused: BTreeMap<SealedKind, u64> = BTreeMap::new();
    let mut values = std::pin::pin!(db::grants::sealed_values(pool));
    while let Some(value) = values.next().await {
        let value = match value {
            Ok(value) => value,
            Err(err) => {
                return (
                    Finding::fail(
                        Check::KeyRing,
                        format!("cannot read sealed rows: {err}"),
                        read_fix,
                    ),
                    (),
                );
            }
        };
        let context = SealContext::new(purpose_of(value.kind), &value.row);
        // The opened secret is dropped (and zeroized) at once: only the outcome is kept.
        match vault.open(&value.sealed, &context) {
            Ok(_) => *opened.entry(value.kind).or_default() += 1,
            // Counted by KEK in `missing` already, with every kind of row.
            Err(VaultError::UnknownKek(_)) => {}
            Err(_) => *refused.entry(value.kind).or_default() += 1,
        }
    }
    let ring = vault
        .kek_ids()
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut details = Vec::new();
    let mut fixes = Vec::new();
    if !missing.is_empty() {
        let mut ids: Vec<i32> = missing.iter().map(|m| m.kek_id).collect();
        ids.dedup();
        let ids = ids
            .iter()
            .map(|id| format!("KEK {id}"))
            .collect::<Vec<_>>()
            .join(", ");
        details.push(format!(
            "sealed under keys the ring (KEKs {ring}) lacks: {}",
            app::missing_keks_text(&missing)
        ));
        fixes.push(format!(
            "an operator adds {ids} back to SAMGATE_KEKS (or SAMGATE_KEKS_FILE) from the secret \
             store. {}",
            app::MISSING_KEK_FIX
        ));
    }
    if !refused.is_empty() {
        let counts = refused
            .iter()
            .map(|(kind, count)| format!("{count} {}", kind.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        details.push(format!(
            "fail their integrity check under a key the ring holds: {counts}"
        ));
        fixes.push(
            "a key id in the ring holds another key than the one these were sealed with: an \
             operator restores that key id's original value from the secret store (rows altered \
             in the database cannot be opened by any key: their partners consent again)"
                .to_owned(),
        );
    }
    if details.is_empty() {
        let counts = [
            SealedKind::RefreshToken,
            SealedKind::WebhookSecret,
            SealedKind::StaffTotpSecret,
        ]
        .iter()
        .map(|kind| {
            format!(
                "{} {}",
                opened.get(kind).copied().unwrap_or(0),
                kind.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
        return (
            Finding::ok(
                Check::KeyRing,
                format!(
                    "{counts} open (ring: KEKs {ring}; active {})",
                    vault.active_kek_id()
                ),
            ),
            (),
        );
    }
    (
        Finding::fail(Check::KeyRing, details.join("; "), fixes.join(" ")),
        (),
    )
}

async fn app_credential(config: &Config, http: reqwest::Client) -> (Finding, ()) {
    let check = Check::AppCredential;
    let Some(tenant) = config.cpv_tenant() else {
        return (
            Finding::fail(
                check,
                "the CPV's own tenant is not configured, so the credential cannot be tried",
                "an operator sets SAMGATE_CPV_TENANT to the tenant id the app is registered in \
                 (the app registration's Overview: Directory (tenant) ID)",
            ),
            (),
        );
    };
    let credential = match app::client_credential(&config.microsoft.credential) {
        Ok(credential) => credential,
        Err(err) => {
            return (
                Finding::fail(
                    check,
                    format!("the certificate credential does not load: {err:#}"),
                    "an operator points SAMGATE_CLIENT_CERTIFICATE_FILE and SAMGATE_CLIENT_KEY_FILE \
                     at readable PEM files: the certificate registered on the app and its RSA key",
                ),
                (),
            );
        }
    };
    let kind = match config.microsoft.credential {
        ClientCredentialConfig::Secret(_) => "client secret",
        ClientCredentialConfig::Certificate { .. } => "certificate",
    };
    let client_id = config.microsoft.client_id;
    let identity = IdentityClient::new(
        http,
        config.microsoft.authority_url.clone(),
        client_id,
        credential,
    );
    let tenant = tenant.to_string();
    let endpoint = identity
        .token_endpoint(&tenant)
        .map_or_else(|_| tenant.clone(), |url| url.to_string());
    let scope = format!(
        "{}/.default",
        config.microsoft.graph_resource.trim_end_matches('/')
    );
    // The token is dropped unread: that Microsoft issued it is the finding.
    let finding = match identity.app_token(&tenant, &scope).await {
        Ok(_) => Finding::ok(
            check,
            format!("app {client_id} got an app-only token at {endpoint} with its {kind}"),
        ),
        Err(IdentityError::Refused(refusal)) => Finding::fail(
            check,
            format!(
                "{endpoint} refused app {client_id}'s {kind}: {} (AADSTS{})",
                refusal.error,
                refusal
                    .code
                    .map_or_else(|| "?".to_owned(), |code| code.to_string())
            ),
            refusal.advice,
        ),
        Err(IdentityError::Unreachable(err)) => Finding::fail(
            check,
            format!("cannot reach {endpoint}: {err}"),
            network_fix(&err, "SAMGATE_AUTHORITY_URL"),
        ),
        Err(err) => Finding::fail(
            check,
            format!("{endpoint}: {err}"),
            "an operator checks that SAMGATE_AUTHORITY_URL names the identity platform of the \
             app's cloud (default https://login.microsoftonline.com)",
        ),
    };
    (finding, ())
}

/// The verdict on a certificate ending at `not_after`, seen at `now`.
pub fn certificate_expiry(not_after: OffsetDateTime, now: OffsetDateTime) -> Status {
    if not_after <= now {
        Status::Fail
    } else if not_after - now <= time::Duration::days(CERTIFICATE_WARNING_DAYS) {
        Status::Warn
    } else {
        Status::Ok
    }
}

fn app_certificate(path: &std::path::Path, now: OffsetDateTime) -> Finding {
    let check = Check::AppCertificate;
    let renew = "an operator creates a new certificate, uploads it to the app registration \
                 (Certificates & secrets) and points SAMGATE_CLIENT_CERTIFICATE_FILE and \
                 SAMGATE_CLIENT_KEY_FILE at it";
    let not_after = std::fs::read(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))
        .and_then(|pem| {
            certificate::not_after(&pem).map_err(|err| format!("{}: {err}", path.display()))
        });
    let not_after = match not_after {
        Ok(at) => at,
        Err(detail) => return Finding::fail(check, detail, renew),
    };
    let when = crate::clock::format_utc(not_after);
    let days = (not_after - now).whole_days();
    match certificate_expiry(not_after, now) {
        Status::Fail => Finding::fail(
            check,
            format!("{} expired on {when}", path.display()),
            renew,
        ),
        Status::Warn => Finding::warn(
            check,
            format!("{} expires on {when}, in {days} day(s)", path.display()),
            format!("before then, {renew}"),
        ),
        Status::Ok | Status::Skip => Finding::ok(
            check,
            format!("{} valid until {when} ({days} days)", path.display()),
        ),
    }
}

/// Why Microsoft would refuse `uri` as a Web redirect URI: it must be https, except on a loopback
/// host (<https://learn.microsoft.com/entra/identity-platform/reply-url>).
pub fn redirect_uri_problem(uri: &str) -> Option<String> {
    let Ok(url) = Url::parse(uri) else {
        return Some("it is not an absolute URL".to_owned());
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some("it is http on a host other than localhost".to_owned()),
        other => Some(format!("its scheme is {other}, not https")),
    }
}

fn redirect_uri_finding(check: Check, uri: &str) -> Finding {
    match redirect_uri_problem(uri) {
        None => Finding::ok(
            check,
            format!("{uri} (it must be one of the app registration's Web redirect URIs, exactly)"),
        ),
        Some(problem) => Finding::fail(
            check,
            format!("{uri}: {problem}, which Microsoft refuses"),
            "an operator sets SAMGATE_PUBLIC_URL to the https URL people reach samgate at, and \
             registers the resulting URI as a Web redirect URI on the app",
        ),
    }
}

async fn reachable(
    http: &reqwest::Client,
    check: Check,
    url: Result<Url, url::ParseError>,
    variable: &str,
    timeout: Duration,
) -> (Finding, ()) {
    let service = match check {
        Check::Graph => "Microsoft Graph",
        _ => "Partner Center",
    };
    let url = match url {
        Ok(url) => url,
        Err(err) => {
            return (
                Finding::fail(
                    check,
                    format!("{variable} does not make a URL: {err}"),
                    format!("an operator sets {variable} to {service}'s base URL"),
                ),
                (),
            );
        }
    };
    let answer = http
        .get(url.clone())
        .header("accept", "application/json")
        .timeout(timeout)
        .send()
        .await;
    let finding = match answer {
        Ok(response) => match response.status().as_u16() {
            401 => Finding::ok(
                check,
                format!("{url} answered HTTP 401 to a request without a token, as {service} does"),
            ),
            status @ 500..=599 => Finding::warn(
                check,
                format!("{url} answered HTTP {status}"),
                format!(
                    "{service} may be degraded: run doctor again later; if it persists, an \
                     operator checks Microsoft's service health and {variable}"
                ),
            ),
            status => Finding::warn(
                check,
                format!(
                    "{url} answered HTTP {status} where {service} answers 401 to a request \
                     without a token"
                ),
                format!("an operator checks that {variable} is {service}'s base URL"),
            ),
        },
        Err(err) => {
            let text = error_chain(&err.without_url());
            Finding::fail(
                check,
                format!("cannot reach {url}: {text}"),
                network_fix(&text, variable),
            )
        }
    };
    (finding, ())
}

/// An error and its causes on one line (reqwest's own message hides the cause).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Who fixes a failed connection, by what the error says.
fn network_fix(error: &str, variable: &str) -> String {
    let lower = error.to_ascii_lowercase();
    if ["certificate", "tls", "handshake", "unknownissuer"]
        .iter()
        .any(|word| lower.contains(word))
    {
        format!(
            "TLS failed: when a TLS-inspecting proxy sits in between, an operator sets \
             SAMGATE_EXTRA_CA_FILE to its CA certificate; otherwise an operator checks {variable}"
        )
    } else {
        format!(
            "the network team allows outbound HTTPS from this host to that address (firewall, \
             DNS, proxy), and an operator checks {variable}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_certificate_is_ok_until_thirty_days_before_its_end_then_warns_then_fails() {
        let now = datetime!(2026-12-01 12:00 UTC);
        assert_eq!(
            certificate_expiry(now + time::Duration::days(31), now),
            Status::Ok
        );
        assert_eq!(
            certificate_expiry(now + time::Duration::days(30), now),
            Status::Warn
        );
        assert_eq!(
            certificate_expiry(now + time::Duration::minutes(1), now),
            Status::Warn
        );
        assert_eq!(certificate_expiry(now, now), Status::Fail);
        assert_eq!(
            certificate_expiry(now - time::Duration::days(1), now),
            Status::Fail
        );
    }

    #[test]
    fn the_certificate_line_says_when_it_ends_and_who_renews_it() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/identity/testdata/expiring.crt"
        ));
        // The test certificate ends 2027-01-01 18:58 UTC.
        let ok = app_certificate(path, datetime!(2026-11-01 00:00 UTC));
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.detail.contains("2027-01-01 18:58 UTC"), "{ok:?}");
        let soon = app_certificate(path, datetime!(2026-12-20 00:00 UTC));
        assert_eq!(soon.status, Status::Warn, "{soon:?}");
        assert!(soon.detail.contains("in 12 day(s)"), "{soon:?}");
        let over = app_certificate(path, datetime!(2027-01-02 00:00 UTC));
        assert_eq!(over.status, Status::Fail, "{over:?}");
        assert!(
            over.fix
                .as_deref()
                .is_some_and(|fix| fix.contains("uploads it to the app registration")),
            "{over:?}"
        );
        let missing = app_certificate(
            std::path::Path::new("/nonexistent/app.crt"),
            datetime!(2026-12-01 12:00 UTC),
        );
        assert_eq!(missing.status, Status::Fail, "{missing:?}");
    }

    #[test]
    fn a_redirect_uri_must_be_https_unless_its_host_is_loopback() {
        assert_eq!(
            redirect_uri_problem("https://samgate.example.com/oauth/callback"),
            None
        );
        assert_eq!(
            redirect_uri_problem("http://localhost:8080/oauth/callback"),
            None
        );
        assert_eq!(
            redirect_uri_problem("http://127.0.0.1:8080/oauth/callback"),
            None
        );
        assert_eq!(
            redirect_uri_problem("http://[::1]:8080/oauth/callback"),
            None
        );
        assert!(redirect_uri_problem("http://samgate.example.com/oauth/callback").is_some());
        assert!(redirect_uri_problem("http://10.0.0.5/oauth/callback").is_some());
        assert!(redirect_uri_problem("http://localhost.example.com/oauth/callback").is_some());
        assert!(redirect_uri_problem("ftp://samgate.example.com/oauth/callback").is_some());
    }

    fn applied(version: i64, success: bool, checksum: &[u8]) -> db::AppliedMigration {
        db::AppliedMigration {
            version,
            description: format!("m{version}"),
            success,
            checksum: checksum.to_vec(),
        }
    }

    #[test]
    fn migrations_missing_failed_changed_and_unknown_are_told_apart() {
        let embedded: &[(i64, &[u8])] = &[(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")];
        let gaps = compare_migrations(
            embedded,
            &[
                applied(1, true, b"a"),
                applied(2, false, b"b"),
                applied(3, true, b"tampered"),
                applied(9, true, b"z"),
            ],
        );
        assert_eq!(
            gaps,
            MigrationGaps {
                missing: vec![4],
                failed: vec![2],
                changed: vec![3],
                unknown: vec![9],
            }
        );
        let all = [
            applied(1, true, b"a"),
            applied(2, true, b"b"),
            applied(3, true, b"c"),
            applied(4, true, b"d"),
        ];
        assert!(compare_migrations(embedded, &all).is_empty());
    }

    #[test]
    fn a_tls_error_is_sent_to_the_extra_ca_and_others_to_the_network_team() {
        assert!(network_fix("invalid peer certificate: UnknownIssuer", "X").contains("EXTRA_CA"));
        assert!(network_fix("tcp connect error: Connection refused", "X").contains("network team"));
    }
}
