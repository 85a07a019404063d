//! The staff journey in headless Chromium, end to end: sign in, invite a partner, the partner's
//! admin consents in a second browser through the emulator, the partner is healthy, its customers
//! are listed and the CPV app is consented in one, an API client and key are created, the key
//! works through the proxy, is revoked in the UI and is refused at once, and the audit log shows
//! it all. Screenshots: `target/screenshots/journey-NN-<page>.png`.

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD};
use samgate::domain::Actor;
use samgate::staff::{NewStaffRequest, Role};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::browser::Browser;

/// The partner's admin walks Microsoft's pages (the emulator's) in their own browser.
async fn partner_consents(partner: &Browser, link: &str, app: &TestApp) {
    partner.goto(link).await;
    partner.find("#sign-in").await;
    partner.screenshot("1-invitation").await;
    partner.click("#sign-in").await;
    partner.fill("#i0116", DEMO_CONTOSO_ADMIN).await;
    partner.fill("#i0118", DEMO_PASSWORD).await;
    partner.click("#idSIButton9").await;
    if partner
        .find_any(&["#emulator-account-tile", "#idTxtBx_SAOTCC_OTC"])
        .await
        == "#emulator-account-tile"
    {
        partner.click("#emulator-account-tile").await;
    }
    partner.find("#emulator-mfa-hint").await;
    partner
        .fill(
            "#idTxtBx_SAOTCC_OTC",
            &app.microsoft().mfa_code(DEMO_CONTOSO_ADMIN),
        )
        .await;
    partner.click("#idSubmit_SAOTCC_Continue").await;
    partner.click("#idBtn_Accept").await;
    assert_eq!(partner.text("#consent-complete").await, "Consent complete");
    partner.screenshot("2-complete").await;
}

async fn proxy_status(app: &TestApp, key: &str) -> reqwest::StatusCode {
    app.client
        .get(app.url(&format!(
            "/api/v1/partners/{DEMO_CONTOSO}/partner-center/v1/customers?size=1"
        )))
        .bearer_auth(key)
        .send()
        .await
        .expect("proxy call")
        .status()
}

#[tokio::test]
async fn staff_onboard_a_partner_consent_a_customer_and_manage_an_api_key_in_a_real_browser() {
    let Some(staff) = Browser::launch("journey").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (_, password) = samgate::staff::add_staff(
        &app.pool,
        NewStaffRequest {
            email: "ada@northwind.example",
            display_name: Some("Ada Admin"),
            role: Role::Admin,
            password: None,
            actor: &Actor::parse("test"),
        },
        app.app.clock.now(),
    )
    .await
    .expect("add staff");
    staff
        .client()
        .set_window_size(1280, 1000)
        .await
        .expect("window size");

    // Sign in.
    staff.goto(&app.url("/admin/login")).await;
    staff.fill("#email", "ada@northwind.example").await;
    staff.fill("#password", password.expose_secret()).await;
    staff.screenshot("01-login").await;
    staff.click("form.stack button[type=submit]").await;
    // An admin without a second factor sets one up before anything else.
    staff.find("#start-enrolment").await;
    staff.click("#start-enrolment").await;
    staff.find("#totp-secret").await;
    staff.screenshot("01b-second-factor").await;
    let secret = staff
        .eval("return document.getElementById('totp-secret').value;")
        .await
        .as_str()
        .expect("the secret")
        .to_owned();
    staff
        .fill("#code", &crate::admin::totp_code(&secret, &app))
        .await;
    staff.click("#confirm-enrolment").await;
    staff.find("#recovery-codes").await;
    staff.screenshot("01c-recovery-codes").await;
    staff.click("#continue").await;
    staff.find("#pending-invitations").await;
    staff.screenshot("02-dashboard").await;

    // Invite the partner.
    staff.goto(&app.url("/admin/invitations")).await;
    staff.fill("#partner_name", "Contoso Partners").await;
    staff.click("#create-invitation").await;
    staff.find("#invitation-link").await;
    staff.screenshot("03-invitation-created").await;
    let link = staff
        .eval("return document.getElementById('invitation-link').value;")
        .await
        .as_str()
        .expect("the link")
        .to_owned();
    assert!(link.starts_with(&app.url("/consent/")), "{link}");

    // The partner's admin consents in a second browser.
    let partner = Browser::launch("journey-partner")
        .await
        .expect("a second browser");
    partner_consents(&partner, &link, &app).await;
    partner.close().await;

    // The partner is healthy.
    staff.goto(&app.url("/admin/partners")).await;
    staff.find("table#partners").await;
    staff.screenshot("04-partners").await;
    let partner_id: Uuid = sqlx::query_scalar("SELECT id FROM partners WHERE tenant_id = $1")
        .bind(DEMO_CONTOSO)
        .fetch_one(&app.pool)
        .await
        .expect("Contoso is a partner");
    staff
        .click(&format!("a[href='/admin/partners/{partner_id}']"))
        .await;
    assert_eq!(staff.text("#partner-status").await, "Healthy");
    staff.screenshot("05-partner").await;

    // Its customers; grant the CPV app's consent in one.
    staff.click("#customers-link").await;
    // The directory is empty until it is read from Microsoft the first time.
    staff.find("#sync-now").await;
    staff.click("#sync-now").await;
    staff.find("table#customers").await;
    staff.screenshot("06-customers").await;
    let customer = Contoso.customer(1);
    assert!(!app.microsoft().app_consented(customer, DEMO_CLIENT_ID));
    staff
        .click(&format!("button[data-grant='{customer}']"))
        .await;
    // The sync's outcome is on the page until the grant's answer replaces it.
    staff
        .wait_for_text("#action-outcome", "Grant app consent")
        .await;
    assert!(
        app.microsoft().app_consented(customer, DEMO_CLIENT_ID),
        "Partner Center consented the CPV app in the customer"
    );
    assert!(
        staff
            .text(&format!("#customer-{customer} .consent"))
            .await
            .contains("Granted")
    );
    staff.screenshot("07-customer-consented").await;

    // Grant to all customers: the run page follows the progress.
    staff.click("#grant-all").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(state) = staff
            .client()
            .find(fantoccini::Locator::Css("#run-state"))
            .await
            && state.text().await.is_ok_and(|t| t == "finished")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    staff.screenshot("08-grant-to-all").await;

    // An API client and its key.
    staff.goto(&app.url("/admin/clients")).await;
    staff.fill("#client-name", "billing-sync").await;
    staff
        .fill("#client-description", "Nightly billing export")
        .await;
    staff.click("#create-client").await;
    staff.find("button[data-issue='billing-sync']").await;
    staff.click("button[data-issue='billing-sync']").await;
    staff.find("#api-key").await;
    let copy_visible = staff
        .eval("return !document.querySelector('button[data-copy=\"api-key\"]').hidden;")
        .await;
    assert_eq!(copy_visible, serde_json::json!(true), "a copy button");
    staff.screenshot("09-key-issued").await;
    let key = staff
        .eval("return document.getElementById('api-key').value;")
        .await
        .as_str()
        .expect("the key")
        .to_owned();
    assert_eq!(proxy_status(&app, &key).await, 200, "the key works");

    // Revoke it in the UI: the next call is refused.
    staff.goto(&app.url("/admin/clients")).await;
    staff.find("button[data-revoke]").await;
    staff.screenshot("10-clients").await;
    // The confirmation dialog is admin.js's; accept it.
    staff
        .eval("window.confirm = () => true; return true;")
        .await;
    staff.click("button[data-revoke]").await;
    staff.find("#clients .badge.bad").await;
    staff.screenshot("11-key-revoked").await;
    assert_eq!(
        proxy_status(&app, &key).await,
        401,
        "a revoked key is refused at once"
    );

    // The audit trail.
    staff.goto(&app.url("/admin/audit")).await;
    staff.find("table#audit").await;
    staff.screenshot("12-audit").await;
    let audit = staff.text("table#audit").await;
    for action in [
        "invitation.created",
        "app_consent.granted",
        "app_consent.run_finished",
        "api_client.created",
        "api_key.issued",
        "api_key.revoked",
    ] {
        assert!(
            audit.contains(action),
            "{action} in the audit log:\n{audit}"
        );
    }
    staff
        .goto(&app.url(&format!("/admin/partners/{partner_id}")))
        .await;
    staff.find("#partner-status").await;
    staff.screenshot("13-partner-trail").await;

    // A phone-sized look at the customers page.
    staff
        .client()
        .set_window_size(390, 900)
        .await
        .expect("phone size");
    staff
        .goto(&app.url(&format!("/admin/partners/{partner_id}/customers")))
        .await;
    staff.find("table#customers").await;
    staff.screenshot("14-phone-customers").await;
    staff.close().await;
}
