//! Faults, counters and request recording.

use std::time::{Duration, Instant};

use ms_emulator::Fault;
use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn partner_center_429_fault_has_retry_after_and_pc_throttle_body() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    env.control
        .fail_next(Fault::path("/v1/customers").throttle(7).times(2));
    for _ in 0..2 {
        let resp = env.bearer_get("/v1/customers?size=5", &at).await;
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["statusCode"], 429);
        assert_eq!(
            body["message"],
            "Rate limit is exceeded. Try again in 7 seconds."
        );
    }
    assert_eq!(
        env.bearer_get("/v1/customers?size=5", &at)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(env.control.route_calls("/v1/customers"), 3);
}

#[tokio::test]
async fn grant_type_fault_hits_only_that_grant() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.fail_next(
        Fault::grant_type("refresh_token")
            .status(503)
            .retry_after(2),
    );
    let (status, body) = env
        .refresh(
            &contoso(),
            &rt,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "temporarily_unavailable");
    let (status, _) = env
        .refresh(
            &contoso(),
            &rt,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.control.token_calls("refresh_token"), 2);
}

#[tokio::test]
async fn custom_body_latency_and_dropped_connection() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    env.control.fail_next(
        Fault::path("/v1/profiles")
            .method("GET")
            .status(500)
            .body(serde_json::json!({"custom": true})),
    );
    let resp = env.bearer_get("/v1/profiles/organization", &at).await;
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.json::<Value>().await.unwrap()["custom"], true);

    env.control
        .fail_next(Fault::path("/v1/profiles").latency(Duration::from_millis(300)));
    let start = Instant::now();
    let resp = env.bearer_get("/v1/profiles/organization", &at).await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "latency-only fault runs the real handler"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));

    env.control
        .fail_next(Fault::path("/v1/profiles").drop_connection());
    let result = env
        .http
        .get(env.url("/v1/profiles/organization"))
        .bearer_auth(&at)
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection is dropped");
    assert_eq!(
        env.bearer_get("/v1/profiles/organization", &at)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn requests_to_partner_center_are_recorded_with_all_headers() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    env.http
        .get(env.url("/v1/customers?size=3"))
        .bearer_auth(&at)
        .header("X-Locale", "en-US")
        .header("MS-CorrelationId", "c0ffee00-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap();
    let recorded = env.control.recorded_requests();
    let r = recorded
        .iter()
        .find(|r| r.path == "/v1/customers")
        .expect("recorded");
    assert_eq!(r.method, "GET");
    assert_eq!(r.query.as_deref(), Some("size=3"));
    assert_eq!(r.header("x-locale"), Some("en-US"));
    assert_eq!(
        r.header("ms-correlationid"),
        Some("c0ffee00-0000-0000-0000-000000000000")
    );
    assert!(r.header("authorization").unwrap().starts_with("Bearer "));
    assert!(
        recorded.iter().all(|r| !r.path.contains("oauth2")),
        "identity calls are not recorded"
    );
}

#[tokio::test]
async fn a_fractional_fault_fails_about_that_share_of_calls_until_cleared() {
    let emulator = ms_emulator::Emulator::start(ms_emulator::Seed::demo("http://127.0.0.1:1/cb"))
        .await
        .expect("start");
    let control = emulator.control();
    control.fail_next(
        ms_emulator::Fault::path("/graph/v1.0/organization")
            .status(503)
            .fraction(0.5),
    );
    let client = reqwest::Client::new();
    let url = format!("{}/graph/v1.0/organization", emulator.base_url());
    let mut failed = 0;
    for _ in 0..200 {
        let status = client
            .get(&url)
            .send()
            .await
            .expect("call")
            .status()
            .as_u16();
        if status == 503 {
            failed += 1;
        }
    }
    // Without a token the real handler answers 401; the fault answers 503 about half the time.
    assert!((50..=150).contains(&failed), "{failed} of 200 failed");
    control.clear_faults();
    let status = client
        .get(&url)
        .send()
        .await
        .expect("call")
        .status()
        .as_u16();
    assert_ne!(status, 503);
}
