//! MSAL for Python against the emulator (see `require_python_module` for a missing library).

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Options, Seed};

use crate::harness::*;

#[tokio::test]
async fn msal_python_redeems_refresh_tokens_for_partner_and_customer() {
    if !require_python_module("msal", "msal") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ms-emulator-msal-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("cert.pem");
    let options = Options {
        tls: true,
        tls_cert_path: Some(ca.clone()),
        ..Options::default()
    };
    let env = TestEnv::with_options(Seed::demo(REDIRECT), options).await;
    let rt = contoso_refresh_token(&env).await;
    let customer = Seed::demo(REDIRECT)
        .tenant_named("Contoso Partners")
        .unwrap()
        .customers[0];
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/msal/check_msal.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("EMU_BASE", &env.base)
        .env("EMU_CA", &ca)
        // requests lets these variables override MSAL's `verify=`.
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("CURL_CA_BUNDLE", &ca)
        .env("EMU_CLIENT_ID", DEMO_CLIENT_ID.to_string())
        .env("EMU_CLIENT_SECRET", DEMO_CLIENT_SECRET)
        .env("EMU_PARTNER", contoso())
        .env("EMU_CUSTOMER", customer.to_string())
        .env("EMU_RT", &rt)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "msal check failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        env.control
            .token_calls_for_tenant(&customer.to_string(), "refresh_token")
            >= 1
    );
}
