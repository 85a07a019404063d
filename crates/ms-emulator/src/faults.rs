//! Scripted faults (status, `Retry-After`, body, latency, dropped connection) for the next N
//! matching calls, plus the middleware that counts every route and records PC/Graph requests.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::control::{Fault, RouteMatch};
use crate::identity::errors::AadError;
use crate::state::{RecordedRequest, Shared, lock};

/// Which surface a path belongs to; decides the default error body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    PartnerCenter,
    Graph,
    Identity,
}

impl Family {
    pub fn of(path: &str) -> Family {
        if path.starts_with("/v1/") {
            Family::PartnerCenter
        } else if path.starts_with("/graph/") {
            Family::Graph
        } else {
            Family::Identity
        }
    }
}

/// Takes one use of the first pending fault matching `pred`.
fn take_fault(shared: &Shared, pred: impl Fn(&RouteMatch) -> bool) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    // A fractional fault stays and fires with its probability; a counted one is used up.
    if let Some(fault) = faults
        .iter()
        .find(|f| f.fraction.is_some() && pred(&f.route))
    {
        use rand::RngExt;
        let p = fault.fraction.unwrap_or(0.0);
        return (rand::rng().random::<f64>() < p).then(|| fault.clone());
    }
    let idx = faults.iter().position(|f| f.times > 0 && pred(&f.route))?;
    let fault = faults[idx].clone();
    faults[idx].times -= 1;
    if faults[idx].times == 0 {
        faults.remove(idx);
    }
    Some(fault)
}

/// Applies a fault for a token call with this grant type, if one is pending.
pub async fn apply_grant_type_fault(shared: &Shared, grant_type: &str) -> Option<Response> {
    let fault = take_fault(
        shared,
        |r| matches!(r, RouteMatch::GrantType(g) if g == grant_type),
    )?;
    apply(shared, &fault, Family::Identity).await
}

/// Counts, records and applies path faults before the real handler runs.
pub async fn fault_layer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_emulator") {
        return next.run(req).await;
    }
    shared.count_route(&path);
    let family = Family::of(&path);
    if family != Family::Identity {
        let recorded = RecordedRequest {
            method: req.method().to_string(),
            path: path.clone(),
            query: req.uri().query().map(str::to_owned),
            version: format!("{:?}", req.version()),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            at: shared.now(),
        };
        lock(&shared.recorded).push(recorded);
    }
    let method = req.method().as_str().to_owned();
    let fault = take_fault(&shared, |r| match r {
        RouteMatch::Path { prefix, method: m } => {
            path.starts_with(prefix.as_str())
                && m.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&method))
        }
        RouteMatch::GrantType(_) => false,
    });
    if let Some(fault) = fault
        && let Some(resp) = apply(&shared, &fault, family).await
    {
        return resp;
    }
    next.run(req).await
}

/// Sleeps, then builds the fault response; `None` = latency only, run the real handler.
async fn apply(shared: &Shared, fault: &Fault, family: Family) -> Option<Response> {
    if let Some(d) = fault.latency {
        tokio::time::sleep(d).await;
    }
    if fault.drop_connection {
        // A body that fails before its first byte makes hyper abort the connection.
        let stream = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "emulator fault: connection dropped",
            ))
        });
        return Some(Response::new(Body::from_stream(stream)));
    }
    if fault.status == 0 {
        return None;
    }
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match &fault.body {
        Some(body) => (status, axum::Json(body.clone())).into_response(),
        None => default_body(shared, status, fault.retry_after, family),
    };
    if let Some(secs) = fault.retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    Some(resp)
}

fn default_body(
    shared: &Shared,
    status: StatusCode,
    retry_after: Option<u32>,
    family: Family,
) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    match family {
        Family::PartnerCenter if status == StatusCode::TOO_MANY_REQUESTS => {
            let secs = retry_after.unwrap_or(1);
            let body = json!({
                "statusCode": 429,
                "message": format!("Rate limit is exceeded. Try again in {secs} seconds."),
            });
            (status, axum::Json(body)).into_response()
        }
        Family::PartnerCenter => {
            crate::partner_center::pc_error(status, status.as_u16() as i64, reason)
        }
        Family::Graph => {
            let code = match status.as_u16() {
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "GatewayTimeout",
                _ => "InternalServerError",
            };
            crate::graph::graph_error(shared, status, code, reason, None)
        }
        Family::Identity => {
            let err = match status.as_u16() {
                429 | 503 => AadError::new(
                    "temporarily_unavailable",
                    90055,
                    "The request has been throttled. Please try again later.",
                ),
                _ => AadError::new(
                    "server_error",
                    90033,
                    "A transient error has occurred. Please try again.",
                ),
            };
            err.with_status(status.as_u16()).response(shared, None)
        }
    }
}
