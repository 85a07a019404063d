//! What a partner user's refresh token gets at a customer tenant's authority, in Microsoft's
//! order: GDAP roles there (AADSTS50020), the app's consent there (65001 / 700016 / 90099, per
//! customer), then the customer's Conditional Access (53003 / 53000 / 50076). Each refusal is a
//! fact about that customer only; the partner's own authority and other customers are unaffected.

use time::OffsetDateTime;

use super::errors::AadError;
use crate::seed::{CustomerPolicy, MissingConsentError};
use crate::state::{App, Tenant, User, World};

/// Refuses the token at `customer`'s authority, or lets it through. UNCONFIRMED: the order of the
/// three checks (README "Customer tenants").
pub fn check(
    world: &World,
    app: &App,
    user: &User,
    customer: &Tenant,
    resource_app_id: &str,
    now: OffsetDateTime,
) -> Result<(), AadError> {
    if !world.gdap_active(user.tenant, customer.id, now) {
        return Err(no_gdap(app, user, customer));
    }
    if !app.multitenant {
        return Err(app_not_found(app, customer));
    }
    match world.consents.get(&(customer.id, app.client_id)) {
        None => {
            return Err(match customer.missing_consent_error {
                MissingConsentError::ConsentRequired => consent_required(app),
                MissingConsentError::AppNotFound => app_not_found(app, customer),
                MissingConsentError::PartnerNotAuthorized => partner_not_authorized(app, customer),
            });
        }
        Some(consent) if !consent.covers(resource_app_id) => return Err(consent_required(app)),
        Some(_) => {}
    }
    match customer.conditional_access {
        None => Ok(()),
        Some(CustomerPolicy::Block) => Err(blocked()),
        Some(CustomerPolicy::RequireCompliantDevice) => Err(device_not_compliant()),
        Some(CustomerPolicy::RequireStrongerAuth) => Err(mfa_required(resource_app_id)),
    }
}

/// AADSTS50020: no active GDAP relationship with a role ("User account … does not exist in tenant").
fn no_gdap(app: &App, user: &User, customer: &Tenant) -> AadError {
    AadError::invalid_grant(
        50020,
        format!(
            "User account '{}' from identity provider 'https://sts.windows.net/{}/' does not exist in tenant '{}' and cannot access the application '{}'({}) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.",
            user.upn, user.tenant, customer.display_name, app.client_id, app.display_name
        ),
    )
}

/// AADSTS65001 with `suberror: consent_required` and no `error_uri` (MicrosoftDocs/azure-docs#39189).
pub fn consent_required(app: &App) -> AadError {
    AadError::invalid_grant(
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
            app.client_id, app.display_name
        ),
    )
    .with_suberror("consent_required")
    .without_error_uri()
}

/// AADSTS700016 (`unauthorized_client`): no service principal of the app in the directory.
fn app_not_found(app: &App, customer: &Tenant) -> AadError {
    AadError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            app.client_id, customer.display_name
        ),
    )
}

/// AADSTS90099 (text from the Entra error-code reference; `invalid_grant` is UNCONFIRMED).
fn partner_not_authorized(app: &App, customer: &Tenant) -> AadError {
    AadError::invalid_grant(
        90099,
        format!(
            "The application '{}' ({}) has not been authorized in the tenant '{}'. Applications must be authorized to access the external tenant before partner delegated administrators can use them. Provide pre-consent or execute the appropriate Partner Center API to authorize the application.",
            app.client_id, app.display_name, customer.id
        ),
    )
}

/// AADSTS53003 `invalid_grant` + `suberror: message_only` (Azure SDK for C++ TROUBLESHOOTING.md).
fn blocked() -> AadError {
    AadError::invalid_grant(
        53003,
        "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
    )
    .with_suberror("message_only")
}

/// AADSTS53000: a server-side refresh carries no device, so it is never compliant. UNCONFIRMED:
/// `invalid_grant` without a suberror (only the text is sourced).
fn device_not_compliant() -> AadError {
    AadError::invalid_grant(
        53000,
        "Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant. The user must enroll their device with an approved MDM provider like Intune.",
    )
}

/// AADSTS50076 + `basic_action`, as for a partner-side MFA policy (microsoftgraph/microsoft-graph-docs#6311).
pub fn mfa_required(resource_app_id: &str) -> AadError {
    AadError::invalid_grant(
        50076,
        format!(
            "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{resource_app_id}'."
        ),
    )
    .with_suberror("basic_action")
}
