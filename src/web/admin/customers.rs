//! A partner's customers, read live from Partner Center through the broker (cached a minute, paged
//! with Partner Center's continuation token), the CPV app's consent per customer (grant, remove)
//! and the "grant to all customers" runs with their progress.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::view::{PageFrame, when, when_or};
use crate::app::AppState;
use crate::app_consents::{self, CustomerPages, Problem};
use crate::broker::PartnerInfo;
use crate::db;
use crate::partner_center::is_continuation_token;
use crate::web::errors::{PageError, render};

/// The customers page's query string: `page` is Partner Center's continuation token of the page
/// (absent on the first), `changed` the customer an action just changed.
#[derive(Debug, Default, Deserialize)]
pub struct CustomersQuery {
    #[serde(default)]
    page: String,
    #[serde(default)]
    changed: String,
}

struct ConsentView {
    state: &'static str,
    class: &'static str,
    at: String,
    code: String,
    advice: String,
}

struct CustomerLine {
    tenant_id: Uuid,
    name: String,
    domain: String,
    consent: Option<ConsentView>,
    changed: bool,
}

struct GrantLine {
    resource: String,
    scopes: String,
}

struct RunSummary {
    id: Uuid,
    state: String,
    started: String,
}

#[derive(Template)]
#[template(path = "admin/customers.html")]
struct CustomersPage {
    frame: PageFrame,
    partner_id: Uuid,
    partner_name: String,
    partner_tenant: String,
    customers: Vec<CustomerLine>,
    problem: Option<Problem>,
    page: String,
    next: Option<String>,
    paged: bool,
    grants: Vec<GrantLine>,
    app_id: String,
    latest_run: Option<RunSummary>,
    changed_name: Option<String>,
}

fn partner_not_found() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Partner not found",
        "There is no partner at this address. Find it from the partners list.",
    )
}

fn bad_page() -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This page link is not valid",
        "Start again from the partner's first page of customers.",
    )
}

async fn partner_info(state: &AppState, id: &str) -> Result<PartnerInfo, PageError> {
    let id = Uuid::parse_str(id).map_err(|_| partner_not_found())?;
    let partner = db::partners::find(&state.pool, id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(partner_not_found)?;
    Ok(PartnerInfo {
        id: partner.id,
        tenant_id: partner.tenant_id,
        display_name: partner.display_name,
        status: partner.status,
        status_code: partner.status_code,
        status_reason: partner.status_reason,
    })
}

fn grant_lines(state: &AppState) -> Vec<GrantLine> {
    state
        .config
        .app_consent_grants
        .iter()
        .map(|g| GrantLine {
            resource: if g.enterprise_application_id == crate::config::GRAPH_APP_ID {
                format!("Microsoft Graph ({})", g.enterprise_application_id)
            } else {
                g.enterprise_application_id.to_string()
            },
            scopes: g.scopes.join(", "),
        })
        .collect()
}

fn consent_view(row: &db::app_consents::AppConsentRow) -> ConsentView {
    let (state, class) = match row.state.as_str() {
        "granted" => ("Granted", "ok"),
        "removed" => ("Removed", "neutral"),
        _ => ("Failed", "bad"),
    };
    ConsentView {
        state,
        class,
        at: when(row.updated_at),
        code: row.error_code.clone().unwrap_or_default(),
        advice: row.advice.clone().unwrap_or_default(),
    }
}

/// `GET /admin/partners/{id}/customers`: one page of customers with their app consent state.
pub async fn list_customers(
    State(state): State<AppState>,
    Extension(pages): Extension<CustomerPages>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    query: Result<Query<CustomersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|_| bad_page())?;
    let partner = partner_info(&state, &id).await?;
    let page_token = query.page.as_str();
    if !page_token.is_empty() && !is_continuation_token(page_token) {
        return Err(bad_page());
    }
    let changed = Uuid::parse_str(query.changed.trim()).ok();
    let listing = if partner.status == "offboarded" {
        Err(Problem {
            code: "offboarded".into(),
            summary: "This partner is offboarded".into(),
            advice: "samgate holds no consent for it any more; invite the partner again to work with its customers.".into(),
            retry_after: None,
        })
    } else {
        pages
            .page(&state, &partner, Some(page_token).filter(|t| !t.is_empty()))
            .await
    };
    let (customers, next, problem) = match listing {
        Ok(page) => {
            let ids: Vec<Uuid> = page.customers.iter().map(|c| c.tenant_id).collect();
            let states = db::app_consents::states(&state.pool, partner.id, &ids)
                .await
                .map_err(PageError::internal)?;
            let lines = page
                .customers
                .iter()
                .map(|c| CustomerLine {
                    tenant_id: c.tenant_id,
                    name: c.company_name.clone(),
                    domain: c.domain.clone(),
                    consent: states
                        .iter()
                        .find(|s| s.customer_tenant_id == c.tenant_id)
                        .map(consent_view),
                    changed: Some(c.tenant_id) == changed,
                })
                .collect::<Vec<_>>();
            let next = page.continuation.as_ref().map(|token| {
                format!(
                    "/admin/partners/{}/customers?{}",
                    partner.id,
                    serde_urlencoded::to_string([("page", token.as_str())]).unwrap_or_default()
                )
            });
            (lines, next, None)
        }
        Err(problem) => (Vec::new(), None, Some(problem)),
    };
    let changed_name = customers.iter().find(|c| c.changed).map(|c| c.name.clone());
    let latest_run = db::app_consents::latest_run(&state.pool, partner.id)
        .await
        .map_err(PageError::internal)?
        .map(|r| RunSummary {
            id: r.id,
            state: r.state,
            started: when(r.started_at),
        });
    let page = CustomersPage {
        frame: staff.frame("partners"),
        partner_id: partner.id,
        partner_tenant: partner.tenant_id.to_string(),
        partner_name: partner.display_name,
        customers,
        problem,
        page: page_token.to_owned(),
        next,
        paged: !page_token.is_empty(),
        grants: grant_lines(&state),
        app_id: state.config.microsoft.client_id.to_string(),
        latest_run,
        changed_name,
    };
    // A Microsoft failure is part of the page (with advice), not samgate's error page.
    Ok(render(&page)?.into_response())
}

/// The form of the per-customer actions: the page to return to.
#[derive(Debug, Default, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    page: String,
}

fn back_to_customers(partner: Uuid, page: &str, customer: Uuid) -> Response {
    let mut pairs = vec![("changed", customer.to_string())];
    if is_continuation_token(page) {
        pairs.insert(0, ("page", page.to_owned()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    Redirect::to(&format!(
        "/admin/partners/{partner}/customers?{query}#customer-{customer}"
    ))
    .into_response()
}

fn customer_id(text: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(text).map_err(|_| {
        PageError::new(
            StatusCode::NOT_FOUND,
            "Customer not found",
            "This is not a customer tenant id. Go back to the partner's customers.",
        )
    })
}

/// `POST /admin/partners/{id}/customers/{customer}/app-consent`: grants the CPV app's consent in
/// the customer with the configured grants ("already exists" is success); the outcome is shown
/// on the customer's row.
pub async fn grant_app_consent(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path((id, customer)): Path<(String, String)>,
    form: Result<axum::Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let customer = customer_id(&customer)?;
    let form = form.map(|axum::Form(f)| f).unwrap_or_default();
    // The outcome, success or failure, is recorded and shown on the customer's row.
    let _ = app_consents::grant(&state, &partner, customer, &staff.actor()).await;
    Ok(back_to_customers(partner.id, &form.page, customer))
}

/// `POST /admin/partners/{id}/customers/{customer}/app-consent/remove`: removes the CPV app's
/// consent from the customer (absent is success).
pub async fn remove_app_consent(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path((id, customer)): Path<(String, String)>,
    form: Result<axum::Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let customer = customer_id(&customer)?;
    let form = form.map(|axum::Form(f)| f).unwrap_or_default();
    let _ = app_consents::remove(&state, &partner, customer, &staff.actor()).await;
    Ok(back_to_customers(partner.id, &form.page, customer))
}

/// `POST /admin/partners/{id}/app-consent-runs`: starts "grant to all customers" in the
/// background (or joins the run already going) and shows its progress.
pub async fn start_app_consent_run(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    if partner.status == "offboarded" {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            "This partner is offboarded",
            "samgate holds no consent for it any more, so it cannot reach its customers.",
        ));
    }
    let run = app_consents::start_run(state.0.clone(), &partner, &staff.actor())
        .await
        .map_err(|p| {
            PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                p.summary.clone(),
                p.advice.clone(),
            )
            .with_detail(p)
        })?;
    Ok(Redirect::to(&format!(
        "/admin/partners/{}/app-consent-runs/{run}",
        partner.id
    ))
    .into_response())
}

struct RunItemLine {
    tenant_id: Uuid,
    name: String,
    state: &'static str,
    class: &'static str,
    code: String,
    advice: String,
    at: String,
}

#[derive(Template)]
#[template(path = "admin/app_consent_run.html")]
struct RunPage {
    frame: PageFrame,
    partner_id: Uuid,
    partner_name: String,
    state: String,
    running: bool,
    error: String,
    advice: String,
    started: String,
    started_by: String,
    finished: String,
    total: usize,
    done: usize,
    succeeded: usize,
    failed: usize,
    items: Vec<RunItemLine>,
}

/// `GET /admin/partners/{id}/app-consent-runs/{run}`: the run's progress and per-customer
/// outcomes; refreshes itself every two seconds while it runs.
pub async fn show_app_consent_run(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path((id, run)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "Run not found",
            "There is no such app consent run for this partner.",
        )
    };
    let run_id = Uuid::parse_str(&run).map_err(|_| not_found())?;
    let run = db::app_consents::find_run(&state.pool, run_id)
        .await
        .map_err(PageError::internal)?
        .filter(|r| r.partner_id == partner.id)
        .ok_or_else(not_found)?;
    let items = db::app_consents::run_items(&state.pool, run_id)
        .await
        .map_err(PageError::internal)?;
    let count = |f: &dyn Fn(&str) -> bool| items.iter().filter(|i| f(&i.state)).count();
    let succeeded = count(&|s| s == "granted" || s == "already_granted");
    let failed = count(&|s| s == "failed");
    let started_by = match run
        .started_by
        .strip_prefix("staff:")
        .and_then(|id| Uuid::parse_str(id).ok())
    {
        Some(id) => db::staff::find(&state.pool, id)
            .await
            .map_err(PageError::internal)?
            .map(|m| m.display_name),
        None => None,
    }
    .unwrap_or_else(|| run.started_by.clone());
    let page = RunPage {
        frame: staff.frame("partners"),
        partner_id: partner.id,
        partner_name: partner.display_name,
        running: run.state == "running",
        state: run.state,
        error: run.error.unwrap_or_default(),
        advice: run.advice.unwrap_or_default(),
        started: when(run.started_at),
        started_by,
        finished: when_or(run.finished_at, ""),
        total: items.len(),
        done: succeeded + failed,
        succeeded,
        failed,
        items: items
            .into_iter()
            .map(|i| {
                let (state, class) = match i.state.as_str() {
                    "granted" => ("Granted", "ok"),
                    "already_granted" => ("Already granted", "ok"),
                    "failed" => ("Failed", "bad"),
                    _ => ("Waiting", "neutral"),
                };
                RunItemLine {
                    tenant_id: i.customer_tenant_id,
                    name: i.customer_name,
                    state,
                    class,
                    code: i.error_code.unwrap_or_default(),
                    advice: i.advice.unwrap_or_default(),
                    at: when_or(i.updated_at, ""),
                }
            })
            .collect(),
    };
    Ok(render(&page)?.into_response())
}
