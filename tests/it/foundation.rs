//! Health, readiness, security headers, request ids, error pages.

use crate::harness::TestApp;

#[tokio::test]
async fn liveness_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readiness_is_green_with_a_migrated_database() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn readiness_goes_red_while_the_database_is_down_and_recovers() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    app.db.take_offline().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["database"], "unreachable");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);

    app.db.bring_online().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn readiness_is_red_when_migrations_are_missing() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.pool)
    .await
    .expect("forget a migration");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["database"], "migrations_pending");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in [
        "/",
        "/healthz",
        "/static/samgate.css",
        "/no-such-page",
        "/api/v1/nothing",
    ] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .expect("ascii");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_the_public_url_is_https() {
    let plain = TestApp::spawn().await;
    assert!(
        plain
            .get("/")
            .await
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    let tls = TestApp::builder()
        .with_env("SAMGATE_PUBLIC_URL", "https://samgate.example.com/")
        .spawn()
        .await;
    assert!(
        tls.get("/")
            .await
            .headers()
            .get("strict-transport-security")
            .is_some()
    );
}

#[tokio::test]
async fn a_callers_request_id_is_kept_and_returned() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "backend-7f3a.42")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "backend-7f3a.42");
}

#[tokio::test]
async fn a_request_id_is_generated_when_missing_or_unsafe() {
    let app = TestApp::spawn().await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).map(|_| ()), Ok(()), "{id}");

    let forged = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc\" injected=\"1")
        .send()
        .await
        .expect("request");
    let returned = forged.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(returned, "abc\" injected=\"1");
    assert!(uuid::Uuid::parse_str(returned).is_ok());
}

#[tokio::test]
async fn the_home_page_renders_with_its_stylesheet() {
    let app = TestApp::spawn().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("body");
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/static/samgate.css\">"));
    let css = app.get("/static/samgate.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn unknown_pages_get_an_html_error_with_a_reference_and_api_paths_get_json() {
    let app = TestApp::spawn().await;
    let page = app.get("/no/such/page").await;
    assert_eq!(page.status(), 404);
    let html = page.text().await.expect("body");
    assert!(html.contains("Page not found"));
    assert!(html.contains("id=\"error-reference\""));

    let api = app.get("/api/v1/no-such-thing").await;
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = api.json().await.expect("json");
    assert_eq!(body["code"], "not_found");
    assert!(body["reference"].as_str().is_some_and(|r| r.len() == 12));
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let app = TestApp::spawn().await;
    sqlx::query("INSERT INTO audit_events (actor, action) VALUES ('test', 'test.created')")
        .execute(&app.pool)
        .await
        .expect("append");
    let update = sqlx::query("UPDATE audit_events SET action = 'forged'")
        .execute(&app.pool)
        .await;
    assert!(update.is_err(), "update must be refused");
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&app.pool)
        .await;
    assert!(delete.is_err(), "delete must be refused");
    let truncate = sqlx::query("TRUNCATE audit_events")
        .execute(&app.pool)
        .await;
    assert!(truncate.is_err(), "truncate must be refused");
}
