//! Staff sign-in with Microsoft (OpenID Connect at the CPV's own tenant, through the emulator):
//! an active staff member who signed in with MFA lands on the dashboard; a sign-in without MFA is
//! refused and audited; a Microsoft account without staff access, a disabled member, and a
//! forged, missing or replayed state get the one generic refusal; without
//! `SAMGATE_STAFF_SSO_TENANT` neither the button nor the routes exist.

use ms_emulator::{DEMO_CLIENT_ID, DEMO_CPV_TENANT, DEMO_PASSWORD, MfaState, UserSeed};
use reqwest::{Client, Response, StatusCode};
use samgate::domain::Actor;
use samgate::staff::Role;
use uuid::Uuid;

use crate::admin::{add_staff, location};
use crate::harness::TestApp;

const SSO_REFUSED: &str = "Sign-in with Microsoft did not give access to this control panel.";
const CALLBACK_PATH: &str = "/admin/login/sso/callback";

/// Staff of the CPV, homed in the CPV's own tenant.
const GRACE: &str = "grace@samvendor.onmicrosoft.com";
const LINUS: &str = "linus@samvendor.onmicrosoft.com";
const MALLORY: &str = "mallory@samvendor.onmicrosoft.com";

/// A samgate with staff SSO at the CPV tenant, the callback registered on the CPV app, and three
/// Microsoft users in the CPV tenant (MFA registered).
async fn sso_app() -> TestApp {
    TestApp::builder()
        .with_env("SAMGATE_STAFF_SSO_TENANT", &DEMO_CPV_TENANT.to_string())
        .with_seed(|mut seed| {
            for app in seed
                .apps
                .iter_mut()
                .filter(|a| a.client_id == DEMO_CLIENT_ID)
            {
                let extra: Vec<String> = app
                    .redirect_uris
                    .iter()
                    .map(|uri| uri.replace("/oauth/callback", CALLBACK_PATH))
                    .collect();
                app.redirect_uris.extend(extra);
            }
            let tenant = seed
                .tenants
                .iter_mut()
                .find(|t| t.id == DEMO_CPV_TENANT)
                .expect("the CPV tenant");
            for upn in [GRACE, LINUS, MALLORY] {
                tenant
                    .users
                    .push(UserSeed::new(upn, DEMO_PASSWORD).with_mfa(MfaState::Registered));
            }
            seed
        })
        .spawn()
        .await
}

/// A fresh browser: its own cookies, no redirects followed.
fn new_browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

fn attribute_after(html: &str, marker: &str, attribute: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split(&format!("{attribute}=\"")).nth(1)?;
    Some(
        value[..value.find('"')?]
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

fn csrf_of(html: &str) -> String {
    attribute_after(html, "name=\"csrf\"", "value").expect("a csrf field")
}

/// Opens the sign-in page and clicks "Sign in with Microsoft"; returns the authorize URL.
async fn start_sso(app: &TestApp, browser: &Client) -> String {
    let login = browser
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let html = login.text().await.expect("page");
    assert!(html.contains("Sign in with Microsoft"), "{html}");
    let start = browser
        .post(app.url("/admin/login/sso"))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "start redirects");
    location(&start)
}

fn hidden(html: &str, name: &str) -> Option<String> {
    attribute_after(html, &format!("name=\"{name}\""), "value")
}

fn form_action(html: &str) -> Option<String> {
    let marker = "action=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Follows redirects until one points at samgate's staff callback (returned) or a page (`Err`).
async fn follow(
    browser: &Client,
    base: &str,
    mut response: Response,
    callback: &str,
) -> Result<String, String> {
    loop {
        if response.status().is_redirection() {
            let target = location(&response);
            if target.starts_with(callback) {
                return Ok(target);
            }
            let url = if target.starts_with("http") {
                target
            } else {
                format!("{base}{target}")
            };
            response = browser.get(url).send().await.expect("follow");
            continue;
        }
        return Err(response.text().await.expect("page"));
    }
}

/// Signs in at the emulator as `upn` (account picker, password, MFA, consent) and returns the
/// callback URL Microsoft sends the browser to.
async fn sign_in_at_microsoft(
    app: &TestApp,
    browser: &Client,
    authorize_url: &str,
    upn: &str,
) -> String {
    let base = app.emulator.base_url();
    let callback = app.url(CALLBACK_PATH);
    let first = browser.get(authorize_url).send().await.expect("authorize");
    let mut landing = follow(browser, &base, first, &callback).await;
    for _ in 0..8 {
        let html = match landing {
            Ok(url) => return url,
            Err(html) => html,
        };
        let (Some(ctx), Some(action)) = (hidden(&html, "ctx"), form_action(&html)) else {
            panic!("sign-in stopped at Microsoft: {html}");
        };
        let form: Vec<(&str, String)> = if html.contains("id=\"i0116\"") {
            vec![
                ("ctx", ctx),
                ("login", upn.to_owned()),
                ("passwd", DEMO_PASSWORD.to_owned()),
            ]
        } else if html.contains("id=\"idTxtBx_SAOTCC_OTC\"") {
            vec![
                ("ctx", ctx),
                ("otc", app.microsoft().mfa_code(upn)),
                ("action", "verify".to_owned()),
            ]
        } else if html.contains("id=\"idBtn_Accept\"") {
            vec![("ctx", ctx), ("decision", "accept".to_owned())]
        } else if html.contains("id=\"emulator-account-tile\"") {
            let choice = if html.contains(upn) {
                "continue"
            } else {
                "other"
            };
            vec![("ctx", ctx), ("action", choice.to_owned())]
        } else if html.contains("id=\"idBtn_Back\"") {
            vec![("ctx", ctx), ("action", "back".to_owned())]
        } else {
            panic!("unexpected page at Microsoft: {html}");
        };
        let response = browser
            .post(format!("{base}{action}"))
            .form(&form)
            .send()
            .await
            .expect("submit");
        landing = follow(browser, &base, response, &callback).await;
    }
    panic!("sign-in at Microsoft did not finish");
}

/// The whole flow as `upn` in `browser`; returns samgate's answer to the callback.
async fn sso_as(app: &TestApp, browser: &Client, upn: &str) -> Response {
    let authorize = start_sso(app, browser).await;
    let callback = sign_in_at_microsoft(app, browser, &authorize, upn).await;
    browser.get(callback).send().await.expect("callback")
}

async fn assert_refused(response: Response) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(html.contains(SSO_REFUSED), "{html}");
    assert!(
        html.contains("Sign in with Microsoft"),
        "the refusal offers both ways in again"
    );
}

async fn assert_signed_out(app: &TestApp, browser: &Client) {
    let dashboard = browser
        .get(app.url("/admin"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(dashboard.status(), StatusCode::SEE_OTHER);
    assert!(location(&dashboard).starts_with("/admin/login"));
}

#[tokio::test]
async fn a_staff_member_signs_in_with_microsoft_and_lands_on_the_dashboard() {
    let app = sso_app().await;
    let (staff_id, _) = add_staff(&app, "Grace@SamVendor.onmicrosoft.com", Role::Operator).await;
    let browser = new_browser();

    let authorize = start_sso(&app, &browser).await;
    let url = url::Url::parse(&authorize).expect("authorize URL");
    assert_eq!(
        url.path(),
        format!("/{DEMO_CPV_TENANT}/oauth2/v2.0/authorize")
    );
    assert!(authorize.starts_with(&app.emulator.base_url()));
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    // Graph User.Read makes the code redemption return an access token, whose `amr` shows MFA.
    assert_eq!(
        query["scope"],
        "openid profile email https://graph.microsoft.com/User.Read"
    );
    assert_eq!(query["prompt"], "select_account");
    assert_eq!(query["redirect_uri"], app.url(CALLBACK_PATH));
    assert_eq!(query["client_id"], DEMO_CLIENT_ID.to_string());
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(!query["state"].is_empty() && !query["nonce"].is_empty());

    let callback = sign_in_at_microsoft(&app, &browser, &authorize, GRACE).await;
    let answer = browser.get(&callback).send().await.expect("callback");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&answer), "/admin");
    let dashboard = browser
        .get(app.url("/admin"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.expect("page");
    assert!(html.contains("Partners by health"));

    let method: Option<String> = sqlx::query_scalar(
        "SELECT details->>'method' FROM audit_events WHERE action = 'staff.signed_in' AND actor = $1",
    )
    .bind(format!("staff:{staff_id}"))
    .fetch_optional(&app.pool)
    .await
    .expect("audit");
    assert_eq!(method.as_deref(), Some("sso"));

    // The callback is single use: replaying it in another browser gets nowhere.
    let other = new_browser();
    assert_refused(other.get(&callback).send().await.expect("replay")).await;
    assert_signed_out(&app, &other).await;

    // Local accounts keep working next to SSO.
    let local = new_browser();
    let (_, password) = add_staff(&app, "local@northwind.example", Role::Viewer).await;
    let login = local
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("login");
    let csrf = csrf_of(&login.text().await.expect("page"));
    let response = local
        .post(app.url("/admin/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "local@northwind.example"),
            ("password", secrecy::ExposeSecret::expose_secret(&password)),
        ])
        .send()
        .await
        .expect("local sign-in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin");
}

#[tokio::test]
async fn sso_is_bound_to_the_microsoft_account_not_to_its_sign_in_name() {
    let app = sso_app().await;
    let (staff_id, _) = add_staff(&app, GRACE, Role::Admin).await;
    // The first sign-in binds the staff account to Grace's object id.
    let first = sso_as(&app, &new_browser(), GRACE).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let bound: Option<Uuid> = sqlx::query_scalar("SELECT sso_oid FROM staff WHERE id = $1")
        .bind(staff_id)
        .fetch_one(&app.pool)
        .await
        .expect("staff");
    assert!(bound.is_some(), "bound at the first sign-in");
    // Another account that now carries the same sign-in name (a renamed UPN, a guest's home UPN)
    // does not get in: here the staff row is bound to a different object id.
    sqlx::query("UPDATE staff SET sso_oid = $2 WHERE id = $1")
        .bind(staff_id)
        .bind(Uuid::new_v4())
        .execute(&app.pool)
        .await
        .expect("rebind");
    let browser = new_browser();
    assert_refused(sso_as(&app, &browser, GRACE).await).await;
    assert_signed_out(&app, &browser).await;
    // The bound account gets in whatever its sign-in name is now.
    sqlx::query("UPDATE staff SET sso_oid = $2, email = 'renamed@northwind.example' WHERE id = $1")
        .bind(staff_id)
        .bind(bound)
        .execute(&app.pool)
        .await
        .expect("rename");
    let again = sso_as(&app, &new_browser(), GRACE).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
}

const NEEDS_MFA: &str = "Sign in with multi-factor authentication";

#[tokio::test]
async fn a_sign_in_with_microsoft_without_mfa_is_refused_and_audited() {
    let app = sso_app().await;
    let (staff_id, _) = add_staff(&app, GRACE, Role::Admin).await;
    app.microsoft().set_user_mfa(GRACE, MfaState::NotRequired);
    let browser = new_browser();
    let response = sso_as(&app, &browser, GRACE).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(html.contains(NEEDS_MFA), "{html}");
    assert!(!html.contains(SSO_REFUSED), "the refusal says what to do");
    assert_signed_out(&app, &browser).await;
    let refusals: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'staff.sso_refused' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["reason"], "no_mfa");
    assert_eq!(refusals[0]["tenant"], DEMO_CPV_TENANT.to_string());
    let bound: Option<Uuid> = sqlx::query_scalar("SELECT sso_oid FROM staff WHERE id = $1")
        .bind(staff_id)
        .fetch_one(&app.pool)
        .await
        .expect("staff");
    assert!(bound.is_none(), "a refused sign-in binds nothing");

    // With MFA done, the same account gets in.
    app.microsoft().set_user_mfa(GRACE, MfaState::Registered);
    let browser = new_browser();
    let response = sso_as(&app, &browser, GRACE).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin");
    let dashboard = browser
        .get(app.url("/admin"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(
        dashboard.status(),
        200,
        "an SSO admin needs no TOTP: Microsoft did MFA"
    );
}

#[tokio::test]
async fn a_microsoft_account_without_staff_access_gets_the_generic_refusal() {
    let app = sso_app().await;
    let browser = new_browser();
    assert_refused(sso_as(&app, &browser, MALLORY).await).await;
    assert_signed_out(&app, &browser).await;

    // The log says why, with the sign-in name only as its pseudonym.
    let logs = crate::harness::logs::captured();
    let refusals: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("staff sign-in with Microsoft refused"))
        .collect();
    assert!(
        refusals
            .iter()
            .any(|l| l.contains(&samgate::staff::log_hash(MALLORY))),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().all(|l| !l.contains(MALLORY)),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn a_disabled_staff_member_is_refused() {
    let app = sso_app().await;
    let (id, _) = add_staff(&app, LINUS, Role::Admin).await;
    add_staff(&app, "other-admin@northwind.example", Role::Admin).await;
    samgate::staff::disable_staff(&app.pool, id, &Actor::parse("test"), app.app.clock.now())
        .await
        .expect("disable");
    let browser = new_browser();
    assert_refused(sso_as(&app, &browser, LINUS).await).await;
    assert_signed_out(&app, &browser).await;
}

#[tokio::test]
async fn a_forged_or_missing_state_is_refused_and_ends_the_flow() {
    let app = sso_app().await;
    add_staff(&app, GRACE, Role::Viewer).await;

    // No flow in this browser at all.
    let stranger = new_browser();
    let response = stranger
        .get(app.url(&format!("{CALLBACK_PATH}?code=abc&state=xyz")))
        .send()
        .await
        .expect("callback");
    assert_refused(response).await;

    // A flow, then a callback with a forged state, then one without a state.
    let victim = new_browser();
    let authorize = start_sso(&app, &victim).await;
    let real_state = url::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let forged = victim
        .get(app.url(&format!("{CALLBACK_PATH}?code=abc&state=forged")))
        .send()
        .await
        .expect("forged");
    assert_refused(forged).await;
    // The flow was used up by the forged attempt: even the real state is refused now.
    let late = victim
        .get(app.url(&format!("{CALLBACK_PATH}?code=abc&state={real_state}")))
        .send()
        .await
        .expect("late");
    assert_refused(late).await;

    start_sso(&app, &victim).await;
    let missing = victim
        .get(app.url(&format!("{CALLBACK_PATH}?code=abc")))
        .send()
        .await
        .expect("missing");
    assert_refused(missing).await;
    assert_signed_out(&app, &victim).await;

    // Starting the flow is CSRF-checked like the password form.
    let no_token = stranger
        .post(app.url("/admin/login/sso"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .expect("post");
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_the_setting_there_is_no_button_and_no_route() {
    let app = TestApp::spawn().await;
    let browser = new_browser();
    let login = browser
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let html = login.text().await.expect("page");
    assert!(!html.contains("Sign in with Microsoft"));
    assert!(!html.contains("/admin/login/sso"));
    let start = browser
        .post(app.url("/admin/login/sso"))
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), StatusCode::NOT_FOUND);
    let callback = browser
        .get(app.url(&format!("{CALLBACK_PATH}?code=abc&state=xyz")))
        .send()
        .await
        .expect("callback");
    assert_eq!(callback.status(), StatusCode::NOT_FOUND);
}
