//! A partner with thousands of customers: generated seeds, Partner Center and Graph paging.

use std::collections::HashSet;

use ms_emulator::{
    CustomerOptions, CustomerPolicy, DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_FABRIKAM, Seed,
};
use serde_json::Value;
use uuid::Uuid;

use crate::harness::*;

const GRAPH: &str = "https://graph.microsoft.com/.default";

/// Every Partner Center customer id, following `links.next` with its continuation header.
async fn page_partner_center(env: &TestEnv, at: &str, size: usize) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut next: Option<(String, String)> = None;
    loop {
        let mut req = match &next {
            None => env.http.get(env.url(&format!("/v1/customers?size={size}"))),
            Some((uri, _)) => env.http.get(env.url(uri)),
        };
        if let Some((_, token)) = &next {
            req = req.header("MS-ContinuationToken", token);
        }
        let resp = req.bearer_auth(at).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        pages += 1;
        for item in body["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match body["links"].get("next") {
            Some(n) => {
                next = Some((
                    n["uri"].as_str().unwrap().to_owned(),
                    n["headers"][0]["value"].as_str().unwrap().to_owned(),
                ))
            }
            None => break,
        }
    }
    (ids, pages)
}

/// Every GDAP relationship's customer id, following `@odata.nextLink`.
async fn page_graph(env: &TestEnv, at: &str, top: usize) -> (Vec<String>, usize) {
    let mut url = env.url(&format!(
        "/graph/v1.0/tenantRelationships/delegatedAdminRelationships?$top={top}"
    ));
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let resp = env.http.get(&url).bearer_auth(at).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        pages += 1;
        for rel in body["value"].as_array().unwrap() {
            ids.push(rel["customer"]["tenantId"].as_str().unwrap().to_owned());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    (ids, pages)
}

fn exactly_once(ids: &[String]) -> HashSet<&str> {
    let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(set.len(), ids.len(), "an id was listed twice");
    set
}

#[tokio::test]
async fn five_thousand_customers_page_through_partner_center_and_graph_each_exactly_once() {
    let seed = Seed::demo(REDIRECT)
        .with_generated_customers(DEMO_CONTOSO, 5_000, |_| CustomerOptions::new());
    let env = TestEnv::with_seed(seed).await;
    let tokens = consent_and_redeem(&env).await;
    let pc = tokens["access_token"].as_str().unwrap().to_owned();
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();

    let (ids, pages) = page_partner_center(&env, &pc, 500).await;
    assert_eq!(pages, 11);
    let seen = exactly_once(&ids);
    assert_eq!(seen.len(), 5_002);
    for i in [0, 1, 2, 2_500, 5_001] {
        let id = Seed::generated_customer_id(DEMO_CONTOSO, i).to_string();
        assert_eq!(seen.contains(id.as_str()), i >= 2, "customer {i}");
    }

    let (_, graph) = env.refresh(&contoso(), &rt, GRAPH).await;
    let graph = graph["access_token"].as_str().unwrap().to_owned();
    let (rels, pages) = page_graph(&env, &graph, 300).await;
    assert_eq!(pages, 17);
    let rel_customers = exactly_once(&rels);
    assert_eq!(rel_customers, seen, "one relationship per customer");
}

#[tokio::test]
async fn generated_customers_follow_their_options() {
    let seed = Seed::demo(REDIRECT).with_generated_customers(DEMO_FABRIKAM, 30, |i| {
        let options = CustomerOptions::new().with_app_consent(DEMO_CLIENT_ID);
        if i % 3 == 0 {
            options.without_gdap()
        } else if i % 5 == 0 {
            options.with_expired_gdap()
        } else if i % 7 == 0 {
            options.with_policy(CustomerPolicy::Block)
        } else {
            options
        }
    });
    let fabrikam = seed.tenant_named("Fabrikam IT").unwrap();
    assert_eq!(fabrikam.customers.len(), 32);
    let id = |i| Seed::generated_customer_id(DEMO_FABRIKAM, i);
    assert_eq!(
        fabrikam.customers[4],
        id(4),
        "numbered on from the demo customers"
    );
    let fourteen = seed.tenants.iter().find(|t| t.id == id(14)).unwrap();
    assert_eq!(fourteen.display_name, "Customer 0014 Ltd");
    assert!(fourteen.default_domain.starts_with("customer0014"));
    assert_eq!(
        Seed::generated_customer_id(DEMO_FABRIKAM, 14),
        id(14),
        "ids are deterministic"
    );
    assert_ne!(id(14), Seed::generated_customer_id(DEMO_CONTOSO, 14));

    let env = TestEnv::with_seed(seed).await;
    let admin = ms_emulator::DEMO_FABRIKAM_ADMIN;
    let flow = sign_in(
        &env,
        &Authorize::default(),
        admin,
        ms_emulator::DEMO_PASSWORD,
    )
    .await;
    let (_, tokens) = env
        .token(
            "organizations",
            &[
                ("grant_type", "authorization_code"),
                ("code", &flow.params()["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &Authorize::default().verifier),
            ],
        )
        .await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    for (i, want) in [(4, 200), (6, 50020), (10, 50020), (14, 53003), (16, 200)] {
        let (status, body) = env.refresh(&id(i).to_string(), &rt, GRAPH).await;
        let got = if status == 200 { 200 } else { aadsts(&body) };
        assert_eq!(got, want, "customer {i}: {body}");
    }
}

#[tokio::test]
async fn control_adds_generated_customers_with_active_gdap() {
    let env = TestEnv::demo().await;
    let ids = env.control.add_customers(DEMO_CONTOSO, 3).unwrap();
    assert_eq!(ids[0], Seed::generated_customer_id(DEMO_CONTOSO, 2));
    let more = env.control.add_customers(DEMO_CONTOSO, 1).unwrap();
    assert_eq!(more[0], Seed::generated_customer_id(DEMO_CONTOSO, 5));
    assert!(env.control.add_customers(Uuid::new_v4(), 1).is_err());
    env.control.grant_app_consent(ids[1], DEMO_CLIENT_ID);
    let rt = contoso_refresh_token(&env).await;
    let (status, body) = env.refresh(&ids[1].to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200, "{body}");
    let pc = contoso_pc_token(&env).await;
    let page: Value = env
        .bearer_get("/v1/customers?size=500", &pc)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 6);
}
