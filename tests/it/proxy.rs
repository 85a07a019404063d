//! The proxy API against the emulator and real PostgreSQL: scoping, token broker behaviour,
//! resilience, path and header policy, streaming and call records.

use std::time::Duration;

use ms_emulator::{DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_FABRIKAM, Fault};
use uuid::Uuid;

use crate::harness::DemoPartner::{Contoso, Fabrikam};
use crate::harness::TestApp;

fn pc(path: &str) -> String {
    format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/{path}")
}

async fn call(app: &TestApp, key: &str, method: reqwest::Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("proxy call")
}

#[tokio::test]
async fn a_backend_lists_a_partners_customers_through_the_proxy() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .bearer_auth(&key)
        .header("MS-CorrelationId", "7d1b3c52-0000-4000-8000-00000000abcd")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-samgate-upstream"], "partner-center");
    assert_eq!(
        response.headers()["ms-correlationid"],
        "7d1b3c52-0000-4000-8000-00000000abcd"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));

    // Continuation: the next link points at samgate's route, and with its MS-ContinuationToken
    // it gives the next page.
    let next = &body["links"]["next"];
    let uri = next["uri"].as_str().expect("next uri");
    assert!(
        uri.starts_with(&app.url(&pc("v1/customers?"))),
        "the next link stays on samgate: {uri}"
    );
    let token_header = &next["headers"][0];
    let second = app
        .client
        .get(uri)
        .bearer_auth(&key)
        .header(
            token_header["key"].as_str().expect("key"),
            token_header["value"].as_str().expect("value"),
        )
        .send()
        .await
        .expect("next page");
    assert_eq!(second.status(), 200);
    let page: serde_json::Value = second.json().await.expect("json");
    assert_ne!(page["items"][0]["id"], body["items"][0]["id"]);
}

#[tokio::test]
async fn the_callers_credentials_and_hop_by_hop_headers_never_reach_microsoft() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .bearer_auth(&key)
        .header("cookie", "session=abc")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "x-secret-hop")
        .header("x-secret-hop", "1")
        .header("x-locale", "de-DE")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    let recorded = app
        .microsoft()
        .recorded_requests()
        .into_iter()
        .find(|r| r.path == "/v1/customers")
        .expect("upstream saw the call");
    let authorization = recorded.header("authorization").expect("a bearer token");
    assert!(
        authorization.starts_with("Bearer eyJ"),
        "a Microsoft access token, not the API key"
    );
    assert!(!authorization.contains(&key));
    assert!(recorded.header("cookie").is_none());
    assert!(recorded.header("x-forwarded-for").is_none());
    assert!(recorded.header("x-secret-hop").is_none());
    assert_eq!(recorded.header("x-locale"), Some("de-DE"));
    assert!(
        recorded.header("ms-requestid").is_some(),
        "samgate sets MS-RequestId"
    );
}

#[tokio::test]
async fn a_read_only_key_cannot_smuggle_a_write_through_method_override_headers() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let reader = app.api_key("reader", Some(vec![DEMO_CONTOSO]), true).await;
    app.microsoft().clear_recorded_requests();
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .bearer_auth(&reader)
        .header("x-http-method-override", "DELETE")
        .header("x-http-method", "DELETE")
        .header("x-method-override", "DELETE")
        .header("x-original-url", "/v1/customers/x/applicationconsents")
        .header("x-rewrite-url", "/v1/customers/x")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    let recorded = app
        .microsoft()
        .recorded_requests()
        .into_iter()
        .find(|r| r.path == "/v1/customers")
        .expect("upstream saw the call");
    for header in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(
            recorded.header(header).is_none(),
            "{header} reached Microsoft"
        );
    }
}

#[tokio::test]
async fn keys_are_scoped_to_partners_and_read_only_clients_cannot_write() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let only_fabrikam = app
        .api_key("fabrikam-only", Some(vec![DEMO_FABRIKAM]), false)
        .await;
    let reader = app.api_key("reader", Some(vec![DEMO_CONTOSO]), true).await;

    let response = call(
        &app,
        &only_fabrikam,
        reqwest::Method::GET,
        &pc("v1/customers?size=1"),
    )
    .await;
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "forbidden_partner");

    assert_eq!(
        call(
            &app,
            &reader,
            reqwest::Method::GET,
            &pc("v1/customers?size=1")
        )
        .await
        .status(),
        200
    );
    let customer = Contoso.customer(1);
    let write = call(
        &app,
        &reader,
        reqwest::Method::DELETE,
        &pc(&format!(
            "v1/customers/{customer}/applicationconsents/{}",
            ms_emulator::DEMO_CLIENT_ID
        )),
    )
    .await;
    assert_eq!(write.status(), 403);
    let body: serde_json::Value = write.json().await.expect("json");
    assert_eq!(body["code"], "forbidden_method");

    // The management API follows the same scope.
    let listing: serde_json::Value = app
        .client
        .get(app.url("/api/v1/partners"))
        .bearer_auth(&only_fabrikam)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listing["partners"].as_array().map(Vec::len), Some(0));
    let listing: serde_json::Value = app
        .client
        .get(app.url("/api/v1/partners"))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listing["partners"][0]["status"], "healthy");
    assert_eq!(listing["partners"][0]["name"], "Contoso Partners");
}

#[tokio::test]
async fn unknown_missing_and_malformed_keys_get_401_with_www_authenticate() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    for key in [
        Some(format!("sgk_{}", "A".repeat(43))),
        Some("not-a-key".to_owned()),
        Some(String::new()),
        None,
    ] {
        let mut request = app.client.get(app.url(&pc("v1/customers?size=1")));
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("call");
        assert_eq!(response.status(), 401, "{key:?}");
        assert!(response.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], "invalid_api_key");
    }
    assert_eq!(app.microsoft().route_calls("/v1/customers"), 0);
}

#[tokio::test]
async fn path_traversal_and_absolute_url_attempts_are_refused_before_any_upstream_call() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    // Sent raw, so no client-side URL normalisation hides what samgate receives.
    for raw in [
        "v1/../_emulator/counters",
        "v1/./customers",
        "v1/customers/../../_emulator/counters",
        "v1//..//_emulator/counters",
        "//evil.example/v1/customers",
    ] {
        let status = raw_get(&app, &key, &pc(raw)).await;
        assert_eq!(status, 400, "{raw}");
    }
    for path in [
        "v1/../_emulator/counters",
        "_emulator/counters",
        "v1/%2e%2e/_emulator/counters",
        "v1/%2E%2E%2F_emulator",
        "v1%2f..%2f_emulator",
        "v1/%252e%252e/x",
        "http:%2f%2fevil.example/x",
    ] {
        let response = call(&app, &key, reqwest::Method::GET, &pc(path)).await;
        assert!(
            response.status() == 400 || response.status() == 404,
            "{path}: {}",
            response.status()
        );
    }
    assert!(
        app.microsoft()
            .recorded_requests()
            .iter()
            .all(|r| !r.path.contains("_emulator") && !r.path.contains("..")),
        "nothing escaped the prefix"
    );
}

/// A GET written byte for byte on the socket (no URL normalisation); returns the status.
async fn raw_get(app: &TestApp, key: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn five_hundred_concurrent_calls_after_expiry_cause_exactly_one_refresh() {
    let app = TestApp::builder()
        .with_env("SAMGATE_PROXY_PARTNER_CONCURRENCY", "1000")
        .with_env("SAMGATE_PROXY_CLIENT_CONCURRENCY", "1000")
        .with_consented(Contoso)
        .spawn()
        .await;
    let key = app.api_key("billing", None, false).await;
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );

    let two_hours = Duration::from_secs(2 * 3600);
    app.clock.advance(two_hours);
    app.microsoft().advance_clock(two_hours);
    let before = app.microsoft().token_calls("refresh_token");
    let calls = (0..500).map(|_| {
        let client = app.client.clone();
        let url = app.url(&pc("v1/customers?size=1"));
        let key = key.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("call"))
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 1);
}

#[tokio::test]
async fn two_instances_on_one_database_redeem_the_refresh_token_once() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let other = crate::harness::second_instance(&app).await;
    let partner = app
        .app
        .partners
        .by_tenant(DEMO_CONTOSO)
        .await
        .expect("db")
        .expect("partner");
    let key = samgate::broker::TokenKey {
        partner_id: partner.id,
        partner_tenant: DEMO_CONTOSO,
        authority_tenant: DEMO_CONTOSO,
        resource: samgate::broker::Resource::PartnerCenter,
    };
    let before = app.microsoft().token_calls("refresh_token");
    let (a, b) = tokio::join!(
        app.app.broker.access_token(key),
        other.broker.access_token(key)
    );
    let (a, b) = (a.expect("first instance"), b.expect("second instance"));
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 1);
    use secrecy::ExposeSecret;
    assert_eq!(
        a.secret.expose_secret(),
        b.secret.expose_secret(),
        "they share one token"
    );
}

#[tokio::test]
async fn a_refresh_rotates_the_stored_refresh_token_before_use_and_a_lost_rotation_is_survivable() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let (sealed_before, version_before): (Vec<u8>, i64) =
        sqlx::query_as("SELECT sealed_refresh_token, version FROM grants")
            .fetch_one(&app.pool)
            .await
            .expect("grant");

    // A crash after Microsoft answered but before samgate committed loses the rotated token:
    // simulate it by redeeming the stored token behind samgate's back and dropping the answer.
    let context_row = DEMO_CONTOSO.to_string();
    let stored = app
        .app
        .vault
        .open_string(
            &sealed_before,
            &samgate::vault::SealContext::new(
                samgate::onboarding::REFRESH_TOKEN_PURPOSE,
                &context_row,
            ),
        )
        .expect("open");
    let lost = app
        .app
        .identity
        .refresh(
            &context_row,
            &stored,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await
        .expect("refresh");
    drop(lost);

    // samgate's next refresh still works with the old token (Microsoft does not revoke it), and
    // stores the newly rotated one.
    let key = app.api_key("billing", None, false).await;
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );
    let (sealed_after, version_after): (Vec<u8>, i64) =
        sqlx::query_as("SELECT sealed_refresh_token, version FROM grants")
            .fetch_one(&app.pool)
            .await
            .expect("grant");
    assert_eq!(version_after, version_before + 1);
    assert_ne!(sealed_after, sealed_before);
}

#[tokio::test]
async fn a_revoked_consent_marks_the_partner_and_stops_calling_microsoft() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    app.microsoft().revoke_refresh_tokens(DEMO_CONTOSO_ADMIN);
    let response = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "consent_required");
    let (status, code): (String, Option<String>) =
        sqlx::query_as("SELECT status, status_code FROM partners")
            .fetch_one(&app.pool)
            .await
            .expect("partner");
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("needs_consent", Some("50173"))
    );

    let token_calls = app.microsoft().token_calls("refresh_token");
    for _ in 0..3 {
        let again = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
        assert_eq!(again.status(), 409);
    }
    assert_eq!(
        app.microsoft().token_calls("refresh_token"),
        token_calls,
        "no hammering a dead token"
    );
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("audit");
    assert!(actions.contains(&"grant.refresh_failed".to_owned()));
}

#[tokio::test]
async fn a_throttled_partner_is_retried_within_the_budget_and_refused_beyond_it() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    app.microsoft()
        .fail_next(Fault::path("/v1/customers").throttle(1).times(1));
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .bearer_auth(&key)
        .header("x-samgate-deadline", "5")
        .send()
        .await
        .expect("call");
    assert_eq!(
        response.status(),
        200,
        "one second fits a five second budget"
    );

    app.microsoft()
        .fail_next(Fault::path("/v1/customers").throttle(30).times(1));
    let response = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry_after));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "upstream_throttled");

    // While the partner is in backoff, samgate answers without calling Microsoft.
    let upstream_calls = app.microsoft().route_calls("/v1/customers");
    let response = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(app.microsoft().route_calls("/v1/customers"), upstream_calls);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_only_and_passed_through_marked_as_upstream() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    app.microsoft()
        .fail_next(Fault::path("/v1/customers").status(500).times(1));
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );

    let customer = Contoso.customer(1);
    let path = format!("/v1/customers/{customer}/applicationconsents");
    app.microsoft()
        .fail_next(Fault::path(&path).method("POST").status(500).times(1));
    let before = app.microsoft().route_calls(&path);
    let response = app
        .client
        .post(app.url(&pc(path.trim_start_matches('/'))))
        .bearer_auth(&key)
        .json(&serde_json::json!({"applicationId": ms_emulator::DEMO_CLIENT_ID, "applicationGrants": []}))
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 500, "a write is not retried");
    assert_eq!(response.headers()["x-samgate-upstream"], "partner-center");
    assert_eq!(app.microsoft().route_calls(&path) - before, 1);
}

#[tokio::test]
async fn a_twenty_megabyte_answer_streams_through() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    let customer = Contoso.customer(1);
    let mut response = call(
        &app,
        &key,
        reqwest::Method::GET,
        &pc(&format!("v1/customers/{customer}/bigdata?bytes=20000000")),
    )
    .await;
    assert_eq!(response.status(), 200);
    let (mut total, mut chunks) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        total += chunk.len();
        chunks += 1;
    }
    assert_eq!(total, 20_000_000);
    assert!(chunks > 10, "arrived in pieces as it streamed: {chunks}");
}

#[tokio::test]
async fn customer_graph_calls_need_the_app_consent_and_the_partners_access() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    let customer = Contoso.customer(1);
    let path =
        format!("/api/v1/partners/{DEMO_CONTOSO}/customers/{customer}/graph/v1.0/users?$top=1");
    let response = call(&app, &key, reqwest::Method::GET, &path).await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "customer_consent_missing");

    // Grant the app consent through the proxy itself (Partner Center applicationconsents).
    let grant = app
        .client
        .post(app.url(&pc(&format!("v1/customers/{customer}/applicationconsents"))))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "applicationId": ms_emulator::DEMO_CLIENT_ID,
            "applicationGrants": [{"enterpriseApplicationId": "00000003-0000-0000-c000-000000000000", "scope": "User.Read.All"}]
        }))
        .send()
        .await
        .expect("grant");
    assert!(grant.status().is_success(), "{}", grant.status());
    let response = call(&app, &key, reqwest::Method::GET, &path).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["value"].as_array().is_some_and(|v| !v.is_empty()));

    // A customer of another partner is not a customer of this partner.
    let foreign = Fabrikam.customer(1);
    app.microsoft()
        .grant_app_consent(foreign, ms_emulator::DEMO_CLIENT_ID);
    let path = format!("/api/v1/partners/{DEMO_CONTOSO}/customers/{foreign}/graph/v1.0/users");
    let response = call(&app, &key, reqwest::Method::GET, &path).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "customer_not_found");
    assert_eq!(
        app.microsoft()
            .token_calls_for_tenant(&foreign.to_string(), "refresh_token"),
        0,
        "refused before any token call"
    );
}

#[tokio::test]
async fn a_token_microsoft_stops_accepting_is_dropped_and_replaced_once() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );
    // The cached token was signed with a key Microsoft has now retired.
    app.microsoft().rotate_signing_key();
    app.microsoft().retire_previous_keys();
    let before = app.microsoft().token_calls("refresh_token");
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 1);
}

#[tokio::test]
async fn a_graph_401_without_invalid_token_drops_the_cached_token_and_retries_once() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    let graph = format!("/api/v1/partners/{DEMO_CONTOSO}/graph/v1.0/users?$top=1");
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &graph)
            .await
            .status(),
        200
    );
    // Graph answers a revoked token with 401, a body of InvalidAuthenticationToken and a
    // WWW-Authenticate without error="invalid_token" (MSAL .NET's recorded responses).
    app.microsoft().fail_next(
        Fault::path("/graph/v1.0/users").status(401).body(serde_json::json!({
            "error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}
        })),
    );
    let before = app.microsoft().token_calls("refresh_token");
    let response = call(&app, &key, reqwest::Method::GET, &graph).await;
    assert_eq!(response.status(), 200, "retried once with a new token");
    assert_eq!(app.microsoft().token_calls("refresh_token") - before, 1);
}

#[tokio::test]
async fn every_proxied_call_is_recorded_without_bodies_or_tokens() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1%2f.."))
            .await
            .status(),
        400
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows: Vec<(String, i32, Option<String>)> = loop {
        let rows: Vec<(String, i32, Option<String>)> =
            sqlx::query_as("SELECT route, status, error_code FROM proxy_calls ORDER BY id")
                .fetch_all(&app.pool)
                .await
                .expect("records");
        if rows.len() >= 2 || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0].0,
        "/api/v1/partners/{partner_tid}/partner-center/{*path}"
    );
    assert_eq!(rows[0].1, 200);
    assert_eq!(
        (rows[1].1, rows[1].2.as_deref()),
        (400, Some("invalid_path"))
    );
    let last_used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM grants")
            .fetch_one(&app.pool)
            .await
            .expect("grant");
    assert!(last_used.is_some());
}

#[tokio::test]
async fn a_backend_gets_a_reconsent_link_for_a_partner_that_lost_its_consent() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, false).await;
    let reader = app.api_key("reader", None, true).await;
    app.microsoft().revoke_refresh_tokens(DEMO_CONTOSO_ADMIN);
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        409
    );

    let path = format!("/api/v1/partners/{DEMO_CONTOSO}/reconsent-invitation");
    let refused = app
        .client
        .post(app.url(&path))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("call");
    assert_eq!(
        refused.status(),
        403,
        "read-only keys cannot create invitations"
    );
    let created = app
        .client
        .post(app.url(&path))
        .bearer_auth(&key)
        .send()
        .await
        .expect("call");
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.expect("json");
    let url = body["url"].as_str().expect("url");
    let link = url.trim_start_matches(&app.address).to_owned();
    assert!(link.starts_with("/consent/sgi_"));

    // The partner's admin uses it: the same partner is healthy again, with a new grant.
    let response = app.consent_as(&link, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("page")
            .contains("Connection renewed")
    );
    assert_eq!(
        call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1"))
            .await
            .status(),
        200
    );
}

/// Official SDK page iterators follow `@odata.nextLink` / `links.next.uri` verbatim and ask their
/// token provider for a token for that link's host. Every link samgate hands out points at
/// samgate's own route, so paging to the end never leaves samgate and the `sgk_` key never
/// reaches another host.
#[tokio::test]
async fn paging_links_point_at_samgate_so_no_key_ever_leaves_for_another_host() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("pager", None, true).await;
    let customer = Contoso.customer(1);
    app.microsoft()
        .grant_app_consent(customer, ms_emulator::DEMO_CLIENT_ID);
    app.microsoft().clear_recorded_requests();

    let graph_route = app.url(&format!(
        "/api/v1/partners/{DEMO_CONTOSO}/customers/{customer}/graph/"
    ));
    let mut link = Some(format!("{graph_route}v1.0/users?$top=1"));
    let mut users = Vec::new();
    while let Some(url) = link.take() {
        assert!(
            url.starts_with(&graph_route),
            "a link leaves samgate: {url}"
        );
        // SDKs ask for compression; samgate must still read (and rewrite) the links, so it never
        // passes Accept-Encoding on to Microsoft.
        let response = app
            .client
            .get(&url)
            .bearer_auth(&key)
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .expect("page");
        assert_eq!(response.status(), 200, "{url}");
        let page: serde_json::Value = response.json().await.expect("json");
        users.extend(page["value"].as_array().cloned().unwrap_or_default());
        link = page["@odata.nextLink"].as_str().map(str::to_owned);
        assert!(users.len() < 50, "paging never ends");
    }
    assert_eq!(users.len(), 2, "both users of the customer, one per page");

    let pc_route = app.url(&pc(""));
    let mut link = Some(app.url(&pc("v1/customers?size=1")));
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut customers = 0;
    while let Some(url) = link.take() {
        assert!(url.starts_with(&pc_route), "a link leaves samgate: {url}");
        let mut request = app.client.get(&url).bearer_auth(&key);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let page: serde_json::Value = request
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        customers += page["items"].as_array().map_or(0, Vec::len);
        let next = &page["links"]["next"];
        link = next["uri"].as_str().map(str::to_owned);
        headers = next["headers"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h["key"].as_str().unwrap_or_default().to_owned(),
                            h["value"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(customers < 50, "paging never ends");
    }
    assert_eq!(customers, 2);

    // Nothing that reached Microsoft carried samgate's key, nor asked for a compressed answer.
    for request in app.microsoft().recorded_requests() {
        for (name, value) in &request.headers {
            assert!(
                !value.contains("sgk_"),
                "samgate's key reached Microsoft in {name} of {}",
                request.path
            );
            assert!(
                !name.eq_ignore_ascii_case("accept-encoding"),
                "Accept-Encoding reached Microsoft: {value}"
            );
        }
    }
}

/// Microsoft's SDKs read errors in their upstream's shape: on Graph routes samgate's own errors
/// carry Graph's `error.code`/`error.message`/`innerError`, on Partner Center routes Partner
/// Center's `code`/`description`; samgate's fields and the `x-samgate-error` header are always
/// there.
#[tokio::test]
async fn samgates_own_errors_wear_the_upstreams_error_shape_on_proxy_routes() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("shapes", None, true).await;
    let customer = Contoso.customer(1);
    let graph = format!("/api/v1/partners/{DEMO_CONTOSO}/customers/{customer}/graph/v1.0/users");
    let response = call(&app, &key, reqwest::Method::GET, &graph).await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["x-samgate-error"],
        "customer_consent_missing"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "customer_consent_missing");
    assert_eq!(body["error"]["code"], "customer_consent_missing");
    assert_eq!(body["error"]["message"], body["message"]);
    assert_eq!(body["error"]["innerError"]["reference"], body["reference"]);
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");

    // A missing key on a Graph route: still Graph's shape (the SDK shows the code).
    let response = app.client.get(app.url(&graph)).send().await.expect("call");
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");

    let response = call(&app, &key, reqwest::Method::DELETE, &pc("v1/customers")).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-samgate-error"], "forbidden_method");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "forbidden_method");
    assert_eq!(body["description"], body["message"]);
    assert_eq!(body["source"], "samgate");
    assert!(body.get("error").is_none(), "{body}");

    // Other API routes keep samgate's own shape.
    let response = call(
        &app,
        &key,
        reqwest::Method::GET,
        &format!("/api/v1/partners/{}", Uuid::new_v4()),
    )
    .await;
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body.get("error").is_none() && body.get("description").is_none(),
        "{body}"
    );
    assert!(body["code"].is_string());
}

/// A key pasted without its scheme gets a hint naming the fix, not "unknown key"; the scheme's
/// case does not matter (RFC 9110).
#[tokio::test]
async fn a_key_without_bearer_gets_a_hint_and_the_scheme_is_case_insensitive() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, true).await;
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .header("authorization", &key)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "invalid_api_key");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("no scheme") && m.contains("Bearer")),
        "{body}"
    );
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .header("authorization", format!("BEARER {key}"))
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
}

/// `Retry-After: 0` on every answer must not make samgate ask Microsoft again in a tight loop
/// until the caller's budget runs out: waits are at least a second and a call waits out at most
/// three throttles.
#[tokio::test]
async fn a_retry_after_of_zero_does_not_make_samgate_hammer_microsoft() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("billing", None, true).await;
    app.microsoft()
        .fail_next(Fault::path("/v1/customers").throttle(0).times(10_000));
    let before = app.microsoft().route_calls("/v1/customers");
    let response = app
        .client
        .get(app.url(&pc("v1/customers?size=1")))
        .bearer_auth(&key)
        .header("x-samgate-deadline", "30")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 429);
    assert_eq!(
        app.microsoft().route_calls("/v1/customers") - before,
        4,
        "the call and three retries, no more"
    );
}

#[tokio::test]
async fn over_tls_the_proxy_speaks_http2_to_microsoft_trusting_the_configured_ca() {
    // Microsoft's hosts offer HTTP/2 by ALPN; samgate takes it, on the proxy path and its own.
    let app = TestApp::builder()
        .microsoft_over_tls()
        .with_consented(Contoso)
        .spawn()
        .await;
    let key = app.api_key("billing", None, false).await;
    app.microsoft().clear_recorded_requests();
    let response = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    let graph = call(
        &app,
        &key,
        reqwest::Method::GET,
        &format!("/api/v1/partners/{DEMO_CONTOSO}/graph/v1.0/users?$top=1"),
    )
    .await;
    assert_eq!(graph.status(), 200);
    let recorded = app.microsoft().recorded_requests();
    let versions: Vec<(&str, &str)> = recorded
        .iter()
        .map(|r| (r.path.as_str(), r.version.as_str()))
        .collect();
    assert!(
        versions.len() >= 2 && versions.iter().all(|(_, v)| *v == "HTTP/2.0"),
        "every proxied call went over HTTP/2: {versions:?}"
    );
    // The bearer token is marked sensitive (never HPACK-indexed) and still arrives whole.
    assert!(
        recorded.iter().all(|r| r
            .header("authorization")
            .is_some_and(|v| v.starts_with("Bearer ey"))),
        "each call carried the partner's token"
    );
}

#[tokio::test]
async fn microsoft_slower_than_the_first_byte_deadline_is_a_clear_upstream_unavailable() {
    let app = TestApp::builder()
        .with_env("SAMGATE_PROXY_FIRST_BYTE_TIMEOUT_SECS", "1")
        .with_consented(Contoso)
        .spawn()
        .await;
    let key = app.api_key("billing", None, false).await;
    app.microsoft().fail_next(
        Fault::path("/v1/customers")
            .latency(Duration::from_secs(4))
            .times(3),
    );
    let response = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
    assert_eq!(response.status(), 502, "a bad gateway, not a hang");
    assert_eq!(
        response.headers()["x-samgate-error"],
        "upstream_unavailable"
    );
    let body = response.text().await.expect("body");
    assert!(body.contains("did not answer in time"), "{body}");
    // Once Microsoft is fast again the same call works: nothing was remembered against the partner.
    app.microsoft().clear_faults();
    let again = call(&app, &key, reqwest::Method::GET, &pc("v1/customers?size=1")).await;
    assert_eq!(again.status(), 200);
}
