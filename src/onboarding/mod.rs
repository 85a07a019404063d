//! Partner consent onboarding: invitations (single use, expiring, revocable, optionally bound to a
//! tenant) and the completion of a consent (code redemption, ID token and MFA checks, tenant
//! binding, Partner Center profile, sealed grant, audit), all or nothing.

mod complete;
mod invitation;

pub use complete::{
    ConsentError, ConsentFlow, ConsentOutcome, choose_prompt, complete_consent, start_consent,
};
pub use invitation::{
    InvitationState, InvitationToken, NewInvitationRequest, consent_link, create_invitation,
    create_reconsent_invitation, find_invitation, parse_expected_tenant, revoke_invitation,
};

/// The vault purpose of a partner's refresh token; the row is the partner tenant id.
pub const REFRESH_TOKEN_PURPOSE: crate::vault::Purpose = crate::vault::Purpose::RefreshToken;
