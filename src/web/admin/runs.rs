//! App consent runs ("grant to all customers" and "retry failed"): starting one, its page with
//! per-customer outcomes (all, or only the ones that need attention), and its progress as JSON
//! for the page's small script (`static/admin.js`), which updates the counts in place while the
//! run goes; without scripts the page reloads itself instead.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use uuid::Uuid;

use super::auth::CurrentStaff;
use super::customers::{is_offboarded, partner_info, plural};
use super::flash::{self, Flash};
use super::view::{PageFrame, when, when_or};
use crate::app::AppState;
use crate::app_consents::{self, Problem, RunScope};
use crate::db;
use crate::db::app_consents::{RunItemRow, RunRow};
use crate::domain::Actor;
use crate::partners::PartnerInfo;
use crate::web::errors::{PageError, render};

fn offboarded() -> PageError {
    PageError::new(
        StatusCode::CONFLICT,
        "This partner is offboarded",
        "samgate holds no consent for it any more, so it cannot reach its customers.",
    )
}

fn run_not_found() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Run not found",
        "There is no such app consent run for this partner. Open the partner's customers page to start one.",
    )
}

fn not_started(problem: Problem) -> PageError {
    PageError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        problem.summary.clone(),
        problem.advice.clone(),
    )
    .with_detail(problem)
}

fn run_page(partner: Uuid, run: Uuid) -> String {
    format!("/admin/partners/{partner}/app-consent-runs/{run}")
}

/// `POST /admin/partners/{id}/app-consent-runs`: starts "grant to all customers" in the
/// background (or joins the run already going) and shows its progress.
pub async fn start_app_consent_run(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    if is_offboarded(&partner) {
        return Err(offboarded());
    }
    let (run, _) = app_consents::start_run(
        state.0.clone(),
        &partner,
        &staff.actor(),
        RunScope::AllCustomers,
    )
    .await
    .map_err(not_started)?;
    staff
        .redirect_with(
            &run_page(partner.id, run),
            Flash::success(
                "Granting app consent to every customer in the background: this page shows how \
                 it goes. Starting again while it runs joins this run.",
            ),
        )
        .await
}

/// `POST /admin/partners/{id}/app-consent-runs/{run}/retry`: a new run over the customers that
/// failed in this one (or the run already going, which the message then says).
pub async fn retry_app_consent_run(
    State(state): State<AppState>,
    staff: CurrentStaff,
    session: Session,
    Path((id, run)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let partner = partner_info(&state, &id).await?;
    let earlier = find_run(&state, &partner, &run).await?;
    if is_offboarded(&partner) {
        return Err(offboarded());
    }
    let here = run_page(partner.id, earlier.id);
    if earlier.state == "running" {
        let text = "This run is still going: retry its failures once it has ended.";
        return flash::redirect_with(&session, &here, Flash::failure(text)).await;
    }
    let failed = db::app_consents::failed_customers(&state.pool, earlier.id)
        .await
        .map_err(PageError::internal)?;
    if failed.is_empty() {
        let text = "No customer failed in this run, so there is nothing to retry.";
        return flash::redirect_with(&session, &here, Flash::failure(text)).await;
    }
    let (retry, started) = app_consents::start_run(
        state.0.clone(),
        &partner,
        &staff.actor(),
        RunScope::FailedOf(earlier.id),
    )
    .await
    .map_err(not_started)?;
    let text = if started {
        format!(
            "Retrying the {} that failed; this page shows how it goes.",
            plural(failed.len(), "customer", "customers")
        )
    } else {
        "Another run for this partner was going; it is shown instead. Retry the failures once it has ended."
            .to_owned()
    };
    flash::redirect_with(&session, &run_page(partner.id, retry), Flash::success(text)).await
}

/// The partner, its run `run` and the run's customers, for the run page and its progress.
async fn load_run(
    state: &AppState,
    id: &str,
    run: &str,
) -> Result<(PartnerInfo, RunRow, Vec<RunItemRow>), PageError> {
    let partner = partner_info(state, id).await?;
    let run = find_run(state, &partner, run).await?;
    let items = db::app_consents::run_items(&state.pool, run.id)
        .await
        .map_err(PageError::internal)?;
    Ok((partner, run, items))
}

async fn find_run(state: &AppState, partner: &PartnerInfo, run: &str) -> Result<RunRow, PageError> {
    let run_id = Uuid::parse_str(run).map_err(|_| run_not_found())?;
    db::app_consents::find_run(&state.pool, run_id)
        .await
        .map_err(PageError::internal)?
        .filter(|r| r.partner_id == partner.id)
        .ok_or_else(run_not_found)
}

/// How far a run is: what the page shows at the top, and what the progress JSON carries.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// `running`, `finished`, `failed` or `abandoned`.
    pub state: String,
    /// The run is still reading the customer list (no customer listed yet).
    pub reading: bool,
    /// Customers in the run.
    pub total: usize,
    /// Customers with an outcome.
    pub done: usize,
    /// Granted or already granted.
    pub succeeded: usize,
    /// Granted, but the partner has no active GDAP relationship with the customer.
    pub without_gdap: usize,
    /// A consent samgate did not make exists.
    pub other_grants: usize,
    /// Failed.
    pub failed: usize,
}

impl Progress {
    fn of(run: &RunRow, items: &[RunItemRow]) -> Self {
        let count = |f: &dyn Fn(&str) -> bool| items.iter().filter(|i| f(&i.state)).count();
        let succeeded = count(&|s| s == "granted" || s == "already_granted");
        let without_gdap = count(&|s| s == "granted_no_gdap");
        let other_grants = count(&|s| s == "exists_other_grants");
        let failed = count(&|s| s == "failed");
        Self {
            state: run.state.clone(),
            reading: run.state == "running" && items.is_empty(),
            total: items.len(),
            done: succeeded + without_gdap + other_grants + failed,
            succeeded,
            without_gdap,
            other_grants,
            failed,
        }
    }

    /// The sentence above the progress bar.
    pub fn summary(&self) -> String {
        if self.reading {
            "Reading the partner's customer list from Partner Center…".to_owned()
        } else {
            format!(
                "{} of {} done",
                self.done,
                plural(self.total, "customer", "customers")
            )
        }
    }
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

/// Outcomes worth a look: anything but a plain success (and waiting customers).
fn needs_attention(state: &str) -> bool {
    matches!(state, "failed" | "granted_no_gdap" | "exists_other_grants")
}

impl RunItemLine {
    fn of(item: RunItemRow) -> Self {
        let (state, class) = match item.state.as_str() {
            "granted" => ("Granted", "ok"),
            "already_granted" => ("Already granted", "ok"),
            "granted_no_gdap" => ("Granted, but no GDAP access", "warn"),
            "exists_other_grants" => ("A consent with other permissions exists: re-apply", "warn"),
            "failed" => ("Failed", "bad"),
            _ => ("Waiting", "neutral"),
        };
        Self {
            tenant_id: item.customer_tenant_id,
            name: item.customer_name,
            state,
            class,
            code: item.error_code.unwrap_or_default(),
            advice: item.advice.unwrap_or_default(),
            at: when_or(item.updated_at, ""),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/app_consent_run.html")]
struct RunPage {
    frame: PageFrame,
    partner_id: Uuid,
    partner_name: String,
    run_id: Uuid,
    running: bool,
    progress: Progress,
    error: String,
    advice: String,
    started: String,
    started_by: String,
    finished: String,
    retry_of: Option<Uuid>,
    problems_only: bool,
    problems: usize,
    items: Vec<RunItemLine>,
}

/// `?show=problems` lists only the customers that need attention.
#[derive(Debug, Deserialize)]
pub struct RunQuery {
    show: Option<String>,
}

/// `GET /admin/partners/{id}/app-consent-runs/{run}`: the run's progress and per-customer
/// outcomes.
pub async fn show_app_consent_run(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path((id, run)): Path<(String, String)>,
    Query(query): Query<RunQuery>,
) -> Result<Response, PageError> {
    let problems_only = match query.show.as_deref() {
        None | Some("all") => false,
        Some("problems") => true,
        Some(_) => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Unknown view",
                "This run page shows all customers or only those that need attention (show=problems).",
            ));
        }
    };
    let (partner, run, items) = load_run(&state, &id, &run).await?;
    let progress = Progress::of(&run, &items);
    let started_by = match run.started_by {
        Actor::Staff(id) => db::staff::find(&state.pool, id)
            .await
            .map_err(PageError::internal)?
            .map(|m| m.display_name),
        _ => None,
    }
    .unwrap_or_else(|| run.started_by.to_string());
    let problems = items.iter().filter(|i| needs_attention(&i.state)).count();
    let page = RunPage {
        frame: staff.frame("partners"),
        partner_id: partner.id,
        partner_name: partner.display_name,
        run_id: run.id,
        running: run.state == "running",
        progress,
        error: run.error.unwrap_or_default(),
        advice: run.advice.unwrap_or_default(),
        started: when(run.started_at),
        started_by,
        finished: when_or(run.finished_at, ""),
        retry_of: run.retry_of,
        problems_only,
        problems,
        items: items
            .into_iter()
            .filter(|i| !problems_only || needs_attention(&i.state))
            .map(RunItemLine::of)
            .collect(),
    };
    Ok(render(&page)?.into_response())
}

/// `GET /admin/partners/{id}/app-consent-runs/{run}/progress`: the counts, as JSON, for the page
/// to update itself while the run goes.
pub async fn app_consent_run_progress(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path((id, run)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (_, run, items) = load_run(&state, &id, &run).await?;
    let progress = Progress::of(&run, &items);
    #[derive(Serialize)]
    struct Body {
        summary: String,
        #[serde(flatten)]
        progress: Progress,
    }
    // `Cache-Control: no-store` comes from the security headers every response gets.
    Ok(Json(Body {
        summary: progress.summary(),
        progress,
    })
    .into_response())
}
