//! Customer tenants as first-class: the customer directory, per-(partner, customer) access, and
//! partner health that one customer cannot break. Real PostgreSQL, the emulator over HTTP.

use std::time::Duration;

use ms_emulator::{CustomerOptions, CustomerPolicy, DEMO_CONTOSO, Fault, RelationshipStatus, Seed};
use samgate::domain::Actor;
use uuid::Uuid;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;

fn customer_graph(customer: Uuid) -> String {
    format!("/api/v1/partners/{DEMO_CONTOSO}/customers/{customer}/graph/v1.0/users?$top=1")
}

async fn get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("call")
}

/// The answer's body; its `message`, when it has one, must read as prose for a person (no run
/// of spaces left in it by a string broken over lines without a `\` in the source).
async fn json(response: reqwest::Response) -> serde_json::Value {
    let body: serde_json::Value = response.json().await.expect("json body");
    if let Some(message) = body["message"].as_str() {
        assert!(!message.contains("  "), "a run of spaces in {message:?}");
    }
    body
}

async fn partner_status(app: &TestApp, key: &str) -> String {
    let body = json(get(app, key, &format!("/api/v1/partners/{DEMO_CONTOSO}")).await).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

async fn sync_directory(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/partners/{DEMO_CONTOSO}/customers/sync")))
        .bearer_auth(key)
        .send()
        .await
        .expect("sync")
}

fn customer_token_calls(app: &TestApp, customer: Uuid) -> u64 {
    app.microsoft()
        .token_calls_for_tenant(&customer.to_string(), "refresh_token")
}

#[tokio::test]
async fn one_customers_conditional_access_refuses_only_that_customer_and_costs_one_token_call() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    let (blocked, open) = (Contoso.customer(1), Contoso.customer(2));
    for customer in [blocked, open] {
        app.microsoft()
            .grant_app_consent(customer, ms_emulator::DEMO_CLIENT_ID);
    }
    app.microsoft()
        .set_customer_policy(blocked, Some(CustomerPolicy::RequireStrongerAuth));

    for _ in 0..50 {
        let response = get(&app, &key, &customer_graph(blocked)).await;
        assert_eq!(response.status(), 403);
        assert!(response.headers().contains_key("retry-after"));
        let body = json(response).await;
        assert_eq!(body["code"], "customer_policy_blocked", "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("AADSTS50076")),
            "{body}"
        );
    }
    assert_eq!(
        customer_token_calls(&app, blocked),
        1,
        "50 calls to a refusing customer cost Microsoft one token call"
    );
    assert_eq!(partner_status(&app, &key).await, "healthy");

    let pc = get(
        &app,
        &key,
        &format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1"),
    )
    .await;
    assert_eq!(
        pc.status(),
        200,
        "Partner Center still works for the partner"
    );
    let other = get(&app, &key, &customer_graph(open)).await;
    assert_eq!(other.status(), 200, "another customer still works");
    // In the steady state the customer gate answers from memory: no database statement.
    let loads = app.app.customers.loads();
    for _ in 0..20 {
        assert_eq!(get(&app, &key, &customer_graph(open)).await.status(), 200);
        assert_eq!(
            get(&app, &key, &customer_graph(blocked)).await.status(),
            403
        );
    }
    assert_eq!(
        app.app.customers.loads(),
        loads,
        "no directory load per call"
    );

    // The refusal is a fact about that customer, recorded, audited and announced once.
    let row: (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT token_outcome::text, token_error, token_code FROM customers WHERE tenant_id = $1",
    )
    .bind(blocked)
    .fetch_one(&app.pool)
    .await
    .expect("customer row");
    assert_eq!(
        row,
        (
            "refused".into(),
            Some("customer_policy_blocked".into()),
            Some("50076".into())
        )
    );
    let status: String = sqlx::query_scalar("SELECT status FROM partners WHERE tenant_id = $1")
        .bind(DEMO_CONTOSO)
        .fetch_one(&app.pool)
        .await
        .expect("partner");
    assert_eq!(status, "healthy");
    let changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'customer.access_changed'
          AND details->>'customer_tenant_id' = $1",
    )
    .bind(blocked.to_string())
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(changes, 1);
}

#[tokio::test]
async fn unknown_customer_ids_are_refused_without_any_token_call() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    app.microsoft().reset_counters();
    for _ in 0..100 {
        let random = Uuid::new_v4();
        let response = get(&app, &key, &customer_graph(random)).await;
        assert_eq!(response.status(), 404);
        let body = json(response).await;
        assert_eq!(body["code"], "customer_not_found", "{body}");
        assert_eq!(customer_token_calls(&app, random), 0);
    }
    // The first unknown id read the directory once; the 99 others were answered from it.
    assert_eq!(app.microsoft().route_calls("/v1/customers"), 1);
    // A customer of another partner is not a customer of this one either.
    let fabrikams = Uuid::from_u128(0xc0570000_0000_4000_8000_000000000000 | (0xfa << 8) | 1);
    let response = get(&app, &key, &customer_graph(fabrikams)).await;
    assert_eq!(json(response).await["code"], "customer_not_found");
    assert_eq!(customer_token_calls(&app, fabrikams), 0);
}

#[tokio::test]
async fn a_customer_without_an_active_gdap_relationship_is_refused_before_any_token_call() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    let customer = Contoso.customer(1);
    app.microsoft()
        .grant_app_consent(customer, ms_emulator::DEMO_CLIENT_ID);
    app.microsoft()
        .set_relationship_status(DEMO_CONTOSO, customer, RelationshipStatus::Expired);
    let sync = sync_directory(&app, &key).await;
    assert_eq!(sync.status(), 200);
    app.microsoft().reset_counters();
    let response = get(&app, &key, &customer_graph(customer)).await;
    assert_eq!(response.status(), 403);
    let body = json(response).await;
    assert_eq!(body["code"], "customer_access_denied", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("GDAP")),
        "{body}"
    );
    assert_eq!(customer_token_calls(&app, customer), 0);
}

#[tokio::test]
async fn a_tenant_microsoft_does_not_know_answers_customer_not_found_not_app_misconfigured() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    // The directory lists a customer whose tenant Microsoft no longer knows (deleted tenant).
    let sync = sync_directory(&app, &key).await;
    assert_eq!(sync.status(), 200);
    let gone = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO customers (partner_id, tenant_id, company_name, listed, relationship,
                                first_seen_at, seen_at)
         SELECT id, $1, 'Deleted Ltd', true, 'gdap_active', now(), now() FROM partners
          WHERE tenant_id = $2",
    )
    .bind(gone)
    .bind(DEMO_CONTOSO)
    .execute(&app.pool)
    .await
    .expect("insert");
    app.app.customers.invalidate_all().await;
    let response = get(&app, &key, &customer_graph(gone)).await;
    assert_eq!(response.status(), 404);
    let body = json(response).await;
    assert_eq!(body["code"], "customer_not_found", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("AADSTS90002")),
        "{body}"
    );
    assert_eq!(partner_status(&app, &key).await, "healthy");
}

#[tokio::test]
async fn calls_to_a_slow_refusing_customer_do_not_hold_up_the_partners_own_calls() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    let customer = Contoso.customer(1);
    app.microsoft()
        .grant_app_consent(customer, ms_emulator::DEMO_CLIENT_ID);
    app.microsoft()
        .set_customer_policy(customer, Some(CustomerPolicy::Block));
    // Warm the directory and the partner's own token first.
    let pc_path = format!("/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1");
    assert_eq!(get(&app, &key, &pc_path).await.status(), 200);
    let sync = sync_directory(&app, &key).await;
    assert_eq!(sync.status(), 200);
    // The partner's own token is due again, so its calls below need a refresh at the partner's
    // authority (under the grant's row lock) while the customer's token request is pending.
    app.clock.advance(Duration::from_secs(3 * 3600));
    let partner_refreshes = app
        .microsoft()
        .token_calls_for_tenant(&DEMO_CONTOSO.to_string(), "refresh_token");
    // Microsoft answers the customer's token requests slowly.
    app.microsoft().fail_next(
        Fault::path(&format!("/{customer}/oauth2/v2.0/token")).latency(Duration::from_millis(1500)),
    );
    let (finished, mut order) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url, key, finished) = (
            app.client.clone(),
            app.url(&customer_graph(customer)),
            key.clone(),
            finished.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let response = client.get(url).bearer_auth(key).send().await.expect("call");
            let _ = finished.send("customer");
            response.status().as_u16()
        }));
    }
    // Give the customer calls time to reach the token endpoint, then call for the partner.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let response = get(&app, &key, &pc_path).await;
        assert_eq!(response.status(), 200);
        let _ = finished.send("partner");
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 403);
    }
    drop(finished);
    let mut seen = Vec::new();
    while let Some(who) = order.recv().await {
        seen.push(who);
    }
    assert_eq!(
        &seen[..5],
        ["partner"; 5],
        "the partner's calls finished while the customer's token request was pending: {seen:?}"
    );
    assert_eq!(customer_token_calls(&app, customer), 1);
    assert!(
        app.microsoft()
            .token_calls_for_tenant(&DEMO_CONTOSO.to_string(), "refresh_token")
            > partner_refreshes,
        "the partner's calls refreshed its token meanwhile"
    );
}

#[tokio::test]
async fn a_successful_refresh_returns_a_refused_partner_to_healthy() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    sqlx::query(
        "UPDATE partners SET status = 'mfa_required', status_code = '50076' WHERE tenant_id = $1",
    )
    .bind(DEMO_CONTOSO)
    .execute(&app.pool)
    .await
    .expect("set status");
    let partner = app
        .app
        .partners
        .by_tenant(DEMO_CONTOSO)
        .await
        .expect("db")
        .expect("partner");
    app.app
        .broker
        .refresh_grant(&partner)
        .await
        .expect("refresh");
    assert_eq!(partner_status(&app, &key).await, "healthy");
    let recovered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'partner.recovered'
          AND details->>'previous_status' = 'mfa_required'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(recovered, 1);
}

#[tokio::test]
async fn the_directory_of_a_partner_with_thousands_of_customers_syncs_completely_and_pages() {
    let app = TestApp::builder()
        .with_customers(Contoso, 3000, |index| {
            let mut options = CustomerOptions::default();
            if index % 3 == 0 {
                options.gdap = None;
            }
            options
        })
        .with_consented(Contoso)
        .spawn()
        .await;
    let key = app.api_key("reader", None, true).await;
    // The demo world's own customers of Contoso come on top of the 3,000 generated ones.
    let demo = Seed::demo("http://unused/");
    let demo_customers = demo
        .tenants
        .iter()
        .find(|t| t.id == DEMO_CONTOSO)
        .map(|t| t.customers.clone())
        .unwrap_or_default();
    let demo_without_gdap = demo_customers
        .iter()
        .filter(|c| {
            !demo.relationships.iter().any(|r| {
                r.partner == DEMO_CONTOSO
                    && r.customer == **c
                    && r.status == RelationshipStatus::Active
                    && !r.roles.is_empty()
            })
        })
        .count();
    let total = 3000 + demo_customers.len();
    let sync = sync_directory(&app, &key).await;
    assert_eq!(sync.status(), 200);
    let report = json(sync).await;
    assert_eq!(report["report"]["listed"], total, "{report}");
    assert_eq!(report["report"]["gdap_readable"], true, "{report}");

    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/partners/{DEMO_CONTOSO}/customers?limit=500&after={a}"),
            None => format!("/api/v1/partners/{DEMO_CONTOSO}/customers?limit=500"),
        };
        let page = json(get(&app, &key, &path).await).await;
        pages += 1;
        for customer in page["customers"].as_array().expect("customers") {
            let id = customer["tenant_id"].as_str().expect("id").to_owned();
            assert!(seen.insert(id), "each customer once");
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                assert_eq!(page["counts"]["total"], total);
                assert_eq!(
                    page["counts"]["no_gdap"],
                    1000 + demo_without_gdap,
                    "{}",
                    page["counts"]
                );
                break;
            }
        }
    }
    assert_eq!(seen.len(), total);
    assert_eq!(pages, total.div_ceil(500));
    let no_gdap = json(
        get(
            &app,
            &key,
            &format!("/api/v1/partners/{DEMO_CONTOSO}/customers?state=no_gdap&limit=5"),
        )
        .await,
    )
    .await;
    for customer in no_gdap["customers"].as_array().expect("customers") {
        assert_eq!(customer["relationship"], "none");
    }

    // A second sync finds nothing new and announces nothing.
    let again = json(sync_directory(&app, &key).await).await;
    assert_eq!(again["report"]["added"], 0, "{again}");
    assert_eq!(again["report"]["changed"], 0, "{again}");
}

#[tokio::test]
async fn a_relationship_that_expires_is_announced_as_a_change_of_that_customer() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    assert_eq!(sync_directory(&app, &key).await.status(), 200);
    let customer = Contoso.customer(2);
    app.microsoft()
        .set_relationship_status(DEMO_CONTOSO, customer, RelationshipStatus::Terminated);
    let report = json(sync_directory(&app, &key).await).await;
    assert_eq!(report["report"]["changed"], 1, "{report}");
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'customer.access_changed'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("one change audited");
    assert_eq!(details["customer_tenant_id"], customer.to_string());
    assert_eq!(details["changes"][0]["fact"], "relationship");
    assert_eq!(details["changes"][0]["to"], "gdap_expired");
    let partner_status: String =
        sqlx::query_scalar("SELECT status FROM partners WHERE tenant_id = $1")
            .bind(DEMO_CONTOSO)
            .fetch_one(&app.pool)
            .await
            .expect("partner");
    assert_eq!(partner_status, "healthy");
}

#[tokio::test]
async fn consents_granted_with_other_scopes_than_configured_become_stale() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let customer = Contoso.customer(1);
    let partner = app
        .app
        .partners
        .by_tenant(DEMO_CONTOSO)
        .await
        .expect("db")
        .expect("partner");
    samgate::app_consents::grant(&app.app, &partner, customer, &Actor::parse("test"))
        .await
        .expect("grant");
    let consent = || async {
        sqlx::query_scalar::<_, String>("SELECT consent::text FROM customers WHERE tenant_id = $1")
            .bind(customer)
            .fetch_one(&app.pool)
            .await
            .expect("row")
    };
    assert_eq!(consent().await, "granted");

    // The operator adds a permission: the existing consent no longer holds what samgate asks for.
    let mut config = app.app.config.clone();
    config.app_consent_grants[0]
        .scopes
        .push("Directory.Read.All".to_owned());
    let changed = samgate::app::App::build(config, app.pool.clone(), app.clock.clone())
        .expect("app with new grants");
    let summary = samgate::jobs::housekeeping::run_once(&changed, app.app.clock.now())
        .await
        .expect("housekeeping");
    assert_eq!(summary.consents_reconciled, 1);
    assert_eq!(consent().await, "stale");
    let attention: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'customer.access_changed'
          AND details->'changes'->0->>'to' = 'stale'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(attention, 1);
    // And back when the configuration matches again.
    let summary = samgate::jobs::housekeeping::run_once(&app.app, app.app.clock.now())
        .await
        .expect("housekeeping");
    assert_eq!(summary.consents_reconciled, 1);
    assert_eq!(consent().await, "granted");
}

#[tokio::test]
async fn granting_the_app_consent_ends_the_remembered_consent_refusal_at_once() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let key = app.api_key("reader", None, true).await;
    let customer = Contoso.customer(1);
    let refused = get(&app, &key, &customer_graph(customer)).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(json(refused).await["code"], "customer_consent_missing");
    // Remembered: asking again costs Microsoft nothing.
    assert_eq!(
        get(&app, &key, &customer_graph(customer)).await.status(),
        409
    );
    assert_eq!(customer_token_calls(&app, customer), 1);
    let partner = app
        .app
        .partners
        .by_tenant(DEMO_CONTOSO)
        .await
        .expect("db")
        .expect("partner");
    samgate::app_consents::grant(&app.app, &partner, customer, &Actor::parse("test"))
        .await
        .expect("grant");
    assert_eq!(
        get(&app, &key, &customer_graph(customer)).await.status(),
        200,
        "no waiting out the memory after the consent was granted"
    );
}

async fn contoso_info(app: &TestApp) -> std::sync::Arc<samgate::partners::PartnerInfo> {
    app.app
        .partners
        .by_tenant(DEMO_CONTOSO)
        .await
        .expect("db")
        .expect("partner")
}

/// The customer's recorded consent and grants ("none" when samgate has no row for it yet).
async fn consent_state(app: &TestApp, customer: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT consent::text, consent_grants FROM customers WHERE tenant_id = $1")
        .bind(customer)
        .fetch_optional(&app.pool)
        .await
        .expect("customer row")
        .unwrap_or_else(|| ("none".to_owned(), None))
}

/// Partner Center answers 409 to any existing consent, whatever its permissions. A consent
/// samgate did not make (or made with other grants) is therefore not taken for the configured
/// one: it is recorded as stale with unknown permissions, and re-apply (DELETE, then POST)
/// replaces it, both steps audited.
#[tokio::test]
async fn a_409_for_a_consent_samgate_did_not_make_is_stale_until_reapplied() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let customer = Contoso.customer(1);
    let partner = contoso_info(&app).await;
    // Someone consented the app in this customer outside samgate (another tool, the portal).
    app.microsoft()
        .grant_app_consent(customer, ms_emulator::DEMO_CLIENT_ID);
    let outcome = samgate::app_consents::grant(&app.app, &partner, customer, &Actor::parse("test"))
        .await
        .expect("the grant call itself succeeds");
    assert_eq!(
        outcome,
        samgate::app_consents::Granted::ExistsWithOtherGrants
    );
    assert_eq!(
        consent_state(&app, customer).await,
        ("stale".to_owned(), None)
    );

    samgate::app_consents::reapply(&app.app, &partner, customer, &Actor::parse("test"))
        .await
        .expect("re-apply");
    let (consent, grants) = consent_state(&app, customer).await;
    assert_eq!(consent, "granted");
    assert!(grants.is_some());
    let steps: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'app_consent.%' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(
        steps,
        [
            "app_consent.exists_unverified",
            "app_consent.removed",
            "app_consent.granted"
        ]
    );

    // Now samgate knows the consent holds the configured grants: a 409 means "current".
    let again = samgate::app_consents::grant(&app.app, &partner, customer, &Actor::parse("test"))
        .await
        .expect("grant again");
    assert_eq!(again, samgate::app_consents::Granted::AlreadyCurrent);
    assert_eq!(consent_state(&app, customer).await.0, "granted");
}

/// Without a GDAP role that may consent apps, Partner Center refuses with 400 and the directory's
/// "Insufficient privileges" inside; the advice names the GDAP roles, not samgate's settings.
#[tokio::test]
async fn a_grant_refused_for_gdap_privileges_gets_gdap_advice() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let customer = Contoso.customer(1);
    let partner = contoso_info(&app).await;
    app.microsoft().set_relationship_roles(
        DEMO_CONTOSO,
        customer,
        vec![Uuid::from_u128(0x88d8e3e3_8f55_4a1e_953a_9b9898b8876b)],
    );
    let problem = samgate::app_consents::grant(&app.app, &partner, customer, &Actor::parse("test"))
        .await
        .expect_err("Partner Center refuses");
    assert!(problem.code.starts_with("gdap_privileges"), "{problem:?}");
    assert!(
        problem.advice.contains("Cloud Application Administrator"),
        "{problem:?}"
    );
    assert!(
        !problem.advice.contains("SAMGATE_APP_CONSENT_GRANTS"),
        "{problem:?}"
    );
    assert_eq!(consent_state(&app, customer).await.0, "none");
}

/// Graph's 401 (`InvalidAuthenticationToken`: a cached token revoked or expired early) is not a
/// missing permission: the directory sync drops the token, mints one and still reads the GDAP
/// relationships, instead of keeping stale GDAP facts until the token expires.
#[tokio::test]
async fn a_graph_401_during_the_gdap_read_drops_the_token_and_reads_again() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = contoso_info(&app).await;
    samgate::customers::sync(&app.app, &partner, &Actor::parse("test"))
        .await
        .expect("first sync");
    let path = "/graph/v1.0/tenantRelationships/delegatedAdminRelationships";
    app.microsoft().fail_next(
        Fault::path(path)
            .status(401)
            .body(serde_json::json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}}))
            .times(1),
    );
    let before = app.microsoft().route_calls(path);
    let report = samgate::customers::sync(&app.app, &partner, &Actor::parse("test"))
        .await
        .expect("sync");
    assert!(report.gdap_readable, "GDAP must still be read: {report:?}");
    assert_eq!(report.gdap_customers, 2);
    assert_eq!(
        app.microsoft().route_calls(path) - before,
        2,
        "one refusal, one retry"
    );
}
