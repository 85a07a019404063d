//! Microsoft's Python Graph SDK (msgraph-sdk) against the emulator over TLS: user paging, a user
//! by id, group members typed as users, and an unknown id raising `ODataError`
//! (see `require_python_module` for a missing library).

use ms_emulator::{DEMO_CLIENT_ID, Options, Seed, UserSeed};
use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn msgraph_python_sdk_lists_pages_gets_and_fails_like_graph() {
    if !require_python_module("msgraph", "msgraph-sdk") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ms-emulator-msgraph-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("cert.pem");
    let options = Options {
        tls: true,
        tls_cert_path: Some(ca.clone()),
        ..Options::default()
    };
    let seed = Seed::demo(REDIRECT);
    let customer = seed.tenant_named("Contoso Partners").unwrap().customers[0];
    let domain = seed
        .tenants
        .iter()
        .find(|t| t.id == customer)
        .unwrap()
        .default_domain
        .clone();
    let env = TestEnv::with_options(seed, options).await;
    // Two seeded users plus three: five users, so `$top=2` gives three pages.
    for i in 0..3 {
        env.control
            .add_user(customer, UserSeed::new(&format!("sdk{i}@{domain}"), "pw"))
            .unwrap();
    }
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let rt = contoso_refresh_token(&env).await;
    let (status, body) = env
        .refresh(
            &customer.to_string(),
            &rt,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/msgraph/check_msgraph.py"
    );
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("EMU_BASE", &env.base)
        .env("EMU_CA", &ca)
        .env("EMU_TOKEN", body["access_token"].as_str().unwrap())
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "msgraph check failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(seen["pages"], 3, "{seen}");
    let mut upns: Vec<&str> = seen["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    upns.sort_unstable();
    let mut want = vec![
        format!("alex@{domain}"),
        format!("megan@{domain}"),
        format!("sdk0@{domain}"),
        format!("sdk1@{domain}"),
        format!("sdk2@{domain}"),
    ];
    want.sort_unstable();
    assert_eq!(upns, want, "every user exactly once across the pages");

    let by_id = &seen["user_by_id"];
    assert!(by_id["upn"].as_str().unwrap().ends_with(&domain), "{seen}");
    uuid::Uuid::parse_str(by_id["id"].as_str().unwrap()).unwrap();

    assert_eq!(seen["members_are_users"], true, "{seen}");
    assert_eq!(seen["member_count"], 5, "{seen}");

    let error = &seen["error"];
    assert_eq!(error["status"], 404, "{seen}");
    assert_eq!(error["code"], "Request_ResourceNotFound", "{seen}");
    assert_eq!(
        error["message"],
        "Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present."
    );
}
