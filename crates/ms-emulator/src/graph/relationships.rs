//! GDAP: `tenantRelationships/delegatedAdminRelationships` for partner tokens, every status, in
//! creation order, paged with `$top` (≤ 300) and `$skipToken`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::odata::{QueryParams, next_link, paging};
use super::{CONTEXT, GraphRequest, respond};
use crate::state::{Relationship, Shared, World};

pub(super) async fn list_delegated_admin_relationships(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        if !t.is_partner {
            return Err(req.error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation. The tenant is not a partner tenant.",
            ));
        }
        let params = QueryParams::parse(raw.as_deref());
        let (top, offset) = paging(&params, 300, 300)
            .map_err(|m| req.error(StatusCode::BAD_REQUEST, "badRequest", &m))?;
        let now = shared.now();
        let world = shared.world();
        let mut total = 0;
        let mut value: Vec<Value> = Vec::with_capacity(top);
        for r in world.relationships.iter().filter(|r| r.partner == t.id) {
            if total >= offset && value.len() < top {
                value.push(relationship_json(&world, r, now));
            }
            total += 1;
        }
        let mut body = json!({
            "@odata.context": format!("{CONTEXT}#tenantRelationships/delegatedAdminRelationships"),
            "value": value,
        });
        if offset + top < total {
            body["@odata.nextLink"] = Value::from(next_link(
                &shared.base_url,
                "tenantRelationships/delegatedAdminRelationships",
                &params,
                "$skipToken",
                offset + top,
            ));
        }
        Ok(axum::Json(body).into_response())
    })())
}

/// One `delegatedAdminRelationship` as Graph v1.0 returns it.
fn relationship_json(world: &World, r: &Relationship, now: OffsetDateTime) -> Value {
    let time = |t: OffsetDateTime| Value::from(t.format(&Rfc3339).unwrap_or_default());
    let customer_name = world
        .tenants
        .get(&r.customer)
        .map(|c| c.display_name.clone())
        .unwrap_or_default();
    // A weak ETag that changes with the relationship, shaped as Graph's (`W/"<base64 of a quoted
    // version>"`, the recorded relationships page).
    let version = format!("'\"{}-{}\"'", r.id, r.last_modified.unix_timestamp_nanos());
    let etag = format!("W/\"{}\"", STANDARD.encode(version));
    json!({
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "@odata.etag": etag,
        "id": r.id,
        "displayName": r.display_name,
        "duration": r.duration,
        "customer": { "tenantId": r.customer, "displayName": customer_name },
        "accessDetails": {
            "unifiedRoles": r.roles.iter().map(|id| json!({ "roleDefinitionId": id })).collect::<Vec<_>>(),
        },
        "status": r.status_at(now).as_str(),
        "autoExtendDuration": "PT0S",
        "createdDateTime": time(r.created),
        "lastModifiedDateTime": time(r.last_modified),
        "activatedDateTime": r.activated.map_or(Value::Null, time),
        "endDateTime": r.end_date_time().map_or(Value::Null, time),
    })
}
