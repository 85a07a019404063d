//! The refresh_token grant (rotation, inactivity, revocation, MFA, customers), client
//! authentication errors, client_credentials and client assertions.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ms_emulator::{
    AppSeed, DEMO_CLIENT_ID, DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_CPV_TENANT, DEMO_FABRIKAM,
    RelationshipStatus, Seed, TenantSeed,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::harness::*;

const PC: &str = "https://api.partnercenter.microsoft.com/.default";
const GRAPH: &str = "https://graph.microsoft.com/.default";

fn first_customer(env: &TestEnv) -> Uuid {
    let _ = env;
    let seed = Seed::demo(REDIRECT);
    seed.tenant_named("Contoso Partners").unwrap().customers[0]
}

#[tokio::test]
async fn refresh_returns_a_new_refresh_token_and_the_old_one_keeps_working() {
    let env = TestEnv::demo().await;
    let rt1 = contoso_refresh_token(&env).await;
    let (status, body) = env.refresh(&contoso(), &rt1, PC).await;
    assert_eq!(status, 200, "{body}");
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "mfa"])
    );
    let (status, _) = env.refresh(&contoso(), &rt1, PC).await;
    assert_eq!(
        status, 200,
        "Microsoft does not revoke the previous refresh token"
    );
    assert_eq!(env.control.token_calls("refresh_token"), 2);
    assert_eq!(
        env.control
            .token_calls_for_tenant(&contoso(), "refresh_token"),
        2
    );
    assert_eq!(
        env.control
            .token_calls_for_tenant("contosopartners.onmicrosoft.com", "refresh_token"),
        2
    );
    assert_eq!(
        env.control
            .token_calls_for_tenant("organizations", "refresh_token"),
        0
    );
    assert_eq!(env.control.token_calls("authorization_code"), 1);
}

#[tokio::test]
async fn refresh_token_unused_for_90_days_is_700082() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.advance_clock(Duration::from_secs(89 * 86_400));
    let (status, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(status, 200);
    let newer = body["refresh_token"].as_str().unwrap().to_owned();
    env.control.advance_clock(Duration::from_secs(2 * 86_400));
    let (status, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 700082);
    let (status, _) = env.refresh(&contoso(), &newer, PC).await;
    assert_eq!(status, 200, "the newer token has its own 90 days");
}

#[tokio::test]
async fn revoked_refresh_tokens_give_50173() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.revoke_refresh_tokens(DEMO_CONTOSO_ADMIN);
    let (status, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 50173);
}

#[tokio::test]
async fn new_mfa_policy_gives_50076_with_basic_action() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.require_new_mfa(DEMO_CONTOSO_ADMIN);
    let (status, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 50076);
    assert_eq!(body["suberror"], "basic_action");
    // A new interactive sign-in with MFA fixes it.
    let rt2 = contoso_refresh_token(&env).await;
    let (status, _) = env.refresh(&contoso(), &rt2, PC).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn disabled_user_refresh_is_50057() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.disable_user(DEMO_CONTOSO_ADMIN);
    let (_, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(aadsts(&body), 50057);
}

/// A user who must enrol in MFA gets 50079 at the v2 token endpoint as `invalid_grant` with
/// `suberror: basic_action`, not `interaction_required` (the authorize endpoint's answer).
#[tokio::test]
async fn mfa_enrolment_needed_at_refresh_is_50079_invalid_grant_with_basic_action() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    env.control.require_new_mfa(DEMO_CONTOSO_ADMIN);
    env.control
        .set_user_mfa(DEMO_CONTOSO_ADMIN, ms_emulator::MfaState::NotRegistered);
    let (status, body) = env.refresh(&contoso(), &rt, PC).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(aadsts(&body), 50079);
    assert_eq!(body["suberror"], "basic_action");
}

#[tokio::test]
async fn garbage_refresh_token_is_invalid_grant_with_bad_token() {
    let env = TestEnv::demo().await;
    let (status, body) = env.refresh(&contoso(), "not-a-token", PC).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 9002313);
    assert_eq!(body["suberror"], "bad_token");
}

#[tokio::test]
async fn refresh_token_of_another_client_is_700007() {
    let other = Uuid::new_v4();
    let seed = Seed::demo(REDIRECT)
        .with_app(AppSeed::new(other, "Other", DEMO_CPV_TENANT).with_secret("other-secret"));
    let env = TestEnv::with_seed(seed).await;
    let rt = contoso_refresh_token(&env).await;
    let resp = env
        .http
        .post(env.url(&format!("/{}/oauth2/v2.0/token", contoso())))
        .form(&[
            ("client_id", other.to_string().as_str()),
            ("client_secret", "other-secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", PC),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(aadsts(&body), 700007);
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_7000215_in_microsofts_error_shape() {
    let env = TestEnv::demo().await;
    let resp = env
        .http
        .post(env.url(&format!("/{}/oauth2/v2.0/token", contoso())))
        .form(&[
            ("client_id", DEMO_CLIENT_ID.to_string().as_str()),
            ("client_secret", "wrong"),
            ("grant_type", "client_credentials"),
            ("scope", PC),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["cache-control"], "no-store, no-cache");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with("AADSTS7000215: "), "{desc}");
    let trace = body["trace_id"].as_str().unwrap();
    let corr = body["correlation_id"].as_str().unwrap();
    let ts = body["timestamp"].as_str().unwrap();
    assert!(desc.ends_with(&format!(
        "\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
    )));
    assert_eq!(ts.len(), "2019-11-13 22:33:10Z".len());
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=7000215"
    );
}

#[tokio::test]
async fn expired_secret_is_7000222_and_missing_credential_is_7000218() {
    let env = TestEnv::demo().await;
    env.control.expire_client_secret(DEMO_CLIENT_ID);
    let (status, body) = env
        .token(
            &contoso(),
            &[("grant_type", "client_credentials"), ("scope", PC)],
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(aadsts(&body), 7000222);
    let resp = env
        .http
        .post(env.url(&format!("/{}/oauth2/v2.0/token", contoso())))
        .form(&[
            ("client_id", DEMO_CLIENT_ID.to_string().as_str()),
            ("grant_type", "client_credentials"),
            ("scope", PC),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(aadsts(&body), 7000218);
}

#[tokio::test]
async fn unknown_client_is_700016() {
    let env = TestEnv::demo().await;
    let resp = env
        .http
        .post(env.url(&format!("/{}/oauth2/v2.0/token", contoso())))
        .form(&[
            ("client_id", Uuid::new_v4().to_string().as_str()),
            ("client_secret", "x"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(aadsts(&body), 700016);
}

#[tokio::test]
async fn http_basic_client_authentication_works() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let resp = env
        .http
        .post(env.url(&format!("/{}/oauth2/v2.0/token", contoso())))
        .basic_auth(DEMO_CLIENT_ID, Some(ms_emulator::DEMO_CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("scope", PC),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn customer_tenant_token_needs_app_consent_65001_then_works_with_customer_tid() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let customer = first_customer(&env);
    let (status, body) = env.refresh(&customer.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 65001);
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    let (status, body) = env.refresh(&customer.to_string(), &rt, GRAPH).await;
    assert_eq!(status, 200, "{body}");
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["tid"], customer.to_string());
    assert_eq!(at["aud"], "https://graph.microsoft.com");
    assert_eq!(
        at["idp"],
        format!("https://sts.windows.net/{DEMO_CONTOSO}/")
    );
}

#[tokio::test]
async fn customer_tenant_token_without_gdap_is_50020() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let customer = first_customer(&env);
    env.control.grant_app_consent(customer, DEMO_CLIENT_ID);
    env.control
        .set_relationship_status(DEMO_CONTOSO, customer, RelationshipStatus::Terminated);
    let (_, body) = env.refresh(&customer.to_string(), &rt, GRAPH).await;
    assert_eq!(aadsts(&body), 50020);
    // A Fabrikam customer was never reachable for Contoso.
    let fabrikam_customer = Seed::demo(REDIRECT)
        .tenant_named("Fabrikam IT")
        .unwrap()
        .customers[0];
    env.control
        .grant_app_consent(fabrikam_customer, DEMO_CLIENT_ID);
    let (_, body) = env
        .refresh(&fabrikam_customer.to_string(), &rt, GRAPH)
        .await;
    assert_eq!(aadsts(&body), 50020);
    let _ = DEMO_FABRIKAM;
}

#[tokio::test]
async fn unqualified_scope_means_graph() {
    let env = TestEnv::demo().await;
    let rt = contoso_refresh_token(&env).await;
    let (status, body) = env
        .refresh(&contoso(), &rt, "User.Read offline_access")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "https://graph.microsoft.com/User.Read");
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], "https://graph.microsoft.com");
    assert_eq!(at["scp"], "User.Read");
}

#[tokio::test]
async fn client_credentials_gives_app_only_token_with_roles() {
    let seed = Seed::demo(REDIRECT);
    let mut seed = seed;
    seed.apps[0].app_roles = vec!["Directory.Read.All".to_owned()];
    let env = TestEnv::with_seed(seed).await;
    let (status, body) = env
        .token(
            &DEMO_CPV_TENANT.to_string(),
            &[("grant_type", "client_credentials"), ("scope", GRAPH)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["roles"], json!(["Directory.Read.All"]));
    assert!(at.get("scp").is_none() && at.get("upn").is_none() && at.get("amr").is_none());
    let (_, body) = env
        .token(
            &DEMO_CPV_TENANT.to_string(),
            &[("grant_type", "client_credentials"), ("scope", "User.Read")],
        )
        .await;
    assert_eq!(aadsts(&body), 1002012);
}

struct CertKey {
    encoding: EncodingKey,
    public_pem: String,
}

fn cert_key() -> CertKey {
    let key = rsa::PrivateKey::new(&mut rand::rng(), 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    CertKey {
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        public_pem,
    }
}

fn thumbprint(pem: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(STANDARD.decode(body).unwrap()))
}

fn assertion(key: &CertKey, alg: Algorithm, client: Uuid, aud: &str, now: i64) -> String {
    let mut header = Header::new(alg);
    header.x5t_s256 = Some(thumbprint(&key.public_pem));
    let claims = json!({
        "aud": aud, "iss": client, "sub": client, "jti": Uuid::new_v4(),
        "nbf": now, "iat": now, "exp": now + 600,
    });
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

#[tokio::test]
async fn client_assertion_with_registered_key_works_for_ps256_and_rs256() {
    let key = cert_key();
    let other = cert_key();
    let app_id = Uuid::new_v4();
    let seed = Seed::new()
        .with_tenant(TenantSeed::new(
            DEMO_CPV_TENANT,
            "Vendor",
            "vendor.onmicrosoft.com",
        ))
        .with_app(
            AppSeed::new(app_id, "Cert app", DEMO_CPV_TENANT).with_certificate(&key.public_pem),
        );
    let env = TestEnv::with_seed(seed).await;
    let now = env.control.now().unix_timestamp();
    let aud = format!("{}/{DEMO_CPV_TENANT}/oauth2/v2.0/token", env.base);
    let post = |jwt: String| {
        let env = &env;
        async move {
            let resp = env
                .http
                .post(env.url(&format!("/{DEMO_CPV_TENANT}/oauth2/v2.0/token")))
                .form(&[
                    ("client_id", app_id.to_string().as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &jwt),
                    ("grant_type", "client_credentials"),
                    ("scope", GRAPH),
                ])
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    for alg in [Algorithm::PS256, Algorithm::RS256] {
        let (status, body) = post(assertion(&key, alg, app_id, &aud, now)).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["appidacr"],
            "2"
        );
    }
    let (_, body) = post(assertion(&other, Algorithm::PS256, app_id, &aud, now)).await;
    assert_eq!(aadsts(&body), 700027, "unknown thumbprint");
    let mut forged = assertion(&other, Algorithm::PS256, app_id, &aud, now);
    // Right thumbprint, wrong key.
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 = Some(thumbprint(&key.public_pem));
    let claims_json =
        json!({"aud": aud, "iss": app_id, "sub": app_id, "exp": now + 600, "nbf": now});
    forged = {
        let _ = forged;
        jsonwebtoken::encode(&header, &claims_json, &other.encoding).unwrap()
    };
    let (_, body) = post(forged).await;
    assert_eq!(aadsts(&body), 700027);
    let (_, body) = post(assertion(
        &key,
        Algorithm::PS256,
        app_id,
        "https://elsewhere/token",
        now,
    ))
    .await;
    assert_eq!(body["error"], "invalid_client");
    let (_, body) = post(assertion(&key, Algorithm::PS256, app_id, &aud, now - 3600)).await;
    assert_eq!(aadsts(&body), 700024);
}
