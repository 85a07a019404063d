//! The admin UI at the HTTP level: [`AdminClient`], one staff member's browser as reqwest with
//! its own cookie jar (the WebDriver browser is [`super::browser::Browser`]), and the little HTML
//! reading the admin tests need (form values, links, redirects); staff members of a role
//! ([`TestApp::staff`]), signed in ([`TestApp::signed_in`]), with their second factor.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode};
use samgate::domain::Actor;
use samgate::staff::{NewStaffRequest, Role};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::TestApp;

/// The admin session cookie's name.
const COOKIE: &str = "samgate_admin";

/// A staff member's browser at the HTTP level (not the WebDriver [`super::browser::Browser`]):
/// its own cookie jar, no redirects followed.
pub struct AdminClient {
    pub client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

impl AdminClient {
    pub fn new(app: &TestApp) -> Self {
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

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// POSTs with this session's CSRF token added.
    pub async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let csrf = self.csrf().await;
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// The session's CSRF token, read from a page's hidden field (a half-signed-in session's
    /// from its second-step page).
    pub async fn csrf(&self) -> String {
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
    pub fn session_cookie(&self) -> Option<String> {
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
    }

    /// Signs in through the form; returns the response to the POST.
    pub async fn sign_in(&self, email: &str, password: &str, return_to: Option<&str>) -> Response {
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
pub fn field_value(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split("value=\"").nth(1)?;
    Some(unescape(&value[..value.find('"')?]))
}

/// The `href` of the first link whose tag contains `marker`.
pub fn link_href(html: &str, marker: &str) -> Option<String> {
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

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Creates a staff member through the library, as `samgate staff add` does.
pub async fn add_staff(app: &TestApp, email: &str, role: Role) -> (Uuid, SecretString) {
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
pub fn totp_code(secret_base32: &str, app: &TestApp) -> String {
    totp_code_at(secret_base32, app.app.clock.now().unix_timestamp())
}

/// The TOTP code of a base32 secret at `unix_time`.
pub fn totp_code_at(secret_base32: &str, unix_time: i64) -> String {
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
pub async fn enrol_totp(app: &TestApp, id: Uuid) -> (String, Vec<String>) {
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
pub async fn second_step(browser: &AdminClient, code: &str) -> Response {
    browser
        .submit("/admin/login/verify", &[("code", code)])
        .await
}

/// A staff member a test created (see [`TestApp::staff`]).
pub struct StaffMember {
    pub id: Uuid,
    pub email: String,
    pub password: SecretString,
    /// The base32 TOTP secret, when the role needs a second factor and the member was enrolled.
    pub totp_secret: Option<String>,
}

impl TestApp {
    /// A new staff member with `role` and a generated address, created as `samgate staff add`
    /// does. Admins must use a second factor, so an admin is enrolled in TOTP too.
    pub async fn staff(&self, role: Role) -> StaffMember {
        let email = format!("{}-{}@northwind.example", role, Uuid::new_v4().simple());
        let (id, password) = add_staff(self, &email, role).await;
        let totp_secret = if role.requires_second_factor() {
            Some(enrol_totp(self, id).await.0)
        } else {
            None
        };
        StaffMember {
            id,
            email,
            password,
            totp_secret,
        }
    }

    /// A new member with `role` ([`TestApp::staff`]), signed in in a fresh client; an admin passes
    /// the second step with a current code.
    pub async fn signed_in(&self, role: Role) -> (AdminClient, StaffMember) {
        let member = self.staff(role).await;
        let client = AdminClient::new(self);
        let mut response = client
            .sign_in(&member.email, member.password.expose_secret(), None)
            .await;
        if let Some(secret) = &member.totp_secret {
            assert_eq!(location(&response), "/admin/login/verify", "{role}");
            response = second_step(&client, &totp_code(secret, self)).await;
        }
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "sign-in as {role}"
        );
        assert_eq!(location(&response), "/admin");
        (client, member)
    }
}
