//! The activity pages and call logs: counts by outcome, latency percentiles, refresh outcomes and
//! an inline SVG chart for the estate, a partner and a client; filters and keyset pages of calls.

use reqwest::StatusCode;
use samgate::staff::Role;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::admin::{page_text, seed_client, seed_partner, signed_in};
use crate::harness::TestApp;

/// Inserts `n` calls of one kind, `ago` before the app's now.
#[allow(clippy::too_many_arguments)]
async fn seed_calls(
    app: &TestApp,
    n: i64,
    ago: Duration,
    partner_tenant: Uuid,
    client: Option<Uuid>,
    status: i32,
    latency_ms: i32,
    error_code: Option<&str>,
) {
    let at: OffsetDateTime = app.app.clock.now() - ago;
    sqlx::query(
        "INSERT INTO proxy_calls (occurred_at, client_id, partner_tenant_id, upstream, method, route,
                                  status, latency_ms, correlation_id, error_code)
         SELECT $1, $2, $3, 'partner-center', 'GET', '/v1/customers', $4, $5,
                'corr-' || gen_random_uuid(), $6
         FROM generate_series(1, $7)",
    )
    .bind(at)
    .bind(client)
    .bind(partner_tenant)
    .bind(status)
    .bind(latency_ms)
    .bind(error_code)
    .bind(n)
    .execute(&app.pool)
    .await
    .expect("calls");
}

/// Contoso's calls by one client: in the last hour 10 × 200 (100 ms), 3 × 404, 2 × 429 and one
/// 502 with a samgate code (1000 ms each); two days ago 5 more. Fabrikam: 4 calls without client.
async fn seed_estate(app: &TestApp) -> (Uuid, Uuid, Uuid) {
    let (contoso, contoso_tenant) = seed_partner(app, "Contoso").await;
    let (_, fabrikam_tenant) = seed_partner(app, "Fabrikam").await;
    let (client, _) = seed_client(app).await;
    let recent = Duration::minutes(10);
    let c = Some(client);
    seed_calls(app, 10, recent, contoso_tenant, c, 200, 100, None).await;
    seed_calls(app, 3, recent, contoso_tenant, c, 404, 1000, None).await;
    seed_calls(app, 2, recent, contoso_tenant, c, 429, 1000, None).await;
    seed_calls(
        app,
        1,
        recent,
        contoso_tenant,
        c,
        502,
        1000,
        Some("upstream_unavailable"),
    )
    .await;
    seed_calls(app, 5, Duration::days(2), contoso_tenant, c, 200, 100, None).await;
    seed_calls(app, 4, recent, fabrikam_tenant, None, 200, 100, None).await;
    (contoso, contoso_tenant, client)
}

fn stat(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html
        .find(&marker)
        .map(|at| at + marker.len())
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[start..];
    rest[..rest.find('<').unwrap_or(rest.len())]
        .trim()
        .to_owned()
}

#[tokio::test]
async fn partner_activity_counts_calls_by_outcome_with_latency_and_a_chart() {
    let app = TestApp::spawn().await;
    let (contoso, contoso_tenant, _) = seed_estate(&app).await;
    sqlx::query(
        "INSERT INTO audit_events (occurred_at, actor, action, partner_tenant_id, details)
         VALUES ($1, 'system', 'grant.refresh_failed', $2, '{}')",
    )
    .bind(app.app.clock.now() - Duration::minutes(5))
    .bind(contoso_tenant)
    .execute(&app.pool)
    .await
    .expect("audit");
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let html = page_text(&browser, &format!("/admin/partners/{contoso}/activity")).await;
    assert_eq!(stat(&html, "calls"), "16");
    assert_eq!(stat(&html, "client-errors"), "3");
    assert_eq!(stat(&html, "throttled"), "2");
    assert_eq!(stat(&html, "server-errors"), "1");
    assert_eq!(stat(&html, "samgate-errors"), "1");
    // Beyond the last hour, latency comes from a histogram: the bucket holding the percentile.
    assert_eq!(stat(&html, "p50"), "≤ 100 ms");
    assert_eq!(stat(&html, "p95"), "≤ 1000 ms");
    assert_eq!(stat(&html, "refresh-failed"), "1");
    assert!(html.contains("<svg viewBox="), "an inline SVG chart");
    assert!(html.contains("upstream_unavailable"));
    assert!(html.contains("/static/activity.css"));
    assert!(!html.contains("<script>"), "no inline script");

    let month = page_text(
        &browser,
        &format!("/admin/partners/{contoso}/activity?window=30d"),
    )
    .await;
    assert_eq!(stat(&month, "calls"), "21");
    let hour = page_text(
        &browser,
        &format!("/admin/partners/{contoso}/activity?window=hour"),
    )
    .await;
    assert_eq!(stat(&hour, "calls"), "16");
}

#[tokio::test]
async fn estate_and_client_activity_count_their_own_calls_and_link_the_busiest() {
    let app = TestApp::spawn().await;
    let (contoso, _, client) = seed_estate(&app).await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let estate = page_text(&browser, "/admin/activity").await;
    assert_eq!(stat(&estate, "calls"), "20");
    assert_eq!(stat(&estate, "throttled"), "2");
    assert!(estate.contains("<svg"));
    assert!(estate.contains(&format!("href=\"/admin/partners/{contoso}/activity\"")));
    assert!(estate.contains(&format!("href=\"/admin/clients/{client}/activity\"")));
    let month = page_text(&browser, "/admin/activity?window=30d").await;
    assert_eq!(stat(&month, "calls"), "25");

    let client_page = page_text(&browser, &format!("/admin/clients/{client}/activity")).await;
    assert_eq!(stat(&client_page, "calls"), "16");
    assert_eq!(stat(&client_page, "server-errors"), "1");
    assert!(client_page.contains("<svg"));

    let missing = browser
        .get(&format!("/admin/clients/{}/activity", Uuid::new_v4()))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn housekeeping_rolls_hours_up_and_the_pages_read_them_from_the_rollup() {
    let app = TestApp::spawn().await;
    let (contoso, contoso_tenant, client) = seed_estate(&app).await;
    // Three calls without an API client, in an hour that is always complete (so always rolled
    // up, whatever the wall clock's minute): they count once for the estate and the partner, and
    // for no client.
    seed_calls(
        &app,
        3,
        Duration::hours(3),
        contoso_tenant,
        None,
        200,
        100,
        None,
    )
    .await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let before = page_text(&browser, "/admin/activity?window=30d").await;
    assert_eq!(
        stat(&before, "calls"),
        "28",
        "nothing rolled up yet: all from the call records"
    );

    let now = app.app.clock.now();
    let first = samgate::jobs::housekeeping::run_once(&app.app, now)
        .await
        .expect("housekeeping");
    assert!(first.call_hours_rolled > 0);
    samgate::jobs::housekeeping::run_once(&app.app, now)
        .await
        .expect("again");
    let rolled: i64 = crate::admin::count(
        &app,
        "SELECT COALESCE(sum(calls), 0)::int8 FROM proxy_call_hours
             WHERE partner_tenant_id <> '00000000-0000-0000-0000-000000000000'",
    )
    .await;
    let hour_start = now.unix_timestamp() - now.unix_timestamp().rem_euclid(3600);
    let recent_rolled = now.unix_timestamp() - 600 < hour_start;
    assert_eq!(
        rolled,
        if recent_rolled { 28 } else { 8 },
        "each call once, however often it runs"
    );

    // The raw records of two days ago go; their hours still count.
    sqlx::query("DELETE FROM proxy_calls WHERE occurred_at < $1")
        .bind(now - Duration::days(1))
        .execute(&app.pool)
        .await
        .expect("delete");
    let estate = page_text(&browser, "/admin/activity?window=30d").await;
    assert_eq!(stat(&estate, "calls"), "28");
    assert!(estate.contains(&format!("href=\"/admin/clients/{client}/activity\"")));
    let partner = page_text(
        &browser,
        &format!("/admin/partners/{contoso}/activity?window=30d"),
    )
    .await;
    assert_eq!(stat(&partner, "calls"), "24");
    assert_eq!(stat(&partner, "throttled"), "2");
    let client_page = page_text(
        &browser,
        &format!("/admin/clients/{client}/activity?window=30d"),
    )
    .await;
    assert_eq!(stat(&client_page, "calls"), "21");
    assert_eq!(stat(&client_page, "p50"), "≤ 100 ms");
}

#[tokio::test]
async fn the_call_log_filters_by_status_class_and_pages_without_overlap() {
    let app = TestApp::spawn().await;
    let (contoso, contoso_tenant, client) = seed_estate(&app).await;
    seed_calls(
        &app,
        100,
        Duration::hours(3),
        contoso_tenant,
        Some(client),
        200,
        50,
        None,
    )
    .await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let throttled = page_text(
        &browser,
        &format!("/admin/partners/{contoso}/calls?class=429"),
    )
    .await;
    assert_eq!(
        throttled
            .matches("<span class=\"call-status throttled\">429</span>")
            .count(),
        2
    );
    assert_eq!(throttled.matches("call-status ").count(), 2);

    let samgate = page_text(
        &browser,
        &format!("/admin/clients/{client}/calls?class=samgate"),
    )
    .await;
    assert_eq!(samgate.matches("call-status ").count(), 1);
    assert!(samgate.contains("upstream_unavailable"));

    // Every call once over the pages (121 of Contoso).
    let mut seen = std::collections::BTreeSet::new();
    let mut path = format!("/admin/partners/{contoso}/calls");
    let mut pages = 0;
    loop {
        let html = page_text(&browser, &path).await;
        pages += 1;
        for part in html.split("<code class=\"id\">corr-").skip(1) {
            let id = part.split('<').next().unwrap_or_default().to_owned();
            assert!(seen.insert(id), "a call shown twice");
        }
        match crate::admin::link_href(&html, "id=\"next-page\"") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 121);
}

#[tokio::test]
async fn a_bad_call_log_filter_is_a_form_error_on_the_same_page() {
    let app = TestApp::spawn().await;
    let (contoso, _, _) = seed_estate(&app).await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let response = browser
        .get(&format!(
            "/admin/partners/{contoso}/calls?from=2026-13-45&customer=nope"
        ))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("page");
    assert!(
        html.contains("id=\"from-error\""),
        "the date field says what is wrong"
    );
    assert!(html.contains("id=\"customer-error\""));
    assert!(
        html.contains("value=\"2026-13-45\""),
        "the form keeps what was typed"
    );
    assert!(html.contains("<form method=\"get\""));
}

async fn audit(
    app: &TestApp,
    actor: &str,
    action: &str,
    tenant: Option<Uuid>,
    details: serde_json::Value,
) {
    sqlx::query(
        "INSERT INTO audit_events (occurred_at, actor, action, partner_tenant_id, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(app.app.clock.now())
    .bind(actor)
    .bind(action)
    .bind(tenant)
    .bind(details)
    .execute(&app.pool)
    .await
    .expect("audit");
}

#[tokio::test]
async fn the_audit_log_names_actors_and_partners_and_shows_details_as_a_table() {
    let app = TestApp::spawn().await;
    let (contoso, tenant) = seed_partner(&app, "Contoso").await;
    let (browser, staff_id) = signed_in(&app, Role::Viewer).await;
    sqlx::query("UPDATE staff SET display_name = 'Ada Lovelace' WHERE id = $1")
        .bind(staff_id)
        .execute(&app.pool)
        .await
        .expect("name");
    audit(
        &app,
        &format!("staff:{staff_id}"),
        "invitation.created",
        Some(tenant),
        serde_json::json!({ "expires_at": 1_796_466_120_i64, "reconsent": true }),
    )
    .await;
    audit(
        &app,
        "partner-admin:0b1c2d3e-0000-0000-0000-000000000001",
        "partner.consented",
        Some(tenant),
        serde_json::json!({ "mfa_evidence": "amr" }),
    )
    .await;

    let html = page_text(&browser, "/admin/audit").await;
    assert!(html.contains(&format!(
        "href=\"/admin/audit?actor=staff%3A{staff_id}\">Ada Lovelace</a>"
    )));
    assert!(html.contains(&format!(
        "href=\"/admin/partners/{contoso}\">Partner admin of Contoso</a>"
    )));
    assert!(html.contains(&format!("href=\"/admin/partners/{contoso}\">Contoso</a>")));
    assert!(html.contains("<th scope=\"row\">Expires at</th><td>2026-12-05 10:22 UTC</td>"));
    assert!(html.contains("<th scope=\"row\">Reconsent</th><td>yes</td>"));
    assert!(!html.contains("{&quot;"), "no raw JSON");
    assert!(
        !html.contains(&format!(">staff:{staff_id}<")),
        "no raw actor ids"
    );

    let by_name = page_text(&browser, "/admin/audit?actor=lovelace").await;
    assert_eq!(
        by_name.matches("<code>invitation.created</code>").count(),
        1
    );
    assert!(!by_name.contains("<code>partner.consented</code>"));
    let by_partner = page_text(&browser, "/admin/audit?partner=conto").await;
    assert_eq!(
        by_partner.matches("<code>partner.consented</code>").count(),
        1
    );
    let nobody = page_text(&browser, "/admin/audit?partner=Northwind").await;
    assert!(
        nobody.contains("id=\"no-events\""),
        "an empty state that says what to do"
    );
}

#[tokio::test]
async fn a_bad_audit_date_is_a_form_error_on_the_audit_page() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let response = browser
        .get("/admin/audit?from=yesterday&to=2026-02-30")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("page");
    assert!(html.contains("id=\"from-error\""));
    assert!(html.contains("id=\"to-error\""));
    assert!(
        html.contains("value=\"yesterday\""),
        "the form keeps what was typed"
    );
    assert!(
        html.contains("<h1>Audit log</h1>"),
        "the audit page, not an error page"
    );
}

#[tokio::test]
async fn the_audit_log_exports_as_csv_in_batches_with_the_filter_and_defused_formulas() {
    let app = TestApp::spawn().await;
    let (_, tenant) = seed_partner(&app, "Contoso").await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    sqlx::query(
        "INSERT INTO audit_events (occurred_at, actor, action, partner_tenant_id, details)
         SELECT $1, 'system', 'test.bulk', $2, jsonb_build_object('n', i) FROM generate_series(1, 1203) i",
    )
    .bind(app.app.clock.now())
    .bind(tenant)
    .execute(&app.pool)
    .await
    .expect("events");
    let (_, evil) = seed_partner(&app, "=SUM(A1)").await;
    audit(
        &app,
        "cli",
        "test.formula",
        Some(evil),
        serde_json::json!({ "note": "x" }),
    )
    .await;

    let response = browser.get("/admin/audit.csv?action=test.bulk").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("type"),
        "text/csv; charset=utf-8"
    );
    let csv = response.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time_utc,actor,actor_id,action,partner,partner_tenant_id,details"
    );
    assert_eq!(lines.len(), 1 + 1203, "every event once across the batches");
    let distinct: std::collections::BTreeSet<&str> = lines[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap_or_default())
        .collect();
    assert_eq!(distinct.len(), 1203);
    assert!(lines[1].contains(",samgate (automatic),system,test.bulk,Contoso,"));

    let formula = page_text(&browser, "/admin/audit.csv?action=test.formula").await;
    assert!(
        formula.contains(",'=SUM(A1),"),
        "a formula is defused: {formula}"
    );
    assert_eq!(formula.lines().count(), 2);

    let bad = browser.get("/admin/audit.csv?from=soon").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_partners_export_streams_every_partner_of_the_search_once() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, status)
         SELECT gen_random_uuid(), gen_random_uuid(), 'Bulk ' || lpad(i::text, 4, '0'), 'healthy'
         FROM generate_series(1, 1100) i",
    )
    .execute(&app.pool)
    .await
    .expect("partners");
    seed_partner(&app, "Contoso").await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let response = browser.get("/admin/partners.csv?q=Bulk").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("type"),
        "text/csv; charset=utf-8"
    );
    let csv = response.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("name,tenant_id,domain,status"));
    assert_eq!(
        lines.len(),
        1 + 1100,
        "every partner once across the batches"
    );
    assert!(lines[1].starts_with("Bulk 0001,"));
    assert!(lines[1100].starts_with("Bulk 1100,"));
    assert!(!csv.contains("Contoso"), "the search applies");
    let page = page_text(&browser, "/admin/partners?q=Bulk").await;
    assert!(
        page.contains("href=\"/admin/partners.csv?q=Bulk&#38;status=\""),
        "the list links its export"
    );
}
