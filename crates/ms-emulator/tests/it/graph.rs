//! The Graph subset: organization, users paging, GDAP relationships, token checks.

use ms_emulator::{
    CustomerOptions, DEMO_CLIENT_ID, DEMO_CONTOSO, RelationshipStatus, Seed, TenantSeed, UserSeed,
};
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

/// Contoso with ten generated customers, one per Graph status, each with the app consented.
fn seed_with_every_status() -> Seed {
    Seed::demo(REDIRECT).with_generated_customers(
        DEMO_CONTOSO,
        RelationshipStatus::ALL.len(),
        |i| {
            CustomerOptions::new()
                .with_gdap_status(RelationshipStatus::ALL[i - 2])
                .with_app_consent(DEMO_CLIENT_ID)
        },
    )
}

async fn list_relationships(env: &TestEnv, at: &str) -> Vec<Value> {
    let body: Value = env
        .bearer_get(
            "/graph/v1.0/tenantRelationships/delegatedAdminRelationships",
            at,
        )
        .await
        .json()
        .await
        .unwrap();
    body["value"].as_array().unwrap().clone()
}

fn time_of(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

#[tokio::test]
async fn gdap_relationships_list_every_status_with_roles_and_dates_and_only_active_ones_give_tokens()
 {
    let env = TestEnv::with_seed(seed_with_every_status()).await;
    let rt = contoso_refresh_token(&env).await;
    let (_, body) = env
        .refresh(&contoso(), &rt, "https://graph.microsoft.com/.default")
        .await;
    let at = body["access_token"].as_str().unwrap().to_owned();
    let rels = list_relationships(&env, &at).await;
    assert_eq!(rels.len(), 2 + RelationshipStatus::ALL.len());
    for (i, status) in RelationshipStatus::ALL.into_iter().enumerate() {
        let rel = &rels[2 + i];
        let customer = Seed::generated_customer_id(DEMO_CONTOSO, 2 + i);
        assert_eq!(rel["customer"]["tenantId"], customer.to_string());
        assert_eq!(
            rel["customer"]["displayName"],
            format!("Customer {:04} Ltd", 2 + i)
        );
        assert_eq!(rel["status"], status.as_str());
        assert_eq!(
            rel["accessDetails"]["unifiedRoles"][0]["roleDefinitionId"],
            "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"
        );
        assert!(rel["createdDateTime"].is_string() && rel["lastModifiedDateTime"].is_string());
        assert_eq!(rel["duration"], "P730D");
        if status.was_activated() {
            let activated = time_of(&rel["activatedDateTime"]);
            let end = time_of(&rel["endDateTime"]);
            if matches!(
                status,
                RelationshipStatus::Expired | RelationshipStatus::Terminated
            ) {
                assert!(end <= env.control.now(), "{status}: {rel}");
            } else {
                assert_eq!(end - activated, time::Duration::days(730), "{rel}");
            }
        } else {
            assert!(rel["activatedDateTime"].is_null(), "{rel}");
            assert!(rel["endDateTime"].is_null(), "{rel}");
        }
        let (code, body) = env
            .refresh(
                &customer.to_string(),
                &rt,
                "https://graph.microsoft.com/.default",
            )
            .await;
        if status.grants_access() {
            assert_eq!(code, 200, "{status}: {body}");
        } else {
            assert_eq!(aadsts(&body), 50020, "{status}: {body}");
        }
    }
}

#[tokio::test]
async fn relationship_end_is_listed_and_the_clock_passing_it_lists_it_expired() {
    let env = TestEnv::demo().await;
    let at = graph_token(&env, &contoso()).await;
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[0];
    let end = (env.control.now() + time::Duration::days(3))
        .replace_nanosecond(0)
        .unwrap();
    env.control
        .set_relationship_end(DEMO_CONTOSO, customer, end);
    let rels = list_relationships(&env, &at).await;
    assert_eq!(time_of(&rels[0]["endDateTime"]), end);
    assert_eq!(rels[0]["status"], "active");
    env.control
        .advance_clock(std::time::Duration::from_secs(4 * 86_400));
    let at = graph_token(&env, &contoso()).await;
    let rels = list_relationships(&env, &at).await;
    assert_eq!(rels[0]["status"], "expired");
    assert_eq!(rels[1]["status"], "active");
}

#[tokio::test]
async fn terminated_relationship_stays_listed_with_its_end() {
    let env = TestEnv::demo().await;
    let at = graph_token(&env, &contoso()).await;
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[1];
    env.control
        .set_relationship_status(DEMO_CONTOSO, customer, RelationshipStatus::Terminated);
    let rels = list_relationships(&env, &at).await;
    assert_eq!(rels.len(), 2);
    assert_eq!(rels[1]["status"], "terminated");
    assert!(time_of(&rels[1]["endDateTime"]) <= env.control.now());
    assert!(rels[1]["activatedDateTime"].is_string());
}
