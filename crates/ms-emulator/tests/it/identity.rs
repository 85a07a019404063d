//! Discovery, JWKS, /authorize validation, the sign-in pages and the authorization-code grant.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ms_emulator::{DEMO_CLIENT_ID, DEMO_CONTOSO_ADMIN, DEMO_FABRIKAM, DEMO_PASSWORD, MfaState};
use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn discovery_issuer_is_exact_for_a_tenant_and_templated_for_organizations() {
    let env = TestEnv::demo().await;
    let tid = contoso();
    let doc: Value = env
        .get(&format!("/{tid}/v2.0/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{}/{tid}/v2.0", env.base));
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/{tid}/discovery/v2.0/keys", env.base)
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{tid}/oauth2/v2.0/token", env.base)
    );
    let by_domain: Value = env
        .get("/contosopartners.onmicrosoft.com/v2.0/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_domain["issuer"], doc["issuer"]);
    for t in ["organizations", "common"] {
        let doc: Value = env
            .get(&format!("/{t}/v2.0/.well-known/openid-configuration"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], format!("{}/{{tenantid}}/v2.0", env.base));
        let keys: Value = env
            .get(&format!("/{t}/discovery/v2.0/keys"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            keys["keys"][0]["issuer"],
            format!("{}/{{tenantid}}/v2.0", env.base)
        );
    }
    let unknown = env
        .get("/nosuchtenant.example/v2.0/.well-known/openid-configuration")
        .await;
    assert_eq!(unknown.status().as_u16(), 400);
}

#[tokio::test]
async fn id_token_validates_with_nothing_but_the_jwks() {
    let env = TestEnv::demo().await;
    let tokens = consent_and_redeem(&env).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwks: jsonwebtoken::jwk::JwkSet = env
        .get("/organizations/discovery/v2.0/keys")
        .await
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[DEMO_CLIENT_ID.to_string()]);
    v.set_issuer(&[format!("{}/{}/v2.0", env.base, contoso())]);
    let data = jsonwebtoken::decode::<Value>(id_token, &key, &v).expect("valid ID token");
    let c = data.claims;
    assert_eq!(c["tid"], contoso());
    assert_eq!(c["preferred_username"], DEMO_CONTOSO_ADMIN);
    assert_eq!(c["nonce"], "nonce-456");
    assert_eq!(c["ver"], "2.0");
    assert!(c.get("amr").is_none(), "v2 ID tokens carry no amr: {c}");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn code_flow_with_pkce_returns_partner_center_token_refresh_token_and_id_token() {
    let env = TestEnv::demo().await;
    let body = consent_and_redeem(&env).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_number() && body["ext_expires_in"].is_number());
    assert_eq!(
        body["scope"],
        "https://api.partnercenter.microsoft.com/user_impersonation"
    );
    assert!(body["refresh_token"].as_str().unwrap().starts_with("0.A"));
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], "https://api.partnercenter.microsoft.com");
    assert_eq!(at["iss"], format!("https://sts.windows.net/{}/", contoso()));
    assert_eq!(at["scp"], "user_impersonation");
    assert_eq!(at["upn"], DEMO_CONTOSO_ADMIN);
    assert_eq!(at["appid"], DEMO_CLIENT_ID.to_string());
    assert_eq!(at["appidacr"], "1");
    assert_eq!(at["ver"], "1.0");
    assert_eq!(at["amr"], serde_json::json!(["pwd", "mfa"]));
    assert_eq!(env.control.issued_refresh_tokens().len(), 1);
}

#[tokio::test]
async fn authorize_with_unknown_client_shows_700016_page() {
    let env = TestEnv::demo().await;
    let req = Authorize {
        client_id: uuid::Uuid::new_v4().to_string(),
        ..Authorize::default()
    };
    let resp = env.get(&req.path()).await;
    assert_eq!(resp.status().as_u16(), 400);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"emulator-error\""), "{html}");
    assert!(html.contains("AADSTS700016"), "{html}");
}

#[tokio::test]
async fn authorize_with_unregistered_redirect_uri_shows_50011_and_never_redirects() {
    let env = TestEnv::demo().await;
    let req = Authorize {
        redirect_uri: "https://evil.example/cb".to_owned(),
        ..Authorize::default()
    };
    let resp = env.get(&req.path()).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("AADSTS50011"));
}

#[tokio::test]
async fn authorize_with_token_response_type_redirects_unsupported_response_type() {
    let env = TestEnv::demo().await;
    let path = Authorize::default()
        .path()
        .replace("response_type=code", "response_type=token");
    let resp = env.get(&path).await;
    let p = location_params(&resp);
    assert_eq!(p["error"], "unsupported_response_type");
    assert_eq!(p["state"], "state-123");
}

#[tokio::test]
async fn prompt_none_without_session_redirects_login_required() {
    let env = TestEnv::demo().await;
    let req = Authorize {
        prompt: Some("none".to_owned()),
        ..Authorize::default()
    };
    let p = location_params(&env.get(&req.path()).await);
    assert_eq!(p["error"], "login_required");
    assert!(p["error_description"].starts_with("AADSTS50058:"));
}

#[tokio::test]
async fn sso_cookie_lets_prompt_none_return_a_code() {
    let env = TestEnv::demo().await;
    let flow = sign_in(
        &env,
        &Authorize::default(),
        DEMO_CONTOSO_ADMIN,
        DEMO_PASSWORD,
    )
    .await;
    let cookie = flow.cookie.expect("ESTSAUTH cookie");
    assert!(cookie.starts_with("ESTSAUTH="));
    let req = Authorize {
        prompt: Some("none".to_owned()),
        ..Authorize::default()
    };
    let resp = env
        .http
        .get(env.url(&req.path()))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let p = location_params(&resp);
    assert!(p.contains_key("code"), "{p:?}");
}

#[tokio::test]
async fn wrong_password_shows_50126_on_the_sign_in_page() {
    let env = TestEnv::demo().await;
    let req = Authorize::default();
    let html = env.get(&req.path()).await.text().await.unwrap();
    let ctx = ctx_of(&html);
    let resp = env
        .post_form(
            "/organizations/login",
            &[
                ("ctx", &ctx),
                ("login", DEMO_CONTOSO_ADMIN),
                ("passwd", "nope"),
            ],
        )
        .await;
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"passwordError\""), "{html}");
    assert!(html.contains("AADSTS50126"));
    assert!(html.contains("id=\"i0118\""));
}

#[tokio::test]
async fn wrong_mfa_code_is_rejected_and_steps_cannot_be_skipped() {
    let env = TestEnv::demo().await;
    let html = env
        .get(&Authorize::default().path())
        .await
        .text()
        .await
        .unwrap();
    let ctx = ctx_of(&html);
    // Consent before the password is refused.
    let skip = env
        .post_form(
            "/organizations/Consent/Set",
            &[("ctx", &ctx), ("decision", "accept")],
        )
        .await;
    assert!(skip.text().await.unwrap().contains("AADSTS50089"));
    let mfa = env
        .post_form(
            "/organizations/login",
            &[
                ("ctx", &ctx),
                ("login", DEMO_CONTOSO_ADMIN),
                ("passwd", DEMO_PASSWORD),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(mfa.contains("id=\"emulator-mfa-hint\""));
    let wrong = env
        .post_form(
            "/organizations/SAS/ProcessAuth",
            &[("ctx", &ctx), ("otc", "000000x"), ("action", "verify")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(wrong.contains("idSpan_SAOTCC_Error_OTC"), "{wrong}");
}

#[tokio::test]
async fn mfa_not_registered_can_only_go_back_with_50079() {
    let env = TestEnv::demo().await;
    env.control
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRegistered);
    let html = env
        .get(&Authorize::default().path())
        .await
        .text()
        .await
        .unwrap();
    let ctx = ctx_of(&html);
    let page = env
        .post_form(
            "/organizations/login",
            &[
                ("ctx", &ctx),
                ("login", DEMO_CONTOSO_ADMIN),
                ("passwd", DEMO_PASSWORD),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("More information required") && page.contains("idBtn_Back"));
    let resp = env
        .post_form(
            "/organizations/SAS/ProcessAuth",
            &[("ctx", &ctx), ("action", "back")],
        )
        .await;
    let p = location_params(&resp);
    assert_eq!(p["error"], "interaction_required");
    assert!(p["error_description"].starts_with("AADSTS50079:"));
}

#[tokio::test]
async fn mfa_not_required_gives_pwd_only_amr() {
    let env = TestEnv::demo().await;
    env.control
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRequired);
    let body = consent_and_redeem(&env).await;
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["amr"],
        serde_json::json!(["pwd"])
    );
}

#[tokio::test]
async fn consent_cancel_redirects_access_denied_65004() {
    let env = TestEnv::demo().await;
    let html = env
        .get(&Authorize::default().path())
        .await
        .text()
        .await
        .unwrap();
    let ctx = ctx_of(&html);
    env.post_form(
        "/organizations/login",
        &[
            ("ctx", &ctx),
            ("login", DEMO_CONTOSO_ADMIN),
            ("passwd", DEMO_PASSWORD),
        ],
    )
    .await;
    let code = env.control.mfa_code(DEMO_CONTOSO_ADMIN);
    let consent = env
        .post_form(
            "/organizations/SAS/ProcessAuth",
            &[("ctx", &ctx), ("otc", &code)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        consent.contains("idBtn_Accept") && consent.contains("Access Partner Center as you"),
        "{consent}"
    );
    let resp = env
        .post_form(
            "/organizations/Consent/Set",
            &[("ctx", &ctx), ("decision", "cancel")],
        )
        .await;
    let p = location_params(&resp);
    assert_eq!(p["error"], "access_denied");
    assert!(p["error_description"].starts_with("AADSTS65004:"));
    assert_eq!(p["state"], "state-123");
}

#[tokio::test]
async fn form_post_mode_renders_an_auto_submitting_form() {
    let env = TestEnv::demo().await;
    let req = Authorize {
        response_mode: Some("form_post".to_owned()),
        ..Authorize::default()
    };
    let flow = sign_in(&env, &req, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD).await;
    assert_eq!(flow.status, 200);
    let html = flow.body;
    assert!(html.contains(&format!("action=\"{REDIRECT}\"")), "{html}");
    assert!(html.contains("name=\"code\"") && html.contains("name=\"state\" value=\"state-123\""));
    assert!(html.contains("document.forms[0].submit()"));
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

async fn fresh_code(env: &TestEnv, req: &Authorize) -> String {
    let flow = sign_in(env, req, DEMO_CONTOSO_ADMIN, DEMO_PASSWORD).await;
    flow.params()["code"].clone()
}

#[tokio::test]
async fn code_is_single_use_54005() {
    let env = TestEnv::demo().await;
    let req = Authorize::default();
    let code = fresh_code(&env, &req).await;
    let (s1, _) = env
        .token("organizations", &code_form(&code, &req.verifier))
        .await;
    assert_eq!(s1, 200);
    let (s2, body) = env
        .token("organizations", &code_form(&code, &req.verifier))
        .await;
    assert_eq!(s2, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(aadsts(&body), 54005);
}

#[tokio::test]
async fn pkce_mismatch_is_501481() {
    let env = TestEnv::demo().await;
    let req = Authorize::default();
    let code = fresh_code(&env, &req).await;
    let (status, body) = env
        .token(
            "organizations",
            &code_form(&code, "another-verifier-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 501481);
}

#[tokio::test]
async fn code_redeemed_at_another_tenant_is_700005_and_at_home_tenant_works() {
    let env = TestEnv::demo().await;
    let req = Authorize::default();
    let code = fresh_code(&env, &req).await;
    let (status, body) = env
        .token(&DEMO_FABRIKAM.to_string(), &code_form(&code, &req.verifier))
        .await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 700005);
    let (status, body) = env
        .token(&contoso(), &code_form(&code, &req.verifier))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn strict_code_tenant_rejects_organizations() {
    let env = TestEnv::demo().await;
    env.control.set_strict_code_tenant(true);
    let req = Authorize::default();
    let code = fresh_code(&env, &req).await;
    let (_, body) = env
        .token("organizations", &code_form(&code, &req.verifier))
        .await;
    assert_eq!(aadsts(&body), 700005);
}

#[tokio::test]
async fn code_expires_after_ten_minutes_of_emulator_time() {
    let env = TestEnv::demo().await;
    let req = Authorize::default();
    let code = fresh_code(&env, &req).await;
    env.control
        .advance_clock(std::time::Duration::from_secs(601));
    let (_, body) = env
        .token("organizations", &code_form(&code, &req.verifier))
        .await;
    assert_eq!(aadsts(&body), 70008);
}

#[tokio::test]
async fn without_offline_access_there_is_no_refresh_token() {
    let env = TestEnv::demo().await;
    let req = Authorize {
        scope: "openid https://api.partnercenter.microsoft.com/user_impersonation".to_owned(),
        ..Authorize::default()
    };
    let code = fresh_code(&env, &req).await;
    let (status, body) = env
        .token("organizations", &code_form(&code, &req.verifier))
        .await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_some());
}

#[tokio::test]
async fn disabled_user_cannot_sign_in_50057() {
    let env = TestEnv::demo().await;
    env.control.disable_user(DEMO_CONTOSO_ADMIN);
    let html = env
        .get(&Authorize::default().path())
        .await
        .text()
        .await
        .unwrap();
    let ctx = ctx_of(&html);
    let page = env
        .post_form(
            "/organizations/login",
            &[
                ("ctx", &ctx),
                ("login", DEMO_CONTOSO_ADMIN),
                ("passwd", DEMO_PASSWORD),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("usernameError") && page.contains("AADSTS50057"),
        "{page}"
    );
}

/// Microsoft's v2 ID tokens carry no `amr` (MicrosoftDocs/azure-docs#85021); MFA shows in the
/// access token. The switch exists for tests of clients that read it from the ID token.
#[tokio::test]
async fn v2_id_tokens_carry_no_amr_by_default_and_the_access_token_does() {
    let env = TestEnv::demo().await;
    let body = consent_and_redeem(&env).await;
    assert!(
        claims(body["id_token"].as_str().unwrap())
            .get("amr")
            .is_none()
    );
    let amr = claims(body["access_token"].as_str().unwrap())["amr"].clone();
    assert!(
        amr.as_array().is_some_and(|a| a.iter().any(|m| m == "mfa")),
        "{amr}"
    );
    env.control.set_id_token_amr(true);
    let body = consent_and_redeem(&env).await;
    assert!(
        claims(body["id_token"].as_str().unwrap())
            .get("amr")
            .is_some()
    );
}
