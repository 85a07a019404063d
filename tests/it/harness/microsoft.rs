//! Drives Microsoft's sign-in pages (the emulator's) over plain HTTP, as a browser would, so
//! consent tests run without Chromium. The browser test walks the same pages in Chromium.

use reqwest::Client;
use uuid::Uuid;

use super::{DemoPartner, TestApp};

/// How the partner admin behaves at Microsoft.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AtConsent {
    /// Accepts the permissions.
    Accept,
    /// Clicks Cancel on the consent screen.
    Cancel,
}

/// Where a walk through the pages ended.
pub enum Landing {
    /// Redirected back to samgate (the full callback URL).
    Callback(String),
    /// Stopped on an emulator page (its HTML).
    Page(String),
}

fn hidden_ctx(html: &str) -> Option<String> {
    let marker = "name=\"ctx\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

fn form_action(html: &str) -> Option<String> {
    let marker = "action=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

async fn follow(
    client: &Client,
    base: &str,
    response: reqwest::Response,
    redirect_prefix: &str,
) -> Landing {
    let mut response = response;
    loop {
        if response.status().is_redirection() {
            let location = response.headers()["location"]
                .to_str()
                .expect("ascii")
                .to_owned();
            if location.starts_with(redirect_prefix) {
                return Landing::Callback(location);
            }
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            response = client.get(url).send().await.expect("follow redirect");
            continue;
        }
        return Landing::Page(response.text().await.expect("page"));
    }
}

impl TestApp {
    /// Opens the invitation, clicks "Sign in with Microsoft", and returns the authorize URL.
    pub async fn start_consent(&self, invitation_path: &str) -> String {
        let page = self.get(invitation_path).await;
        assert_eq!(page.status(), 200, "invitation page");
        let start = self
            .client
            .post(self.url(&format!("{invitation_path}/start")))
            .send()
            .await
            .expect("start");
        assert_eq!(start.status(), 303, "start redirects to Microsoft");
        start.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    /// Signs in at Microsoft as `upn` (password, MFA code, consent) and returns where it landed.
    pub async fn sign_in_at_microsoft(
        &self,
        authorize_url: &str,
        upn: &str,
        consent: AtConsent,
    ) -> Landing {
        let base = self.emulator.base_url();
        let callback = format!("{}/oauth/callback", self.address);
        let client = &self.client;
        let first = client.get(authorize_url).send().await.expect("authorize");
        let mut landing = follow(client, &base, first, &callback).await;
        let mut submitted_login = false;
        for _ in 0..6 {
            let Landing::Page(html) = &landing else {
                return landing;
            };
            let (Some(ctx), Some(action)) = (hidden_ctx(html), form_action(html)) else {
                return landing;
            };
            let url = format!("{base}{action}");
            let form: Vec<(&str, String)> = if html.contains("id=\"i0116\"") {
                if submitted_login {
                    return landing; // the password was refused
                }
                submitted_login = true;
                vec![
                    ("ctx", ctx),
                    ("login", upn.to_owned()),
                    ("passwd", ms_emulator::DEMO_PASSWORD.to_owned()),
                ]
            } else if html.contains("id=\"idTxtBx_SAOTCC_OTC\"") {
                vec![
                    ("ctx", ctx),
                    ("otc", self.microsoft().mfa_code(upn)),
                    ("action", "verify".to_owned()),
                ]
            } else if html.contains("id=\"idBtn_Accept\"") {
                let decision = match consent {
                    AtConsent::Accept => "accept",
                    AtConsent::Cancel => "cancel",
                };
                vec![("ctx", ctx), ("decision", decision.to_owned())]
            } else if html.contains("id=\"emulator-account-tile\"") {
                // The account picker: continue only as the wanted account.
                let action = if html.contains(upn) {
                    "continue"
                } else {
                    "other"
                };
                vec![("ctx", ctx), ("action", action.to_owned())]
            } else if html.contains("id=\"idBtn_Back\"") {
                vec![("ctx", ctx), ("action", "back".to_owned())]
            } else {
                return landing;
            };
            let response = client.post(url).form(&form).send().await.expect("submit");
            landing = follow(client, &base, response, &callback).await;
        }
        landing
    }

    /// The whole happy path: invitation → Microsoft → callback; returns the callback response.
    pub async fn consent_as(&self, invitation_path: &str, upn: &str) -> reqwest::Response {
        let authorize = self.start_consent(invitation_path).await;
        match self
            .sign_in_at_microsoft(&authorize, upn, AtConsent::Accept)
            .await
        {
            Landing::Callback(url) => {
                let response = self.client.get(url).send().await.expect("callback");
                self.follow_consent_done(response).await
            }
            Landing::Page(html) => panic!("sign-in stopped at Microsoft: {html}"),
        }
    }

    /// A completed consent answers 303 to `/consent/done`: follows it (other answers unchanged).
    pub async fn follow_consent_done(&self, response: reqwest::Response) -> reqwest::Response {
        if response.status() != 303 {
            return response;
        }
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(
            location, "/consent/done",
            "a consent ends at its outcome page"
        );
        self.get(&location).await
    }

    /// Consents `partner` as its admin (invitation, Microsoft's pages, callback) and returns its
    /// samgate partner id, which [`partner_id`](TestApp::partner_id) also answers from then on.
    pub async fn consent_partner(&self, partner: DemoPartner) -> Uuid {
        let invitation = self.invite(partner.invitation_name(), None).await;
        let response = self.consent_as(&invitation, partner.admin()).await;
        assert_eq!(response.status(), 200, "{partner:?} consented");
        let id = sqlx::query_scalar("SELECT id FROM partners WHERE tenant_id = $1")
            .bind(partner.tenant())
            .fetch_one(&self.pool)
            .await
            .expect("the consented partner is stored");
        self.remember_partner(partner, id);
        id
    }
}
