//! The staff admin UI over real HTTP: sign-in and its throttle, sessions and their ends, CSRF and
//! origin checks, the role matrix of every route, no open redirect, keyset pages, audit, logs.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode};
use samgate::domain::Actor;
use samgate::staff::{NewStaffRequest, Role};
use samgate::web::admin::Access;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;

const REFUSED: &str = "Email or password is incorrect, or sign-in is temporarily blocked.";
const COOKIE: &str = "samgate_admin";

/// One browser: its own cookie jar, no redirects followed.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Self {
            client,
            jar,
            base: app.address.clone(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// POSTs with this session's CSRF token added.
    pub(crate) async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let csrf = self.csrf().await;
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// The session's CSRF token, read from a page's hidden field (a half-signed-in session's
    /// from its second-step page).
    pub(crate) async fn csrf(&self) -> String {
        for path in ["/admin", "/admin/login/verify", "/admin/login/enrol"] {
            let page = self.get(path).await;
            if page.status() == StatusCode::OK {
                let html = page.text().await.expect("page");
                return field_value(&html, "name=\"csrf\"").expect("a csrf field");
            }
        }
        let html = self
            .get("/admin/login")
            .await
            .text()
            .await
            .expect("login page");
        field_value(&html, "name=\"csrf\"").expect("a csrf field")
    }

    /// The admin session cookie's value.
    pub(crate) fn session_cookie(&self) -> Option<String> {
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
    }

    /// Signs in through the form; returns the response to the POST.
    pub(crate) async fn sign_in(
        &self,
        email: &str,
        password: &str,
        return_to: Option<&str>,
    ) -> Response {
        let login = self.get("/admin/login").await;
        assert_eq!(login.status(), 200);
        let csrf =
            field_value(&login.text().await.expect("page"), "name=\"csrf\"").expect("csrf field");
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ];
        if let Some(path) = return_to {
            form.push(("return_to", path));
        }
        self.post("/admin/login", &form).await
    }
}

/// The `value` of the first input whose tag contains `marker`.
pub(crate) fn field_value(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split("value=\"").nth(1)?;
    Some(unescape(&value[..value.find('"')?]))
}

/// The `href` of the first link whose tag contains `marker`.
pub(crate) fn link_href(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind("<a ")?;
    let href = html[tag_start..].split("href=\"").nth(1)?;
    Some(unescape(&href[..href.find('"')?]))
}

/// Undoes askama's HTML escaping of attribute values.
fn unescape(value: &str) -> String {
    value
        .replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
}

pub(crate) fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Creates a staff member through the library, as `samgate staff add` does.
pub(crate) async fn add_staff(app: &TestApp, email: &str, role: Role) -> (Uuid, SecretString) {
    let (member, password) = samgate::staff::add_staff(
        &app.pool,
        NewStaffRequest {
            email,
            display_name: None,
            role,
            password: None,
            actor: &Actor::parse("test"),
        },
        app.app.clock.now(),
    )
    .await
    .expect("add staff");
    (member.id, password)
}

/// The current TOTP code of a base32 secret at the app's time, computed with the same crate an
/// authenticator app's arithmetic follows (RFC 6238: SHA-1, 6 digits, 30 s).
pub(crate) fn totp_code(secret_base32: &str, app: &TestApp) -> String {
    totp_code_at(secret_base32, app.app.clock.now().unix_timestamp())
}

/// The TOTP code of a base32 secret at `unix_time`.
pub(crate) fn totp_code_at(secret_base32: &str, unix_time: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).expect("a base32 secret");
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .build()
        .expect("a TOTP")
        .generate(u64::try_from(unix_time).expect("after 1970"))
        .to_string()
}

/// Enrols a member in TOTP through the library (what the account page does); returns the base32
/// secret and the recovery codes.
pub(crate) async fn enrol_totp(app: &TestApp, id: Uuid) -> (String, Vec<String>) {
    let (secret, codes) = samgate::staff::mfa::enrol_now(
        &app.pool,
        &app.app.vault,
        id,
        "Northwind Control Panel",
        app.app.clock.now(),
    )
    .await
    .expect("enrol");
    (
        secret.expose_secret().to_owned(),
        codes
            .0
            .iter()
            .map(|c| c.expose_secret().to_owned())
            .collect(),
    )
}

/// Types `code` at the second step of a half-signed-in browser.
pub(crate) async fn second_step(browser: &Browser, code: &str) -> Response {
    browser
        .submit("/admin/login/verify", &[("code", code)])
        .await
}

/// A new member with `role`, signed in in a fresh browser. Admins must use a second factor, so an
/// admin is enrolled first and passes the second step with a current code.
pub(crate) async fn signed_in(app: &TestApp, role: Role) -> (Browser, Uuid) {
    let email = format!("{}-{}@northwind.example", role, Uuid::new_v4().simple());
    let (id, password) = add_staff(app, &email, role).await;
    let secret = if role.requires_second_factor() {
        Some(enrol_totp(app, id).await.0)
    } else {
        None
    };
    let browser = Browser::new(app);
    let mut response = browser
        .sign_in(&email, password.expose_secret(), None)
        .await;
    if let Some(secret) = secret {
        assert_eq!(location(&response), "/admin/login/verify", "{role}");
        response = second_step(&browser, &totp_code(&secret, app)).await;
    }
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "sign-in as {role}"
    );
    assert_eq!(location(&response), "/admin");
    (browser, id)
}

pub(crate) async fn seed_partner(app: &TestApp, name: &str) -> (Uuid, Uuid) {
    let (id, tenant) = (Uuid::now_v7(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, status) VALUES ($1, $2, $3, 'healthy')",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .execute(&app.pool)
    .await
    .expect("partner");
    (id, tenant)
}

async fn pending_invitation(app: &TestApp) -> Uuid {
    app.invite("Fixture Partner", None).await;
    sqlx::query_scalar("SELECT id FROM invitations WHERE revoked_at IS NULL AND used_at IS NULL ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("invitation")
}

/// A finished bulk app-consent run of the partner, with no customers.
async fn seed_run(app: &TestApp, partner: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app_consent_runs (id, partner_id, state, started_by, started_at, heartbeat_at, finished_at)
         VALUES ($1, $2, 'finished', 'test', now(), now(), now())",
    )
    .bind(id)
    .bind(partner)
    .execute(&app.pool)
    .await
    .expect("run");
    id
}

/// An API client (all partners) with one key; returns their ids.
pub(crate) async fn seed_client(app: &TestApp) -> (Uuid, Uuid) {
    let now = app.app.clock.now();
    let client = samgate::api_keys::create_client(
        &app.pool,
        samgate::api_keys::NewClient {
            name: &format!("fixture-{}", Uuid::new_v4().simple()),
            description: None,
            partners: None,
            read_only: false,
            created_by: &Actor::parse("test"),
        },
        now,
    )
    .await
    .expect("client");
    let (key, _) =
        samgate::api_keys::issue_key(&app.pool, client.id, None, &Actor::parse("test"), now)
            .await
            .expect("key");
    (client.id, key.id)
}

/// Opens `path` in a real browser and signs in there with a password and a current TOTP code.
pub(crate) async fn sign_in_in_browser(
    browser: &crate::harness::browser::Browser,
    app: &TestApp,
    path: &str,
    email: &str,
    password: &str,
    totp_secret: &str,
) {
    browser.goto(&app.url(path)).await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.click("form.stack button[type=submit]").await;
    browser.find("#code").await;
    browser.fill("#code", &totp_code(totp_secret, app)).await;
    browser.click("#verify-code").await;
}

/// A webhook endpoint with one queued delivery; returns their ids.
pub(crate) async fn seed_webhook(app: &TestApp) -> (Uuid, i64) {
    let now = app.app.clock.now();
    let (endpoint, _) = samgate::webhooks::add_endpoint(
        &app.app,
        "https://hooks.example.com/fixture",
        &[],
        None,
        &Actor::parse("test"),
        now,
    )
    .await
    .expect("endpoint");
    crate::admin_webhooks::queue_event(app).await;
    let delivery = crate::admin_webhooks::newest_delivery(app, endpoint.id).await;
    (endpoint.id, delivery)
}

pub(crate) async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

fn redirects_to_login(response: &Response) -> bool {
    response.status() == StatusCode::SEE_OTHER && location(response).starts_with("/admin/login")
}

#[tokio::test]
async fn signing_in_renews_the_session_id_and_opens_the_dashboard() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "Ada@Northwind.example", Role::Viewer).await;
    let browser = Browser::new(&app);

    let anonymous = browser.get("/admin/partners?q=contoso").await;
    assert!(redirects_to_login(&anonymous));
    assert_eq!(
        location(&anonymous),
        "/admin/login?return_to=%2Fadmin%2Fpartners%3Fq%3Dcontoso"
    );
    let login = browser.get("/admin/login").await;
    assert_eq!(login.status(), 200);
    let set_cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The form's CSRF token rides in a cookie of its own: no session exists before sign-in.
    assert!(
        set_cookie.starts_with("samgate_login_csrf="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let html = login.text().await.expect("page");
    assert!(html.contains("<label for=\"email\">Email</label>"));
    assert!(browser.session_cookie().is_none(), "no pre-login session");

    let csrf = field_value(&html, "name=\"csrf\"").expect("csrf");
    let response = browser
        .post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", " ada@northwind.EXAMPLE "),
                ("password", password.expose_secret()),
                ("return_to", "/admin/partners?q=contoso"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/partners?q=contoso");
    let after = browser.session_cookie().expect("a session once signed in");
    assert!(after.len() > 10);

    let dashboard = browser.get("/admin").await;
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.expect("page");
    assert!(html.contains("Partners by health"));
    assert!(html.contains("Recent failures"));
    assert!(
        !html.contains("href=\"/admin/staff\""),
        "viewers see no Staff link"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let browser = Browser::new(&app);
    let wrong = browser
        .sign_in("ada@northwind.example", "not the password", None)
        .await;
    let unknown = browser
        .sign_in("nobody@northwind.example", "not the password", None)
        .await;
    assert_eq!(wrong.status(), unknown.status());
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (wrong, unknown) = (
        wrong.text().await.expect("page"),
        unknown.text().await.expect("page"),
    );
    assert!(wrong.contains(REFUSED) && unknown.contains(REFUSED));
    assert!(browser.get("/admin").await.status() == StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn parallel_wrong_passwords_are_counted_before_they_are_checked() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let address: std::net::IpAddr = "198.51.100.7".parse().expect("address");
    let now = app.app.clock.now();
    let mut guesses = Vec::new();
    for i in 0..40 {
        let pool = app.pool.clone();
        let limit = app.app.argon2.clone();
        guesses.push(tokio::spawn(async move {
            samgate::staff::sign_in(
                &pool,
                &limit,
                "ada@northwind.example",
                secrecy::SecretString::from(format!("guess {i}")),
                address,
                now,
            )
            .await
            .expect("sign-in")
        }));
    }
    let mut refused = 0;
    for guess in guesses {
        match guess.await.expect("task") {
            samgate::staff::SignIn::Refused => refused += 1,
            samgate::staff::SignIn::Blocked => {}
            samgate::staff::SignIn::Busy => panic!("a guess waited beyond the Argon2 bound"),
            samgate::staff::SignIn::Accepted { .. } => panic!("a guess was accepted"),
        }
    }
    assert_eq!(
        refused,
        samgate::staff::ACCOUNT_FAILURE_LIMIT,
        "only as many passwords were checked as the limit allows"
    );
    let right = samgate::staff::sign_in(
        &app.pool,
        &app.app.argon2,
        "ada@northwind.example",
        password.clone(),
        address,
        now,
    )
    .await
    .expect("sign-in");
    assert!(matches!(right, samgate::staff::SignIn::Blocked));
}

#[tokio::test]
async fn after_five_failures_even_the_right_password_is_refused_until_the_window_passes() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let browser = Browser::new(&app);
    for _ in 0..samgate::staff::ACCOUNT_FAILURE_LIMIT {
        let response = browser
            .sign_in("ada@northwind.example", "guess", None)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);
    assert!(blocked.text().await.expect("page").contains(REFUSED));
    // An unknown account is blocked the same way: the lockout says nothing about existence.
    for _ in 0..samgate::staff::ACCOUNT_FAILURE_LIMIT {
        browser
            .sign_in("ghost@northwind.example", "guess", None)
            .await;
    }
    let ghost = browser
        .sign_in("ghost@northwind.example", "guess", None)
        .await;
    assert_eq!(ghost.status(), StatusCode::UNAUTHORIZED);
    assert!(ghost.text().await.expect("page").contains(REFUSED));
    assert!(
        crate::harness::logs::captured().contains("staff sign-in blocked by the throttle"),
        "blocked attempts are logged"
    );

    app.clock.advance(Duration::from_secs(16 * 60));
    let response = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the window has passed"
    );
}

#[tokio::test]
async fn too_many_failures_from_one_address_block_every_account_from_it() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Admin).await;
    let browser = Browser::new(&app);
    for n in 0..samgate::staff::ADDRESS_FAILURE_LIMIT {
        browser
            .sign_in(&format!("user{n}@northwind.example"), "guess", None)
            .await;
    }
    let response = browser
        .sign_in("ada@northwind.example", password.expose_secret(), None)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.expect("page").contains(REFUSED));
}

/// What each role may do: the expected minimum role of every admin route, written out by hand so
/// that a change of the router's table must be mirrored here.
fn expected_policy() -> Vec<(&'static str, &'static str, Access)> {
    use Access::{Public, SecondStep, Staff};
    use Role::{Admin, Operator, Viewer};
    vec![
        ("GET", "/admin/login", Public),
        ("POST", "/admin/login", Public),
        ("POST", "/admin/login/sso", Public),
        ("GET", "/admin/login/sso/callback", Public),
        ("GET", "/admin/login/verify", SecondStep),
        ("POST", "/admin/login/verify", SecondStep),
        ("GET", "/admin/login/enrol", SecondStep),
        ("POST", "/admin/login/enrol", SecondStep),
        ("POST", "/admin/login/enrol/confirm", SecondStep),
        ("GET", "/admin/account", Staff(Viewer)),
        ("POST", "/admin/account/mfa", Staff(Viewer)),
        ("POST", "/admin/account/mfa/confirm", Staff(Viewer)),
        ("POST", "/admin/account/recovery-codes", Staff(Viewer)),
        ("POST", "/admin/logout", Staff(Viewer)),
        ("POST", "/admin/logout-everywhere", Staff(Viewer)),
        ("GET", "/admin", Staff(Viewer)),
        ("GET", "/admin/partners", Staff(Viewer)),
        ("GET", "/admin/partners.csv", Staff(Viewer)),
        ("GET", "/admin/partners/{id}", Staff(Viewer)),
        ("POST", "/admin/partners/{id}/invitations", Staff(Operator)),
        ("POST", "/admin/partners/{id}/refresh", Staff(Operator)),
        ("POST", "/admin/partners/{id}/offboard", Staff(Admin)),
        ("GET", "/admin/partners/{id}/customers", Staff(Viewer)),
        ("GET", "/admin/partners/{id}/customers.csv", Staff(Viewer)),
        ("GET", "/admin/partners/{id}/activity", Staff(Viewer)),
        ("GET", "/admin/partners/{id}/calls", Staff(Viewer)),
        (
            "POST",
            "/admin/partners/{id}/customers/sync",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/customers/app-consents",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/customers/{customer}/app-consent",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/customers/{customer}/app-consent/remove",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/app-consent-runs",
            Staff(Operator),
        ),
        (
            "GET",
            "/admin/partners/{id}/app-consent-runs/{run}",
            Staff(Viewer),
        ),
        (
            "GET",
            "/admin/partners/{id}/app-consent-runs/{run}/progress",
            Staff(Viewer),
        ),
        (
            "POST",
            "/admin/partners/{id}/app-consent-runs/{run}/retry",
            Staff(Operator),
        ),
        ("GET", "/admin/invitations", Staff(Viewer)),
        ("POST", "/admin/invitations", Staff(Operator)),
        ("POST", "/admin/invitations/{id}/revoke", Staff(Operator)),
        ("GET", "/admin/audit", Staff(Viewer)),
        ("GET", "/admin/audit.csv", Staff(Viewer)),
        ("GET", "/admin/activity", Staff(Viewer)),
        ("GET", "/admin/clients/{id}/activity", Staff(Viewer)),
        ("GET", "/admin/clients/{id}/calls", Staff(Viewer)),
        ("GET", "/admin/clients", Staff(Admin)),
        ("POST", "/admin/clients", Staff(Admin)),
        ("POST", "/admin/clients/{id}/keys", Staff(Admin)),
        (
            "POST",
            "/admin/clients/{id}/keys/{key}/revoke",
            Staff(Admin),
        ),
        ("POST", "/admin/clients/{id}/disable", Staff(Admin)),
        ("GET", "/admin/webhooks", Staff(Viewer)),
        ("POST", "/admin/webhooks", Staff(Admin)),
        ("GET", "/admin/webhooks/{id}", Staff(Viewer)),
        ("POST", "/admin/webhooks/{id}/rotate-secret", Staff(Admin)),
        ("POST", "/admin/webhooks/{id}/disable", Staff(Admin)),
        ("POST", "/admin/webhooks/{id}/enable", Staff(Admin)),
        (
            "POST",
            "/admin/webhooks/{id}/deliveries/{delivery}/replay",
            Staff(Admin),
        ),
        ("GET", "/admin/staff", Staff(Admin)),
        ("POST", "/admin/staff", Staff(Admin)),
        ("POST", "/admin/staff/{id}/role", Staff(Admin)),
        ("POST", "/admin/staff/{id}/disable", Staff(Admin)),
        ("POST", "/admin/staff/{id}/sessions/revoke", Staff(Admin)),
        ("POST", "/admin/staff/{id}/mfa/reset", Staff(Admin)),
    ]
}

/// Routes whose success needs a current TOTP code the matrix cannot type: for them a 422 ("that
/// code is not right") proves the role check let the request through.
const NEEDS_A_CODE: [&str; 2] = [
    "/admin/account/mfa/confirm",
    "/admin/account/recovery-codes",
];

/// Fills a route template's `{id}` with a fresh fixture and returns the path and form.
async fn fixture(
    app: &TestApp,
    path: &str,
    partner: Uuid,
) -> (String, Vec<(&'static str, String)>) {
    match path {
        "/admin/partners/{id}"
        | "/admin/partners/{id}/invitations"
        | "/admin/partners/{id}/refresh"
        | "/admin/partners/{id}/customers"
        | "/admin/partners/{id}/customers.csv"
        | "/admin/partners/{id}/activity"
        | "/admin/partners/{id}/calls"
        | "/admin/partners/{id}/customers/sync"
        | "/admin/partners/{id}/app-consent-runs" => {
            (path.replace("{id}", &partner.to_string()), vec![])
        }
        "/admin/partners/{id}/customers/app-consents" => (
            path.replace("{id}", &partner.to_string()),
            vec![
                ("action", "grant".to_owned()),
                ("customer", Uuid::new_v4().to_string()),
            ],
        ),
        "/admin/partners/{id}/offboard" => {
            // Its own partner each time: offboarding is once only.
            let (other, _) = seed_partner(app, "Offboard Fixture").await;
            (path.replace("{id}", &other.to_string()), vec![])
        }
        p if p.starts_with("/admin/partners/{id}/customers/{customer}") => (
            path.replace("{id}", &partner.to_string())
                .replace("{customer}", &Uuid::new_v4().to_string()),
            vec![],
        ),
        "/admin/partners/{id}/app-consent-runs/{run}"
        | "/admin/partners/{id}/app-consent-runs/{run}/progress"
        | "/admin/partners/{id}/app-consent-runs/{run}/retry" => {
            let run = seed_run(app, partner).await;
            (
                path.replace("{id}", &partner.to_string())
                    .replace("{run}", &run.to_string()),
                vec![],
            )
        }
        "/admin/clients" => (
            path.to_owned(),
            vec![
                ("name", format!("client-{}", Uuid::new_v4().simple())),
                ("scope", "all".to_owned()),
            ],
        ),
        p if p.starts_with("/admin/clients/{id}") => {
            let (client, key) = seed_client(app).await;
            (
                path.replace("{id}", &client.to_string())
                    .replace("{key}", &key.to_string()),
                vec![],
            )
        }
        "/admin/webhooks" => (
            path.to_owned(),
            vec![("url", "https://hooks.example.com/matrix".to_owned())],
        ),
        p if p.starts_with("/admin/webhooks/{id}") => {
            let (endpoint, delivery) = seed_webhook(app).await;
            (
                path.replace("{id}", &endpoint.to_string())
                    .replace("{delivery}", &delivery.to_string()),
                vec![],
            )
        }
        "/admin/invitations/{id}/revoke" => {
            let id = pending_invitation(app).await;
            (path.replace("{id}", &id.to_string()), vec![])
        }
        "/admin/invitations" => (
            path.to_owned(),
            vec![
                ("partner_name", "Matrix Partner".to_owned()),
                ("expected_tenant", String::new()),
                ("expires_days", "7".to_owned()),
            ],
        ),
        "/admin/staff" => (
            path.to_owned(),
            vec![
                (
                    "email",
                    format!("new-{}@northwind.example", Uuid::new_v4().simple()),
                ),
                ("display_name", "New Member".to_owned()),
                ("role", "viewer".to_owned()),
            ],
        ),
        p if p.starts_with("/admin/staff/{id}") => {
            let email = format!("target-{}@northwind.example", Uuid::new_v4().simple());
            let (id, _) = add_staff(app, &email, Role::Viewer).await;
            (
                path.replace("{id}", &id.to_string()),
                vec![("role", "operator".to_owned())],
            )
        }
        other => (other.to_owned(), vec![]),
    }
}

#[tokio::test]
async fn every_route_enforces_its_minimum_role_for_every_role() {
    let app = TestApp::spawn().await;
    let (partner, _) = seed_partner(&app, "Contoso").await;

    let mut actual: Vec<(String, &str, Access)> = samgate::web::admin::policy()
        .into_iter()
        .map(|(method, path, access)| (method.to_string(), path, access))
        .collect();
    let mut expected: Vec<(String, &str, Access)> = expected_policy()
        .into_iter()
        .map(|(m, p, a)| (m.to_owned(), p, a))
        .collect();
    let key = |r: &(String, &str, Access)| (r.0.clone(), r.1.to_owned());
    actual.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(
        actual, expected,
        "the router's table changed: update this matrix"
    );

    // Session-ending routes go last, so they do not end the session the others use.
    let mut routes = expected_policy();
    routes.sort_by_key(|(_, path, _)| path.starts_with("/admin/logout"));
    for role in Role::ALL {
        let (mut browser, _) = signed_in(&app, role).await;
        for (method, template, access) in &routes {
            let Access::Staff(needed) = *access else {
                continue;
            };
            if template.starts_with("/admin/logout") {
                browser = signed_in(&app, role).await.0;
            }
            let (path, form) = fixture(&app, template, partner).await;
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let response = if *method == "GET" {
                browser.get(&path).await
            } else {
                browser.submit(&path, &form).await
            };
            let status = response.status();
            if role.allows(needed) {
                let code_refused =
                    NEEDS_A_CODE.contains(template) && status == StatusCode::UNPROCESSABLE_ENTITY;
                assert!(
                    status == StatusCode::OK || status == StatusCode::SEE_OTHER || code_refused,
                    "{role} {method} {path}: expected success, got {status}"
                );
                let signed_out = location(&response).starts_with("/admin/login");
                assert_eq!(
                    signed_out,
                    template.starts_with("/admin/logout"),
                    "{role} {method} {path}: only sign-out routes end at the sign-in page"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn posts_without_or_with_a_wrong_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (partner, _) = seed_partner(&app, "Contoso").await;
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let target_email = "target@northwind.example";
    let (target, _) = add_staff(&app, target_email, Role::Viewer).await;
    let invitation = pending_invitation(&app).await;
    let (client, key) = seed_client(&app).await;
    let customer = Uuid::new_v4();
    let invitations_before = count(&app, "SELECT count(*) FROM invitations").await;
    let staff_before = count(&app, "SELECT count(*) FROM staff").await;
    let clients_before = count(&app, "SELECT count(*) FROM api_clients").await;
    let keys_before = count(
        &app,
        "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    )
    .await;
    let audit_before = count(&app, "SELECT count(*) FROM audit_events").await;

    let posts: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/admin/invitations".into(),
            vec![("partner_name", "X".into())],
        ),
        (format!("/admin/invitations/{invitation}/revoke"), vec![]),
        (format!("/admin/partners/{partner}/invitations"), vec![]),
        (format!("/admin/partners/{partner}/refresh"), vec![]),
        (format!("/admin/partners/{partner}/offboard"), vec![]),
        (
            format!("/admin/partners/{partner}/customers/{customer}/app-consent"),
            vec![],
        ),
        (
            format!("/admin/partners/{partner}/customers/{customer}/app-consent/remove"),
            vec![],
        ),
        (
            format!("/admin/partners/{partner}/app-consent-runs"),
            vec![],
        ),
        (format!("/admin/partners/{partner}/customers/sync"), vec![]),
        (
            format!("/admin/partners/{partner}/customers/app-consents"),
            vec![
                ("action", "grant".into()),
                ("customer", customer.to_string()),
            ],
        ),
        (
            "/admin/clients".into(),
            vec![("name", "forged".into()), ("scope", "all".into())],
        ),
        (format!("/admin/clients/{client}/keys"), vec![]),
        (format!("/admin/clients/{client}/keys/{key}/revoke"), vec![]),
        (format!("/admin/clients/{client}/disable"), vec![]),
        (
            "/admin/staff".into(),
            vec![
                ("email", "x@northwind.example".into()),
                ("role", "admin".into()),
            ],
        ),
        (
            format!("/admin/staff/{target}/role"),
            vec![("role", "admin".into())],
        ),
        (format!("/admin/staff/{target}/disable"), vec![]),
        (format!("/admin/staff/{target}/sessions/revoke"), vec![]),
        ("/admin/logout-everywhere".into(), vec![]),
        ("/admin/logout".into(), vec![]),
        (
            "/admin/login".into(),
            vec![("email", target_email.into()), ("password", "x".into())],
        ),
    ];
    for (path, form) in &posts {
        let without: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut wrong = without.clone();
        wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        let mut empty = without.clone();
        empty.push(("csrf", ""));
        for fields in [&without, &wrong, &empty] {
            let response = browser.post(path, fields).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "POST {path} {fields:?}"
            );
        }
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM invitations").await,
        invitations_before
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff").await,
        staff_before
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM api_clients").await,
        clients_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"
        )
        .await,
        keys_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM api_clients WHERE disabled_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM app_consent_runs").await
            + count(&app, "SELECT count(*) FROM app_consents").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM partners WHERE status = 'offboarded'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_events").await,
        audit_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM invitations WHERE revoked_at IS NOT NULL"
        )
        .await,
        0
    );
    let (role, disabled, epoch): (String, Option<time::OffsetDateTime>, i32) =
        sqlx::query_as("SELECT role, disabled_at, session_epoch FROM staff WHERE id = $1")
            .bind(target)
            .fetch_one(&app.pool)
            .await
            .expect("target");
    assert_eq!((role.as_str(), disabled, epoch), ("viewer", None, 0));
    assert_eq!(browser.get("/admin").await.status(), 200, "still signed in");

    // A token from another session is no better than a forged one.
    let (other, _) = signed_in(&app, Role::Admin).await;
    let foreign = other.csrf().await;
    let response = browser
        .post(
            &format!("/admin/staff/{target}/disable"),
            &[("csrf", &foreign)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_post_from_another_origin_is_refused_even_with_the_right_token() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Operator).await;
    let csrf = browser.csrf().await;
    let before = count(&app, "SELECT count(*) FROM invitations").await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/admin/invitations"),
    ] {
        let response = browser
            .client
            .post(app.url("/admin/invitations"))
            .header(header, value)
            .form(&[
                ("csrf", csrf.as_str()),
                ("partner_name", "Evil"),
                ("expires_days", "7"),
            ])
            .send()
            .await
            .expect("POST");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM invitations").await,
        before
    );
    // The same request from samgate's own origin works.
    let response = browser
        .client
        .post(app.url("/admin/invitations"))
        .header("origin", &app.address)
        .form(&[
            ("csrf", csrf.as_str()),
            ("partner_name", "Fine"),
            ("expires_days", "7"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn return_to_never_sends_the_browser_off_site() {
    let app = TestApp::spawn().await;
    let (_, password) = add_staff(&app, "ada@northwind.example", Role::Viewer).await;
    for attempt in [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "/admin/../..",
        "/admin//evil.com",
        "/admin/%2e%2e/%2e%2e/evil",
        "\\\\evil.com",
        "http:evil.com",
        "/admin\r\nLocation: https://evil.com",
    ] {
        let browser = Browser::new(&app);
        let page = browser
            .get(&format!(
                "/admin/login?{}",
                serde_urlencoded::to_string([("return_to", attempt)]).expect("query")
            ))
            .await
            .text()
            .await
            .expect("page");
        assert_eq!(
            field_value(&page, "name=\"return_to\"").as_deref(),
            Some("/admin"),
            "{attempt:?}"
        );
        let response = browser
            .sign_in(
                "ada@northwind.example",
                password.expose_secret(),
                Some(attempt),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/admin", "{attempt:?}");
    }
}

#[tokio::test]
async fn disabling_changing_the_role_and_logging_out_everywhere_end_existing_sessions() {
    let app = TestApp::spawn().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;

    let (victim, id) = signed_in(&app, Role::Operator).await;
    let response = admin
        .submit(&format!("/admin/staff/{id}/disable"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(redirects_to_login(&victim.get("/admin").await));

    let (member, id) = signed_in(&app, Role::Operator).await;
    let response = admin
        .submit(&format!("/admin/staff/{id}/role"), &[("role", "viewer")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(redirects_to_login(&member.get("/admin").await));

    // Two browsers of one member; "sign out everywhere" in one ends both.
    let email = "twice@northwind.example";
    let (_, password) = add_staff(&app, email, Role::Viewer).await;
    let (laptop, phone) = (Browser::new(&app), Browser::new(&app));
    for browser in [&laptop, &phone] {
        let response = browser.sign_in(email, password.expose_secret(), None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(phone.get("/admin").await.status(), 200);
    let response = laptop.submit("/admin/logout-everywhere", &[]).await;
    assert_eq!(location(&response), "/admin/login");
    assert!(redirects_to_login(&phone.get("/admin").await));
    assert!(redirects_to_login(&laptop.get("/admin").await));

    // Plain sign-out ends only this session.
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    browser.submit("/admin/logout", &[]).await;
    assert!(redirects_to_login(&browser.get("/admin").await));

    // The last active admin cannot be disabled or demoted.
    let admins: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM staff WHERE role = 'admin' AND disabled_at IS NULL")
            .fetch_all(&app.pool)
            .await
            .expect("admins");
    assert_eq!(admins.len(), 1);
    let response = admin
        .submit(
            &format!("/admin/staff/{}/role", admins[0]),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = admin
        .submit(&format!("/admin/staff/{}/disable", admins[0]), &[])
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_session_ends_after_eight_hours_however_active_and_after_thirty_idle_minutes() {
    let app = TestApp::spawn().await;
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    for _ in 0..23 {
        app.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(browser.get("/admin").await.status(), 200);
    }
    app.clock.advance(Duration::from_secs(21 * 60));
    assert!(
        redirects_to_login(&browser.get("/admin").await),
        "8 h absolute"
    );

    let (browser, _) = signed_in(&app, Role::Viewer).await;
    app.clock.advance(Duration::from_secs(31 * 60));
    assert!(
        redirects_to_login(&browser.get("/admin").await),
        "30 min idle"
    );
}

#[tokio::test]
async fn partner_pages_follow_the_keyset_without_overlap_or_gaps() {
    let app = TestApp::spawn().await;
    // Names repeat, so the id must break ties for the pages to be stable.
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, domain, status)
         SELECT gen_random_uuid(), gen_random_uuid(), 'Partner ' || lpad((i % 97)::text, 3, '0'),
                'p' || i || '.onmicrosoft.com',
                CASE WHEN i % 10 = 0 THEN 'needs_consent' ELSE 'healthy' END
         FROM generate_series(1, 260) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("seed partners");
    let expected: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM partners ORDER BY display_name, id")
            .fetch_all(&app.pool)
            .await
            .expect("order");
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let mut seen = Vec::new();
    let mut next = Some("/admin/partners".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let html = browser.get(&path).await.text().await.expect("page");
        seen.extend(partner_ids(&html));
        next = link_href(&html, "id=\"next-page\"");
        pages += 1;
        assert!(pages < 20, "pagination does not end: {path} -> {next:?}");
    }
    assert_eq!(pages, 6, "260 partners in pages of 50");
    assert_eq!(seen, expected, "every partner once, in order");

    // Filters travel with the cursor.
    let html = browser
        .get("/admin/partners?status=needs_consent")
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(partner_ids(&html).len(), 26);
    assert!(link_href(&html, "id=\"next-page\"").is_none());
    let html = browser
        .get("/admin/partners?q=p26.onmicrosoft")
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(partner_ids(&html).len(), 1);
    // A text search over many matches pages the same way (trigram-first query plan).
    let mut searched = Vec::new();
    let mut next = Some("/admin/partners?q=onmicrosoft".to_owned());
    while let Some(path) = next {
        let html = browser.get(&path).await.text().await.expect("page");
        searched.extend(partner_ids(&html));
        next = link_href(&html, "id=\"next-page\"").map(|href| href.replace("&amp;", "&"));
    }
    let unique: std::collections::HashSet<_> = searched.iter().collect();
    assert_eq!(unique.len(), searched.len(), "pages overlap");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM partners WHERE domain ILIKE '%onmicrosoft%' OR display_name ILIKE '%onmicrosoft%'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(
        searched.len() as i64,
        total,
        "every match on exactly one page"
    );
    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM partners LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("tenant");
    let html = browser
        .get(&format!("/admin/partners?q={tenant}"))
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(partner_ids(&html).len(), 1);
    assert_eq!(
        browser.get("/admin/partners?after=junk").await.status(),
        400
    );
}

#[tokio::test]
async fn partners_sorted_by_status_or_last_use_page_in_that_order_and_an_unknown_sort_is_a_400() {
    let app = TestApp::spawn().await;
    // Statuses and names repeat, so the later keys must break ties for the pages to be stable.
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, status)
         SELECT gen_random_uuid(), gen_random_uuid(), 'Partner ' || (i % 7),
                (ARRAY['healthy', 'degraded', 'needs_consent', 'pending'])[1 + i % 4]
         FROM generate_series(1, 75) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("seed partners");
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let walk = async |first: &str| {
        let (mut seen, mut pages, mut next) = (Vec::new(), 0, Some(first.to_owned()));
        while let Some(path) = next.take() {
            let html = page_text(&browser, &path).await;
            seen.extend(partner_ids(&html));
            next = link_href(&html, "id=\"next-page\"");
            if let Some(next) = &next {
                assert!(
                    next.contains("sort="),
                    "the order travels with the cursor: {next}"
                );
            }
            pages += 1;
            assert!(pages < 10, "pagination does not end");
        }
        (pages, seen)
    };

    let by_status: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM partners ORDER BY
           array_position(ARRAY['degraded', 'needs_consent', 'mfa_required', 'pending', 'healthy'], status),
           display_name, id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("order");
    assert_eq!(walk("/admin/partners?sort=status").await, (2, by_status));

    // Nobody used a grant: never-used partners come last, by id, newest id first.
    let by_use: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM partners ORDER BY id DESC")
        .fetch_all(&app.pool)
        .await
        .expect("order");
    assert_eq!(walk("/admin/partners?sort=used").await, (2, by_use.clone()));

    // One consented partner: refreshed most recently, so first; the never refreshed follow.
    let contoso = app.consent_partner(Contoso).await;
    let by_refresh: Vec<Uuid> = std::iter::once(contoso)
        .chain(by_use.iter().copied())
        .collect();
    assert_eq!(
        walk("/admin/partners?sort=refreshed").await,
        (2, by_refresh)
    );

    // Column headers are links to each order, and say which one is in force.
    let header = |html: &str, id: &str| {
        let at = html.find(&format!("id=\"{id}\"")).expect("a sort link");
        let start = html[..at].rfind("<th").expect("in a header");
        html[start..at].to_owned()
    };
    let html = page_text(&browser, "/admin/partners?sort=used&status=degraded").await;
    assert!(
        header(&html, "sort-used").contains("aria-sort=\"descending\""),
        "{html}"
    );
    assert!(
        header(&html, "sort-name").contains("aria-sort=\"none\""),
        "{html}"
    );
    assert_eq!(
        link_href(&html, "id=\"sort-status\"").as_deref(),
        Some("/admin/partners?q=&status=degraded&sort=status")
    );
    assert_eq!(
        link_href(&html, "id=\"sort-name\"").as_deref(),
        Some("/admin/partners?q=&status=degraded")
    );
    assert!(
        html.contains("name=\"sort\" value=\"used\""),
        "a new search keeps the order"
    );
    let plain = page_text(&browser, "/admin/partners").await;
    assert!(
        header(&plain, "sort-name").contains("aria-sort=\"ascending\""),
        "{plain}"
    );
    for bad in [
        "/admin/partners?sort=tenant_id",
        "/admin/partners.csv?sort=1;DROP",
    ] {
        assert_eq!(browser.get(bad).await.status(), 400, "{bad}");
    }
}

fn partner_ids(html: &str) -> Vec<Uuid> {
    html.split("href=\"/admin/partners/")
        .skip(1)
        .filter_map(|rest| rest.get(..36).and_then(|id| Uuid::parse_str(id).ok()))
        .collect()
}

#[tokio::test]
async fn an_invitation_created_in_the_ui_opens_the_consent_page_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let (browser, staff_id) = signed_in(&app, Role::Operator).await;
    let invalid = browser
        .submit(
            "/admin/invitations",
            &[
                ("partner_name", "Contoso"),
                ("expected_tenant", "not a tenant"),
                ("expires_days", "7"),
            ],
        )
        .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid
            .text()
            .await
            .expect("page")
            .contains("tenant id (a GUID) or a domain")
    );

    let response = browser
        .submit(
            "/admin/invitations",
            &[
                ("partner_name", "Contoso"),
                ("expected_tenant", "Contoso.onmicrosoft.com"),
                ("expires_days", "3"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("page");
    let link = field_value(&html, "id=\"invitation-link\"").expect("link shown");
    let path = link.strip_prefix(&app.address).expect("a samgate link");
    assert!(path.starts_with("/consent/sgi_"));
    let consent = app.get(path).await;
    assert_eq!(consent.status(), 200);
    assert!(consent.text().await.expect("page").contains("Contoso"));
    let (expected_tenant, created_by): (Option<String>, String) =
        sqlx::query_as("SELECT expected_tenant, created_by FROM invitations")
            .fetch_one(&app.pool)
            .await
            .expect("invitation");
    assert_eq!(expected_tenant.as_deref(), Some("contoso.onmicrosoft.com"));
    assert_eq!(created_by, format!("staff:{staff_id}"));

    let list = browser
        .get("/admin/invitations")
        .await
        .text()
        .await
        .expect("page");
    assert!(list.contains("pending"));
    assert!(!list.contains(path), "the link is never shown again");
    let id: Uuid = sqlx::query_scalar("SELECT id FROM invitations")
        .fetch_one(&app.pool)
        .await
        .expect("id");
    let response = browser
        .submit(&format!("/admin/invitations/{id}/revoke"), &[])
        .await;
    assert_eq!(location(&response), "/admin/invitations");
    assert_eq!(app.get(path).await.status(), 410);
}

#[tokio::test]
async fn staff_actions_are_audited_and_the_audit_log_filters_them() {
    let app = TestApp::spawn().await;
    let (partner, tenant) = seed_partner(&app, "Contoso").await;
    let (admin, admin_id) = signed_in(&app, Role::Admin).await;

    let page = admin
        .submit(&format!("/admin/partners/{partner}/invitations"), &[])
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    let link = field_value(&html, "id=\"invitation-link\"").expect("link");
    assert_eq!(
        app.get(link.strip_prefix(&app.address).expect("path"))
            .await
            .status(),
        200
    );
    let invitation = pending_invitation(&app).await;
    admin
        .submit(&format!("/admin/invitations/{invitation}/revoke"), &[])
        .await;
    let created = admin
        .submit(
            "/admin/staff",
            &[
                ("email", "bob@northwind.example"),
                ("display_name", "Bob"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    let bob: Uuid =
        sqlx::query_scalar("SELECT id FROM staff WHERE email = 'bob@northwind.example'")
            .fetch_one(&app.pool)
            .await
            .expect("bob");
    admin
        .submit(&format!("/admin/staff/{bob}/role"), &[("role", "operator")])
        .await;
    admin
        .submit(&format!("/admin/staff/{bob}/sessions/revoke"), &[])
        .await;
    admin
        .submit(&format!("/admin/staff/{bob}/disable"), &[])
        .await;

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE actor = $1 ORDER BY id")
            .bind(format!("staff:{admin_id}"))
            .fetch_all(&app.pool)
            .await
            .expect("audit");
    assert_eq!(
        actions,
        [
            "staff.mfa_enrolled",
            "staff.signed_in",
            "invitation.created",
            "partner.reconsent_requested",
            "invitation.revoked",
            "staff.created",
            "staff.role_changed",
            "staff.sessions_ended",
            "staff.disabled",
        ]
    );
    let reconsent: (Option<Uuid>, Option<String>) = sqlx::query_as(
        "SELECT partner_id, expected_tenant FROM invitations WHERE partner_id IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .expect("re-consent invitation");
    assert_eq!(reconsent, (Some(partner), Some(tenant.to_string())));

    let html = admin
        .get(&format!(
            "/admin/audit?actor=staff:{admin_id}&action=staff.disabled"
        ))
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(html.matches("<code>staff.disabled</code>").count(), 1);
    assert!(!html.contains("<code>staff.created</code>"));
    let html = admin
        .get(&format!("/admin/partners/{partner}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        html.contains("partner.reconsent_requested"),
        "the partner's trail shows it"
    );
    let html = admin
        .get(&format!("/admin/audit?partner={tenant}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains("partner.reconsent_requested"));
    assert_eq!(admin.get("/admin/audit?from=yesterday").await.status(), 400);
}

#[tokio::test]
async fn passwords_session_ids_and_csrf_tokens_never_reach_the_logs() {
    let app = TestApp::spawn().await;
    let (admin, _) = signed_in(&app, Role::Admin).await;
    let created = admin
        .submit(
            "/admin/staff",
            &[
                ("email", "carol@northwind.example"),
                ("display_name", "Carol"),
                ("role", "operator"),
            ],
        )
        .await
        .text()
        .await
        .expect("page");
    let password = field_value(&created, "id=\"new-password\"").expect("password shown once");
    assert_eq!(password.len(), 24);
    let carol = Browser::new(&app);
    assert_eq!(
        carol
            .sign_in("carol@northwind.example", &password, None)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    carol
        .sign_in("carol@northwind.example", "wrong password here", None)
        .await;
    let staff_page = admin.get("/admin/staff").await.text().await.expect("page");
    assert!(
        !staff_page.contains(&password),
        "the password is shown only once"
    );

    // The test's own HTTP client (reqwest's cookie jar) logs the cookies it receives at debug
    // level; those lines are the test browser's, not samgate's.
    let logs: String = crate::harness::logs::captured()
        .lines()
        .filter(|line| !line.contains(" cookie_store::"))
        .collect::<Vec<_>>()
        .join("\n");
    let secrets = [
        password.clone(),
        admin.csrf().await,
        carol.csrf().await,
        admin.session_cookie().expect("cookie"),
        carol.session_cookie().expect("cookie"),
        "wrong password here".to_owned(),
    ];
    for secret in &secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("a secret reached the logs: {}", &logs[line_start..line_end]);
        }
    }
    assert!(
        !logs.contains("carol@northwind.example"),
        "emails stay out of the logs"
    );
    assert!(logs.contains("staff sign-in failed"));
}

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

// ---- Partner actions, customers, app consents, API clients, dashboard ------------------------

pub(crate) async fn page_text(browser: &Browser, path: &str) -> String {
    let response = browser.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.text().await.expect("page")
}

#[tokio::test]
async fn refresh_now_redeems_the_grant_shows_the_outcome_and_is_audited() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (browser, staff) = signed_in(&app, Role::Operator).await;
    let refreshes = app.microsoft().token_calls("refresh_token");

    let response = browser
        .submit(&format!("/admin/partners/{partner}/refresh"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert_eq!(target, format!("/admin/partners/{partner}"));
    assert_eq!(
        app.microsoft().token_calls("refresh_token"),
        refreshes + 1,
        "one refresh at Microsoft"
    );
    let html = page_text(&browser, &target).await;
    assert!(
        html.contains("Refreshed: Microsoft issued a new token"),
        "{html}"
    );
    assert!(html.contains("id=\"refresh-now\""));

    app.microsoft()
        .revoke_refresh_tokens(ms_emulator::DEMO_CONTOSO_ADMIN);
    let response = browser
        .submit(&format!("/admin/partners/{partner}/refresh"), &[])
        .await;
    let target = location(&response);
    assert_eq!(target, format!("/admin/partners/{partner}"));
    let html = page_text(&browser, &target).await;
    assert!(html.contains("consent is no longer valid"), "{html}");
    assert!(
        html.contains("Needs consent"),
        "the partner's status changed"
    );
    assert!(html.contains("What to do"), "advice is shown");

    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'outcome' FROM audit_events
         WHERE action = 'grant.refresh_requested' AND actor = $1 ORDER BY id",
    )
    .bind(format!("staff:{staff}"))
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(outcomes, ["ok", "consent_required"]);
}

pub(crate) async fn wait_for_run(app: &TestApp, run: Uuid) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM app_consent_runs WHERE id = $1")
            .bind(run)
            .fetch_one(&app.pool)
            .await
            .expect("run");
        if state != "running" {
            return state;
        }
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn granting_to_all_customers_runs_in_the_background_with_progress_and_is_idempotent() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let client_id = ms_emulator::DEMO_CLIENT_ID;
    app.microsoft()
        .grant_app_consent(Contoso.customer(2), client_id);
    let (browser, _) = signed_in(&app, Role::Operator).await;

    let response = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let run_page = location(&response);
    let run: Uuid = run_page
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("run id");
    assert_eq!(wait_for_run(&app, run).await, "finished");
    assert!(
        app.microsoft()
            .app_consented(Contoso.customer(1), client_id)
    );
    assert!(
        app.microsoft()
            .app_consented(Contoso.customer(2), client_id)
    );

    let html = page_text(&browser, &run_page).await;
    assert!(html.contains("2 of 2 customers done"), "{html}");
    // Customer 2's consent was made outside samgate: Partner Center's 409 says it exists, not
    // with which permissions, so it is not counted as granted with the configured ones.
    assert!(
        html.contains(">Granted<")
            && html.contains(">A consent with other permissions exists: re-apply<"),
        "{html}"
    );
    assert!(html.contains("id=\"run-other-grants\">1"), "{html}");
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "a finished run stops reloading"
    );

    let again = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    let second: Uuid = location(&again)
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("id");
    assert_ne!(second, run);
    assert_eq!(wait_for_run(&app, second).await, "finished");
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM app_consent_run_items WHERE run_id = $1 ORDER BY position",
    )
    .bind(second)
    .fetch_all(&app.pool)
    .await
    .expect("items");
    // What samgate granted is current; the foreign consent stays to be re-applied.
    let mut states = states;
    states.sort();
    assert_eq!(states, ["already_granted", "exists_other_grants"]);
    let finished: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'app_consent.run_finished' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0]["granted"], 1);
    assert_eq!(finished[0]["exists_other_grants"], 1);
    assert_eq!(finished[1]["already_granted"], 1);

    // A run whose instance died (no heartbeat for minutes) is taken over, not waited on forever.
    sqlx::query(
        "INSERT INTO app_consent_runs (id, partner_id, started_by, started_at, heartbeat_at)
         VALUES ($1, $2, 'test', $3, $3)",
    )
    .bind(Uuid::now_v7())
    .bind(partner)
    .bind(app.app.clock.now() - time::Duration::minutes(10))
    .execute(&app.pool)
    .await
    .expect("stale run");
    let third = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    let third: Uuid = location(&third)
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("id");
    assert_eq!(wait_for_run(&app, third).await, "finished");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM app_consent_runs WHERE state = 'abandoned'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_admin_creates_a_client_issues_a_key_once_and_revocation_stops_it_at_once() {
    let app = TestApp::spawn().await;
    app.consent_partner(Contoso).await;
    let (browser, _) = signed_in(&app, Role::Admin).await;
    let html = page_text(&browser, "/admin/clients").await;
    assert!(
        html.contains("Contoso Partners"),
        "partners are offered for the scope"
    );

    let contoso = ms_emulator::DEMO_CONTOSO.to_string();
    let fabrikam = ms_emulator::DEMO_FABRIKAM.to_string();
    let response = browser
        .submit(
            "/admin/clients",
            &[
                ("name", "billing-sync"),
                ("description", "Nightly billing"),
                ("scope", "chosen"),
                ("partners", &contoso),
                ("read_only", "yes"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let duplicate = browser
        .submit(
            "/admin/clients",
            &[("name", "billing-sync"), ("scope", "all")],
        )
        .await;
    assert_eq!(duplicate.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        duplicate
            .text()
            .await
            .expect("page")
            .contains("already exists")
    );
    let none_chosen = browser
        .submit("/admin/clients", &[("name", "other"), ("scope", "chosen")])
        .await;
    assert_eq!(none_chosen.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let client = samgate::api_keys::find_client(&app.pool, "billing-sync")
        .await
        .expect("lookup")
        .expect("created");
    assert!(client.read_only);
    assert_eq!(
        client.scope,
        samgate::api_keys::PartnerScope::from_stored(false, [ms_emulator::DEMO_CONTOSO])
    );

    let issued = browser
        .submit(&format!("/admin/clients/{}/keys", client.id), &[])
        .await;
    assert_eq!(issued.status(), StatusCode::OK);
    let html = issued.text().await.expect("page");
    let key = field_value(&html, "id=\"api-key\"").expect("the key is shown");
    assert!(key.starts_with("sgk_"));
    let list = page_text(&browser, "/admin/clients").await;
    assert!(!list.contains(&key), "the key is shown only once");
    assert!(
        list.contains(&format!("{}…", &key[..12])) || list.contains("sgk_"),
        "{list}"
    );

    let call = |key: String, tenant: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url(&format!(
                    "/api/v1/partners/{tenant}/partner-center/v1/customers"
                )))
                .bearer_auth(key)
                .send()
                .await
                .expect("proxy call")
                .status()
        }
    };
    assert_eq!(call(key.clone(), contoso.clone()).await, StatusCode::OK);
    assert_eq!(call(key.clone(), fabrikam).await, StatusCode::FORBIDDEN);

    let key_id: Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE client_id = $1")
        .bind(client.id)
        .fetch_one(&app.pool)
        .await
        .expect("key id");
    let revoked = browser
        .submit(
            &format!("/admin/clients/{}/keys/{key_id}/revoke", client.id),
            &[],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        call(key.clone(), contoso.clone()).await,
        StatusCode::UNAUTHORIZED,
        "refused at once"
    );
    let again = browser
        .submit(
            &format!("/admin/clients/{}/keys/{key_id}/revoke", client.id),
            &[],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let disabled = browser
        .submit(&format!("/admin/clients/{}/disable", client.id), &[])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let html = page_text(&browser, "/admin/clients").await;
    assert!(
        html.contains(">disabled<") && html.contains(">revoked<"),
        "{html}"
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'api_%' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .expect("audit");
    assert_eq!(
        events,
        [
            "api_client.created",
            "api_key.issued",
            "api_key.revoked",
            "api_client.disabled"
        ]
    );
}

#[tokio::test]
async fn the_dashboard_counts_grants_never_used_and_unused_long_enough_to_expire() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let html = page_text(&browser, "/admin").await;
    assert!(
        html.contains("<span class=\"tile-count\" id=\"never-used\">1</span>"),
        "{html}"
    );
    assert!(html.contains("<span class=\"tile-count\" id=\"expiring-unused\">0</span>"));

    let now = app.app.clock.now();
    sqlx::query("UPDATE grants SET refreshed_at = $2, last_used_at = $3 WHERE partner_id = $1")
        .bind(partner)
        .bind(now - time::Duration::days(75))
        .bind(now - time::Duration::days(70))
        .execute(&app.pool)
        .await
        .expect("age the grant");
    let html = page_text(&browser, "/admin").await;
    assert!(
        html.contains("<span class=\"tile-count\" id=\"never-used\">0</span>"),
        "{html}"
    );
    assert!(html.contains("<span class=\"tile-count\" id=\"expiring-unused\">1</span>"));
    assert!(html.contains("about 20 days"), "90 - 70 days: {html}");
}
