//! The signed-in member's own account: the second factor's state, its set-up (secret shown once,
//! confirmed with a current code), and new recovery codes (after a current code). Resetting a
//! member's second factor is an admin action on the staff page.

use std::net::SocketAddr;

use super::auth::{CodeForm, CurrentStaff, client_address};
use super::view::PageFrame;
use crate::app::AppState;
use crate::staff::StaffError;
use crate::staff::mfa::{MfaStatus, RecoveryCodes};
use crate::web::errors::{PageError, render};
use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

/// The refusal of a wrong code while setting up.
pub const ENROLMENT_CODE_REFUSED: &str = "That code does not match the secret. Check the time \
     on your phone and type the code your authenticator app shows now, or start again.";
/// The refusal of a wrong code when asking for new recovery codes.
const REGENERATION_CODE_REFUSED: &str = "That code is not right or was used already (or too many \
     attempts were made: wait a few minutes). Type the code your authenticator app shows now.";

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage<'a> {
    frame: PageFrame,
    status: MfaStatus,
    required: bool,
    /// The secret and its URI, shown once right after they are drawn.
    enrolment: Option<(&'a str, &'a str)>,
    /// Whether the confirm form is shown (a secret is pending).
    confirm: bool,
    error: Option<&'a str>,
}

impl AccountPage<'_> {
    fn recovery_codes_left(&self) -> i64 {
        match self.status {
            MfaStatus::On {
                recovery_codes_left,
            } => recovery_codes_left,
            MfaStatus::Off => 0,
        }
    }

    fn is_on(&self) -> bool {
        matches!(self.status, MfaStatus::On { .. })
    }
}

#[derive(Template)]
#[template(path = "admin/recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    frame: PageFrame,
    codes: Vec<&'a str>,
    continue_to: &'a str,
    just_enrolled: bool,
}

/// Renders freshly made recovery codes (the only time they are shown).
pub(super) fn show_recovery_codes(
    frame: PageFrame,
    codes: &RecoveryCodes,
    continue_to: &str,
    just_enrolled: bool,
) -> Result<Response, PageError> {
    Ok(render(&RecoveryCodesPage {
        frame,
        codes: codes.0.iter().map(|c| c.expose_secret()).collect(),
        continue_to,
        just_enrolled,
    })?
    .into_response())
}

async fn account_page(
    state: &AppState,
    staff: &CurrentStaff,
    enrolment: Option<(&str, &str)>,
    confirm: bool,
    error: Option<&str>,
    status_code: StatusCode,
) -> Result<Response, PageError> {
    let status = crate::staff::mfa::status(&state.pool, staff.id)
        .await
        .map_err(PageError::internal)?;
    let page = render(&AccountPage {
        frame: staff.frame("account"),
        status,
        required: staff.role.requires_second_factor(),
        enrolment,
        confirm,
        error,
    })?;
    Ok((status_code, page).into_response())
}

/// `GET /admin/account`.
pub async fn show_account_page(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    account_page(&state, &staff, None, false, None, StatusCode::OK).await
}

/// `POST /admin/account/mfa`: draws a secret and shows it once (a member with a confirmed one is
/// sent back to the account page: replacing it needs an admin's reset).
pub async fn start_mfa_enrolment(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    let begun = crate::staff::mfa::begin_enrolment(
        &state.pool,
        &state.vault,
        staff.id,
        &state.config.cpv_name,
        state.clock.now(),
    )
    .await;
    match begun {
        Ok(enrolment) => {
            let shown = (
                enrolment.secret.expose_secret(),
                enrolment.uri.expose_secret(),
            );
            account_page(&state, &staff, Some(shown), true, None, StatusCode::OK).await
        }
        Err(StaffError::MfaAlreadyOn) => second_factor_already_on(&staff).await,
        Err(e) => Err(PageError::internal(e)),
    }
}

/// A second start or confirmation of the enrolment (another tab, Back, a double click).
async fn second_factor_already_on(staff: &CurrentStaff) -> Result<Response, PageError> {
    staff
        .redirect_with(
            "/admin/account",
            super::flash::Flash::failure(
                "Nothing changed: your second factor is already set up. To replace it, ask an \
                 admin to reset it.",
            ),
        )
        .await
}

fn typed_code(
    form: Result<axum::Form<CodeForm>, axum::extract::rejection::FormRejection>,
) -> String {
    form.map(|axum::Form(f)| f.code).unwrap_or_default()
}

/// `POST /admin/account/mfa/confirm`: a current code confirms the secret; shows the recovery
/// codes once.
pub async fn confirm_mfa_enrolment(
    State(state): State<AppState>,
    staff: CurrentStaff,
    form: Result<axum::Form<CodeForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let code = typed_code(form);
    let confirmed = crate::staff::mfa::confirm_enrolment(
        &state.pool,
        &state.vault,
        staff.id,
        &code,
        state.clock.now(),
    )
    .await;
    match confirmed {
        Ok(codes) => show_recovery_codes(staff.frame("account"), &codes, "/admin/account", true),
        Err(e @ (StaffError::WrongCode | StaffError::NoEnrolment)) => {
            let confirm = matches!(e, StaffError::WrongCode);
            account_page(
                &state,
                &staff,
                None,
                confirm,
                Some(ENROLMENT_CODE_REFUSED),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(StaffError::MfaAlreadyOn) => second_factor_already_on(&staff).await,
        Err(e) => Err(PageError::internal(e)),
    }
}

/// `POST /admin/account/recovery-codes`: new recovery codes (the old ones stop working) after a
/// current TOTP code, throttled like a sign-in.
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    staff: CurrentStaff,
    connect: Result<ConnectInfo<SocketAddr>, axum::extract::rejection::ExtensionRejection>,
    headers: axum::http::HeaderMap,
    form: Result<axum::Form<CodeForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let code = typed_code(form);
    let address = client_address(&state, connect, &headers);
    let regenerated = crate::staff::mfa::regenerate_recovery_codes(
        &state.pool,
        &state.vault,
        staff.id,
        &code,
        address,
        state.clock.now(),
    )
    .await;
    match regenerated {
        Ok(codes) => show_recovery_codes(staff.frame("account"), &codes, "/admin/account", false),
        Err(StaffError::WrongCode | StaffError::NoEnrolment) => {
            account_page(
                &state,
                &staff,
                None,
                false,
                Some(REGENERATION_CODE_REFUSED),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(PageError::internal(e)),
    }
}
