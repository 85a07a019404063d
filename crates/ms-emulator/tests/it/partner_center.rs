//! Partner Center: bearer validation (MFA included), profiles, paging, customers, consents.

use std::time::Duration;

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, MfaState, Seed};
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn organization_profile_works_and_echoes_correlation_headers() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    let resp = env
        .http
        .get(env.url("/v1/profiles/organization"))
        .bearer_auth(&at)
        .header("MS-CorrelationId", "11111111-2222-3333-4444-555555555555")
        .header("MS-RequestId", "66666666-2222-3333-4444-555555555555")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["ms-correlationid"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        resp.headers()["ms-requestid"],
        "66666666-2222-3333-4444-555555555555"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tenantId"], DEMO_CONTOSO.to_string());
    assert_eq!(body["companyName"], "Contoso Partners");
    assert_eq!(body["profileType"], "OrganizationProfile");
    let resp = env.bearer_get("/v1/profiles/mpn", &at).await;
    assert!(
        resp.headers().contains_key("ms-correlationid"),
        "generated when absent"
    );
    let mpn: Value = resp.json().await.unwrap();
    assert_eq!(mpn["profileType"], "MpnProfile");
}

#[tokio::test]
async fn token_without_mfa_is_rejected_401_invalid_token() {
    let env = TestEnv::demo().await;
    env.control
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRequired);
    let at = contoso_pc_token(&env).await;
    let resp = env.bearer_get("/v1/customers?size=10", &at).await;
    assert_eq!(resp.status().as_u16(), 401);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.starts_with("Bearer error=\"invalid_token\""), "{www}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 900421);
    assert!(body["description"].as_str().unwrap().contains("MFA"));
    env.control.set_pc_mfa_enforced(false);
    assert_eq!(
        env.bearer_get("/v1/customers?size=10", &at)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn missing_expired_and_foreign_audience_tokens_are_401() {
    let env = TestEnv::demo().await;
    let resp = env.get("/v1/customers?size=10").await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 800001);
    assert_eq!(body["source"], "PartnerFD");
    let tokens = consent_and_redeem(&env).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let (_, graph) = env
        .refresh(&contoso(), rt, "https://graph.microsoft.com/.default")
        .await;
    let resp = env
        .bearer_get(
            "/v1/customers?size=10",
            graph["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 401, "Graph audience is refused");
    env.control.advance_clock(Duration::from_secs(2 * 3600));
    let resp = env
        .bearer_get(
            "/v1/customers?size=10",
            tokens["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 401, "expired by the emulator clock");
}

#[tokio::test]
async fn customers_are_paged_with_the_continuation_header() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    let first: Value = env
        .bearer_get("/v1/customers?size=1", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["attributes"]["objectType"], "Collection");
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert_eq!(first["links"]["self"]["uri"], "/v1/customers?size=1");
    let next = &first["links"]["next"];
    assert_eq!(next["uri"], "/v1/customers?size=1&seekOperation=Next");
    assert_eq!(next["method"], "GET");
    assert_eq!(next["headers"][0]["key"], "MS-ContinuationToken");
    let token = next["headers"][0]["value"].as_str().unwrap();
    let second: Value = env
        .http
        .get(env.url(next["uri"].as_str().unwrap()))
        .bearer_auth(&at)
        .header("MS-ContinuationToken", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);
    assert!(second["links"].get("next").is_none());
    assert_eq!(first["items"][0]["attributes"]["objectType"], "Customer");
    assert!(first["items"][0]["companyProfile"]["domain"].is_string());
}

#[tokio::test]
async fn customer_lookup_distinguishes_unknown_404_and_foreign_403() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    let seed = Seed::demo(REDIRECT);
    let own = seed.tenant_named("Contoso Partners").unwrap().customers[0];
    let foreign = seed.tenant_named("Fabrikam IT").unwrap().customers[0];
    let resp = env.bearer_get(&format!("/v1/customers/{own}"), &at).await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp = env
        .bearer_get(&format!("/v1/customers/{foreign}"), &at)
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 20002);
    let resp = env
        .bearer_get(&format!("/v1/customers/{}", uuid::Uuid::new_v4()), &at)
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 60003);
    let subs: Value = env
        .bearer_get(&format!("/v1/customers/{own}/subscriptions"), &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(subs["items"][0]["attributes"]["objectType"], "Subscription");
    let users: Value = env
        .bearer_get(&format!("/v1/customers/{own}/users"), &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users["totalCount"], 2);
}

#[tokio::test]
async fn application_consent_grants_what_the_customer_token_needs() {
    let env = TestEnv::demo().await;
    let tokens = consent_and_redeem(&env).await;
    let at = tokens["access_token"].as_str().unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[1];
    let (_, body) = env
        .refresh(
            &customer.to_string(),
            rt,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(aadsts(&body), 65001);
    let consent = json!({
        "applicationId": DEMO_CLIENT_ID,
        "displayName": "samgate CPV",
        "applicationGrants": [{
            "enterpriseApplicationId": "00000003-0000-0000-c000-000000000000",
            "scope": "Directory.Read.All,User.Read.All"
        }]
    });
    let path = format!("/v1/customers/{customer}/applicationconsents");
    let resp = env
        .http
        .post(env.url(&path))
        .bearer_auth(at)
        .json(&consent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["applicationId"], DEMO_CLIENT_ID.to_string());
    assert!(env.control.app_consented(customer, DEMO_CLIENT_ID));
    let (status, body) = env
        .refresh(
            &customer.to_string(),
            rt,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["scp"],
        "Directory.Read.All User.Read.All"
    );
    let (_, body) = env
        .refresh(
            &customer.to_string(),
            rt,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await;
    assert_eq!(
        aadsts(&body),
        65001,
        "the consent's grants name Graph only: {body}"
    );
    let again = env
        .http
        .post(env.url(&path))
        .bearer_auth(at)
        .json(&consent)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let del = env
        .http
        .delete(env.url(&format!("{path}/{DEMO_CLIENT_ID}")))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    assert!(!env.control.app_consented(customer, DEMO_CLIENT_ID));
    let del = env
        .http
        .delete(env.url(&format!("{path}/{DEMO_CLIENT_ID}")))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 404);
}

#[tokio::test]
async fn bigdata_streams_the_requested_number_of_bytes() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[0];
    let n = 3 * 1024 * 1024 + 7;
    let resp = env
        .bearer_get(&format!("/v1/customers/{customer}/bigdata?bytes={n}"), &at)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len(), n);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["data"].is_string());
}

#[tokio::test]
async fn rotated_signing_key_keeps_old_tokens_valid_during_overlap() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    let old_kid = jsonwebtoken::decode_header(&at).unwrap().kid.unwrap();
    env.control.rotate_signing_key();
    let kids = env.control.signing_key_ids();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], old_kid);
    let jwks: Value = env
        .get(&format!("/{}/discovery/v2.0/keys", contoso()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.bearer_get("/v1/profiles/organization", &at)
            .await
            .status()
            .as_u16(),
        200
    );
    let fresh = contoso_pc_token(&env).await;
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap(),
        kids[0]
    );
    env.control.retire_previous_keys();
    assert_eq!(
        env.bearer_get("/v1/profiles/organization", &at)
            .await
            .status()
            .as_u16(),
        401
    );
}
