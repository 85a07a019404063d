//! Refusals at a customer tenant's authority: Conditional Access, app consent, GDAP, unknown
//! tenants, and the counters that see refused calls too.

use ms_emulator::{
    CustomerPolicy, DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN,
    DEMO_CONTOSO_CUSTOMER_BLOCKED, DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP, DEMO_PASSWORD,
    MissingConsentError, RelationshipStatus, Seed,
};
use serde_json::Value;
use uuid::Uuid;

use crate::harness::*;

const GRAPH: &str = "https://graph.microsoft.com/.default";
const PC: &str = "https://api.partnercenter.microsoft.com/.default";

fn contoso_customers() -> (Uuid, Uuid) {
    let seed = Seed::demo(REDIRECT);
    let c = &seed.tenant_named("Contoso Partners").unwrap().customers;
    (c[0], c[1])
}

/// The demo world with the app consented in both Contoso customers, and a Contoso partner RT.
async fn consented() -> (TestEnv, String, Uuid, Uuid) {
    let env = TestEnv::demo().await;
    let (one, two) = contoso_customers();
    env.control.grant_app_consent(one, DEMO_CLIENT_ID);
    env.control.grant_app_consent(two, DEMO_CLIENT_ID);
    let rt = contoso_refresh_token(&env).await;
    (env, rt, one, two)
}

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap()
}

#[tokio::test]
async fn block_policy_refuses_refreshes_at_that_customer_only_with_53003_message_only() {
    let (env, rt, one, two) = consented().await;
    env.control
        .set_customer_policy(one, Some(CustomerPolicy::Block));
    let (status, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], serde_json::json!([53003]));
    assert_eq!(body["suberror"], "message_only");
    assert!(
        description(&body).starts_with(
            "AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.\r\nTrace ID: "
        ),
        "{body}"
    );
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=53003"
    );
    let (status, body) = env.refresh(&two.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200, "another customer is unaffected: {body}");
    let (status, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(
        status, 200,
        "the partner's own authority is unaffected: {body}"
    );
    env.control.set_customer_policy(one, None);
    let (status, _) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200, "removing the policy restores access");
}

#[tokio::test]
async fn compliant_device_policy_refuses_with_53000() {
    let (env, rt, one, _) = consented().await;
    env.control
        .set_customer_policy(one, Some(CustomerPolicy::RequireCompliantDevice));
    let (status, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 53000);
    assert!(
        description(&body).starts_with(
            "AADSTS53000: Device is not in required device state: compliant. Conditional Access policy requires a compliant device"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn stronger_auth_policy_refuses_even_an_mfa_grant_with_50076_basic_action() {
    let (env, rt, one, _) = consented().await;
    let (_, partner) = env.refresh(&contoso(), &rt, PC).await;
    let amr = claims(partner["access_token"].as_str().unwrap())["amr"].clone();
    assert!(amr.as_array().unwrap().iter().any(|a| a == "mfa"), "{amr}");
    env.control
        .set_customer_policy(one, Some(CustomerPolicy::RequireStrongerAuth));
    let (status, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 50076);
    assert_eq!(body["suberror"], "basic_action");
    assert!(
        description(&body).contains("'00000003-0000-0000-c000-000000000000'"),
        "{body}"
    );
    let fresh = contoso_refresh_token(&env).await;
    let (_, body) = env.refresh(&one.to_string(), &fresh, GRAPH).await;
    assert_eq!(
        aadsts(&body),
        50076,
        "a new MFA sign-in does not satisfy it"
    );
}

#[tokio::test]
async fn missing_app_consent_at_a_customer_is_65001_consent_required_without_error_uri() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let (one, _) = contoso_customers();
    let (status, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 65001);
    assert_eq!(body["suberror"], "consent_required");
    assert!(body.get("error_uri").is_none(), "{body}");
    assert!(
        description(&body).starts_with(&format!(
            "AADSTS65001: The user or administrator has not consented to use the application with ID '{DEMO_CLIENT_ID}' named 'samgate CPV'. Send an interactive authorization request for this user and resource."
        )),
        "{body}"
    );
}

#[tokio::test]
async fn the_missing_consent_answer_is_chosen_per_customer_700016_or_90099() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let (one, two) = contoso_customers();
    env.control
        .set_missing_consent_error(one, MissingConsentError::AppNotFound);
    env.control
        .set_missing_consent_error(two, MissingConsentError::PartnerNotAuthorized);
    let (status, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(aadsts(&body), 700016);
    assert!(
        description(&body).starts_with(&format!(
            "AADSTS700016: Application with identifier '{DEMO_CLIENT_ID}' was not found in the directory 'Contoso Customer One'."
        )),
        "{body}"
    );
    let (status, body) = env.refresh(&two.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 90099);
    assert!(
        description(&body).contains("Applications must be authorized to access the external tenant before partner delegated administrators can use them."),
        "{body}"
    );
    env.control.grant_app_consent(one, DEMO_CLIENT_ID);
    let (status, _) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn single_tenant_app_is_not_found_in_a_customer_directory_700016() {
    let mut seed = Seed::demo(REDIRECT);
    seed.apps[0].multitenant = false;
    seed.apps[0].home_tenant = DEMO_CONTOSO;
    let env = TestEnv::with_seed(seed).await;
    let req = Authorize {
        tenant: contoso(),
        ..Authorize::default()
    };
    let flow = sign_in(&env, &req, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD).await;
    let params = flow.params();
    let (status, tokens) = env
        .token(
            &contoso(),
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &req.verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    let rt = tokens["refresh_token"].as_str().unwrap();
    let (one, _) = contoso_customers();
    env.control.grant_app_consent(one, DEMO_CLIENT_ID);
    let (_, body) = env.refresh(&one.to_string(), rt, GRAPH).await;
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(aadsts(&body), 700016);
}

#[tokio::test]
async fn gdap_is_checked_before_consent_and_consent_before_conditional_access() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let (one, _) = contoso_customers();
    env.control
        .set_customer_policy(one, Some(CustomerPolicy::Block));
    env.control
        .set_relationship_status(DEMO_CONTOSO, one, RelationshipStatus::Terminated);
    let (_, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 50020, "{body}");
    assert!(
        description(&body).contains(&format!(
            "User account '{DEMO_CONTOSO_ADMIN}' from identity provider 'https://sts.windows.net/{DEMO_CONTOSO}/' does not exist in tenant 'Contoso Customer One'"
        )),
        "{body}"
    );
    env.control
        .set_relationship_status(DEMO_CONTOSO, one, RelationshipStatus::Active);
    let (_, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 65001);
    env.control.grant_app_consent(one, DEMO_CLIENT_ID);
    let (_, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 53003);
}

#[tokio::test]
async fn relationship_without_roles_is_refused_with_50020() {
    let (env, rt, one, _) = consented().await;
    env.control
        .set_relationship_roles(DEMO_CONTOSO, one, Vec::new());
    let (_, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 50020);
    env.control.set_relationship_roles(
        DEMO_CONTOSO,
        one,
        vec![Uuid::from_u128(0x88d8e3e3_8f55_4a1e_953a_9b9898b8876b)],
    );
    let (status, _) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn relationship_is_refused_with_50020_once_its_end_passes_on_the_clock() {
    let (env, rt, one, _) = consented().await;
    env.control.set_relationship_end(
        DEMO_CONTOSO,
        one,
        env.control.now() + time::Duration::days(1),
    );
    let (status, _) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200);
    env.control
        .advance_clock(std::time::Duration::from_secs(2 * 86_400));
    let (_, body) = env.refresh(&one.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 50020);
}

#[tokio::test]
async fn unknown_tenant_guid_at_the_token_endpoint_is_90002() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let nowhere = Uuid::new_v4();
    let (status, body) = env.refresh(&nowhere.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_codes"], serde_json::json!([90002]));
    assert!(
        description(&body).starts_with(&format!("AADSTS90002: Tenant '{nowhere}' not found. ")),
        "{body}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=90002"
    );
    assert_eq!(
        env.control
            .token_calls_for_tenant(&nowhere.to_string(), "refresh_token"),
        1
    );
}

#[tokio::test]
async fn refused_customer_refreshes_are_counted_at_that_customer() {
    let (env, rt, one, two) = consented().await;
    env.control.reset_counters();
    env.control
        .set_customer_policy(one, Some(CustomerPolicy::Block));
    for _ in 0..3 {
        let (status, _) = env.refresh(&one.to_string(), &rt, GRAPH).await;
        assert_eq!(status, 400);
    }
    env.control
        .set_relationship_status(DEMO_CONTOSO, two, RelationshipStatus::Expired);
    let (_, body) = env.refresh(&two.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 50020);
    let c = &env.control;
    assert_eq!(
        c.token_calls_for_tenant(&one.to_string(), "refresh_token"),
        3
    );
    assert_eq!(
        c.token_calls_for_tenant("contosocust1.onmicrosoft.com", "refresh_token"),
        3
    );
    assert_eq!(
        c.token_calls_for_tenant(&two.to_string(), "refresh_token"),
        1
    );
    assert_eq!(c.token_calls_for_tenant(&contoso(), "refresh_token"), 0);
    assert_eq!(c.token_calls("refresh_token"), 4);
}

#[tokio::test]
async fn demo_edge_cases_add_a_blocked_customer_and_one_without_gdap() {
    let env = TestEnv::with_seed(Seed::demo(REDIRECT).with_demo_edge_cases()).await;
    let rt = contoso_refresh_token(&env).await;
    let (_, body) = env
        .refresh(&DEMO_CONTOSO_CUSTOMER_BLOCKED.to_string(), &rt, GRAPH)
        .await;
    assert_eq!(aadsts(&body), 53003, "{body}");
    let (_, body) = env
        .refresh(&DEMO_CONTOSO_CUSTOMER_WITHOUT_GDAP.to_string(), &rt, GRAPH)
        .await;
    assert_eq!(aadsts(&body), 50020, "{body}");
    let at = consent_and_redeem(&env).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let page: Value = env
        .bearer_get("/v1/customers?size=10", &at)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["companyProfile"]["companyName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Contoso Customer One",
            "Contoso Customer Two",
            "Contoso Customer Blocked",
            "Contoso Customer Without GDAP"
        ]
    );
    // The plain demo world keeps exactly two customers per partner.
    let plain = Seed::demo(REDIRECT);
    assert_eq!(
        plain
            .tenant_named("Contoso Partners")
            .unwrap()
            .customers
            .len(),
        2
    );
}

/// An ID token from a customer's authority is issued by the customer tenant and names the partner
/// user by `home_oid`/`home_tid` (no `oid`: the user has no object in the customer tenant).
#[tokio::test]
async fn an_id_token_from_a_customer_authority_names_the_customer_and_the_home_user() {
    let (env, rt, one, _) = consented().await;
    let (status, body) = env
        .refresh(&one.to_string(), &rt, &format!("openid {GRAPH}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let id = claims(body["id_token"].as_str().expect("id_token"));
    assert_eq!(id["tid"], one.to_string());
    assert_eq!(id["iss"], format!("{}/{one}/v2.0", env.base));
    assert!(id.get("oid").is_none(), "{id}");
    assert_eq!(id["home_tid"], DEMO_CONTOSO.to_string());
    assert_eq!(
        id["idp"],
        format!("https://sts.windows.net/{DEMO_CONTOSO}/")
    );
    let own = env
        .refresh(&contoso(), &rt, &format!("openid {GRAPH}"))
        .await
        .1;
    let own = claims(own["id_token"].as_str().expect("id_token"));
    assert_eq!(id["home_oid"], own["oid"]);
    assert!(own.get("home_oid").is_none(), "{own}");
}
