//! The consent journey in headless Chromium: invitation → Microsoft (emulator) sign-in → MFA →
//! consent → samgate's success page, with a screenshot of every step in `target/screenshots/`.

use ms_emulator::{DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD, MfaState};
use samgate::onboarding::REFRESH_TOKEN_PURPOSE;
use samgate::vault::SealContext;

use crate::harness::TestApp;
use crate::harness::browser::Browser;

async fn grant_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("count grants")
}

/// Signs in at the emulator's page with the demo password.
async fn enter_credentials(browser: &Browser, upn: &str) {
    browser.fill("#i0116", upn).await;
    browser.fill("#i0118", DEMO_PASSWORD).await;
    browser.click("#idSIButton9").await;
}

/// Serves `html` at `/` of a new local origin (an attacker's site) and returns its URL.
async fn serve_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// The text of the frame `css` matches (empty if the frame shows nothing).
async fn frame_text(browser: &Browser, css: &str) -> String {
    browser
        .find(css)
        .await
        .enter_frame()
        .await
        .expect("enter the frame");
    let text = match browser
        .client()
        .find(fantoccini::Locator::Css("body"))
        .await
    {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    browser
        .client()
        .enter_parent_frame()
        .await
        .expect("leave the frame");
    text
}

/// The digits of the emulator's MFA hint ("… the code is <b>123456</b>").
fn code_in(hint: &str) -> String {
    hint.chars().filter(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn a_partner_admin_consents_in_a_real_browser_and_the_grant_opens_to_a_working_refresh_token()
{
    let Some(browser) = Browser::launch("consent").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;

    browser.goto(&app.url(&invitation)).await;
    browser.find("#sign-in").await;
    browser.screenshot("1-invitation").await;
    browser.click("#sign-in").await;

    browser.find("#i0116").await;
    assert!(
        browser
            .url()
            .await
            .as_str()
            .starts_with(&app.emulator.base_url()),
        "the button leads to Microsoft's sign-in"
    );
    browser.screenshot("2-sign-in").await;
    enter_credentials(&browser, DEMO_CONTOSO_ADMIN).await;

    let next = browser
        .find_any(&["#emulator-account-tile", "#idTxtBx_SAOTCC_OTC"])
        .await;
    if next == "#emulator-account-tile" {
        browser.screenshot("3-account-picker").await;
        browser.click("#emulator-account-tile").await;
    }
    let hint = browser.text("#emulator-mfa-hint").await;
    let code = code_in(&hint);
    assert_eq!(
        code,
        app.microsoft().mfa_code(DEMO_CONTOSO_ADMIN),
        "the page shows the current code"
    );
    browser.fill("#idTxtBx_SAOTCC_OTC", &code).await;
    browser.screenshot("3-mfa").await;
    browser.click("#idSubmit_SAOTCC_Continue").await;

    browser.find("#idBtn_Accept").await;
    browser.screenshot("4-consent").await;
    browser.click("#idBtn_Accept").await;

    let heading = browser.text("#consent-complete").await;
    browser.screenshot("5-complete").await;
    assert_eq!(heading, "Consent complete");
    assert_eq!(browser.text("#organization").await, "Contoso Partners");
    assert!(
        browser.url().await.as_str().starts_with(&app.address),
        "the journey ends at samgate"
    );
    assert_eq!(
        browser.url().await.path(),
        "/consent/done",
        "the callback redirected to its outcome (no code left in the address bar)"
    );
    assert!(browser.text("#consented-at").await.ends_with(" UTC"));

    // A refresh shows the same outcome; Back and Forward never show a failure.
    browser.client().refresh().await.expect("refresh");
    assert_eq!(browser.text("#consent-complete").await, "Consent complete");
    assert_eq!(browser.text("#organization").await, "Contoso Partners");
    browser.screenshot("6-refreshed").await;
    browser.client().back().await.expect("back");
    let behind = browser.text("body").await;
    browser.screenshot("7-back").await;
    assert!(!behind.contains("could not be matched"), "{behind}");
    browser.client().forward().await.expect("forward");
    assert_eq!(browser.text("#consent-complete").await, "Consent complete");
    assert!(
        !browser.text("body").await.contains("could not be matched"),
        "forward again shows the outcome"
    );
    browser.close().await;

    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT g.sealed_refresh_token FROM grants g JOIN partners p ON p.id = g.partner_id \
         WHERE p.tenant_id = $1",
    )
    .bind(DEMO_CONTOSO)
    .fetch_one(&app.pool)
    .await
    .expect("a grant for Contoso");
    let refresh_token = app
        .app
        .vault
        .open_string(
            &sealed,
            &SealContext {
                purpose: REFRESH_TOKEN_PURPOSE.as_str(),
                row: &DEMO_CONTOSO.to_string(),
            },
        )
        .expect("the sealed grant opens");
    let refreshed = app
        .app
        .identity
        .refresh(
            &DEMO_CONTOSO.to_string(),
            &refresh_token,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await;
    assert!(
        refreshed.is_ok(),
        "Microsoft accepts the stored refresh token: {refreshed:?}"
    );
}

#[tokio::test]
async fn the_consent_page_runs_no_inline_script_and_cannot_be_framed() {
    let Some(browser) = Browser::launch("csp").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;

    let response = app.get(&invitation).await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .unwrap_or_else(|| panic!("CSP lacks {name}: {csp}"))
            .to_owned()
    };
    assert_eq!(directive("script-src"), "script-src 'self'", "{csp}");
    assert_eq!(
        directive("frame-ancestors"),
        "frame-ancestors 'none'",
        "{csp}"
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");

    browser.goto(&app.url(&invitation)).await;
    browser.find("#sign-in").await;
    browser.screenshot("invitation").await;
    let inline = browser
        .eval(
            "return {
               scripts: document.querySelectorAll('script').length,
               handlers: Array.from(document.querySelectorAll('*')).filter(e =>
                 Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
               styleAttributes: document.querySelectorAll('[style], style').length,
               stylesheets: document.styleSheets.length,
             };",
        )
        .await;
    assert_eq!(inline["scripts"], 0, "{inline}");
    assert_eq!(inline["handlers"], 0, "{inline}");
    // `style-src 'self'` would silently drop inline styles: the page must not depend on them.
    assert_eq!(inline["styleAttributes"], 0, "{inline}");
    assert_eq!(
        inline["stylesheets"], 1,
        "the stylesheet loads under the CSP: {inline}"
    );

    // A page of another origin (an attacker's site) framing the invitation: Chromium must refuse
    // to render the invitation inside the frame. A second frame, of a page that allows framing,
    // shows that the attacker's page could frame anything else.
    let framing = format!(
        "<!doctype html><iframe id=victim src='{}' onload='window.loaded=(window.loaded||0)+1'></iframe>\
         <iframe id=control src='{}/organizations/v2.0/.well-known/openid-configuration' \
         onload='window.loaded=(window.loaded||0)+1'></iframe>",
        app.url(&invitation),
        app.emulator.base_url(),
    );
    let framing = serve_page(framing).await;
    browser.goto(&framing).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while browser.eval("return window.loaded === 2;").await != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the frames never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.screenshot("framed").await;
    let control = frame_text(&browser, "#control").await;
    assert!(control.contains("jwks_uri"), "control frame: {control}");
    let victim = frame_text(&browser, "#victim").await;
    assert!(
        !victim.contains("Sign in with Microsoft") && !victim.contains("Northwind"),
        "the consent page rendered inside a foreign frame: {victim}"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_admin_who_signs_in_without_mfa_ends_on_samgates_mfa_required_page() {
    let Some(browser) = Browser::launch("no-mfa").await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.microsoft()
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRequired);
    let invitation = app.invite("Contoso", None).await;

    browser.goto(&app.url(&invitation)).await;
    browser.click("#sign-in").await;
    browser.find("#i0116").await;
    enter_credentials(&browser, DEMO_CONTOSO_ADMIN).await;
    let next = browser
        .find_any(&["#idTxtBx_SAOTCC_OTC", "#idBtn_Accept", "#error-reference"])
        .await;
    assert_ne!(
        next, "#idTxtBx_SAOTCC_OTC",
        "the emulator asked for MFA although the user has none"
    );
    if next == "#idBtn_Accept" {
        browser.click("#idBtn_Accept").await;
    }
    let heading = browser.text("h1").await;
    browser.find("#error-reference").await;
    let path = browser.screenshot("refused").await;
    assert_eq!(
        heading, "Multi-factor authentication is required",
        "{path:?}"
    );
    assert!(
        browser
            .title()
            .await
            .starts_with("Multi-factor authentication is required"),
        "{}",
        browser.title().await
    );
    assert!(browser.url().await.as_str().starts_with(&app.address));
    assert!(
        browser
            .text("main")
            .await
            .contains("https://aka.ms/mfasetup"),
        "the page says how to set MFA up"
    );
    browser.close().await;
    assert_eq!(grant_count(&app).await, 0, "nothing is stored without MFA");
}
