//! Staff management (admin only): list, add (generated password shown once), change role,
//! disable, end sessions, reset a member's second factor.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::view::{PageFrame, when_or};
use crate::app::AppState;
use crate::db;
use crate::staff::{NewStaffRequest, Role, StaffError};
use crate::web::errors::{PageError, render};

struct StaffLine {
    id: Uuid,
    email: String,
    name: String,
    role: &'static str,
    disabled: bool,
    last_login: String,
    is_self: bool,
    mfa: bool,
}

/// The add form's values, echoed back when one is wrong.
#[derive(Debug, Default, Deserialize)]
pub struct AddStaffForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "admin/staff.html")]
struct StaffPage {
    frame: PageFrame,
    members: Vec<StaffLine>,
    roles: [&'static str; 3],
    form: AddStaffForm,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/staff_created.html")]
struct StaffCreatedPage<'a> {
    frame: PageFrame,
    name: &'a str,
    email: &'a str,
    role: &'a str,
    password: &'a str,
}

const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

async fn staff_page(
    state: &AppState,
    staff: &CurrentStaff,
    form: AddStaffForm,
    error: Option<String>,
) -> Result<StaffPage, PageError> {
    let with_mfa = db::staff::with_confirmed_mfa(&state.pool)
        .await
        .map_err(PageError::internal)?;
    let members = db::staff::list(&state.pool)
        .await
        .map_err(PageError::internal)?
        .into_iter()
        .map(|m| StaffLine {
            mfa: with_mfa.contains(&m.id),
            id: m.id,
            is_self: m.id == staff.id,
            role: Role::parse(&m.role).map_or("unknown", Role::as_str),
            disabled: m.disabled_at.is_some(),
            last_login: when_or(m.last_login_at, "never"),
            email: m.email,
            name: m.display_name,
        })
        .collect();
    Ok(StaffPage {
        frame: staff.frame("staff"),
        members,
        roles: ROLES,
        form,
        error,
    })
}

/// `GET /admin/staff`.
pub async fn list_staff(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, PageError> {
    let page = staff_page(&state, &staff, AddStaffForm::default(), None).await?;
    Ok(render(&page)?.into_response())
}

fn bad_form() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This form is not valid",
        "Reload the staff page and try again.",
    )
}

async fn refuse(
    state: &AppState,
    staff: &CurrentStaff,
    form: AddStaffForm,
    status: StatusCode,
    message: String,
) -> Result<Response, PageError> {
    let page = staff_page(state, staff, form, Some(message)).await?;
    Ok((status, render(&page)?).into_response())
}

/// `POST /admin/staff`: creates a member with a generated password, shown once.
pub async fn add_staff(
    State(state): State<AppState>,
    staff: CurrentStaff,
    form: Result<axum::Form<AddStaffForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let axum::Form(form) = form.map_err(|_| bad_form())?;
    let Some(role) = Role::parse(&form.role) else {
        return refuse(
            &state,
            &staff,
            form,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a role.".into(),
        )
        .await;
    };
    let actor = staff.actor();
    let added = crate::staff::add_staff(
        &state.pool,
        NewStaffRequest {
            email: &form.email,
            display_name: Some(&form.display_name),
            role,
            password: None,
            actor: &actor,
        },
        state.clock.now(),
    )
    .await;
    let (member, password): (_, SecretString) = match added {
        Ok(added) => added,
        Err(e @ (StaffError::InvalidEmail | StaffError::InvalidName)) => {
            return refuse(
                &state,
                &staff,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}.", capitalise(&e.to_string())),
            )
            .await;
        }
        Err(StaffError::EmailTaken) => {
            return refuse(
                &state,
                &staff,
                form,
                StatusCode::CONFLICT,
                "A staff member with this email already exists.".into(),
            )
            .await;
        }
        Err(e) => return Err(PageError::internal(e)),
    };
    Ok(render(&StaffCreatedPage {
        frame: staff.frame("staff"),
        name: &member.display_name,
        email: &member.email,
        role: role.as_str(),
        password: password.expose_secret(),
    })?
    .into_response())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn staff_not_found() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Staff member not found",
        "There is no staff member at this address.",
    )
}

fn parse_id(id: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(id).map_err(|_| staff_not_found())
}

async fn after_change(
    state: &AppState,
    staff: &CurrentStaff,
    result: Result<(), StaffError>,
    done: String,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => {
            staff
                .redirect_with("/admin/staff", super::flash::Flash::success(done))
                .await
        }
        Err(StaffError::NotFound) => Err(staff_not_found()),
        Err(StaffError::LastAdmin) => {
            refuse(
                state,
                staff,
                AddStaffForm::default(),
                StatusCode::CONFLICT,
                "At least one active admin must remain: make someone else an admin first.".into(),
            )
            .await
        }
        Err(e) => Err(PageError::internal(e)),
    }
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/staff/{id}/role`: changes the role and ends the member's sessions.
pub async fn change_staff_role(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    form: Result<axum::Form<RoleForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let axum::Form(form) = form.map_err(|_| bad_form())?;
    let role = Role::parse(&form.role).ok_or_else(bad_form)?;
    let result = crate::staff::set_role(&state.pool, id, role, &staff.actor(), state.clock.now())
        .await
        .map(|_| ());
    let done = format!(
        "Role changed to {role}. Their sessions ended: the new role applies when they sign in again."
    );
    after_change(&state, &staff, result, done).await
}

/// `POST /admin/staff/{id}/disable`: disables the member and ends their sessions.
pub async fn disable_staff(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let result =
        crate::staff::disable_staff(&state.pool, id, &staff.actor(), state.clock.now()).await;
    let done = "Staff member disabled: they are signed out and cannot sign in.".to_owned();
    after_change(&state, &staff, result, done).await
}

/// `POST /admin/staff/{id}/sessions/revoke`: logs the member out everywhere.
pub async fn end_staff_sessions(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let result =
        crate::staff::end_sessions(&state.pool, id, &staff.actor(), state.clock.now()).await;
    let done = "Their sessions ended in every browser.".to_owned();
    after_change(&state, &staff, result, done).await
}

/// `POST /admin/staff/{id}/mfa/reset`: removes the member's second factor and recovery codes and
/// ends their sessions (a lost phone); an admin must set up a new one at the next sign-in.
pub async fn reset_staff_mfa(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let result = crate::staff::mfa::reset_mfa(&state.pool, id, &staff.actor(), state.clock.now())
        .await
        .map(|_| ());
    let done = "Second factor removed and sessions ended: they set up a new one at their next \
                sign-in."
        .to_owned();
    after_change(&state, &staff, result, done).await
}
