//! Starting and completing a consent. The web layer keeps a [`ConsentFlow`] in the server-side
//! session between the two; everything else happens here, and nothing is stored unless every
//! check passed (state, code, ID token, MFA, tenant binding, Partner Center acceptance).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::REFRESH_TOKEN_PURPOSE;
use super::invitation::InvitationState;
use crate::app::App;
use crate::db;
use crate::db::invitations::Invitation;
use crate::domain::Actor;
use crate::identity::{
    AuthCodeFlow, BeginRequest, Callback, Classified, CompletedFlow, FlowError, FlowScopes,
    IdentityError, Prompt, Redemption, access_token_amr,
};
use crate::partner_center::PartnerCenterError;
use crate::vault::SealContext;

/// A flow older than this is refused at the callback (Microsoft's codes live ~10 minutes).
const FLOW_MAX_AGE_SECONDS: i64 = 20 * 60;

/// What the session remembers between the redirect to Microsoft and the callback.
pub type ConsentFlow = AuthCodeFlow<ConsentContext>;

/// What a consent remembers beside the flow's state, nonce and verifier.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsentContext {
    /// The invitation being used.
    pub invitation_id: Uuid,
    /// The tenant segment used at authorize; the code is redeemed at the same one.
    authority_tenant: String,
}

/// The result of a completed consent, for the success page.
#[derive(Debug)]
pub struct ConsentOutcome {
    /// The partner's tenant.
    pub tenant_id: Uuid,
    /// The organisation Partner Center reports.
    pub organization: String,
    /// Who consented (display name).
    pub consented_by: Option<String>,
    /// Their sign-in name.
    pub consented_by_upn: Option<String>,
    /// Whether this renewed an existing partner's grant.
    pub reconsent: bool,
}

/// Why a consent did not complete. Each variant is a page that tells the admin what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No flow in the session, or the returned `state` is not ours (forged, replayed, other tab).
    #[error("state missing or mismatched")]
    StateMismatch,
    /// The flow is too old.
    #[error("consent flow expired")]
    FlowExpired,
    /// Microsoft redirected back with an error.
    #[error("Microsoft returned {}", .0.error)]
    Microsoft(Classified),
    /// Neither `code` nor `error` came back.
    #[error("callback without code")]
    MissingCode,
    /// The invitation can no longer be used.
    #[error("invitation is not usable")]
    InvitationUnusable,
    /// Redeeming the code or validating the ID token failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Neither the ID token nor the access token shows MFA.
    #[error("sign-in without MFA")]
    NoMfa,
    /// The account belongs to another tenant than the invitation names.
    #[error("tenant does not match the invitation")]
    TenantMismatch,
    /// The tenant is already onboarded as a partner.
    #[error("tenant already onboarded")]
    TenantTaken,
    /// Partner Center refused the fresh token (MFA not satisfied, per section 4).
    #[error("Partner Center refused the token")]
    PartnerCenterRefused(PartnerCenterError),
    /// Partner Center failed otherwise.
    #[error("Partner Center failed: {0}")]
    PartnerCenter(PartnerCenterError),
    /// Storage or sealing failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<FlowError> for ConsentError {
    fn from(err: FlowError) -> Self {
        match err {
            FlowError::StateMismatch => Self::StateMismatch,
            FlowError::Expired => Self::FlowExpired,
            FlowError::Microsoft(classified) => Self::Microsoft(classified),
            FlowError::MissingCode => Self::MissingCode,
            FlowError::Redemption(e) | FlowError::IdToken(e) => Self::Identity(e),
            FlowError::NoIdToken => Self::Identity(IdentityError::Protocol(
                "no ID token in the token response".into(),
            )),
        }
    }
}

impl From<sqlx::Error> for ConsentError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(format!("database: {err}"))
    }
}

/// Microsoft accepts one `prompt` value, so the choice is deliberate:
/// - a new partner gets `select_account`: a browser still signed in to another account (a
///   customer's admin, a personal test account) must not consent silently as that account, and
///   Microsoft shows the consent screen anyway while the tenant has not consented;
/// - a re-consent gets `login`: the old sign-in is what failed, so credentials and MFA are asked
///   afresh even with a browser session;
/// - a re-consent after Microsoft said the consent itself is missing (AADSTS65001) gets
///   `consent`, so the admin sees and grants the permissions tenant-wide again.
pub fn choose_prompt(invitation: &Invitation, partner_error_code: Option<&str>) -> Prompt {
    match (invitation.partner_id, partner_error_code) {
        (Some(_), Some("65001")) => Prompt::Consent,
        (Some(_), _) => Prompt::Login,
        (None, _) => Prompt::SelectAccount,
    }
}

/// Builds the flow for `invitation` and the URL to send the browser to. `partner_error_code` is
/// the Microsoft code behind a re-consented partner's current state, if any.
pub fn start_consent(
    app: &App,
    invitation: &Invitation,
    partner_error_code: Option<&str>,
    now: OffsetDateTime,
) -> Result<(ConsentFlow, Url), ConsentError> {
    // A tenant-bound invitation authorizes at that tenant: Microsoft itself then refuses accounts
    // of other tenants. Otherwise `organizations` (work accounts only).
    let authority_tenant = invitation
        .expected_tenant
        .clone()
        .unwrap_or_else(|| "organizations".to_owned());
    let domain_hint = invitation
        .expected_tenant
        .as_deref()
        .filter(|t| Uuid::parse_str(t).is_err());
    let prompt = choose_prompt(invitation, partner_error_code);
    let redirect_uri = app.config.redirect_uri();
    let scopes = consent_scopes(app);
    let request = BeginRequest {
        scopes_base: FlowScopes::Consent,
        tenant: &authority_tenant,
        redirect_uri: &redirect_uri,
        scopes: &scopes,
        prompt,
        login_hint: invitation.login_hint.as_deref(),
        domain_hint,
    };
    let context = ConsentContext {
        invitation_id: invitation.id,
        authority_tenant: authority_tenant.clone(),
    };
    let (flow, url) = AuthCodeFlow::begin(&app.identity, &request, context, now)?;
    Ok((flow, url))
}

/// The Partner Center scope, then any configured Graph scopes (consented at the same time).
pub fn consent_scopes(app: &App) -> Vec<String> {
    let microsoft = &app.config.microsoft;
    let mut scopes = vec![partner_center_scope(app)];
    scopes.extend(
        microsoft
            .graph_scopes
            .iter()
            .map(|s| format!("{}/{s}", microsoft.graph_resource.trim_end_matches('/'))),
    );
    scopes
}

fn partner_center_scope(app: &App) -> String {
    format!(
        "{}/user_impersonation",
        app.config
            .microsoft
            .partner_center_resource
            .trim_end_matches('/')
    )
}

/// Completes a consent from the callback's parameters. `flow` has already been removed from the
/// session by the caller, so whatever happens here, it cannot be used twice.
pub async fn complete_consent(
    app: &App,
    flow: ConsentFlow,
    returned_state: Option<&str>,
    code: Option<SecretString>,
    error: Option<(&str, Option<&str>)>,
) -> Result<ConsentOutcome, ConsentError> {
    let now = app.clock.now();
    let callback = Callback {
        state: returned_state,
        code,
        error,
    };
    let accepted = flow.accept(callback, FLOW_MAX_AGE_SECONDS, now)?;
    let invitation =
        db::invitations::find_by_id(&app.pool, accepted.context().invitation_id).await?;
    let InvitationState::Usable(invitation) = InvitationState::of(invitation, now) else {
        return Err(ConsentError::InvitationUnusable);
    };

    let redirect_uri = app.config.redirect_uri();
    let scope = format!(
        "openid profile offline_access {}",
        partner_center_scope(app)
    );
    let authority_tenant = accepted.context().authority_tenant.clone();
    let CompletedFlow { claims, tokens, .. } = accepted
        .redeem(
            &app.identity,
            &Redemption {
                tenant: &authority_tenant,
                redirect_uri: &redirect_uri,
                scope: &scope,
            },
            now,
        )
        .await?;
    let tenant_id = claims.tenant();
    if let Some(expected) = invitation.expected_tenant.as_deref()
        && let Ok(expected) = Uuid::parse_str(expected)
        && expected != tenant_id
    {
        return Err(ConsentError::TenantMismatch);
    }

    // MFA evidence: the ID token's `amr` when it has one (Microsoft's docs disagree on whether v2
    // ID tokens carry it), else the Partner Center access token's `amr` (section 3.1 and 4).
    let mfa_evidence = match &claims.amr {
        Some(amr) if amr.iter().any(|m| m == "mfa") => "id_token.amr",
        Some(_) => return Err(ConsentError::NoMfa),
        None => match access_token_amr(&tokens.access_token) {
            Some(amr) if amr.iter().any(|m| m == "mfa") => "access_token.amr",
            _ => return Err(ConsentError::NoMfa),
        },
    };
    let refresh_token = tokens
        .refresh_token
        .as_ref()
        .ok_or_else(|| IdentityError::Protocol("no refresh token (offline_access)".into()))?;

    // Partner Center must accept the token: this proves the account is a partner user and that
    // the MFA claim satisfies Partner Center, before anything is stored.
    let profile = match app
        .partner_center
        .organization_profile(&tokens.access_token)
        .await
    {
        Ok(profile) => profile,
        Err(err @ PartnerCenterError::TokenRejected { .. }) => {
            return Err(ConsentError::PartnerCenterRefused(err));
        }
        Err(err) => return Err(ConsentError::PartnerCenter(err)),
    };
    if profile
        .tenant_id
        .as_deref()
        .and_then(|t| Uuid::parse_str(t).ok())
        .is_some_and(|t| t != tenant_id)
    {
        return Err(ConsentError::TenantMismatch);
    }
    let mpn_id = app
        .partner_center
        .mpn_id(&tokens.access_token)
        .await
        .ok()
        .flatten();
    let organization = profile
        .company_name
        .clone()
        .unwrap_or_else(|| invitation.partner_name.clone());

    let sealed = app
        .vault
        .seal_str(
            refresh_token,
            &SealContext {
                purpose: REFRESH_TOKEN_PURPOSE.as_str(),
                row: &tenant_id.to_string(),
            },
        )
        .map_err(|e| ConsentError::Internal(format!("sealing failed: {e}")))?;

    let mut tx = app.pool.begin().await?;
    // Re-read under a lock: two tabs completing the same invitation cannot both win.
    let locked = db::invitations::lock(&mut *tx, invitation.id).await?;
    let InvitationState::Usable(invitation) = InvitationState::of(locked, now) else {
        return Err(ConsentError::InvitationUnusable);
    };
    let existing = db::partners::find_by_tenant(&mut *tx, tenant_id).await?;
    let reconsent = match (invitation.partner_id, &existing) {
        (Some(target), Some(partner)) if partner.id == target => true,
        (Some(_), _) => return Err(ConsentError::TenantMismatch),
        (None, Some(partner)) if partner.status != "offboarded" => {
            return Err(ConsentError::TenantTaken);
        }
        (None, _) => false,
    };
    let partner_id = db::partners::upsert_consented(
        &mut *tx,
        &db::partners::ConsentedPartner {
            tenant_id,
            display_name: &organization,
            domain: profile.domain.as_deref(),
            mpn_id: mpn_id.as_deref(),
        },
        now,
    )
    .await?;
    db::grants::replace(
        &mut *tx,
        &db::grants::NewGrant {
            partner_id,
            sealed_refresh_token: &sealed.bytes,
            kek_id: i32::try_from(sealed.kek_id)
                .map_err(|_| ConsentError::Internal("kek id".into()))?,
            app_id: app.identity.client_id(),
            cloud: &app.config.microsoft.cloud,
            consented_by_oid: claims.oid,
            consented_by_name: claims.name.as_deref(),
            consented_by_upn: claims.preferred_username.as_deref(),
            mfa_evidence,
        },
        now,
    )
    .await?;
    db::invitations::mark_used(&mut *tx, invitation.id, partner_id, claims.oid, now).await?;
    // Announced with the change itself (webhook outbox): a re-consent that ends a failure state
    // is a recovery, anything else a consent.
    let previous_status = existing.as_ref().map(|p| p.status.as_str());
    let recovered = reconsent && !matches!(previous_status, Some("healthy") | None);
    crate::webhooks::enqueue(
        &mut *tx,
        if recovered {
            crate::webhooks::EventType::PartnerRecovered
        } else {
            crate::webhooks::EventType::PartnerConsented
        },
        Some(tenant_id),
        serde_json::json!({
            "organization": organization,
            "reconsent": reconsent,
            "previous_status": previous_status,
            "status": "healthy",
        }),
        now,
    )
    .await?;
    db::audit::record(
        &mut *tx,
        &Actor::PartnerAdmin(claims.oid),
        if reconsent {
            "partner.reconsented"
        } else {
            "partner.consented"
        },
        Some(tenant_id),
        serde_json::json!({
            "invitation_id": invitation.id,
            "organization": organization,
            "consented_by_oid": claims.oid,
            "mfa_evidence": mfa_evidence,
            "app_id": app.identity.client_id(),
            "mpn_id": mpn_id,
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    // This instance serves the renewed partner at once; others within the directory's few seconds.
    app.partners.invalidate(tenant_id).await;
    tracing::info!(
        partner.tenant_id = %tenant_id,
        reconsent,
        "partner consent stored"
    );
    Ok(ConsentOutcome {
        tenant_id,
        organization,
        consented_by: claims.name,
        consented_by_upn: claims.preferred_username,
        reconsent,
    })
}
