//! The API's OpenAPI 3.1 document, generated: `#[utoipa::path]` on each handler and `ToSchema` on
//! the types they take and answer, plus what no attribute says: the error catalogue
//! (`x-samgate-errors`), each route's error responses (from [`super::routes`]), the bearer scheme
//! and one operation id per method of the passthrough routes.

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::web::errors::{ApiErrorBody, ApiErrorCode};

/// The name of the security scheme every `/api/v1` operation requires.
const SCHEME: &str = "api_key";

/// The API's overview: the first thing `/api/docs` shows.
const DESCRIPTION: &str = "\
Call Partner Center and Microsoft Graph as a consented CSP partner, without ever holding a \
Microsoft token, and read what samgate knows of your partners and their customers.

**Authentication.** Send your API key on every `/api/v1` call as `Authorization: Bearer sgk_…`. \
An operator issues keys (`samgate clients keys create`); a key may be scoped to some partners and \
may be read-only (GET, HEAD and OPTIONS only).

**Passthrough.** The routes under `/partner-center/` and `/graph/` forward any method, query and \
body to Microsoft with the partner's token, and stream Microsoft's answer back as it is: status, \
body and headers, marked with `x-samgate-upstream: partner-center` or `graph`. `Authorization`, \
cookies, `X-Forwarded-*` and hop-by-hop headers you send never reach Microsoft.

**Errors.** An error samgate produces itself carries its stable code in the `x-samgate-error` \
header and a JSON body `{\"code\", \"message\", \"reference\"}`; on Graph routes it also wears \
Graph's error shape (`{\"error\": {\"code\", \"message\", \"innerError\"}}`, so a Graph SDK raises \
an `ODataError` with samgate's code), on Partner Center routes Partner Center's (`description`, \
`data`, `source`). So: `x-samgate-error` present means samgate refused; `x-samgate-upstream` \
present means the answer is Microsoft's. `x-samgate-errors` lists every code.

**Paging.** Paging links in JSON answers that point into Microsoft are rewritten to absolute \
samgate URLs of the route they came through: Graph's `@odata.nextLink` and `@odata.deltaLink` \
(also `members@odata.nextLink` and the like) and Partner Center's top-level `links.*.uri`. Follow \
them as they are (an SDK's page iterator does) and, for Partner Center, send the link's \
`MS-ContinuationToken` header. Your key never goes to another host. JSON answers over 4 MiB stream \
through unrewritten.

**Retries.** Send `MS-RequestId` (kept on samgate's retries, set when absent) and \
`MS-CorrelationId`. samgate retries reads on Microsoft's 5xx, and writes only when they carry your \
`MS-RequestId`. When Microsoft answers 429 or 503 with `Retry-After`, samgate waits if that fits \
`X-Samgate-Deadline` (seconds, default 10, at most 300) and otherwise answers 429 \
`upstream_throttled` with its own `Retry-After`. Every samgate error that can succeed later \
carries `Retry-After`; `consent_required`, `mfa_required` and `app_misconfigured` never succeed \
by retrying.";

#[derive(OpenApi)]
#[openapi(
    info(title = "samgate API", version = "1", description = DESCRIPTION),
    paths(
        super::partners::list_partners,
        super::partners::show_partner,
        super::offboard::offboard_partner,
        super::reconsent::create_reconsent_invitation,
        super::customers::list_customers,
        super::customers::sync_customers,
        super::proxy::proxy_partner_center,
        super::proxy::proxy_partner_graph,
        super::proxy::proxy_customer_graph,
        super::docs::show_openapi_document,
        super::docs::show_api_docs,
    ),
    // Schemas only a query parameter or no path names are not collected by themselves.
    components(
        schemas(ApiErrorBody, ApiErrorCode, crate::db::customers::CustomerFilter),
        responses(super::proxy::Passthrough)
    ),
    security(("api_key" = [])),
    modifiers(&Contract),
    tags(
        (name = "partners", description = "The partners your key may act for: status, consent, offboarding, re-consent links."),
        (name = "customers", description = "Each partner's customers as samgate's customer directory knows them."),
        (name = "proxy", description = "Partner Center and Graph as the partner, passed through."),
        (name = "reference", description = "This document and its page (no key needed)."),
    )
)]
struct ApiDoc;

/// The document `/api/openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// What the attributes cannot say; see the module header.
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sgk_…")
                    .description(Some(
                        "An API key issued by `samgate clients keys create` (shown once; `sgk_` \
                         and 43 characters), as `Authorization: Bearer sgk_…`.",
                    ))
                    .build(),
            ),
        );
        doc.extensions
            .get_or_insert_with(Extensions::default)
            .insert("x-samgate-errors".into(), error_catalogue());
        for route in super::routes() {
            let Some(item) = doc.paths.paths.get_mut(&route.openapi_path()) else {
                continue; // The route-table test names it.
            };
            if route.passthrough {
                describe_once(item);
            }
            for method in route.methods {
                let Some(operation) = operation_mut(item, method) else {
                    continue;
                };
                if route.passthrough {
                    if let Some(id) = &mut operation.operation_id {
                        id.push('_');
                        id.push_str(&method.as_str().to_ascii_lowercase());
                    }
                    operation.summary = Some(format!("{method} through samgate"));
                    if matches!(*method, Method::GET | Method::DELETE) {
                        operation.request_body = None;
                    }
                }
                add_error_responses(operation, &route.errors, route.passthrough);
            }
        }
    }
}

/// Every code with its status, meaning and what to do: the table `/api/docs` shows.
fn error_catalogue() -> serde_json::Value {
    ApiErrorCode::ALL
        .iter()
        .map(|code| {
            serde_json::json!({
                "code": code.as_str(),
                "status": code.status().as_u16(),
                "meaning": code.meaning(),
                "action": code.action(),
            })
        })
        .collect()
}

/// Moves the handler's summary and description to the path item, said once for all its methods.
fn describe_once(item: &mut PathItem) {
    let first = [&item.get, &item.post, &item.put, &item.patch, &item.delete]
        .into_iter()
        .flatten()
        .next()
        .map(|op| (op.summary.clone(), op.description.clone()));
    if let Some((summary, description)) = first {
        item.summary = summary;
        item.description = description;
    }
    for operation in [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
    {
        operation.description = None;
    }
}

fn operation_mut<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        _ => None,
    }
}

/// One response per status among `codes`, naming each code it can carry. On a passthrough the
/// same status may also be Microsoft's own answer, so its body is either shape.
fn add_error_responses(operation: &mut Operation, codes: &[ApiErrorCode], passthrough: bool) {
    let mut by_status: BTreeMap<u16, Vec<ApiErrorCode>> = BTreeMap::new();
    for code in codes {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(*code);
    }
    for (status, codes) in by_status {
        let mut description = String::from("samgate refused:");
        for code in &codes {
            description.push_str(&format!("\n- `{}`: {}", code.as_str(), code.meaning()));
        }
        let error: RefOr<Schema> = Ref::from_schema_name("Error").into();
        let schema: RefOr<Schema> = if passthrough {
            description.push_str(
                "\n\nOr Microsoft's own answer with this status, marked `x-samgate-upstream` \
                 instead of `x-samgate-error`.",
            );
            AnyOfBuilder::new()
                .item(error)
                .item(
                    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue),
                )
                .into()
        } else {
            error
        };
        let code_header = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes.iter().map(|c| c.as_str()))),
            ))
            .description(Some(
                "samgate's stable error code (absent on Microsoft's answers).",
            ))
            .build();
        let retry_after = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some(
                "Seconds after which a retry can succeed, when one can.",
            ))
            .build();
        let mut response = ResponseBuilder::new()
            .description(description)
            .header(crate::web::errors::ERROR_HEADER, code_header)
            .header("Retry-After", retry_after)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            );
        if passthrough {
            // Microsoft's own answer with this status may be of any type.
            response = response.content("*/*", ContentBuilder::new().build());
        }
        if status == 401 {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some("`Bearer realm=\"samgate\", error=\"invalid_token\"`"))
                    .build(),
            );
        }
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| response.build().into());
    }
}
