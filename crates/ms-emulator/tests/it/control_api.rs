//! The HTTP control API and the seed formats.

use ms_emulator::{
    CustomerPolicy, DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, Emulator,
    MissingConsentError, Options, RelationshipStatus, Seed,
};
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
    assert_eq!(seed.tenants.len(), 4);
    assert!(seed.tenants[1].is_partner);
    assert_eq!(seed.apps[0].secrets[0].expires_at.unwrap().year(), 2030);
    assert_eq!(
        seed.tenants[3].conditional_access,
        Some(CustomerPolicy::Block)
    );
    assert_eq!(
        seed.tenants[3].missing_consent_error,
        MissingConsentError::AppNotFound
    );
    assert_eq!(
        seed.tenants[2].missing_consent_error,
        MissingConsentError::ConsentRequired
    );
    assert_eq!(seed.relationships[1].status, RelationshipStatus::Active);
    assert_eq!(seed.relationships[1].end_date_time.unwrap().year(), 2030);
}

#[test]
fn seed_json_spells_policies_statuses_and_consent_errors_as_documented() {
    let seed: Seed = serde_json::from_value(json!({
        "tenants": [{
            "id": "c0570000-0000-4000-8000-00000000c001", "display_name": "C",
            "default_domain": "c.onmicrosoft.com", "conditional_access": "require_compliant_device",
            "missing_consent_error": "partner_not_authorized",
        }],
        "relationships": [{
            "partner": "c0470500-0000-4000-8000-0000000000c0",
            "customer": "c0570000-0000-4000-8000-00000000c001",
            "status": "terminationRequested", "roles": [],
        }],
    }))
    .unwrap();
    assert_eq!(
        seed.tenants[0].conditional_access,
        Some(CustomerPolicy::RequireCompliantDevice)
    );
    assert_eq!(
        seed.tenants[0].missing_consent_error,
        MissingConsentError::PartnerNotAuthorized
    );
    assert_eq!(
        seed.relationships[0].status,
        RelationshipStatus::TerminationRequested
    );
    assert!(seed.relationships[0].roles.is_empty());
    for status in RelationshipStatus::ALL {
        assert_eq!(json!(status), json!(status.as_str()));
        assert_eq!(
            status.as_str().parse::<RelationshipStatus>().unwrap(),
            status
        );
    }
}

#[tokio::test]
async fn http_control_api_sets_customer_policies_relationships_and_generated_customers() {
    let env = TestEnv::demo().await;
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[0];
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let rt = contoso_refresh_token(&env).await;
    let post = |path: String, body: Value| {
        let env = &env;
        async move {
            env.http
                .post(env.url(&path))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let graph = "https://graph.microsoft.com/.default";
    let policy = format!("/_emulator/tenants/{customer}/policy");
    assert_eq!(
        post(policy.clone(), json!({ "conditional_access": "block" })).await,
        200
    );
    let (_, body) = env.refresh(&customer.to_string(), &rt, graph).await;
    assert_eq!(aadsts(&body), 53003);
    assert_eq!(
        post(
            policy.clone(),
            json!({ "missing_consent_error": "app_not_found" })
        )
        .await,
        200
    );
    let (_, body) = env.refresh(&customer.to_string(), &rt, graph).await;
    assert_eq!(aadsts(&body), 53003, "a field left out is left as it is");
    assert_eq!(
        post(policy.clone(), json!({ "conditional_access": null })).await,
        200
    );
    let (status, _) = env.refresh(&customer.to_string(), &rt, graph).await;
    assert_eq!(status, 200);
    env.control.remove_app_consent(customer, DEMO_CLIENT_ID);
    let (_, body) = env.refresh(&customer.to_string(), &rt, graph).await;
    assert_eq!(aadsts(&body), 700016);
    assert_eq!(
        post(
            format!("/_emulator/tenants/{}/policy", uuid::Uuid::new_v4()),
            json!({})
        )
        .await,
        400
    );

    let relationship = format!("/_emulator/relationships/{DEMO_CONTOSO}/{customer}");
    assert_eq!(
        post(relationship.clone(), json!({ "status": "expired" })).await,
        200
    );
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let (_, body) = env.refresh(&customer.to_string(), &rt, graph).await;
    assert_eq!(aadsts(&body), 50020);
    assert_eq!(
        post(
            relationship.clone(),
            json!({ "status": "active", "roles": [], "end_date_time": "2099-01-01T00:00:00Z" })
        )
        .await,
        200
    );
    let (_, body) = env.refresh(&customer.to_string(), &rt, graph).await;
    assert_eq!(aadsts(&body), 50020, "no roles");
    assert_eq!(post(relationship, json!({ "status": "bogus" })).await, 422);

    let resp = env
        .http
        .post(env.url(&format!(
            "/_emulator/tenants/{DEMO_CONTOSO}/generated-customers"
        )))
        .json(&json!({ "count": 2 }))
        .send()
        .await
        .unwrap();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(
        created["customers"][1],
        Seed::generated_customer_id(DEMO_CONTOSO, 3).to_string()
    );
    let tenants: Value = env.get("/_emulator/tenants").await.json().await.unwrap();
    let listed = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == customer.to_string())
        .unwrap()
        .clone();
    assert_eq!(listed["missing_consent_error"], "app_not_found");
    assert!(listed["conditional_access"].is_null());
}

#[tokio::test]
async fn example_seed_starts_an_emulator() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seed.example.toml");
    let emu = Emulator::start(Seed::from_file(&path).unwrap())
        .await
        .unwrap();
    emu.shutdown().await;
}
