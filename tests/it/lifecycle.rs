//! Grant lifecycle against the emulator's clock: keep-alive, the health state machine, and
//! offboarding (app consents removed, nothing decryptable left behind, `410 partner_offboarded`).

use std::time::Duration;

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_FABRIKAM, Fault};
use samgate::domain::Actor;
use samgate::jobs::keep_alive::{self, Selection, Summary};
use uuid::Uuid;

use crate::harness::DemoPartner::{Contoso, Fabrikam};
use crate::harness::instance::run_cli_async;
use crate::harness::{TestApp, second_instance};

const DAY: Duration = Duration::from_secs(86_400);

/// An app whose job loops stay off: the tests drive `run_once` themselves.
pub async fn quiet_app() -> TestApp {
    TestApp::builder()
        .with_env("SAMGATE_BACKGROUND_JOBS", "false")
        .with_env("SAMGATE_KEEPALIVE_JITTER_MS", "0")
        .with_env("SAMGATE_WEBHOOKS_ALLOW_PRIVATE", "true")
        .spawn()
        .await
}

/// Moves samgate's clock and Microsoft's together.
pub fn advance(app: &TestApp, by: Duration) {
    app.clock.advance(by);
    app.microsoft().advance_clock(by);
}

#[derive(Debug, sqlx::FromRow)]
struct Health {
    status: String,
    status_code: Option<String>,
}

async fn health(app: &TestApp, tenant: Uuid) -> Health {
    sqlx::query_as("SELECT status, status_code FROM partners WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.pool)
        .await
        .expect("partner")
}

async fn keep_alive(app: &TestApp) -> Summary {
    keep_alive::run_once(&app.app, app.app.clock.now())
        .await
        .expect("keep-alive run")
}

async fn events(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// Registers a receiver for every event, so the outbox records what happened.
pub(crate) async fn with_webhook_endpoint(app: &TestApp) {
    samgate::webhooks::add_endpoint(
        &app.app,
        "http://127.0.0.1:9/hook",
        &[],
        None,
        &Actor::parse("test"),
        app.app.clock.now(),
    )
    .await
    .expect("endpoint");
}

#[tokio::test]
async fn keep_alive_over_85_idle_days_keeps_the_grant_alive_past_day_90() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    let mut refreshed = 0;
    for _ in 0..17 {
        advance(&app, 5 * DAY);
        let summary = keep_alive(&app).await;
        assert_eq!(
            summary.needs_consent + summary.mfa_required + summary.failed,
            0,
            "{summary}"
        );
        refreshed += summary.refreshed;
    }
    // 85 days: refreshed whenever 14 days had passed (days 15, 30, 45, 60, 75).
    assert_eq!(refreshed, 5);
    advance(&app, 10 * DAY);
    // Day 95: the token issued at consent died at day 90, the rotated one works.
    let summary = keep_alive::run(&app.app, app.app.clock.now(), Selection::All)
        .await
        .expect("run");
    assert_eq!(summary.refreshed, 1, "{summary}");
    assert_eq!(health(&app, DEMO_CONTOSO).await.status, "healthy");
}

#[tokio::test]
async fn without_keep_alive_day_91_needs_consent_with_aadsts700082() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    with_webhook_endpoint(&app).await;
    advance(&app, 91 * DAY);
    let summary = keep_alive(&app).await;
    assert_eq!(summary.needs_consent, 1, "{summary}");
    let health = health(&app, DEMO_CONTOSO).await;
    assert_eq!(health.status, "needs_consent");
    assert_eq!(health.status_code.as_deref(), Some("700082"));
    assert_eq!(events(&app, "partner.needs_consent").await, 1);
    // A partner that needs consent is not refreshed again (no evidence would change).
    advance(&app, 15 * DAY);
    assert_eq!(keep_alive(&app).await, Summary::default());
}

#[tokio::test]
async fn revoked_sessions_need_consent_with_aadsts50173() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    app.microsoft().revoke_refresh_tokens(DEMO_CONTOSO_ADMIN);
    advance(&app, 15 * DAY);
    assert_eq!(keep_alive(&app).await.needs_consent, 1);
    let health = health(&app, DEMO_CONTOSO).await;
    assert_eq!(health.status, "needs_consent");
    assert_eq!(health.status_code.as_deref(), Some("50173"));
}

#[tokio::test]
async fn a_new_mfa_policy_requires_mfa_with_aadsts50076() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    with_webhook_endpoint(&app).await;
    app.microsoft().require_new_mfa(DEMO_CONTOSO_ADMIN);
    advance(&app, 15 * DAY);
    assert_eq!(keep_alive(&app).await.mfa_required, 1);
    let health = health(&app, DEMO_CONTOSO).await;
    assert_eq!(health.status, "mfa_required");
    assert_eq!(health.status_code.as_deref(), Some("50076"));
    assert_eq!(events(&app, "partner.mfa_required").await, 1);
}

#[tokio::test]
async fn transient_failures_change_nothing_until_three_in_a_row_degrade_and_a_success_recovers() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    with_webhook_endpoint(&app).await;
    advance(&app, 15 * DAY);
    let refreshed_at = || async {
        sqlx::query_scalar::<_, time::OffsetDateTime>("SELECT refreshed_at FROM grants")
            .fetch_one(&app.pool)
            .await
            .expect("grant")
    };
    let before = refreshed_at().await;
    for failure in 1..=3 {
        // Microsoft's 503 is `temporarily_unavailable` (AADSTS90055): throttling, not retried
        // by the broker, so one fault fails one refresh.
        app.microsoft()
            .fail_next(Fault::grant_type("refresh_token").status(503));
        let summary = keep_alive(&app).await;
        assert_eq!(summary.failed, 1, "failure {failure}: {summary}");
        let expected = if failure < 3 { "healthy" } else { "degraded" };
        assert_eq!(
            health(&app, DEMO_CONTOSO).await.status,
            expected,
            "after {failure}"
        );
        assert_eq!(refreshed_at().await, before, "the grant is untouched");
        // The claim's lease keeps the grant out of the next cycles for a few minutes.
        assert_eq!(keep_alive(&app).await, Summary::default());
        advance(&app, Duration::from_secs(6 * 60));
    }
    // Announced at the first failure and at the one that degraded the partner.
    assert_eq!(events(&app, "grant.refresh_failed").await, 2);
    assert_eq!(keep_alive(&app).await.refreshed, 1);
    assert_eq!(health(&app, DEMO_CONTOSO).await.status, "healthy");
    assert_eq!(events(&app, "partner.recovered").await, 1);
    // The count starts again after a success.
    advance(&app, 15 * DAY);
    // A 500 (`server_error`, AADSTS90033) the broker retries itself: three fail one refresh.
    app.microsoft()
        .fail_next(Fault::grant_type("refresh_token").status(500).times(3));
    assert_eq!(keep_alive(&app).await.failed, 1);
    assert_eq!(health(&app, DEMO_CONTOSO).await.status, "healthy");
}

#[tokio::test]
async fn two_workers_on_one_database_refresh_each_grant_exactly_once_per_cycle() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    app.consent_partner(Fabrikam).await;
    let other = second_instance(&app).await;
    advance(&app, 15 * DAY);
    let before = app.microsoft().token_calls("refresh_token");
    let now = app.app.clock.now();
    let (a, b) = tokio::join!(
        keep_alive::run_once(&app.app, now),
        keep_alive::run_once(&other, now)
    );
    let (a, b) = (a.expect("first worker"), b.expect("second worker"));
    assert_eq!(a.refreshed + b.refreshed, 2, "{a} / {b}");
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 2);
    // The next cycle, a minute later, finds nothing due on either instance.
    advance(&app, Duration::from_secs(60));
    let now = app.app.clock.now();
    let (a, b) = tokio::join!(
        keep_alive::run_once(&app.app, now),
        keep_alive::run_once(&other, now)
    );
    assert_eq!(a.expect("first"), Summary::default());
    assert_eq!(b.expect("second"), Summary::default());
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 2);
    assert_eq!(health(&app, DEMO_FABRIKAM).await.status, "healthy");
}

async fn offboard(app: &TestApp, key: &str, body: serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/partners/{DEMO_CONTOSO}/offboard")))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("offboard")
}

/// Every value in every table of the database, as text (a pg_dump without pg_dump).
async fn whole_database_as_text(app: &TestApp) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tables");
    let mut rows = Vec::new();
    for table in tables {
        let text: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&app.pool)
            .await
            .expect("rows");
        rows.extend(text);
    }
    rows
}

/// Every bytea value in the database.
async fn every_bytea_value(app: &TestApp) -> Vec<Vec<u8>> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT quote_ident(table_name), quote_ident(column_name) FROM information_schema.columns
         WHERE table_schema = 'public' AND data_type = 'bytea'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("columns");
    let mut values = Vec::new();
    for (table, column) in columns {
        let found: Vec<Vec<u8>> = sqlx::query_scalar(&format!(
            "SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
        ))
        .fetch_all(&app.pool)
        .await
        .expect("values");
        values.extend(found);
    }
    values
}

#[tokio::test]
async fn offboarding_removes_app_consents_destroys_the_grant_and_the_proxy_answers_410() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    let partner_id: Uuid = sqlx::query_scalar("SELECT id FROM partners WHERE tenant_id = $1")
        .bind(DEMO_CONTOSO)
        .fetch_one(&app.pool)
        .await
        .expect("partner");
    // One customer has the app consented, the other does not (its removal answers 404).
    app.microsoft()
        .grant_app_consent(Contoso.customer(1), DEMO_CLIENT_ID);
    let key = app
        .api_key("provisioning", Some(vec![DEMO_CONTOSO]), false)
        .await;
    let proxied = app
        .client
        .get(app.url(&format!(
            "/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("proxy");
    assert_eq!(proxied.status(), 200);
    app.invite_with("Contoso", None, Some(partner_id)).await;

    // Read-only keys and keys for other partners cannot offboard.
    let reader = app.api_key("reader", Some(vec![DEMO_CONTOSO]), true).await;
    assert_eq!(
        offboard(&app, &reader, serde_json::json!({}))
            .await
            .status(),
        403
    );
    let other = app.api_key("other", Some(vec![DEMO_FABRIKAM]), false).await;
    assert_eq!(
        offboard(&app, &other, serde_json::json!({})).await.status(),
        403
    );

    let response = offboard(
        &app,
        &key,
        serde_json::json!({ "remove_app_consents": true }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        report["app_consents_removed"],
        serde_json::json!([Contoso.customer(1)])
    );
    assert_eq!(
        report["app_consents_absent"],
        serde_json::json!([Contoso.customer(2)])
    );
    assert_eq!(report["grants_deleted"], 1);
    assert_eq!(
        report["invitations_revoked"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        !app.microsoft()
            .app_consented(Contoso.customer(1), DEMO_CLIENT_ID)
    );

    let pool = app.pool.clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    assert_eq!(count("SELECT count(*) FROM grants").await, 0);
    assert_eq!(count("SELECT count(*) FROM access_tokens").await, 0);
    assert_eq!(health(&app, DEMO_CONTOSO).await.status, "offboarded");
    assert_eq!(
        count("SELECT count(*) FROM audit_events WHERE action = 'partner.offboarded'").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM invitations WHERE used_at IS NULL AND revoked_at IS NULL")
            .await,
        0,
        "pending invitations revoked"
    );

    // Nothing in the database is a refresh token Microsoft issued, or opens as one.
    let issued = app.microsoft().issued_refresh_tokens();
    assert!(!issued.is_empty());
    for row in whole_database_as_text(&app).await {
        for token in &issued {
            assert!(
                !row.contains(token.as_str()),
                "a refresh token in plaintext"
            );
        }
    }
    let tenant = DEMO_CONTOSO.to_string();
    for value in every_bytea_value(&app).await {
        let opened = app.app.vault.open(
            &value,
            &samgate::vault::SealContext::new(samgate::onboarding::REFRESH_TOKEN_PURPOSE, &tenant),
        );
        assert!(
            opened.is_err(),
            "a sealed refresh token of the partner remains"
        );
    }

    let after = app
        .client
        .get(app.url(&format!(
            "/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("proxy");
    assert_eq!(after.status(), 410);
    let body: serde_json::Value = after.json().await.expect("json");
    assert_eq!(body["code"], "partner_offboarded");
    // A second offboarding finds nothing left to do.
    assert_eq!(
        offboard(&app, &key, serde_json::json!({})).await.status(),
        410
    );
}

/// Runs `samgate ARGS` against the test's database and emulator; returns (success, stdout).
async fn samgate_cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = run_cli_async(app, args, &[("SAMGATE_KEEPALIVE_JITTER_MS", "0")]).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_refreshes_on_demand_offboards_and_registers_webhooks() {
    let app = quiet_app().await;
    app.consent_partner(Contoso).await;
    let before = app.microsoft().token_calls("refresh_token");
    // Nothing is due yet; `--tenant` refreshes anyway.
    let (ok, out) = samgate_cli(&app, &["partners", "refresh"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("refreshed 0"), "{out}");
    let tenant = DEMO_CONTOSO.to_string();
    let (ok, out) = samgate_cli(&app, &["partners", "refresh", "--tenant", &tenant]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("refreshed 1, needs_consent 0, mfa_required 0, failed 0"),
        "{out}"
    );
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 1);

    let (ok, secret) = samgate_cli(
        &app,
        &[
            "webhooks",
            "add",
            "--url",
            "https://hooks.example.com/samgate",
            "--event",
            "partner.offboarded",
        ],
    )
    .await;
    assert!(ok && secret.trim().starts_with("whsec_"), "{secret}");
    let (_, list) = samgate_cli(&app, &["webhooks", "list"]).await;
    assert!(list.contains("https://hooks.example.com/samgate"), "{list}");
    assert!(
        !list.contains(secret.trim()),
        "the secret is shown only once"
    );

    let (ok, out) = samgate_cli(&app, &["partners", "offboard", "--tenant", &tenant]).await;
    assert!(ok, "{out}");
    assert!(out.contains("offboarded"), "{out}");
    assert_eq!(health(&app, DEMO_CONTOSO).await.status, "offboarded");
    let (_, deliveries) = samgate_cli(&app, &["webhooks", "deliveries"]).await;
    assert!(deliveries.contains("partner.offboarded"), "{deliveries}");
}
