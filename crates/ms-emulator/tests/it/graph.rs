//! The Graph subset: organization, domains, SKUs, users (by id or UPN, `$select`, `$filter`,
//! `$top`, `$count`), groups and members, paging, GDAP relationships, token checks.

use ms_emulator::{
    CustomerOptions, DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, RelationshipStatus, Seed,
    TenantSeed, UserSeed,
};
use serde_json::Value;
use uuid::Uuid;

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

/// The first Contoso customer ("Contoso Customer One": Alex Wilber, Megan Bowen) and a Graph
/// token for it.
async fn customer_token(env: &TestEnv) -> (Uuid, String) {
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[0];
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let at = graph_token(env, &customer.to_string()).await;
    (customer, at)
}

const CUSTOMER_DOMAIN: &str = "contosocust1.onmicrosoft.com";

/// GET with a bearer token and extra headers; returns status and body (JSON, or a string).
async fn graph_get(env: &TestEnv, path: &str, at: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = env.http.get(env.url(path)).bearer_auth(at);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn upns(body: &Value) -> Vec<String> {
    let mut u: Vec<String> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned())
        .collect();
    u.sort_unstable();
    u
}

fn assert_graph_error(body: &Value, code: &str, message: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["message"], message, "{body}");
    let inner = &body["error"]["innerError"];
    assert!(
        inner["date"].is_string()
            && inner["request-id"].is_string()
            && inner["client-request-id"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn user_is_found_by_object_id_or_user_principal_name_with_graphs_default_properties() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    let (_, list) = graph_get(&env, "/graph/v1.0/users", &at, &[]).await;
    let alex = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["displayName"] == "Alex Wilber")
        .unwrap()
        .clone();
    let id = alex["id"].as_str().unwrap();
    let (status, by_id) = graph_get(&env, &format!("/graph/v1.0/users/{id}"), &at, &[]).await;
    assert_eq!(status, 200, "{by_id}");
    assert_eq!(
        by_id["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
    );
    assert_eq!(
        keys(&by_id),
        [
            "@odata.context",
            "businessPhones",
            "displayName",
            "givenName",
            "id",
            "jobTitle",
            "mail",
            "mobilePhone",
            "officeLocation",
            "preferredLanguage",
            "surname",
            "userPrincipalName",
        ]
    );
    assert_eq!(by_id["givenName"], "Alex");
    assert_eq!(by_id["surname"], "Wilber");
    let upn = format!("ALEX@{}", CUSTOMER_DOMAIN.to_uppercase());
    let (status, by_upn) = graph_get(&env, &format!("/graph/v1.0/users/{upn}"), &at, &[]).await;
    assert_eq!(status, 200, "{by_upn}");
    assert_eq!(by_upn["id"], id);
}

#[tokio::test]
async fn unknown_user_is_404_request_resource_not_found_in_graphs_error_shape() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    for id in [
        "6f1f8b2e-0000-4000-8000-000000000001",
        "nobody@contosocust1.onmicrosoft.com",
    ] {
        let (status, body) = graph_get(
            &env,
            &format!("/graph/v1.0/users/{id}"),
            &at,
            &[("client-request-id", "crid-1")],
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert_graph_error(
            &body,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
        assert_eq!(body["error"]["innerError"]["client-request-id"], "crid-1");
    }
}

#[tokio::test]
async fn a_customer_token_sees_only_that_customers_users_and_groups() {
    let env = TestEnv::demo().await;
    let (customer, at) = customer_token(&env).await;
    let (_, users) = graph_get(&env, "/graph/v1.0/users", &at, &[]).await;
    assert_eq!(
        upns(&users),
        [
            format!("alex@{CUSTOMER_DOMAIN}"),
            format!("megan@{CUSTOMER_DOMAIN}")
        ]
    );
    // The partner's admin and the other customer's users are not there, even by id or UPN.
    let (status, _) = graph_get(
        &env,
        &format!("/graph/v1.0/users/{DEMO_CONTOSO_ADMIN}"),
        &at,
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let partner_at = graph_token(&env, &contoso()).await;
    let (_, partner_users) = graph_get(&env, "/graph/v1.0/users", &partner_at, &[]).await;
    assert_eq!(upns(&partner_users), [DEMO_CONTOSO_ADMIN]);
    let admin_id = partner_users["value"][0]["id"].as_str().unwrap();
    let (status, _) = graph_get(&env, &format!("/graph/v1.0/users/{admin_id}"), &at, &[]).await;
    assert_eq!(status, 404);

    let (_, groups) = graph_get(&env, "/graph/v1.0/groups", &at, &[]).await;
    let names: Vec<&str> = groups["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["All Users", "Contoso Customer One"]);
    let (_, partner_groups) = graph_get(&env, "/graph/v1.0/groups", &partner_at, &[]).await;
    let partner_group = partner_groups["value"][0]["id"].as_str().unwrap();
    let (status, _) = graph_get(
        &env,
        &format!("/graph/v1.0/groups/{partner_group}"),
        &at,
        &[],
    )
    .await;
    assert_eq!(status, 404, "{customer}");
}

#[tokio::test]
async fn select_returns_only_the_selected_properties_and_names_them_in_the_context() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    let (status, body) =
        graph_get(&env, "/graph/v1.0/users?$select=displayName,mail", &at, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(displayName,mail)"
    );
    for u in body["value"].as_array().unwrap() {
        assert_eq!(keys(u), ["displayName", "mail"], "no id unless selected");
    }
    let id = graph_get(&env, "/graph/v1.0/users", &at, &[]).await.1["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, one) = graph_get(
        &env,
        &format!("/graph/v1.0/users/{id}?$select=id,accountEnabled"),
        &at,
        &[],
    )
    .await;
    assert_eq!(
        one["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(id,accountEnabled)/$entity"
    );
    assert_eq!(keys(&one), ["@odata.context", "accountEnabled", "id"]);
    assert_eq!(one["accountEnabled"], true);

    let (status, body) = graph_get(&env, "/graph/v1.0/users?$select=shoeSize", &at, &[]).await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "BadRequest",
        "Parsing OData Select and Expand failed: Could not find a property named 'shoeSize' on type 'microsoft.graph.user'.",
    );
}

#[tokio::test]
async fn top_is_between_1_and_999_and_next_links_keep_the_other_query_options() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    for top in ["0", "1000"] {
        let (status, body) =
            graph_get(&env, &format!("/graph/v1.0/users?$top={top}"), &at, &[]).await;
        assert_eq!(status, 400, "{top}");
        assert_graph_error(
            &body,
            "Request_BadRequest",
            &format!("Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."),
        );
    }
    let (status, body) = graph_get(&env, "/graph/v1.0/users?$top=999", &at, &[]).await;
    assert_eq!(status, 200);
    assert!(body.get("@odata.nextLink").is_none());

    let (customer, _) = customer_token(&env).await;
    env.control
        .add_user(
            customer,
            UserSeed::new(&format!("adele@{CUSTOMER_DOMAIN}"), "pw"),
        )
        .unwrap();
    let (_, first) = graph_get(
        &env,
        "/graph/v1.0/users?$top=1&$select=userPrincipalName&$filter=startswith(userPrincipalName,'a')",
        &at,
        &[],
    )
    .await;
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/graph/v1.0/users?", env.base)),
        "{next}"
    );
    let (_, second) = graph_get(&env, &next[env.base.len()..], &at, &[]).await;
    // Adele and Alex start with 'a'; Megan stays out of the second page too.
    let mut seen = upns(&first);
    seen.extend(upns(&second));
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            format!("adele@{CUSTOMER_DOMAIN}"),
            format!("alex@{CUSTOMER_DOMAIN}")
        ]
    );
    assert!(second.get("@odata.nextLink").is_none());
    assert_eq!(keys(&second["value"][0]), ["userPrincipalName"]);
    assert_eq!(
        second["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(userPrincipalName)"
    );
}

#[tokio::test]
async fn common_filters_select_users_by_upn_name_prefix_mail_and_enabled_state() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    env.control
        .disable_user(&format!("megan@{CUSTOMER_DOMAIN}"));
    let alex = format!("alex@{CUSTOMER_DOMAIN}");
    let megan = format!("megan@{CUSTOMER_DOMAIN}");
    for (filter, want) in [
        (format!("userPrincipalName eq '{alex}'"), vec![alex.clone()]),
        (
            "displayName eq 'Megan Bowen'".to_owned(),
            vec![megan.clone()],
        ),
        (
            "startswith(displayName,'al')".to_owned(),
            vec![alex.clone()],
        ),
        ("accountEnabled eq true".to_owned(), vec![alex.clone()]),
        ("accountEnabled eq false".to_owned(), vec![megan.clone()]),
        (
            format!("mail eq '{}'", megan.to_uppercase()),
            vec![megan.clone()],
        ),
        (
            format!("mail eq '{alex}' or displayName eq 'Megan Bowen'"),
            vec![alex.clone(), megan.clone()],
        ),
        ("displayName eq 'Nobody'".to_owned(), vec![]),
    ] {
        let path = format!(
            "/graph/v1.0/users?$filter={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let (status, body) = graph_get(&env, &path, &at, &[]).await;
        assert_eq!(status, 200, "{filter}: {body}");
        assert_eq!(upns(&body), want, "{filter}");
    }
}

#[tokio::test]
async fn unsupported_filters_are_400_request_unsupported_query() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    let enc = |f: &str| url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();
    for (filter, message) in [
        (
            "jobTitle eq 'CEO'",
            "Unsupported or invalid query filter clause specified for property 'jobTitle' of resource 'User'.",
        ),
        (
            "startswith(accountEnabled,'t')",
            "Unsupported or invalid query filter clause specified for property 'accountEnabled' of resource 'User'.",
        ),
        (
            "contains(displayName,'a')",
            "Unsupported property filter clause operator 'Contains'.",
        ),
        (
            "endswith(mail,'.com')",
            "Operator 'endsWith' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        ),
    ] {
        let (status, body) = graph_get(
            &env,
            &format!("/graph/v1.0/users?$filter={}", enc(filter)),
            &at,
            &[],
        )
        .await;
        assert_eq!(status, 400, "{filter}");
        assert_graph_error(&body, "Request_UnsupportedQuery", message);
    }
    // With the advanced query parameters the same endsWith works.
    let (status, body) = graph_get(
        &env,
        &format!(
            "/graph/v1.0/users?$count=true&$filter={}",
            enc("endswith(mail,'@contosocust1.onmicrosoft.com')")
        ),
        &at,
        &[("ConsistencyLevel", "eventual")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["@odata.count"], 2);

    let (status, body) = graph_get(
        &env,
        "/graph/v1.0/users?$search=%22displayName:al%22",
        &at,
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "Request_UnsupportedQuery",
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
    );
}

#[tokio::test]
async fn counting_needs_consistency_level_eventual() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    let (status, body) = graph_get(&env, "/graph/v1.0/users/$count", &at, &[]).await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "Request_BadRequest",
        "$count is not currently supported.",
    );

    let resp = env
        .http
        .get(env.url("/graph/v1.0/users/$count"))
        .bearer_auth(&at)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.text().await.unwrap(), "2");
    let (_, groups) = graph_get(
        &env,
        "/graph/v1.0/groups/$count",
        &at,
        &[("ConsistencyLevel", "eventual")],
    )
    .await;
    assert_eq!(groups, 2, "a text/plain number");

    // `$count=true` is honoured with the header and silently ignored without it.
    let (_, counted) = graph_get(
        &env,
        "/graph/v1.0/users?$count=true&$top=1",
        &at,
        &[("ConsistencyLevel", "eventual")],
    )
    .await;
    assert_eq!(counted["@odata.count"], 2, "{counted}");
    assert_eq!(counted["value"].as_array().unwrap().len(), 1);
    let (status, ignored) = graph_get(&env, "/graph/v1.0/users?$count=true", &at, &[]).await;
    assert_eq!(status, 200);
    assert!(ignored.get("@odata.count").is_none(), "{ignored}");
}

#[tokio::test]
async fn organization_domains_and_subscribed_skus_describe_the_tokens_tenant() {
    let env = TestEnv::demo().await;
    let (customer, at) = customer_token(&env).await;
    let (_, org) = graph_get(&env, "/graph/v1.0/organization", &at, &[]).await;
    assert_eq!(
        org["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#organization"
    );
    assert_eq!(org["value"][0]["id"], customer.to_string());
    assert_eq!(org["value"][0]["displayName"], "Contoso Customer One");
    assert_eq!(
        org["value"][0]["verifiedDomains"][0]["name"],
        CUSTOMER_DOMAIN
    );
    assert!(org["value"][0]["partnerTenantType"].is_null());
    let (_, selected) = graph_get(
        &env,
        "/graph/v1.0/organization?$select=id,displayName",
        &at,
        &[],
    )
    .await;
    assert_eq!(keys(&selected["value"][0]), ["displayName", "id"]);

    let (_, domains) = graph_get(&env, "/graph/v1.0/domains", &at, &[]).await;
    assert_eq!(
        domains["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#domains"
    );
    let domain = &domains["value"][0];
    assert_eq!(domain["id"], CUSTOMER_DOMAIN);
    assert_eq!(domain["isInitial"], true);
    assert_eq!(domain["isDefault"], true);
    assert_eq!(domain["authenticationType"], "Managed");

    let (_, skus) = graph_get(&env, "/graph/v1.0/subscribedSkus", &at, &[]).await;
    assert_eq!(
        skus["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#subscribedSkus"
    );
    let sku = &skus["value"][0];
    assert_eq!(sku["skuPartNumber"], "SPB");
    assert_eq!(sku["skuId"], "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46");
    assert_eq!(
        sku["id"],
        format!("{customer}_cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46")
    );
    assert_eq!(sku["capabilityStatus"], "Enabled");
    assert_eq!(sku["prepaidUnits"]["enabled"], 10);
    assert_eq!(sku["consumedUnits"], 2);

    let partner_at = graph_token(&env, &contoso()).await;
    let (_, partner_org) = graph_get(&env, "/graph/v1.0/organization", &partner_at, &[]).await;
    assert_eq!(
        partner_org["value"][0]["partnerTenantType"],
        "resellerPartnerDelegatedAdmin"
    );
    let (_, partner_skus) = graph_get(&env, "/graph/v1.0/subscribedSkus", &partner_at, &[]).await;
    assert_eq!(partner_skus["value"], Value::Array(vec![]));
}

#[tokio::test]
async fn groups_have_graphs_shape_and_members_are_typed_users_paged_with_next_links() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    let (_, groups) = graph_get(&env, "/graph/v1.0/groups", &at, &[]).await;
    assert_eq!(
        groups["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#groups"
    );
    let all_users = &groups["value"][0];
    assert_eq!(all_users["displayName"], "All Users");
    assert_eq!(all_users["securityEnabled"], true);
    assert_eq!(all_users["mailEnabled"], false);
    assert_eq!(all_users["groupTypes"][0], "DynamicMembership");
    assert!(
        all_users["securityIdentifier"]
            .as_str()
            .unwrap()
            .starts_with("S-1-12-1-")
    );
    let team = &groups["value"][1];
    assert_eq!(team["groupTypes"][0], "Unified");
    assert_eq!(
        team["mail"],
        format!("ContosoCustomerOne@{CUSTOMER_DOMAIN}")
    );
    let (_, unified) = graph_get(
        &env,
        "/graph/v1.0/groups?$filter=groupTypes/any(c:c+eq+'Unified')",
        &at,
        &[],
    )
    .await;
    assert_eq!(unified["value"].as_array().unwrap().len(), 1, "{unified}");
    assert_eq!(unified["value"][0]["id"], team["id"]);

    let id = all_users["id"].as_str().unwrap();
    let (status, one) = graph_get(&env, &format!("/graph/v1.0/groups/{id}"), &at, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        one["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#groups/$entity"
    );
    assert_eq!(one["displayName"], "All Users");

    let (_, page1) = graph_get(
        &env,
        &format!("/graph/v1.0/groups/{id}/members?$top=1"),
        &at,
        &[],
    )
    .await;
    assert_eq!(
        page1["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#directoryObjects"
    );
    let member = &page1["value"][0];
    assert_eq!(member["@odata.type"], "#microsoft.graph.user");
    assert!(member["userPrincipalName"].is_string());
    let next = page1["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/graph/v1.0/groups/{id}/members?", env.base)),
        "{next}"
    );
    let (_, page2) = graph_get(&env, &next[env.base.len()..], &at, &[]).await;
    assert_eq!(page2["value"].as_array().unwrap().len(), 1);
    assert!(page2.get("@odata.nextLink").is_none());
    assert_ne!(page2["value"][0]["id"], member["id"]);

    // Group paging follows the same mechanism.
    let (_, g1) = graph_get(&env, "/graph/v1.0/groups?$top=1", &at, &[]).await;
    let (_, g2) = graph_get(
        &env,
        &g1["@odata.nextLink"].as_str().unwrap()[env.base.len()..],
        &at,
        &[],
    )
    .await;
    assert_eq!(g2["value"][0]["displayName"], "Contoso Customer One");

    // The Microsoft 365 group lists the enabled users only; a disabled user leaves it.
    env.control
        .disable_user(&format!("megan@{CUSTOMER_DOMAIN}"));
    let team_id = team["id"].as_str().unwrap();
    let (_, team_members) = graph_get(
        &env,
        &format!("/graph/v1.0/groups/{team_id}/members"),
        &at,
        &[],
    )
    .await;
    assert_eq!(upns(&team_members), [format!("alex@{CUSTOMER_DOMAIN}")]);

    let (status, body) = graph_get(
        &env,
        "/graph/v1.0/groups/6f1f8b2e-0000-4000-8000-000000000002/members",
        &at,
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_graph_error(
        &body,
        "Request_ResourceNotFound",
        "Resource '6f1f8b2e-0000-4000-8000-000000000002' does not exist or one of its queried reference-property objects are not present.",
    );
}

#[tokio::test]
async fn partner_tenants_have_an_admin_agents_group_and_the_demo_counts_are_unchanged() {
    let env = TestEnv::demo().await;
    let at = graph_token(&env, &contoso()).await;
    let (_, groups) = graph_get(
        &env,
        "/graph/v1.0/groups?$filter=displayName+eq+'AdminAgents'",
        &at,
        &[],
    )
    .await;
    let id = groups["value"][0]["id"].as_str().unwrap();
    let (_, members) = graph_get(&env, &format!("/graph/v1.0/groups/{id}/members"), &at, &[]).await;
    assert_eq!(upns(&members), [DEMO_CONTOSO_ADMIN]);
    let seed = Seed::demo(REDIRECT);
    let contoso = seed.tenant_named("Contoso Partners").unwrap();
    assert_eq!(contoso.customers.len(), 2);
    for c in &contoso.customers {
        let t = seed.tenants.iter().find(|t| t.id == *c).unwrap();
        assert_eq!(t.users.len(), 2);
    }
}

#[tokio::test]
async fn the_python_sdks_double_slash_after_the_version_reaches_the_same_routes() {
    let env = TestEnv::demo().await;
    let (_, at) = customer_token(&env).await;
    let (status, body) = graph_get(&env, "/graph/v1.0//users?$select=id", &at, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let id = body["value"][0]["id"].as_str().unwrap();
    let (status, _) = graph_get(&env, &format!("/graph/v1.0//users/{id}"), &at, &[]).await;
    assert_eq!(status, 200);
}
