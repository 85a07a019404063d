//! Test harness: a demo emulator, an HTTP client that does not follow redirects, and helpers that
//! drive the sign-in pages with plain form posts.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ms_emulator::{
    Control, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD,
    Emulator, Seed,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const REDIRECT: &str = "https://samgate.example/consent/callback";
pub const PC_SCOPE: &str =
    "openid profile offline_access https://api.partnercenter.microsoft.com/user_impersonation";

pub struct TestEnv {
    /// Kept so the server lives as long as the test.
    pub _emu: Emulator,
    pub control: Control,
    pub http: reqwest::Client,
    pub base: String,
}

impl TestEnv {
    pub async fn demo() -> TestEnv {
        TestEnv::with_seed(Seed::demo(REDIRECT)).await
    }

    pub async fn with_seed(seed: Seed) -> TestEnv {
        TestEnv::with_options(seed, ms_emulator::Options::default()).await
    }

    pub async fn with_options(seed: Seed, options: ms_emulator::Options) -> TestEnv {
        let emu = Emulator::start_with(seed, options)
            .await
            .expect("emulator starts");
        let control = emu.control();
        control.set_access_token_lifetime(std::time::Duration::from_secs(3600));
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = emu.tls_certificate_pem() {
            builder = builder
                .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem"));
        }
        let http = builder.build().expect("client");
        let base = emu.base_url();
        TestEnv {
            _emu: emu,
            control,
            http,
            base,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("POST")
    }

    /// POSTs to the token endpoint of `tenant` with the demo client secret added.
    pub async fn token(&self, tenant: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let client_id = DEMO_CLIENT_ID.to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("client_id", &client_id),
            ("client_secret", DEMO_CLIENT_SECRET),
        ];
        all.extend_from_slice(fields);
        let resp = self
            .http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .form(&all)
            .send()
            .await
            .expect("token POST");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("token JSON"))
    }

    pub async fn refresh(&self, tenant: &str, rt: &str, scope: &str) -> (u16, Value) {
        self.token(
            tenant,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", scope),
            ],
        )
        .await
    }

    /// Bearer GET.
    pub async fn bearer_get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }
}

/// Parameters of one /authorize request.
pub struct Authorize {
    pub tenant: String,
    pub scope: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub prompt: Option<String>,
    pub response_mode: Option<String>,
    pub redirect_uri: String,
    pub client_id: String,
}

impl Default for Authorize {
    fn default() -> Authorize {
        Authorize {
            tenant: "organizations".to_owned(),
            scope: PC_SCOPE.to_owned(),
            state: "state-123".to_owned(),
            nonce: "nonce-456".to_owned(),
            verifier: "verifier-0123456789-0123456789-0123456789-0123456789".to_owned(),
            prompt: None,
            response_mode: None,
            redirect_uri: REDIRECT.to_owned(),
            client_id: DEMO_CLIENT_ID.to_string(),
        }
    }
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Authorize {
    pub fn path(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &challenge(&self.verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = &self.prompt {
            q.append_pair("prompt", p);
        }
        if let Some(m) = &self.response_mode {
            q.append_pair("response_mode", m);
        }
        format!("/{}/oauth2/v2.0/authorize?{}", self.tenant, q.finish())
    }
}

/// The hidden `ctx` field of a page.
pub fn ctx_of(html: &str) -> String {
    let marker = "name=\"ctx\" value=\"";
    let start = html.find(marker).expect("page has ctx") + marker.len();
    let end = html[start..].find('"').expect("ctx ends") + start;
    html[start..end].to_owned()
}

/// Query parameters of a redirect's Location.
pub fn location_params(resp: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(resp.status().as_u16(), 302, "expected a redirect");
    let loc = resp.headers()["location"].to_str().expect("location");
    let url = url::Url::parse(loc).expect("absolute location");
    url.query_pairs().into_owned().collect()
}

/// What a page-by-page sign-in ended with.
pub struct Flow {
    pub status: u16,
    pub location: Option<String>,
    pub cookie: Option<String>,
    pub body: String,
}

impl Flow {
    /// Query parameters of the final redirect.
    pub fn params(&self) -> HashMap<String, String> {
        assert_eq!(self.status, 302, "expected a redirect: {}", self.body);
        let url = url::Url::parse(self.location.as_deref().expect("location"))
            .expect("absolute location");
        url.query_pairs().into_owned().collect()
    }
}

/// Drives sign-in (+ MFA with the right code + Accept on consent) and returns the final response.
pub async fn sign_in(env: &TestEnv, req: &Authorize, upn: &str, password: &str) -> Flow {
    let page = env.get(&req.path()).await;
    assert_eq!(page.status().as_u16(), 200, "sign-in page");
    let html = page.text().await.expect("html");
    assert!(html.contains("id=\"i0116\""), "{html}");
    let ctx = ctx_of(&html);
    let mut resp = env
        .post_form(
            &format!("/{}/login", req.tenant),
            &[("ctx", &ctx), ("login", upn), ("passwd", password)],
        )
        .await;
    loop {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let cookie = header("set-cookie").and_then(|c| c.split(';').next().map(str::to_owned));
        let html = resp.text().await.expect("html");
        if status != 200 || html.contains("name=\"hiddenform\"") {
            return Flow {
                status,
                location,
                cookie,
                body: html,
            };
        }
        if html.contains("idTxtBx_SAOTCC_OTC") {
            let code = env.control.mfa_code(upn);
            assert!(html.contains(&code), "MFA page shows the demo code");
            resp = env
                .post_form(
                    &format!("/{}/SAS/ProcessAuth", req.tenant),
                    &[("ctx", &ctx), ("otc", &code), ("action", "verify")],
                )
                .await;
        } else if html.contains("idBtn_Accept") {
            resp = env
                .post_form(
                    &format!("/{}/Consent/Set", req.tenant),
                    &[("ctx", &ctx), ("decision", "accept")],
                )
                .await;
        } else {
            panic!("unexpected page: {html}");
        }
    }
}

/// Full consent flow for the Contoso admin; returns the token response of the code redemption.
pub async fn consent_and_redeem(env: &TestEnv) -> Value {
    let req = Authorize::default();
    let flow = sign_in(env, &req, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD).await;
    let params = flow.params();
    assert_eq!(params["state"], req.state);
    let (status, body) = env
        .token(
            "organizations",
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &req.verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A partner RT for the Contoso admin.
pub async fn contoso_refresh_token(env: &TestEnv) -> String {
    consent_and_redeem(env).await["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned()
}

/// Decodes a JWT's claims without validation.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("jwt payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// AADSTS code of a token error body.
pub fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().expect("error_codes")
}

pub fn contoso() -> String {
    DEMO_CONTOSO.to_string()
}

/// A Contoso partner-center access token obtained through the full flow.
pub async fn contoso_pc_token(env: &TestEnv) -> String {
    consent_and_redeem(env).await["access_token"]
        .as_str()
        .expect("at")
        .to_owned()
}

/// Whether `python3` can import `module` (a peer library a test drives against the emulator).
/// Under `CI=true` a missing interpreter or library fails the test, naming what to install;
/// elsewhere the test is skipped with a line on the real stderr, which libtest does not capture
/// (its capture only covers `print!`/`eprint!`), so a plain `cargo test` shows why.
pub fn require_python_module(module: &str, pip_package: &str) -> bool {
    use std::io::Write;

    let missing = match std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
    {
        Ok(out) if out.status.success() => return true,
        Ok(_) => format!(
            "the Python library {pip_package} (`import {module}`) is not installed; install it with `python3 -m pip install {pip_package}`"
        ),
        Err(e) => format!(
            "python3 is not available ({e}); install Python 3, then `python3 -m pip install {pip_package}`"
        ),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {missing}");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {missing}");
    false
}
