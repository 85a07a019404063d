//! Attacks on ID token validation (`samgate::identity::KeySet`) against a tiny identity provider
//! started per test, whose keys and tokens the test controls; and key rotation at the emulator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ms_emulator::{DEMO_CONTOSO_ADMIN, DEMO_FABRIKAM_ADMIN};
use samgate::identity::{IdTokenError, KeySet, MSA_TENANT};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::TestApp;

const CLIENT_ID: Uuid = Uuid::from_u128(0x11111111_2222_4333_8444_555555555555);
const TENANT: Uuid = Uuid::from_u128(0x72f988bf_86f1_41af_91ab_2d7cd011db47);
const OTHER_TENANT: Uuid = Uuid::from_u128(0x0badc0de_0000_4000_8000_000000000bad);
const NONCE: &str = "nonce-of-this-sign-in";
/// The validation time of every token here (tokens are minted relative to it).
const NOW: i64 = 1_800_000_000;

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(NOW).expect("timestamp")
}

/// An RSA test key: its signing half and its public JWK parts.
struct TestKey {
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl TestKey {
    /// A fresh RSA-2048 key. The `rsa` crate is not a dependency of samgate's tests, so the key
    /// comes from the `openssl` command line (PKCS#8 PEM on stdout).
    fn generate() -> TestKey {
        let output = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("run `openssl genpkey` (install openssl)");
        assert!(output.status.success(), "openssl genpkey failed");
        let encoding = EncodingKey::from_rsa_pem(&output.stdout).expect("RSA PEM");
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("JWK");
        let AlgorithmParameters::RSA(params) = jwk.algorithm else {
            panic!("not an RSA key");
        };
        TestKey {
            encoding,
            n: params.n,
            e: params.e,
        }
    }
}

/// Two keys shared by the tests of this process (generation is the slow part).
fn keys() -> &'static [TestKey; 2] {
    static KEYS: OnceLock<[TestKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [TestKey::generate(), TestKey::generate()])
}

fn published() -> &'static TestKey {
    &keys()[0]
}

fn attacker() -> &'static TestKey {
    &keys()[1]
}

struct IdpState {
    base: String,
    /// (kid, key) pairs in the JWKS.
    jwks: Mutex<Vec<(String, &'static TestKey)>>,
    jwks_requests: AtomicUsize,
}

/// An identity provider with Microsoft's `organizations` metadata shape: templated issuer in the
/// discovery document and per key in the JWKS.
struct Idp {
    state: Arc<IdpState>,
}

impl Idp {
    async fn start(jwks: Vec<(&str, &'static TestKey)>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(IdpState {
            base,
            jwks: Mutex::new(
                jwks.into_iter()
                    .map(|(kid, key)| (kid.to_owned(), key))
                    .collect(),
            ),
            jwks_requests: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route(
                "/organizations/v2.0/.well-known/openid-configuration",
                get(|State(state): State<Arc<IdpState>>| async move {
                    let base = &state.base;
                    Json(json!({
                        "issuer": format!("{base}/{{tenantid}}/v2.0"),
                        "jwks_uri": format!("{base}/organizations/discovery/v2.0/keys"),
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }))
                }),
            )
            .route(
                "/organizations/discovery/v2.0/keys",
                get(|State(state): State<Arc<IdpState>>| async move {
                    state.jwks_requests.fetch_add(1, Ordering::SeqCst);
                    let issuer = format!("{}/{{tenantid}}/v2.0", state.base);
                    let keys: Vec<Value> = state
                        .jwks
                        .lock()
                        .expect("jwks")
                        .iter()
                        .map(|(kid, key)| {
                            json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid,
                                   "n": key.n, "e": key.e, "issuer": issuer})
                        })
                        .collect();
                    Json(json!({ "keys": keys }))
                }),
            )
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Idp { state }
    }

    /// A key set as samgate builds it for this authority and [`CLIENT_ID`].
    fn key_set(&self) -> KeySet {
        KeySet::new(
            reqwest::Client::new(),
            url::Url::parse(&self.state.base).expect("authority"),
            CLIENT_ID,
        )
    }

    fn publish(&self, kid: &str, key: &'static TestKey) {
        self.state
            .jwks
            .lock()
            .expect("jwks")
            .push((kid.to_owned(), key));
    }

    fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// The issuer Microsoft puts in a token of `tenant`.
    fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.state.base)
    }

    /// Claims of a valid ID token of [`TENANT`] for [`CLIENT_ID`] and [`NONCE`], valid at [`NOW`].
    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer(&TENANT.to_string()),
            "tid": TENANT.to_string(),
            "aud": CLIENT_ID.to_string(),
            "oid": "00000000-0000-4000-8000-0000000000aa",
            "sub": "pairwise-subject",
            "preferred_username": "admin@contoso.example",
            "name": "Contoso Admin",
            "amr": ["pwd", "mfa"],
            "nonce": NONCE,
            "iat": NOW - 60,
            "nbf": NOW - 60,
            "exp": NOW + 3600,
            "ver": "2.0",
        })
    }
}

fn sign(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".to_owned());
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

/// A valid token of the published key "k1" with `change` applied to its claims.
fn token_with(idp: &Idp, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = idp.claims();
    change(&mut claims);
    sign(published(), Some("k1"), &claims)
}

async fn idp() -> Idp {
    Idp::start(vec![("k1", published())]).await
}

#[tokio::test]
async fn a_token_signed_by_a_published_key_for_this_app_and_sign_in_is_accepted() {
    let idp = idp().await;
    let keys = idp.key_set();
    let claims = keys
        .validate(&token_with(&idp, |_| {}), NONCE, now())
        .await
        .expect("a valid token");
    assert_eq!(claims.tenant(), TENANT);
    assert_eq!(claims.iss, idp.issuer(&TENANT.to_string()));
    assert_eq!(claims.amr, Some(vec!["pwd".to_owned(), "mfa".to_owned()]));
}

#[tokio::test]
async fn a_signature_by_another_key_under_a_published_kid_is_refused() {
    let idp = idp().await;
    let forged = sign(attacker(), Some("k1"), &idp.claims());
    assert_eq!(
        idp.key_set().validate(&forged, NONCE, now()).await.err(),
        Some(IdTokenError::Signature)
    );
    // A published signature grafted onto changed claims is refused too.
    let genuine = token_with(&idp, |_| {});
    let signature = genuine.rsplit('.').next().expect("signature");
    let mut claims = idp.claims();
    claims["tid"] = json!(OTHER_TENANT.to_string());
    claims["iss"] = json!(idp.issuer(&OTHER_TENANT.to_string()));
    let tampered = sign(published(), Some("k1"), &claims);
    let (unsigned, _) = tampered.rsplit_once('.').expect("jwt");
    assert_eq!(
        idp.key_set()
            .validate(&format!("{unsigned}.{signature}"), NONCE, now())
            .await
            .err(),
        Some(IdTokenError::Signature)
    );
}

#[tokio::test]
async fn a_token_naming_an_unknown_kid_is_refused() {
    let idp = idp().await;
    let token = sign(attacker(), Some("attacker-kid"), &idp.claims());
    assert_eq!(
        idp.key_set().validate(&token, NONCE, now()).await.err(),
        Some(IdTokenError::UnknownKey)
    );
    let without_kid = sign(published(), None, &idp.claims());
    assert!(matches!(
        idp.key_set().validate(&without_kid, NONCE, now()).await,
        Err(IdTokenError::Malformed(_))
    ));
}

#[tokio::test]
async fn unsigned_and_hmac_signed_tokens_are_refused() {
    let idp = idp().await;
    let keys = idp.key_set();
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let claims = encode(&idp.claims());
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{claims}.",
            encode(&json!({"alg": alg, "typ": "JWT", "kid": "k1"}))
        );
        assert!(
            matches!(
                keys.validate(&unsigned, NONCE, now()).await,
                Err(IdTokenError::Malformed(_))
            ),
            "alg {alg}"
        );
    }
    // The classic confusion: HS256 keyed with the published public key's modulus (or any secret).
    for secret in [published().n.as_bytes(), b"a shared secret".as_slice()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        let hmac = jsonwebtoken::encode(
            &header,
            &idp.claims(),
            &EncodingKey::from_secret(secret).expect("HMAC key"),
        )
        .expect("sign");
        assert_eq!(
            keys.validate(&hmac, NONCE, now()).await.err(),
            Some(IdTokenError::Malformed("algorithm is not RS256"))
        );
    }
    // RS256 with the signature stripped.
    let genuine = token_with(&idp, |_| {});
    let (unsigned, _) = genuine.rsplit_once('.').expect("jwt");
    assert_eq!(
        keys.validate(&format!("{unsigned}."), NONCE, now())
            .await
            .err(),
        Some(IdTokenError::Signature)
    );
}

#[tokio::test]
async fn a_token_whose_issuer_is_not_the_templated_issuer_of_its_tenant_is_refused() {
    let idp = idp().await;
    let keys = idp.key_set();
    for issuer in [
        idp.issuer(&OTHER_TENANT.to_string()),
        format!("https://login.example.net/{TENANT}/v2.0"),
        idp.issuer("{tenantid}"),
        format!("{}/", idp.issuer(&TENANT.to_string())),
        idp.issuer(&TENANT.to_string()).to_uppercase(),
    ] {
        let token = token_with(&idp, |c| c["iss"] = json!(issuer));
        assert_eq!(
            keys.validate(&token, NONCE, now()).await.err(),
            Some(IdTokenError::Issuer),
            "issuer {issuer}"
        );
    }
}

#[tokio::test]
async fn a_tid_that_differs_from_the_issuers_tenant_segment_is_refused() {
    let idp = idp().await;
    let token = token_with(&idp, |c| c["tid"] = json!(OTHER_TENANT.to_string()));
    assert_eq!(
        idp.key_set().validate(&token, NONCE, now()).await.err(),
        Some(IdTokenError::Issuer)
    );
}

#[tokio::test]
async fn a_personal_microsoft_account_or_a_tenant_that_is_no_guid_is_refused() {
    let idp = idp().await;
    let keys = idp.key_set();
    assert_eq!(
        MSA_TENANT.to_string(),
        "9188040d-6c67-4c5b-b112-36a304b66dad"
    );
    // Consistent issuer and tid: only the tenant rule can refuse it.
    for tenant in [
        MSA_TENANT.to_string(),
        Uuid::nil().to_string(),
        "contoso.onmicrosoft.com".to_owned(),
    ] {
        let token = token_with(&idp, |c| {
            c["tid"] = json!(tenant);
            c["iss"] = json!(idp.issuer(&tenant));
        });
        assert_eq!(
            keys.validate(&token, NONCE, now()).await.err(),
            Some(IdTokenError::Tenant),
            "tenant {tenant}"
        );
    }
}

#[tokio::test]
async fn a_token_for_another_app_is_refused() {
    let idp = idp().await;
    let keys = idp.key_set();
    for audience in [
        json!(Uuid::new_v4().to_string()),
        json!("https://api.partnercenter.microsoft.com"),
        json!([Uuid::new_v4().to_string()]),
    ] {
        let token = token_with(&idp, |c| c["aud"] = audience.clone());
        assert_eq!(
            keys.validate(&token, NONCE, now()).await.err(),
            Some(IdTokenError::Signature),
            "aud {audience}"
        );
    }
    let without = token_with(&idp, |c| {
        c.as_object_mut().expect("object").remove("aud");
    });
    assert_eq!(
        keys.validate(&without, NONCE, now()).await.err(),
        Some(IdTokenError::Signature)
    );
}

#[tokio::test]
async fn a_token_of_another_sign_in_is_refused_by_its_nonce() {
    let idp = idp().await;
    let keys = idp.key_set();
    let token = token_with(&idp, |_| {});
    assert_eq!(
        keys.validate(&token, "nonce-of-another-sign-in", now())
            .await
            .err(),
        Some(IdTokenError::Nonce)
    );
    assert_eq!(
        keys.validate(&token, &NONCE[..NONCE.len() - 1], now())
            .await
            .err(),
        Some(IdTokenError::Nonce),
        "a prefix is not the nonce"
    );
    let without = token_with(&idp, |c| {
        c.as_object_mut().expect("object").remove("nonce");
    });
    assert_eq!(
        keys.validate(&without, NONCE, now()).await.err(),
        Some(IdTokenError::Nonce)
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_two_minutes_of_skew() {
    let idp = idp().await;
    let keys = idp.key_set();
    let expired = token_with(&idp, |c| c["exp"] = json!(NOW - 121));
    assert_eq!(
        keys.validate(&expired, NONCE, now()).await.err(),
        Some(IdTokenError::Expired)
    );
    let early = token_with(&idp, |c| c["nbf"] = json!(NOW + 121));
    assert_eq!(
        keys.validate(&early, NONCE, now()).await.err(),
        Some(IdTokenError::Expired)
    );
    // Within the skew, a clock a little off on either side does not lock the admin out.
    let just_expired = token_with(&idp, |c| c["exp"] = json!(NOW - 119));
    assert!(keys.validate(&just_expired, NONCE, now()).await.is_ok());
    let almost_valid = token_with(&idp, |c| c["nbf"] = json!(NOW + 119));
    assert!(keys.validate(&almost_valid, NONCE, now()).await.is_ok());
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let idp = idp().await;
    let token = token_with(&idp, |c| {
        c.as_object_mut().expect("object").remove("exp");
    });
    assert_eq!(
        idp.key_set().validate(&token, NONCE, now()).await.err(),
        Some(IdTokenError::Expired)
    );
}

#[tokio::test]
async fn a_key_published_after_the_keys_were_cached_is_fetched_when_a_token_names_it() {
    let idp = idp().await;
    let keys = idp.key_set();
    assert!(
        keys.validate(&token_with(&idp, |_| {}), NONCE, now())
            .await
            .is_ok()
    );
    assert_eq!(idp.jwks_requests(), 1, "keys are fetched once and cached");
    assert!(
        keys.validate(&token_with(&idp, |_| {}), NONCE, now())
            .await
            .is_ok()
    );
    assert_eq!(idp.jwks_requests(), 1, "a known kid uses the cache");

    // Microsoft rotates: a new kid appears in the JWKS and new tokens are signed with it.
    idp.publish("k2", attacker());
    let rotated = sign(attacker(), Some("k2"), &idp.claims());
    let outcome = keys.validate(&rotated, NONCE, now()).await;
    assert_eq!(
        idp.jwks_requests(),
        2,
        "the unknown kid re-fetched the keys"
    );
    assert!(
        outcome.is_ok(),
        "a token of the new key is accepted: {outcome:?}"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_hammer_the_jwks_endpoint() {
    let idp = idp().await;
    let keys = idp.key_set();
    assert!(
        keys.validate(&token_with(&idp, |_| {}), NONCE, now())
            .await
            .is_ok()
    );
    assert_eq!(idp.jwks_requests(), 1);
    for i in 0..50 {
        let token = sign(attacker(), Some(&format!("forged-{i}")), &idp.claims());
        assert_eq!(
            keys.validate(&token, NONCE, now()).await.err(),
            Some(IdTokenError::UnknownKey)
        );
    }
    assert!(
        idp.jwks_requests() <= 2,
        "50 forged kids may cost one re-fetch, not {}",
        idp.jwks_requests() - 1
    );
    assert!(
        keys.validate(&token_with(&idp, |_| {}), NONCE, now())
            .await
            .is_ok(),
        "genuine tokens still pass"
    );
}

#[tokio::test]
async fn a_consent_after_microsoft_rotates_its_signing_key_still_succeeds() {
    let app = TestApp::spawn().await;
    let first = app
        .consent_as(&app.invite("Contoso", None).await, DEMO_CONTOSO_ADMIN)
        .await;
    assert_eq!(first.status(), 200, "first consent");

    let before = app.microsoft().signing_key_ids();
    app.microsoft().rotate_signing_key();
    let after = app.microsoft().signing_key_ids();
    assert!(
        !before.contains(&after[0]),
        "the emulator signs with a new kid"
    );

    let second = app
        .consent_as(&app.invite("Fabrikam", None).await, DEMO_FABRIKAM_ADMIN)
        .await;
    let status = second.status();
    let page = second.text().await.expect("page");
    assert_eq!(
        status, 200,
        "the second consent, signed by the new key: {page}"
    );
    let grants: i64 = sqlx::query_scalar("SELECT count(*) FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(grants, 2);
}

/// A user from another tenant (a GDAP or B2B sign-in) has no `oid` in the tenant that issued the
/// token: Microsoft's v2 ID token then names the user by `home_oid` (with `home_tid` and `idp`).
#[tokio::test]
async fn a_token_naming_its_user_by_home_oid_only_is_accepted_with_that_user() {
    let idp = idp().await;
    let home_oid = "00000000-0000-4000-8000-0000000000bb";
    let token = token_with(&idp, |c| {
        let claims = c.as_object_mut().expect("claims object");
        claims.remove("oid");
        claims.insert("home_oid".into(), json!(home_oid));
        claims.insert("home_tid".into(), json!(OTHER_TENANT.to_string()));
        claims.insert(
            "idp".into(),
            json!(format!("https://sts.windows.net/{OTHER_TENANT}/")),
        );
    });
    let claims = idp
        .key_set()
        .validate(&token, NONCE, now())
        .await
        .expect("a token identifying its user by home_oid");
    assert_eq!(claims.oid, Uuid::parse_str(home_oid).expect("uuid"));
    assert_eq!(claims.home_tenant(), Some(OTHER_TENANT));
}

/// Without `oid` and `home_oid` the user cannot be identified: the refusal names the claim, not
/// the signature (which would send an operator to check the keys).
#[tokio::test]
async fn a_token_without_any_user_object_id_is_refused_naming_the_missing_claim() {
    let idp = idp().await;
    let token = token_with(&idp, |c| {
        c.as_object_mut().expect("claims object").remove("oid");
    });
    let err = idp
        .key_set()
        .validate(&token, NONCE, now())
        .await
        .expect_err("no user object id");
    assert_eq!(err, IdTokenError::MissingClaim("oid"));
    assert!(err.to_string().contains("oid"), "{err}");

    let token = token_with(&idp, |c| {
        c.as_object_mut().expect("claims object").remove("tid");
    });
    let err = idp
        .key_set()
        .validate(&token, NONCE, now())
        .await
        .expect_err("no tenant");
    assert_eq!(err, IdTokenError::MissingClaim("tid"));
}
