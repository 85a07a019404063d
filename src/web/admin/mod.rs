//! Admin UI for CPV staff. Every route and its minimum role is in the table of [`routes`];
//! [`router`] enforces it per route (`require`), checks the CSRF token and origin of every POST,
//! and runs its own session (own cookie, 30 min idle, 8 h absolute, epoch-checked per request).

mod account;
mod activity;
mod audit;
mod auth;
mod clients;
mod customers;
mod error_page;
mod export;
mod flash;
mod invitations;
mod partners;
mod runs;
mod staff;
mod view;
mod webhooks;

use axum::Router;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{MethodFilter, MethodRouter, on};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;
pub use crate::staff::Role;
pub use auth::{CurrentStaff, PendingSignIn, ReturnPath};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the sign-in form and sign-in with Microsoft; CSRF still applies to their POSTs,
    /// the throttle to the password form).
    Public,
    /// A half-signed-in session: the password was right, the second step (a code, or setting up
    /// a second factor) is still to come. Such a session reaches these routes and no others.
    SecondStep,
    /// A signed-in staff member with at least this role.
    Staff(Role),
}

struct RouteRow {
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
}

fn row<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> RouteRow
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    RouteRow {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// The policy table: every admin route, its method and its minimum role.
fn routes() -> Vec<RouteRow> {
    use Access::{Public, SecondStep, Staff};
    use Method as M;
    use Role::{Admin, Operator, Viewer};
    #[rustfmt::skip]
    let table = vec![
        //  method   path                                    access           handler
        row(M::GET,  "/admin/login",                         Public,          auth::show_login_page),
        row(M::POST, "/admin/login",                         Public,          auth::log_in),
        row(M::POST, "/admin/login/sso",                     Public,          auth::start_sso),
        row(M::GET,  "/admin/login/sso/callback",            Public,          auth::finish_sso),
        row(M::GET,  "/admin/login/verify",                  SecondStep,      auth::show_second_factor_page),
        row(M::POST, "/admin/login/verify",                  SecondStep,      auth::verify_second_factor),
        row(M::GET,  "/admin/login/enrol",                   SecondStep,      auth::show_enrolment_page),
        row(M::POST, "/admin/login/enrol",                   SecondStep,      auth::start_forced_enrolment),
        row(M::POST, "/admin/login/enrol/confirm",           SecondStep,      auth::confirm_forced_enrolment),
        row(M::POST, "/admin/logout",                        Staff(Viewer),   auth::log_out),
        row(M::POST, "/admin/logout-everywhere",             Staff(Viewer),   auth::log_out_everywhere),
        row(M::GET,  "/admin/account",                       Staff(Viewer),   account::show_account_page),
        row(M::POST, "/admin/account/mfa",                   Staff(Viewer),   account::start_mfa_enrolment),
        row(M::POST, "/admin/account/mfa/confirm",           Staff(Viewer),   account::confirm_mfa_enrolment),
        row(M::POST, "/admin/account/recovery-codes",        Staff(Viewer),   account::regenerate_recovery_codes),
        row(M::GET,  "/admin",                               Staff(Viewer),   partners::show_dashboard),
        row(M::GET,  "/admin/partners",                      Staff(Viewer),   partners::list_partners),
        row(M::GET,  "/admin/partners.csv",                  Staff(Viewer),   partners::export_partners),
        row(M::GET,  "/admin/partners/{id}",                 Staff(Viewer),   partners::show_partner),
        row(M::POST, "/admin/partners/{id}/invitations",     Staff(Operator), partners::invite_partner_again),
        row(M::POST, "/admin/partners/{id}/refresh",         Staff(Operator), partners::refresh_partner),
        row(M::POST, "/admin/partners/{id}/offboard",        Staff(Admin),    partners::offboard_partner),
        row(M::GET,  "/admin/partners/{id}/customers",       Staff(Viewer),   customers::list_customers),
        row(M::GET,  "/admin/partners/{id}/customers.csv",   Staff(Viewer),   customers::export_customers),
        row(M::GET,  "/admin/partners/{id}/activity",        Staff(Viewer),   activity::show_partner_activity),
        row(M::GET,  "/admin/partners/{id}/calls",           Staff(Viewer),   activity::list_partner_calls),
        row(M::POST, "/admin/partners/{id}/customers/sync",  Staff(Operator), customers::sync_customers),
        row(M::POST, "/admin/partners/{id}/customers/app-consents", Staff(Operator), customers::change_app_consents),
        row(M::POST, "/admin/partners/{id}/customers/{customer}/app-consent", Staff(Operator), customers::grant_app_consent),
        row(M::POST, "/admin/partners/{id}/customers/{customer}/app-consent/remove", Staff(Operator), customers::remove_app_consent),
        row(M::POST, "/admin/partners/{id}/app-consent-runs", Staff(Operator), runs::start_app_consent_run),
        row(M::GET,  "/admin/partners/{id}/app-consent-runs/{run}", Staff(Viewer), runs::show_app_consent_run),
        row(M::GET,  "/admin/partners/{id}/app-consent-runs/{run}/progress", Staff(Viewer), runs::app_consent_run_progress),
        row(M::POST, "/admin/partners/{id}/app-consent-runs/{run}/retry", Staff(Operator), runs::retry_app_consent_run),
        row(M::GET,  "/admin/invitations",                   Staff(Viewer),   invitations::list_invitations),
        row(M::POST, "/admin/invitations",                   Staff(Operator), invitations::create_invitation),
        row(M::POST, "/admin/invitations/{id}/revoke",       Staff(Operator), invitations::revoke_invitation),
        row(M::GET,  "/admin/audit",                         Staff(Viewer),   audit::list_audit_events),
        row(M::GET,  "/admin/audit.csv",                     Staff(Viewer),   audit::export_audit_events),
        row(M::GET,  "/admin/activity",                      Staff(Viewer),   activity::show_estate_activity),
        row(M::GET,  "/admin/clients/{id}/activity",         Staff(Viewer),   activity::show_client_activity),
        row(M::GET,  "/admin/clients/{id}/calls",            Staff(Viewer),   activity::list_client_calls),
        row(M::GET,  "/admin/clients",                       Staff(Admin),    clients::list_clients),
        row(M::POST, "/admin/clients",                       Staff(Admin),    clients::create_client),
        row(M::POST, "/admin/clients/{id}/keys",             Staff(Admin),    clients::issue_api_key),
        row(M::POST, "/admin/clients/{id}/keys/{key}/revoke", Staff(Admin),   clients::revoke_api_key),
        row(M::POST, "/admin/clients/{id}/disable",          Staff(Admin),    clients::disable_api_client),
        row(M::GET,  "/admin/webhooks",                      Staff(Viewer),   webhooks::list_webhooks),
        row(M::POST, "/admin/webhooks",                      Staff(Admin),    webhooks::add_webhook),
        row(M::GET,  "/admin/webhooks/{id}",                 Staff(Viewer),   webhooks::show_webhook),
        row(M::POST, "/admin/webhooks/{id}/rotate-secret",   Staff(Admin),    webhooks::rotate_webhook_secret),
        row(M::POST, "/admin/webhooks/{id}/disable",         Staff(Admin),    webhooks::disable_webhook),
        row(M::POST, "/admin/webhooks/{id}/enable",          Staff(Admin),    webhooks::enable_webhook),
        row(M::POST, "/admin/webhooks/{id}/deliveries/{delivery}/replay", Staff(Admin), webhooks::replay_webhook_delivery),
        row(M::GET,  "/admin/staff",                         Staff(Admin),    staff::list_staff),
        row(M::POST, "/admin/staff",                         Staff(Admin),    staff::add_staff),
        row(M::POST, "/admin/staff/{id}/role",               Staff(Admin),    staff::change_staff_role),
        row(M::POST, "/admin/staff/{id}/disable",            Staff(Admin),    staff::disable_staff),
        row(M::POST, "/admin/staff/{id}/sessions/revoke",    Staff(Admin),    staff::end_staff_sessions),
        row(M::POST, "/admin/staff/{id}/mfa/reset",          Staff(Admin),    staff::reset_staff_mfa),
    ];
    table
}

/// Every admin route as (method, path template, access), for audits and the role-matrix test.
pub fn policy() -> Vec<(Method, &'static str, Access)> {
    routes()
        .into_iter()
        .map(|r| (r.method, r.path, r.access))
        .collect()
}

/// `/admin…`: the routes of the table, each behind its role check, all behind the CSRF check and
/// the admin session.
pub fn router(state: AppState) -> Router<AppState> {
    let mut router = Router::new();
    for RouteRow {
        path,
        access,
        handler,
        ..
    } in routes()
    {
        // Staff sign-in with Microsoft exists only when its tenant is configured.
        if path.starts_with("/admin/login/sso") && state.config.staff_sso_tenant.is_none() {
            continue;
        }
        let handler = match access {
            Access::Public => handler,
            Access::SecondStep => handler.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_second_step,
            )),
            Access::Staff(role) => handler.route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), role),
                auth::require,
            )),
        };
        router = router.route(path, handler);
    }
    let https = state.config.public_url_is_https();
    let session = crate::web::sessions::layer(state.pool.clone(), https, auth::IDLE_TIMEOUT)
        .with_name(if https {
            "__Host-samgate_admin"
        } else {
            "samgate_admin"
        });
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check_csrf,
        ))
        .layer(axum::middleware::from_fn(error_page::show_errors_in_layout))
        .layer(session)
        // Browsers send `Origin: null` on form posts from pages with `no-referrer`; admin pages hold
        // no secrets in their URLs, so they send their origin to themselves only.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        ))
}
