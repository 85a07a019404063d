//! The scripts in `examples/` run against a live samgate (with the emulator behind it) as a
//! backend engineer would run them: Microsoft's Python Graph SDK with its own page iterator,
//! plain `requests` paging Partner Center, and Node's `fetch`. A missing runtime or library fails
//! under `CI=true` (see `harness::peers`).

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO, UserSeed};
use serde_json::Value;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::peers;

/// A consented Contoso whose first customer has the app consent and three users, a read-only key.
async fn world() -> (TestApp, String) {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let customer = Contoso.customer(1);
    app.microsoft().grant_app_consent(customer, DEMO_CLIENT_ID);
    app.microsoft()
        .add_user(
            customer,
            UserSeed::new("third.user@contosocust1.onmicrosoft.com", "pw"),
        )
        .expect("user");
    let key = app.api_key("examples", None, true).await;
    (app, key)
}

async fn run(app: &TestApp, key: &str, program: &str, script: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/");
    let output = tokio::process::Command::new(program)
        .arg(format!("{path}{script}"))
        .env("SAMGATE_URL", &app.address)
        .env("SAMGATE_API_KEY", key)
        .env("SAMGATE_PARTNER", DEMO_CONTOSO.to_string())
        .env("SAMGATE_CUSTOMER", Contoso.customer(1).to_string())
        .env("SAMGATE_OTHER_CUSTOMER", Contoso.customer(2).to_string())
        .output()
        .await
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{script} printed {stdout}"))
}

fn assert_key_stayed_on_samgate(app: &TestApp) {
    for request in app.microsoft().recorded_requests() {
        for (name, value) in &request.headers {
            assert!(
                !value.contains("sgk_"),
                "the key reached Microsoft in {name}"
            );
        }
    }
}

#[tokio::test]
async fn the_graph_sdk_example_pages_with_the_sdks_iterator_and_reads_errors_as_odata_errors() {
    if !peers::python_module("msgraph", "msgraph-sdk") {
        return;
    }
    let (app, key) = world().await;
    let seen = run(&app, &key, "python3", "graph_sdk.py").await;
    let next = seen["next_link"].as_str().expect("a next link");
    assert!(next.starts_with(&app.address), "{next}");
    let users: Vec<&str> = seen["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(users.len(), 3, "every user, one page at a time: {seen}");
    assert!(users.contains(&"third.user@contosocust1.onmicrosoft.com"));
    assert_eq!(seen["user_by_id"]["is_user"], true);
    assert_eq!(seen["microsoft_error"]["status"], 404);
    assert_eq!(seen["microsoft_error"]["code"], "Request_ResourceNotFound");
    // samgate's own refusal (no app consent in customer 2) reads like Graph's.
    assert_eq!(seen["samgate_error"]["status"], 409);
    assert_eq!(seen["samgate_error"]["code"], "customer_consent_missing");
    assert!(
        seen["samgate_error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{seen}"
    );
    assert_key_stayed_on_samgate(&app);
}

#[tokio::test]
async fn the_partner_center_requests_example_pages_every_customer() {
    if !peers::python_module("requests", "requests") {
        return;
    }
    let (app, key) = world().await;
    let seen = run(&app, &key, "python3", "partner_center_paging.py").await;
    assert_eq!(seen["pages"], 2, "{seen}");
    assert_eq!(seen["customers"].as_array().map(Vec::len), Some(2));
    assert_eq!(seen["error"]["header"], "partner_not_found");
    assert_eq!(seen["error"]["code"], "partner_not_found");
    assert_key_stayed_on_samgate(&app);
}

#[tokio::test]
async fn the_node_fetch_example_follows_next_links_on_samgate() {
    if !peers::command("node", "install Node.js 18 or later") {
        return;
    }
    let (app, key) = world().await;
    let seen = run(&app, &key, "node", "graph_fetch.mjs").await;
    assert_eq!(seen["pages"], 3, "{seen}");
    assert_eq!(seen["error"]["code"], "Request_ResourceNotFound");
    assert_key_stayed_on_samgate(&app);
}
