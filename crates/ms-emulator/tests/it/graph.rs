//! The Graph subset: organization, users paging, GDAP relationships, token checks.

use ms_emulator::{DEMO_CLIENT_ID, Seed, TenantSeed, UserSeed};
use serde_json::Value;

use crate::harness::*;

async fn graph_token(env: &TestEnv, tenant: &str) -> String {
    let rt = contoso_refresh_token(env).await;
    let (status, body) = env
        .refresh(tenant, &rt, "https://graph.microsoft.com/.default")
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn users_are_paged_with_an_absolute_next_link() {
    let mut seed = Seed::demo(REDIRECT);
    let customer = seed.tenant_named("Contoso Partners").unwrap().customers[0];
    let t: &mut TenantSeed = seed.tenants.iter_mut().find(|t| t.id == customer).unwrap();
    for i in 0..3 {
        t.users.push(UserSeed::new(
            &format!("user{i}@{}", t.default_domain),
            "pw",
        ));
    }
    let env = TestEnv::with_seed(seed).await;
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let at = graph_token(&env, &customer.to_string()).await;
    let mut url = env.url("/graph/v1.0/users?$top=2");
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let resp = env.http.get(&url).bearer_auth(&at).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers().contains_key("request-id"));
        let body: Value = resp.json().await.unwrap();
        seen += body["value"].as_array().unwrap().len();
        pages += 1;
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&format!("{}/graph/v1.0/users?", env.base)),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, 5);
    assert_eq!(pages, 3);
    let org: Value = env
        .bearer_get("/graph/v1.0/organization", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(org["value"][0]["id"], customer.to_string());
}

#[tokio::test]
async fn partner_token_lists_gdap_relationships() {
    let env = TestEnv::demo().await;
    let at = graph_token(&env, &contoso()).await;
    let body: Value = env
        .bearer_get(
            "/graph/v1.0/tenantRelationships/delegatedAdminRelationships",
            &at,
        )
        .await
        .json()
        .await
        .unwrap();
    let rels = body["value"].as_array().unwrap();
    assert_eq!(rels.len(), 2);
    assert_eq!(rels[0]["status"], "active");
    assert!(rels[0]["customer"]["tenantId"].is_string());
    assert!(rels[0]["accessDetails"]["unifiedRoles"][0]["roleDefinitionId"].is_string());
}

#[tokio::test]
async fn graph_rejects_partner_center_tokens_in_graph_error_shape() {
    let env = TestEnv::demo().await;
    let at = contoso_pc_token(&env).await;
    let resp = env
        .http
        .get(env.url("/graph/v1.0/users"))
        .bearer_auth(&at)
        .header("client-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["innerError"]["client-request-id"], "abc-123");
    assert!(body["error"]["innerError"]["date"].is_string());
    assert!(body["error"]["innerError"]["request-id"].is_string());
}
