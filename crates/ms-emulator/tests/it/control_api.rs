//! The HTTP control API and the seed formats.

use ms_emulator::{DEMO_CONTOSO_ADMIN, Emulator, Options, Seed};
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn http_control_api_mirrors_control() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let before = env.control.now();
    let resp = env
        .http
        .post(env.url("/_emulator/clock/advance"))
        .json(&json!({ "days": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(env.control.now() - before >= time::Duration::days(1));
    let code: Value = env
        .get(&format!("/_emulator/users/{DEMO_CONTOSO_ADMIN}/mfa-code"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code["code"], env.control.mfa_code(DEMO_CONTOSO_ADMIN));
    env.http
        .post(env.url("/_emulator/faults"))
        .json(
            &json!({ "route": { "path": { "prefix": "/v1/" } }, "status": 429, "retry_after": 3 }),
        )
        .send()
        .await
        .unwrap();
    let resp = env.get("/v1/customers").await;
    assert_eq!(resp.status().as_u16(), 429);
    let counters: Value = env.get("/_emulator/counters").await.json().await.unwrap();
    assert_eq!(counters["routes"]["/v1/customers"], 1);
    env.http
        .post(env.url(&format!("/_emulator/users/{DEMO_CONTOSO_ADMIN}/revoke")))
        .send()
        .await
        .unwrap();
    let (_, body) = env
        .refresh(
            &contoso(),
            &rt,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await;
    assert_eq!(aadsts(&body), 50173);
    let requests: Value = env.get("/_emulator/requests").await.json().await.unwrap();
    assert_eq!(requests[0]["path"], "/v1/customers");
}

#[tokio::test]
async fn control_api_is_absent_unless_enabled() {
    let options = Options {
        control_api: false,
        ..Options::default()
    };
    let emu = Emulator::start_with(Seed::demo(REDIRECT), options)
        .await
        .unwrap();
    let resp = reqwest::get(format!("{}/_emulator/counters", emu.base_url()))
        .await
        .unwrap();
    assert_ne!(resp.status().as_u16(), 200);
    emu.shutdown().await;
}

#[test]
fn seed_round_trips_through_json_and_toml() {
    let seed = Seed::demo(REDIRECT);
    let json = serde_json::to_string(&seed).unwrap();
    let back: Seed = serde_json::from_str(&json).unwrap();
    assert_eq!(back.tenants.len(), seed.tenants.len());
    let toml_text = toml::to_string(&seed).unwrap();
    let back: Seed = toml::from_str(&toml_text).unwrap();
    assert_eq!(back.relationships.len(), 4);
    assert_eq!(
        back.user(DEMO_CONTOSO_ADMIN).unwrap().upn,
        DEMO_CONTOSO_ADMIN
    );
}

#[tokio::test]
async fn tls_listener_serves_discovery_to_a_client_trusting_its_certificate() {
    let options = Options {
        tls: true,
        ..Options::default()
    };
    let emu = Emulator::start_with(Seed::demo(REDIRECT), options)
        .await
        .unwrap();
    assert!(emu.base_url().starts_with("https://localhost:"));
    let pem = emu.tls_certificate_pem().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let doc: Value = client
        .get(format!(
            "{}/organizations/v2.0/.well-known/openid-configuration",
            emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["issuer"],
        format!("{}/{{tenantid}}/v2.0", emu.base_url())
    );
    emu.shutdown().await;
}

#[test]
fn example_seed_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seed.example.toml");
    let seed = Seed::from_file(&path).unwrap();
    assert_eq!(seed.tenants.len(), 3);
    assert!(seed.tenants[1].is_partner);
    assert_eq!(seed.apps[0].secrets[0].expires_at.unwrap().year(), 2030);
}

#[tokio::test]
async fn example_seed_starts_an_emulator() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seed.example.toml");
    let emu = Emulator::start(Seed::from_file(&path).unwrap())
        .await
        .unwrap();
    emu.shutdown().await;
}
