//! The admin pages in a real (WebDriver) browser, on a laptop and a phone.

use super::*;

#[tokio::test]
async fn the_admin_pages_work_in_a_real_browser_on_a_laptop_and_a_phone() {
    let Some(browser) = crate::harness::browser::Browser::launch("admin").await else {
        return;
    };
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, domain, status, status_reason, status_code)
         SELECT gen_random_uuid(), gen_random_uuid(), 'Partner ' || lpad(i::text, 3, '0'),
                'partner' || i || '.onmicrosoft.com',
                (ARRAY['healthy','healthy','healthy','needs_consent','mfa_required','degraded','pending'])[1 + i % 7],
                CASE WHEN i % 7 = 3 THEN 'The refresh token was revoked or expired' END,
                CASE WHEN i % 7 = 3 THEN 'AADSTS700082' END
         FROM generate_series(1, 120) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("seed partners");
    let (partner, _) = seed_partner(&app, "Contoso Partners").await;
    let (ada, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let (secret, _) = enrol_totp(&app, ada).await;
    let client = browser.client();
    client
        .set_window_size(1280, 1100)
        .await
        .expect("window size");

    browser.goto(&app.url("/admin/partners")).await;
    browser.find("#email").await;
    browser.screenshot("01-login").await;
    browser.fill("#email", "ada@northwind.example").await;
    browser.fill("#password", password.expose_secret()).await;
    browser.click("form.stack button[type=submit]").await;
    browser.find("#code").await;
    browser.fill("#code", &totp_code(&secret, &app)).await;
    browser.click("#verify-code").await;
    browser.find("table#partners").await;
    assert_eq!(
        browser.url().await.path(),
        "/admin/partners",
        "back where the sign-in began"
    );
    browser.screenshot("03-partners").await;

    browser.goto(&app.url("/admin")).await;
    browser.find("#pending-invitations").await;
    browser.screenshot("02-dashboard").await;

    browser
        .goto(&app.url(&format!("/admin/partners/{partner}")))
        .await;
    browser.click("#send-reconsent").await;
    browser.find("#invitation-link").await;
    let copy_visible = browser
        .eval("return !document.querySelector('button[data-copy]').hidden")
        .await;
    assert_eq!(
        copy_visible,
        serde_json::json!(true),
        "admin.js runs under the CSP"
    );
    browser.screenshot("05-reconsent-link").await;
    browser
        .goto(&app.url(&format!("/admin/partners/{partner}")))
        .await;
    browser.find("#partner-status").await;
    browser.screenshot("04-partner").await;

    browser.goto(&app.url("/admin/invitations")).await;
    browser.fill("#partner_name", "Fabrikam").await;
    browser
        .fill("#expected_tenant", "fabrikam.onmicrosoft.com")
        .await;
    browser.click("#create-invitation").await;
    browser.find("#invitation-link").await;
    browser.goto(&app.url("/admin/invitations")).await;
    browser.find("table#invitations").await;
    browser.screenshot("06-invitations").await;

    browser.goto(&app.url("/admin/staff")).await;
    browser.fill("#email", "bob@northwind.example").await;
    browser.fill("#display_name", "Bob Operator").await;
    browser.click("#add-staff").await;
    browser.find("#new-password").await;
    browser.screenshot("07-staff-created").await;
    browser.goto(&app.url("/admin/staff")).await;
    browser.find("table#staff").await;
    browser.screenshot("08-staff").await;
    browser.click("a.who").await;
    browser.find("#regenerate-form").await;
    browser.screenshot("08b-account").await;

    browser.goto(&app.url("/admin/audit")).await;
    browser.find("table#audit").await;
    browser.screenshot("09-audit").await;

    client.set_window_size(390, 900).await.expect("phone size");
    browser.goto(&app.url("/admin")).await;
    browser.find("#pending-invitations").await;
    browser.screenshot("10-phone-dashboard").await;
    browser.goto(&app.url("/admin/partners")).await;
    browser.find("table#partners").await;
    browser.screenshot("11-phone-partners").await;
    browser.close().await;
}
