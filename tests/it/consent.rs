//! Partner consent onboarding against the Microsoft emulator and real PostgreSQL.

use ms_emulator::{DEMO_CONTOSO, DEMO_CONTOSO_ADMIN, DEMO_FABRIKAM, DEMO_FABRIKAM_ADMIN, MfaState};
use samgate::onboarding::REFRESH_TOKEN_PURPOSE;
use samgate::vault::SealContext;
use secrecy::ExposeSecret;

use crate::harness::TestApp;
use crate::harness::microsoft::{AtConsent, Landing};

async fn grant_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("count grants")
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("audit")
}

#[tokio::test]
async fn a_partner_admin_with_mfa_consents_and_the_grant_is_sealed() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let response = app.consent_as(&invitation, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("page");
    assert!(html.contains("Consent complete"), "{html}");
    assert!(html.contains("Contoso Partners"), "{html}");
    assert!(html.contains(DEMO_CONTOSO_ADMIN), "{html}");

    let (tenant_id, status): (uuid::Uuid, String) =
        sqlx::query_as("SELECT tenant_id, status FROM partners")
            .fetch_one(&app.pool)
            .await
            .expect("partner");
    assert_eq!(tenant_id, DEMO_CONTOSO);
    assert_eq!(status, "healthy");
    let (sealed, evidence): (Vec<u8>, String) =
        sqlx::query_as("SELECT sealed_refresh_token, mfa_evidence FROM grants")
            .fetch_one(&app.pool)
            .await
            .expect("grant");
    // Microsoft's v2 ID tokens carry no `amr`: the normal path reads MFA from the Partner Center
    // access token.
    assert_eq!(evidence, "access_token.amr");

    // The sealed value opens (bound to this tenant and purpose) to a refresh token Microsoft accepts.
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
        .expect("open grant");
    assert!(
        !sealed
            .windows(16)
            .any(|w| refresh_token.expose_secret().as_bytes().starts_with(w)),
        "sealed bytes contain the token"
    );
    let refreshed = app
        .app
        .identity
        .refresh(
            &DEMO_CONTOSO.to_string(),
            &refresh_token,
            "https://api.partnercenter.microsoft.com/.default",
        )
        .await;
    assert!(refreshed.is_ok(), "{refreshed:?}");
    // Bound to its row: the same bytes do not open as another partner's token.
    assert!(
        app.app
            .vault
            .open_string(
                &sealed,
                &SealContext {
                    purpose: REFRESH_TOKEN_PURPOSE.as_str(),
                    row: &DEMO_FABRIKAM.to_string(),
                },
            )
            .is_err()
    );

    let used: Option<time::OffsetDateTime> = sqlx::query_scalar("SELECT used_at FROM invitations")
        .fetch_one(&app.pool)
        .await
        .expect("invitation");
    assert!(used.is_some());
    assert_eq!(
        audit_actions(&app).await,
        ["invitation.created", "partner.consented"]
    );
}

#[tokio::test]
async fn the_invitation_page_says_who_asks_for_what_and_that_mfa_is_required() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let response = app.get(&invitation).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("page");
    assert!(html.contains("Northwind Control Panel"));
    assert!(html.contains("Partner Center"));
    assert!(html.contains("multi-factor authentication"));
    assert!(html.contains("Sign in with Microsoft"));
}

#[tokio::test]
async fn unknown_malformed_used_expired_and_revoked_invitations_get_clear_pages() {
    let app = TestApp::spawn().await;
    let unknown = format!("/consent/sgi_{}", "A".repeat(43));
    assert_eq!(app.get(&unknown).await.status(), 404);
    assert_eq!(app.get("/consent/not-a-token").await.status(), 404);
    assert_eq!(
        app.get(&format!("/consent/sgi_{}", "A".repeat(5000)))
            .await
            .status(),
        404
    );

    let used = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&used, DEMO_CONTOSO_ADMIN).await.status(),
        200
    );
    let page = app.get(&used).await;
    assert_eq!(page.status(), 410);
    assert!(page.text().await.expect("page").contains("already used"));

    let expired = app.invite("Fabrikam", None).await;
    app.clock
        .advance(std::time::Duration::from_secs(8 * 86_400));
    let page = app.get(&expired).await;
    assert_eq!(page.status(), 410);
    assert!(page.text().await.expect("page").contains("expired"));

    let revoked = app.invite("Fabrikam", None).await;
    sqlx::query("UPDATE invitations SET revoked_at = now() WHERE used_at IS NULL")
        .execute(&app.pool)
        .await
        .expect("revoke");
    let page = app.get(&revoked).await;
    assert_eq!(page.status(), 410);
    assert!(page.text().await.expect("page").contains("withdrawn"));
    // Starting a flow with a dead invitation is refused too.
    let start = app
        .client
        .post(app.url(&format!("{revoked}/start")))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 410);
}

#[tokio::test]
async fn the_start_redirects_only_to_the_configured_authority_with_pkce_state_and_nonce() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let authorize = app.start_consent(&invitation).await;
    let url = url::Url::parse(&authorize).expect("url");
    assert!(authorize.starts_with(&format!(
        "{}/organizations/oauth2/v2.0/authorize?",
        app.emulator.base_url()
    )));
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["prompt"], "select_account");
    assert_eq!(query["response_type"], "code");
    assert!(query["scope"].contains("offline_access"));
    assert!(query["scope"].contains("https://api.partnercenter.microsoft.com/user_impersonation"));
    assert!(query["state"].len() >= 43 && query["nonce"].len() >= 43);
    assert_eq!(
        query["redirect_uri"],
        format!("{}/oauth/callback", app.address)
    );
}

#[tokio::test]
async fn a_tenant_bound_invitation_authorizes_at_that_tenant() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", Some(&DEMO_CONTOSO.to_string())).await;
    let authorize = app.start_consent(&invitation).await;
    assert!(authorize.starts_with(&format!(
        "{}/{DEMO_CONTOSO}/oauth2/v2.0/authorize?",
        app.emulator.base_url()
    )));
    assert_eq!(
        app.consent_as(&invitation, DEMO_CONTOSO_ADMIN)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_admin_of_another_tenant_than_the_invitation_names_is_refused() {
    let app = TestApp::spawn().await;
    let invitation = app
        .invite("Fabrikam", Some(&DEMO_FABRIKAM.to_string()))
        .await;
    let authorize = app.start_consent(&invitation).await;
    let landing = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Accept)
        .await;
    if let Landing::Callback(url) = landing {
        let response = app.client.get(url).send().await.expect("callback");
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    assert_eq!(grant_count(&app).await, 0);
}

#[tokio::test]
async fn a_sign_in_without_mfa_stores_nothing_and_explains_how_to_fix_it() {
    let app = TestApp::spawn().await;
    app.microsoft()
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRequired);
    let invitation = app.invite("Contoso", None).await;
    let response = app.consent_as(&invitation, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(response.status(), 403);
    let html = response.text().await.expect("page");
    assert!(
        html.contains("Multi-factor authentication is required"),
        "{html}"
    );
    assert_eq!(grant_count(&app).await, 0);
    // The invitation is still usable once MFA is fixed.
    app.microsoft()
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::Registered);
    assert_eq!(
        app.consent_as(&invitation, DEMO_CONTOSO_ADMIN)
            .await
            .status(),
        200
    );
}

/// Should an ID token carry `amr` (Microsoft's documentation once said v2 tokens may), it is
/// honoured; without MFA in the access token either, the consent is refused.
#[tokio::test]
async fn an_id_token_that_carries_amr_is_read_and_without_mfa_anywhere_consent_is_refused() {
    let app = TestApp::spawn().await;
    app.microsoft().set_id_token_amr(true);
    let invitation = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&invitation, DEMO_CONTOSO_ADMIN)
            .await
            .status(),
        200
    );
    let evidence: String = sqlx::query_scalar("SELECT mfa_evidence FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("grant");
    assert_eq!(evidence, "id_token.amr");

    // And without MFA there, it is refused.
    app.microsoft()
        .set_user_mfa(DEMO_FABRIKAM_ADMIN, MfaState::NotRequired);
    let second = app.invite("Fabrikam", None).await;
    assert_eq!(
        app.consent_as(&second, DEMO_FABRIKAM_ADMIN).await.status(),
        403
    );
    assert_eq!(grant_count(&app).await, 1);
}

#[tokio::test]
async fn cancelling_at_microsoft_shows_what_happened_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let authorize = app.start_consent(&invitation).await;
    let Landing::Callback(url) = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Cancel)
        .await
    else {
        panic!("cancel must redirect back");
    };
    assert!(url.contains("error=access_denied"), "{url}");
    let response = app.client.get(url).send().await.expect("callback");
    assert_eq!(response.status(), 400);
    let html = response.text().await.expect("page");
    assert!(
        !html.contains("AADSTS65004: "),
        "no raw Microsoft text: {html}"
    );
    assert_eq!(grant_count(&app).await, 0);
}

#[tokio::test]
async fn an_admin_without_registered_mfa_is_told_to_register_it() {
    let app = TestApp::spawn().await;
    app.microsoft()
        .set_user_mfa(DEMO_CONTOSO_ADMIN, MfaState::NotRegistered);
    let invitation = app.invite("Contoso", None).await;
    let authorize = app.start_consent(&invitation).await;
    let Landing::Callback(url) = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Accept)
        .await
    else {
        panic!("must redirect back with an error");
    };
    let response = app.client.get(url).send().await.expect("callback");
    assert_eq!(response.status(), 400);
    let html = response.text().await.expect("page").to_lowercase();
    assert!(
        html.contains("mfa") || html.contains("multi-factor"),
        "{html}"
    );
    assert_eq!(grant_count(&app).await, 0);
}

#[tokio::test]
async fn a_callback_without_a_session_is_rejected() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/oauth/callback?code=abc&state=def"))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("page")
            .contains("could not be matched")
    );
}

#[tokio::test]
async fn a_forged_state_is_rejected_and_burns_the_flow() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let authorize = app.start_consent(&invitation).await;
    let Landing::Callback(url) = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Accept)
        .await
    else {
        panic!("expected a callback");
    };
    let mut forged = url::Url::parse(&url).expect("url");
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let response = app
        .client
        .get(forged.as_str())
        .send()
        .await
        .expect("forged");
    assert_eq!(response.status(), 400);
    // The genuine callback afterwards finds no flow: state is single use.
    let response = app.client.get(url).send().await.expect("genuine");
    assert_eq!(response.status(), 400);
    assert_eq!(grant_count(&app).await, 0);
}

#[tokio::test]
async fn a_replayed_callback_shows_the_outcome_again_and_stores_nothing_twice() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let authorize = app.start_consent(&invitation).await;
    let Landing::Callback(url) = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Accept)
        .await
    else {
        panic!("expected a callback");
    };
    let first = app.client.get(&url).send().await.expect("first");
    assert_eq!(first.status(), 303, "POST/redirect/GET to the outcome");
    assert_eq!(first.headers()["location"], "/consent/done");
    // Back or a refresh onto the spent callback: the outcome again, never "could not be matched".
    let replay = app.client.get(&url).send().await.expect("replay");
    assert_eq!(replay.status(), 303);
    assert_eq!(replay.headers()["location"], "/consent/done");
    assert_eq!(
        audit_actions(&app).await,
        ["invitation.created", "partner.consented"]
    );
    // Another browser replaying the same URL has no outcome to see and is refused.
    let other = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let stranger = other.get(&url).send().await.expect("stranger");
    assert_eq!(stranger.status(), 400);
    let done = other
        .get(app.url("/consent/done"))
        .send()
        .await
        .expect("done");
    assert_eq!(done.status(), 404);
}

#[tokio::test]
async fn the_consent_outcome_survives_a_refresh_and_shows_only_who_when_and_which_tenant() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let first = app.consent_as(&invitation, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let first = first.text().await.expect("page");
    let again = app.get("/consent/done").await;
    assert_eq!(again.status(), 200, "a refresh shows the outcome again");
    let again = again.text().await.expect("page");
    for html in [&first, &again] {
        assert!(html.contains("Consent complete"), "{html}");
        assert!(html.contains("Contoso Partners"), "{html}");
        assert!(html.contains(&DEMO_CONTOSO.to_string()), "{html}");
        assert!(html.contains(DEMO_CONTOSO_ADMIN), "{html}");
        assert!(
            html.contains(" UTC</dd>"),
            "the time, in the one format: {html}"
        );
        assert!(!html.contains("could not be matched"), "{html}");
    }
    assert_eq!(
        audit_actions(&app).await,
        ["invitation.created", "partner.consented"]
    );
}

#[tokio::test]
async fn partner_pages_carry_the_cpv_name_and_the_support_contact() {
    let app = TestApp::builder()
        .with_env("SAMGATE_CPV_NAME", "Northwind Control Panel")
        .with_env(
            "SAMGATE_SUPPORT_URL",
            "https://help.northwind.example/samgate",
        )
        .with_env("SAMGATE_SUPPORT_EMAIL", "partner-support@northwind.example")
        .spawn()
        .await;
    let invitation = app.invite("Contoso", None).await;
    let page = app.get(&invitation).await.text().await.expect("page");
    let unknown = app.get("/consent/not-a-real-invitation-token").await;
    assert_eq!(unknown.status(), 404);
    let unknown = unknown.text().await.expect("page");
    let unmatched = app
        .get("/oauth/callback?code=abc&state=def")
        .await
        .text()
        .await
        .expect("page");
    let done = app
        .consent_as(&invitation, DEMO_CONTOSO_ADMIN)
        .await
        .text()
        .await
        .expect("page");
    for (name, html) in [
        ("invitation", &page),
        ("unknown invitation", &unknown),
        ("unmatched callback", &unmatched),
        ("success", &done),
    ] {
        assert!(html.contains("Northwind Control Panel"), "{name}: {html}");
        assert!(
            html.contains("href=\"https://help.northwind.example/samgate\""),
            "{name}: {html}"
        );
        assert!(
            html.contains("href=\"mailto:partner-support@northwind.example\""),
            "{name}: {html}"
        );
    }
    // The invitation's expiry in the one date format.
    let expires = page
        .split("<span id=\"expires\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("expiry");
    assert!(
        expires.len() == "2026-12-09 10:22 UTC".len() && expires.ends_with(" UTC"),
        "{expires}"
    );
}

#[tokio::test]
async fn an_injected_code_from_another_sign_in_fails_pkce_and_stores_nothing() {
    let app = TestApp::spawn().await;
    // The attacker's own sign-in gives a code bound to the attacker's PKCE verifier…
    let attacker = TestApp::builder().spawn().await;
    let attacker_invitation = app.invite("Attacker", None).await;
    let authorize = app.start_consent(&attacker_invitation).await;
    let Landing::Callback(attacker_callback) = app
        .sign_in_at_microsoft(&authorize, DEMO_FABRIKAM_ADMIN, AtConsent::Accept)
        .await
    else {
        panic!("expected a callback");
    };
    drop(attacker);
    let attacker_code = url::Url::parse(&attacker_callback)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");

    // …which is then injected into a victim's flow (fresh browser, valid state).
    let victim = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let invitation = app.invite("Contoso", None).await;
    let start = victim
        .post(app.url(&format!("{invitation}/start")))
        .send()
        .await
        .expect("start");
    let location =
        url::Url::parse(start.headers()["location"].to_str().expect("ascii")).expect("url");
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let mut callback = url::Url::parse(&app.url("/oauth/callback")).expect("url");
    callback
        .query_pairs_mut()
        .append_pair("code", &attacker_code)
        .append_pair("state", &state);
    let response = victim
        .get(callback.as_str())
        .send()
        .await
        .expect("callback");
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(grant_count(&app).await, 0);
}

#[tokio::test]
async fn a_tenant_already_onboarded_cannot_be_taken_over_by_a_new_invitation() {
    let app = TestApp::spawn().await;
    let first = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&first, DEMO_CONTOSO_ADMIN).await.status(),
        200
    );
    let second = app.invite("Contoso again", None).await;
    let response = app.consent_as(&second, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(response.status(), 409);
    let version: i64 = sqlx::query_scalar("SELECT version FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("grant");
    assert_eq!(version, 1, "the grant was not replaced");
}

#[tokio::test]
async fn a_reconsent_renews_the_same_partner_and_keeps_history() {
    let app = TestApp::spawn().await;
    let first = app.invite("Contoso", None).await;
    assert_eq!(
        app.consent_as(&first, DEMO_CONTOSO_ADMIN).await.status(),
        200
    );
    let partner_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM partners")
        .fetch_one(&app.pool)
        .await
        .expect("partner");
    let renewal = app.invite_with("Contoso", None, Some(partner_id)).await;
    let authorize = app.start_consent(&renewal).await;
    assert!(authorize.contains("prompt=login"), "{authorize}");
    let Landing::Callback(url) = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Accept)
        .await
    else {
        panic!("expected a callback");
    };
    let response = app.client.get(url).send().await.expect("callback");
    let response = app.follow_consent_done(response).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("page")
            .contains("Connection renewed")
    );
    let (id, version): (uuid::Uuid, i64) = sqlx::query_as("SELECT partner_id, version FROM grants")
        .fetch_one(&app.pool)
        .await
        .expect("grant");
    assert_eq!((id, version), (partner_id, 2));
    assert!(
        audit_actions(&app)
            .await
            .contains(&"partner.reconsented".to_owned())
    );

    // A re-consent link for Contoso cannot be used by another organisation's admin.
    let renewal = app.invite_with("Contoso", None, Some(partner_id)).await;
    let response = app.consent_as(&renewal, DEMO_FABRIKAM_ADMIN).await;
    assert_eq!(response.status(), 403);
    assert_eq!(grant_count(&app).await, 1);
}

#[tokio::test]
async fn a_consent_started_from_another_site_is_refused_without_a_session() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    // The invitation page lets the browser send samgate's origin to samgate, and its URL (with
    // the token) to nobody else.
    let page = app.get(&invitation).await;
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/page"),
    ] {
        let start = app
            .client
            .post(app.url(&format!("{invitation}/start")))
            .header(name, value)
            .send()
            .await
            .expect("start");
        assert_eq!(start.status(), 403, "{name}: {value}");
        assert!(start.headers().get("set-cookie").is_none());
        assert!(start.headers().get("location").is_none());
        let page = start.text().await.expect("page");
        assert!(page.contains("started from another website"), "{page}");
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session")
        .fetch_one(&app.pool)
        .await
        .expect("sessions");
    assert_eq!(sessions, 0);
    // The invitation still works from its own page.
    let start = app
        .client
        .post(app.url(&format!("{invitation}/start")))
        .header("origin", app.address.as_str())
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 303);
}

#[tokio::test]
async fn partner_centers_900421_without_a_www_authenticate_header_is_an_mfa_rejection() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    // The 2026 enforcement: 401 with code 900421 in the body, no `invalid_token` header.
    app.microsoft().fail_next(
        ms_emulator::Fault::path("/v1/profiles/organization")
            .status(401)
            .body(serde_json::json!({
                "code": 900421,
                "description": "Multi-factor authentication is required for this operation.",
                "data": [],
                "source": "PartnerCenter"
            })),
    );
    let callback = app.consent_as(&invitation, DEMO_CONTOSO_ADMIN).await;
    assert_eq!(callback.status(), 403);
    let page = callback.text().await.expect("page");
    assert!(
        page.contains("Multi-factor authentication is required"),
        "{page}"
    );
    assert_eq!(grant_count(&app).await, 0, "nothing stored");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_renewed_when_a_flow_starts() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let planted = "samgate_session=AAAAAAAAAAAAAAAAAAAAAA";
    let start = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(app.url(&format!("{invitation}/start")))
        .header("cookie", planted)
        .send()
        .await
        .expect("start");
    let cookie = start.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("samgate_session="), "{cookie}");
    assert!(
        !cookie.starts_with(planted),
        "a planted session id must not survive: {cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: {cookie}"
    );

    // The database keeps only a hash of the session id.
    let id = cookie
        .trim_start_matches("samgate_session=")
        .split(';')
        .next()
        .expect("value");
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM tower_sessions.session")
        .fetch_all(&app.pool)
        .await
        .expect("sessions");
    assert_eq!(rows.len(), 1);
    assert!(
        rows.iter().all(|row| row != id),
        "session id stored in clear"
    );
}

#[tokio::test]
async fn with_an_https_public_url_the_session_cookie_is_secure_and_host_prefixed() {
    let app = TestApp::builder()
        .with_env("SAMGATE_PUBLIC_URL", "https://samgate.example.com/")
        .spawn()
        .await;
    let invitation = app.invite("Contoso", None).await;
    let start = app
        .client
        .post(app.url(&format!("{invitation}/start")))
        .send()
        .await
        .expect("start");
    let cookie = start.headers()["set-cookie"].to_str().expect("ascii");
    assert!(cookie.starts_with("__Host-samgate_session="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn oversized_or_malformed_callbacks_are_refused_without_touching_the_flow() {
    let app = TestApp::spawn().await;
    let huge = "A".repeat(20_000);
    let response = app
        .client
        .get(app.url(&format!("/oauth/callback?code={huge}&state=x")))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), 400);
    let response = app
        .client
        .post(app.url("/oauth/callback"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200_000])
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), 413);
    let response = app
        .client
        .get(app.url("/oauth/callback?code=%ZZ&state=%"))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn tokens_codes_and_the_client_secret_never_reach_logs_or_pages() {
    let app = TestApp::spawn().await;
    let invitation = app.invite("Contoso", None).await;
    let authorize = app.start_consent(&invitation).await;
    let Landing::Callback(url) = app
        .sign_in_at_microsoft(&authorize, DEMO_CONTOSO_ADMIN, AtConsent::Accept)
        .await
    else {
        panic!("expected a callback");
    };
    let code = url::Url::parse(&url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let callback = app.client.get(&url).send().await.expect("callback");
    let page = app
        .follow_consent_done(callback)
        .await
        .text()
        .await
        .expect("page");
    // A failing flow too (its error page and log lines).
    let _ = app
        .client
        .get(&url)
        .send()
        .await
        .expect("replay")
        .text()
        .await;

    let logs = crate::harness::logs::captured();
    let mut secrets: Vec<String> = app.microsoft().issued_refresh_tokens();
    assert!(!secrets.is_empty());
    secrets.push(code);
    secrets.push(ms_emulator::DEMO_CLIENT_SECRET.to_owned());
    secrets.push(invitation.trim_start_matches("/consent/").to_owned());
    secrets.push(app.keks.trim_start_matches("1:").to_owned());
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        assert!(!page.contains(secret.as_str()), "a secret reached the page");
    }
}
