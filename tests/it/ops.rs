//! Operations: metrics, JSON logs, and secrets kept out of logs over a whole journey.

use std::time::Duration;

use ms_emulator::{DEMO_CONTOSO, DEMO_CONTOSO_ADMIN};

use crate::harness::TestApp;

#[tokio::test]
async fn metrics_count_requests_by_route_template_upstream_latency_tokens_and_partner_health() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&invitation, DEMO_CONTOSO_ADMIN)
            .await
            .status(),
        200
    );
    let key = app.api_key("metrics", None, false).await;
    let path = format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1");
    let response = app
        .client
        .get(app.url(&path))
        .bearer_auth(&key)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    for expected in [
        "samgate_http_requests_total{route=\"/api/v1/partners/{partner_tid}/partner-center/{*path}\",method=\"GET\",status=\"200\"}",
        "samgate_http_request_duration_seconds_bucket{route=\"/consent/{token}\"",
        "samgate_proxy_upstream_duration_seconds_bucket{upstream=\"partner-center\",status=\"200\"",
        "samgate_token_refreshes_total{outcome=\"ok\",class=\"none\"}",
        "samgate_token_cache_total{result=\"miss\"}",
        "samgate_partners{status=\"healthy\"} 1",
        "samgate_db_pool_connections{state=\"idle\"}",
        "samgate_call_record_queue_depth",
    ] {
        assert!(text.contains(expected), "missing {expected}");
    }
    // Raw URIs never become labels: no tenant id appears in any series name.
    assert!(
        !text.contains(&DEMO_CONTOSO.to_string().replace('-', ""))
            && !text.contains("route=\"/api/v1/partners/c0470500")
    );
}

#[tokio::test]
async fn random_extension_methods_do_not_create_metric_series() {
    let app = TestApp::spawn().await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("FLOOD{i}").as_bytes()).expect("method");
        let _ = app
            .client
            .request(method, app.url(&format!("/nowhere/{i}")))
            .send()
            .await
            .expect("request");
    }
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(!metrics.contains("FLOOD"), "a raw method became a label");
    assert!(!metrics.contains("/nowhere/"), "a raw path became a label");
    assert!(metrics.contains(r#"method="other""#));
}

#[tokio::test]
async fn metrics_can_move_off_the_public_listener() {
    let app = TestApp::builder()
        .with_env("SAMGATE_METRICS_LISTEN", "127.0.0.1:1")
        .spawn()
        .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
}

#[tokio::test]
async fn a_whole_journey_leaves_no_secret_in_the_logs() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let consent = app.consent_as(&invitation, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(consent.status(), 200);
    let key = app.api_key("journey", None, false).await;
    let path = format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1");
    assert_eq!(
        app.client
            .get(app.url(&path))
            .bearer_auth(&key)
            .send()
            .await
            .expect("call")
            .status(),
        200
    );
    // A refresh after expiry, a refused key and a refused path, so error paths log too.
    app.clock.advance(Duration::from_secs(2 * 3600));
    app.microsoft().advance_clock(Duration::from_secs(2 * 3600));
    assert_eq!(
        app.client
            .get(app.url(&path))
            .bearer_auth(&key)
            .send()
            .await
            .expect("call")
            .status(),
        200
    );
    let _ = app
        .client
        .get(app.url(&path))
        .bearer_auth(format!("{key}x"))
        .send()
        .await;
    let _ = app
        .client
        .get(app.url(&format!(
            "/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1%2f.."
        )))
        .bearer_auth(&key)
        .send()
        .await;

    let logs = crate::harness::logs::captured();
    let mut secrets: Vec<String> = app.microsoft().issued_refresh_tokens();
    secrets.extend(app.microsoft().recorded_requests().iter().filter_map(|r| {
        r.header("authorization")
            .map(|h| h.trim_start_matches("Bearer ").to_owned())
    }));
    assert!(
        secrets.len() >= 3,
        "the journey handled refresh and access tokens"
    );
    secrets.push(key.clone());
    secrets.push(ms_emulator::DEMO_CLIENT_SECRET.to_owned());
    secrets.push(invitation.trim_start_matches("/consent/").to_owned());
    secrets.push(app.keks.trim_start_matches("1:").to_owned());
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret of the journey reached the logs"
        );
    }
}

#[tokio::test]
async fn json_logs_carry_the_route_template_and_request_id_in_stable_fields() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_samgate"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", app.db.url())
        .env("SAMGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SAMGATE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("SAMGATE_AUTHORITY_URL", app.emulator.base_url())
        .env("SAMGATE_CLIENT_ID", ms_emulator::DEMO_CLIENT_ID.to_string())
        .env("SAMGATE_CLIENT_SECRET", ms_emulator::DEMO_CLIENT_SECRET)
        .env("SAMGATE_KEKS", &app.keks)
        .env("SAMGATE_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start samgate serve");
    // Successes log at debug; a refused request (404) logs at info, with the same fields.
    let url = format!("http://127.0.0.1:{port}/no-such-page");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut answered = false;
    while std::time::Instant::now() < deadline && !answered {
        answered = app
            .client
            .get(&url)
            .header("x-request-id", "ops-test-42")
            .send()
            .await
            .is_ok_and(|r| r.status() == 404);
        if !answered {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let _ = child.wait();
    // Logs go to stderr (stdout is for command output).
    let mut stdout = String::new();
    if let Some(mut out) = child.stderr.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut stdout);
    }
    assert!(answered, "samgate serve did not answer");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let request = lines
        .iter()
        .find(|line| {
            line["span"]["request.id"] == "ops-test-42" && line["message"] == "request finished"
        })
        .unwrap_or_else(|| panic!("no log line for the request: {stdout}"));
    assert_eq!(request["span"]["http.route"], "unmatched");
    assert_eq!(request["http.status"], 404);
    assert!(request["timestamp"].is_string() && request["level"].is_string());
    assert!(!stdout.contains(ms_emulator::DEMO_CLIENT_SECRET));
    assert!(!stdout.contains(app.keks.trim_start_matches("1:")));
}

#[tokio::test]
async fn with_the_database_down_cached_calls_keep_serving_others_fail_fast_and_all_recovers() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&invitation, DEMO_CONTOSO_ADMIN)
            .await
            .status(),
        200
    );
    let key = app.api_key("warm", None, false).await;
    let cold_key = app.api_key("cold", None, false).await;
    app.settle_key_changes().await;
    let path = format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1");
    let call = |key: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(key);
        async move { request.send().await.expect("call") }
    };
    assert_eq!(call(key.clone()).await.status(), 200);

    app.db.take_offline().await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    // Key, partner and token are cached: the call still works.
    assert_eq!(call(key.clone()).await.status(), 200);
    // A key never seen before needs the database: a fast, clear 503, not a hang or a 401.
    let started = std::time::Instant::now();
    let response = call(cold_key.clone()).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "service_unavailable");

    app.db.bring_online().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(call(cold_key).await.status(), 200);
    let grants: i64 = sqlx::query_scalar("SELECT count(*) FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("grants");
    assert_eq!(grants, 1, "no grant lost");
}
