//! The staff admin UI over real HTTP: sign-in and its throttle, sessions and their ends, CSRF and
//! origin checks, the role matrix of every route, no open redirect, keyset pages, audit, logs.

mod api_clients;
mod audit;
mod dashboard;
mod invitations;
mod partners;
mod real_browser;
mod request_checks;
mod roles;
mod sessions;

use std::time::Duration;

use reqwest::{Response, StatusCode};
use samgate::domain::Actor;
use samgate::staff::Role;
use samgate::web::admin::Access;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::session::AdminClient;
/// The session helpers, where the admin tests have always found them.
pub(crate) use crate::harness::session::{
    add_staff, enrol_totp, field_value, link_href, location, second_step, totp_code, totp_code_at,
};

/// A new member with `role`, signed in in a fresh client (see [`TestApp::signed_in`]).
pub(crate) async fn signed_in(app: &TestApp, role: Role) -> (AdminClient, Uuid) {
    let (client, member) = app.signed_in(role).await;
    (client, member.id)
}

const REFUSED: &str = "Email or password is incorrect, or sign-in is temporarily blocked.";

pub(crate) async fn seed_partner(app: &TestApp, name: &str) -> (Uuid, Uuid) {
    let (id, tenant) = (Uuid::now_v7(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, status) VALUES ($1, $2, $3, 'healthy')",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .execute(&app.pool)
    .await
    .expect("partner");
    (id, tenant)
}

async fn pending_invitation(app: &TestApp) -> Uuid {
    app.invite("Fixture Partner", None).await;
    sqlx::query_scalar("SELECT id FROM invitations WHERE revoked_at IS NULL AND used_at IS NULL ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("invitation")
}

/// A finished bulk app-consent run of the partner, with no customers.
async fn seed_run(app: &TestApp, partner: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app_consent_runs (id, partner_id, state, started_by, started_at, heartbeat_at, finished_at)
         VALUES ($1, $2, 'finished', 'test', now(), now(), now())",
    )
    .bind(id)
    .bind(partner)
    .execute(&app.pool)
    .await
    .expect("run");
    id
}

/// An API client (all partners) with one key; returns their ids.
pub(crate) async fn seed_client(app: &TestApp) -> (Uuid, Uuid) {
    let now = app.app.clock.now();
    let client = samgate::api_keys::create_client(
        &app.pool,
        samgate::api_keys::NewClient {
            name: &format!("fixture-{}", Uuid::new_v4().simple()),
            description: None,
            partners: None,
            read_only: false,
            created_by: &Actor::parse("test"),
        },
        now,
    )
    .await
    .expect("client");
    let (key, _) =
        samgate::api_keys::issue_key(&app.pool, client.id, None, &Actor::parse("test"), now)
            .await
            .expect("key");
    (client.id, key.id)
}

/// Opens `path` in a real browser and signs in there with a password and a current TOTP code.
pub(crate) async fn sign_in_in_browser(
    browser: &crate::harness::browser::Browser,
    app: &TestApp,
    path: &str,
    email: &str,
    password: &str,
    totp_secret: &str,
) {
    browser.goto(&app.url(path)).await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.click("form.stack button[type=submit]").await;
    browser.find("#code").await;
    browser.fill("#code", &totp_code(totp_secret, app)).await;
    browser.click("#verify-code").await;
}

/// A webhook endpoint with one queued delivery; returns their ids.
pub(crate) async fn seed_webhook(app: &TestApp) -> (Uuid, i64) {
    let now = app.app.clock.now();
    let (endpoint, _) = samgate::webhooks::add_endpoint(
        &app.app,
        "https://hooks.example.com/fixture",
        &[],
        None,
        &Actor::parse("test"),
        now,
    )
    .await
    .expect("endpoint");
    crate::admin_webhooks::queue_event(app).await;
    let delivery = crate::admin_webhooks::newest_delivery(app, endpoint.id).await;
    (endpoint.id, delivery)
}

pub(crate) async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

fn redirects_to_login(response: &Response) -> bool {
    response.status() == StatusCode::SEE_OTHER && location(response).starts_with("/admin/login")
}

pub(crate) async fn page_text(browser: &AdminClient, path: &str) -> String {
    let response = browser.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.text().await.expect("page")
}

pub(crate) async fn wait_for_run(app: &TestApp, run: Uuid) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM app_consent_runs WHERE id = $1")
            .bind(run)
            .fetch_one(&app.pool)
            .await
            .expect("run");
        if state != "running" {
            return state;
        }
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
