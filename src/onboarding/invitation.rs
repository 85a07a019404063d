//! Invitation links: `{public_url}/consent/{token}`, the token stored only as its SHA-256.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::db::invitations::{Invitation, NewInvitation};
use crate::domain::Actor;

const PREFIX: &str = "sgi_";
const RANDOM_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const ENCODED_LEN: usize = 43;

/// The secret in an invitation link.
pub struct InvitationToken(SecretString);

impl std::fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvitationToken([redacted])")
    }
}

impl InvitationToken {
    /// A fresh token with 256 bits of entropy.
    pub fn generate() -> Self {
        use base64::Engine;
        use rand::RngExt;
        let bytes: [u8; RANDOM_BYTES] = rand::rng().random();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self(SecretString::from(format!("{PREFIX}{encoded}")))
    }

    /// Accepts only the exact shape samgate issues, so junk never reaches the database.
    pub fn parse(candidate: &str) -> Option<Self> {
        let body = candidate.strip_prefix(PREFIX)?;
        let well_formed = body.len() == ENCODED_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(SecretString::from(candidate.to_owned())))
    }

    /// SHA-256 of the token: what the database stores and is searched by. A fast hash is right
    /// for a 256-bit random secret (no dictionary to attack), and the lookup is by exact hash, so
    /// its timing says nothing about how much of a guessed token matched.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.expose_secret().as_bytes()).to_vec()
    }

    /// The token for the link (shown once, to the staff member who created it).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// What staff ask for.
#[derive(Debug)]
pub struct NewInvitationRequest<'a> {
    /// Partner name as staff know it.
    pub partner_name: &'a str,
    /// Tenant GUID or domain, if known.
    pub expected_tenant: Option<&'a str>,
    /// Account to pre-fill.
    pub login_hint: Option<&'a str>,
    /// Re-consent target.
    pub partner_id: Option<Uuid>,
    /// Lifetime.
    pub ttl: std::time::Duration,
    /// Who creates it.
    pub created_by: &'a Actor,
}

/// Normalises an expected tenant: a GUID (lower-case) or a DNS domain (lower-case); None if junk.
pub fn parse_expected_tenant(value: &str) -> Option<String> {
    let value = value.trim();
    if let Ok(guid) = Uuid::parse_str(value) {
        return Some(guid.hyphenated().to_string());
    }
    let domain = value.to_ascii_lowercase();
    let valid = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(domain)
}

/// Creates an invitation and returns it with its token (the only time the token exists in clear).
pub async fn create_invitation(
    pool: &PgPool,
    request: &NewInvitationRequest<'_>,
    now: OffsetDateTime,
) -> Result<(Invitation, InvitationToken), sqlx::Error> {
    let token = InvitationToken::generate();
    let hash = token.hash();
    let expires_at = now + request.ttl;
    let mut tx = pool.begin().await?;
    let invitation = db::invitations::insert(
        &mut *tx,
        &NewInvitation {
            token_hash: &hash,
            partner_name: request.partner_name,
            expected_tenant: request.expected_tenant,
            login_hint: request.login_hint,
            partner_id: request.partner_id,
            created_by: request.created_by,
            expires_at,
        },
        now,
    )
    .await?;
    db::audit::record(
        &mut *tx,
        request.created_by,
        "invitation.created",
        None,
        serde_json::json!({
            "invitation_id": invitation.id,
            "partner_name": request.partner_name,
            "expected_tenant": request.expected_tenant,
            "expires_at": expires_at.unix_timestamp(),
        }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((invitation, token))
}

/// Creates a re-consent invitation for an existing partner: bound to its tenant, pre-filled with
/// the account that consented last, recorded in the partner's audit trail. `None` when there is
/// no such partner.
pub async fn create_reconsent_invitation(
    pool: &PgPool,
    partner_id: Uuid,
    created_by: &Actor,
    ttl: std::time::Duration,
    now: OffsetDateTime,
) -> Result<Option<(Invitation, InvitationToken)>, sqlx::Error> {
    let Some(partner) = db::partners::find(pool, partner_id).await? else {
        return Ok(None);
    };
    let login_hint = db::grants::find(pool, partner_id)
        .await?
        .and_then(|grant| grant.consented_by_upn);
    let tenant = partner.tenant_id.to_string();
    let (invitation, token) = create_invitation(
        pool,
        &NewInvitationRequest {
            partner_name: &partner.display_name,
            expected_tenant: Some(&tenant),
            login_hint: login_hint.as_deref(),
            partner_id: Some(partner.id),
            ttl,
            created_by,
        },
        now,
    )
    .await?;
    // create_invitation's own event names no partner; this one puts the request in its trail.
    db::audit::record(
        pool,
        created_by,
        "partner.reconsent_requested",
        Some(partner.tenant_id),
        serde_json::json!({ "invitation_id": invitation.id }),
        now,
    )
    .await?;
    Ok(Some((invitation, token)))
}

/// The link a partner admin opens: `{public_url}/consent/{token}`.
pub fn consent_link(public_url: &url::Url, token: &InvitationToken) -> String {
    format!(
        "{}/consent/{}",
        public_url.as_str().trim_end_matches('/'),
        token.expose()
    )
}

/// Where an invitation stands.
#[derive(Debug)]
pub enum InvitationState {
    /// It can be used now.
    Usable(Invitation),
    /// Past its expiry.
    Expired,
    /// Already used.
    Used,
    /// Revoked by staff.
    Revoked,
    /// No such invitation.
    Unknown,
}

impl InvitationState {
    /// Classifies an invitation row at `now`.
    pub fn of(invitation: Option<Invitation>, now: OffsetDateTime) -> Self {
        match invitation {
            None => Self::Unknown,
            Some(i) if i.revoked_at.is_some() => Self::Revoked,
            Some(i) if i.used_at.is_some() => Self::Used,
            Some(i) if i.expires_at <= now => Self::Expired,
            Some(i) => Self::Usable(i),
        }
    }
}

/// Looks an invitation up by its token.
pub async fn find_invitation(
    pool: &PgPool,
    token: &InvitationToken,
    now: OffsetDateTime,
) -> Result<InvitationState, sqlx::Error> {
    let invitation = db::invitations::find_by_token_hash(pool, &token.hash()).await?;
    Ok(InvitationState::of(invitation, now))
}

/// Revokes a pending invitation (its link stops working at once) and audits it as `actor`.
/// Returns false, changing nothing, when it is not pending (unknown, used or already revoked).
/// The admin UI and `samgate invitations revoke` both call this.
pub async fn revoke_invitation(
    pool: &PgPool,
    id: Uuid,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !db::invitations::revoke(&mut *tx, id, now).await? {
        return Ok(false);
    }
    db::audit::record(
        &mut *tx,
        actor,
        "invitation.revoked",
        None,
        serde_json::json!({ "invitation_id": id }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = InvitationToken::generate();
        let b = InvitationToken::generate();
        assert!(InvitationToken::parse(a.expose()).is_some());
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_lookup() {
        let good = InvitationToken::generate();
        for bad in [
            "",
            "sgi_",
            &good.expose()[..good.expose().len() - 1],
            &format!("{}A", good.expose()),
            &good.expose().replace("sgi_", "sgk_"),
            "sgi_../../../../etc/passwd0000000000000000000000",
            "sgi_%2e%2e%2f0000000000000000000000000000000000000",
        ] {
            assert!(InvitationToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn expected_tenants_are_guids_or_domains() {
        assert_eq!(
            parse_expected_tenant("72F988BF-86F1-41AF-91AB-2D7CD011DB47").as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(
            parse_expected_tenant("Contoso.onmicrosoft.com").as_deref(),
            Some("contoso.onmicrosoft.com")
        );
        for junk in [
            "contoso",
            "evil.com/..",
            "a..b",
            "-a.com",
            "x y.com",
            "https://contoso.com",
        ] {
            assert_eq!(parse_expected_tenant(junk), None, "{junk}");
        }
    }
}
