//! OData query options of the directory resources (`$select`, `$filter`, `$top`, `$skiptoken`,
//! `$count` with `ConsistencyLevel: eventual`) and the shapes built from them: a collection page
//! with `@odata.context`, `@odata.count` and an absolute `@odata.nextLink` carrying the request's
//! other options, one entity (`…/$entity`), or a `$count` segment (text/plain).
//! See <https://learn.microsoft.com/graph/query-parameters> and `…/graph/aad-advanced-queries`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::filter::{self, Expr, FilterError, Op};
use super::{CONTEXT, GraphError, GraphRequest};

/// Query options the emulator does not evaluate; it refuses them rather than ignore them.
const UNEMULATED: [&str; 6] = [
    "$orderby", "$expand", "$search", "$skip", "$apply", "$compute",
];

/// The decoded query string, in order, names compared without case.
pub(super) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(super) fn parse(raw: Option<&str>) -> QueryParams {
        QueryParams(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `$top` (default `default`, at most `max`) and an offset from `$skiptoken`/`$skipToken`.
pub(super) fn paging(
    q: &QueryParams,
    default: usize,
    max: usize,
) -> Result<(usize, usize), String> {
    let top = match q.get("$top") {
        None => default,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                ));
            }
        },
    };
    let offset = match q.get("$skiptoken") {
        None => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| "Invalid skip token.".to_owned())?,
    };
    Ok((top, offset))
}

/// Percent-encodes a query component, keeping OData's readable characters (`$`, quotes, …).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$'(),:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The absolute next-page URL: the request's query options (as Graph keeps them) with a
/// skip token for `offset` under the name `token_name`.
pub(super) fn next_link(
    base_url: &str,
    path: &str,
    params: &QueryParams,
    token_name: &str,
    offset: usize,
) -> String {
    let mut parts: Vec<String> = params
        .0
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    parts.push(format!(
        "{token_name}={}",
        URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
    ));
    format!("{base_url}/graph/v1.0/{path}?{}", parts.join("&"))
}

/// The properties of one Graph resource type that the emulator renders and filters.
pub(super) struct ResourceType {
    /// `user` in `microsoft.graph.user`.
    pub name: &'static str,
    /// The resource name in `$filter` errors (`User`).
    pub filter_name: &'static str,
    /// Every property the emulator renders, in Graph's spelling.
    pub properties: &'static [&'static str],
    /// The properties returned without `$select`.
    pub defaults: &'static [&'static str],
    /// The properties `$filter` works on, with their operators.
    pub filters: &'static [(&'static str, &'static [Op])],
}

/// `$select`: canonical property names in request order, or `None` for the default set.
fn select(
    req: &GraphRequest<'_>,
    params: &QueryParams,
    ty: &ResourceType,
) -> Result<Option<Vec<&'static str>>, GraphError> {
    let Some(raw) = params.get("$select") else {
        return Ok(None);
    };
    let mut chosen = Vec::new();
    for wanted in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some(found) = ty
            .properties
            .iter()
            .find(|p| p.eq_ignore_ascii_case(wanted))
        else {
            return Err(req.error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "Parsing OData Select and Expand failed: Could not find a property named '{wanted}' on type 'microsoft.graph.{}'.",
                    ty.name
                ),
            ));
        };
        if !chosen.contains(found) {
            chosen.push(*found);
        }
    }
    Ok((!chosen.is_empty()).then_some(chosen))
}

/// Keeps the selected (or default) properties of a full rendering. `id` is kept only when
/// selected, as Graph does for users (UNCONFIRMED for groups).
fn project(full: &Value, chosen: Option<&[&'static str]>, ty: &ResourceType) -> Value {
    let keep = chosen.unwrap_or(ty.defaults);
    let mut out = Map::new();
    for name in keep {
        out.insert(
            (*name).to_owned(),
            full.get(*name).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

/// `#set` or `#set(a,b)`.
fn context(entity_set: &str, chosen: Option<&[&'static str]>) -> String {
    match chosen {
        Some(props) => format!("{CONTEXT}#{entity_set}({})", props.join(",")),
        None => format!("{CONTEXT}#{entity_set}"),
    }
}

/// Refuses the options the emulator does not evaluate; `$search` without
/// `ConsistencyLevel: eventual` gets Graph's own answer.
fn refuse_unemulated(req: &GraphRequest<'_>, params: &QueryParams) -> Result<(), GraphError> {
    for option in UNEMULATED {
        if params.get(option).is_none() {
            continue;
        }
        if option == "$search" && !req.eventual() {
            return Err(req.error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        return Err(req.error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            &format!("ms-emulator does not emulate the query option '{option}'."),
        ));
    }
    Ok(())
}

/// `$filter`, checked against the resource type; `None` when absent.
fn filter_of(
    req: &GraphRequest<'_>,
    params: &QueryParams,
    ty: &ResourceType,
) -> Result<Option<Expr>, GraphError> {
    let Some(text) = params.get("$filter") else {
        return Ok(None);
    };
    let advanced = req.eventual() && params.get("$count").is_some_and(is_true);
    let refused = |e: FilterError| {
        let (code, message) = match e {
            FilterError::Syntax(why) => (
                "BadRequest",
                format!("Invalid filter clause: {why} in '{text}'."),
            ),
            FilterError::Clause(property) => (
                "Request_UnsupportedQuery",
                format!(
                    "Unsupported or invalid query filter clause specified for property '{property}' of resource '{}'.",
                    ty.filter_name
                ),
            ),
            FilterError::Operator(name) => (
                "Request_UnsupportedQuery",
                format!("Unsupported property filter clause operator '{name}'."),
            ),
            FilterError::NeedsAdvanced(op) => (
                "Request_UnsupportedQuery",
                format!(
                    "Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
                ),
            ),
        };
        req.error(StatusCode::BAD_REQUEST, code, &message)
    };
    let mut expr = filter::parse(text).map_err(refused)?;
    expr.check(ty.filters, advanced).map_err(refused)?;
    Ok(Some(expr))
}

fn is_true(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

/// A collection of one resource type, as a route lists it.
pub(super) struct Collection<'a> {
    /// The entity set in `@odata.context` (`users`, `groups`, `directoryObjects`).
    pub entity_set: &'a str,
    /// The path under `/graph/v1.0/` that `@odata.nextLink` repeats.
    pub path: String,
    pub ty: &'a ResourceType,
    /// `@odata.type` put on each item (members of a `directoryObject` collection).
    pub item_type: Option<&'a str>,
    /// Whether `$filter` is evaluated here.
    pub filterable: bool,
}

/// One page of a collection: items are full renderings, filtered, counted, paged and projected.
pub(super) fn list(
    req: &GraphRequest<'_>,
    raw_query: Option<&str>,
    collection: &Collection<'_>,
    items: Vec<Value>,
) -> Result<Response, GraphError> {
    let params = QueryParams::parse(raw_query);
    refuse_unemulated(req, &params)?;
    let chosen = select(req, &params, collection.ty)?;
    let (top, offset) = paging(&params, 100, 999)
        .map_err(|m| req.error(StatusCode::BAD_REQUEST, "Request_BadRequest", &m))?;
    let items = if collection.filterable {
        match filter_of(req, &params, collection.ty)? {
            Some(expr) => items.into_iter().filter(|i| expr.matches(i)).collect(),
            None => items,
        }
    } else {
        if params.get("$filter").is_some() {
            return Err(req.error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "ms-emulator does not emulate $filter on this collection.",
            ));
        }
        items
    };
    let total = items.len();
    let value: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(top)
        .map(|full| {
            let mut item = project(full, chosen.as_deref(), collection.ty);
            if let (Some(t), Value::Object(map)) = (collection.item_type, &mut item) {
                map.insert("@odata.type".to_owned(), Value::from(t));
            }
            item
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        Value::from(context(collection.entity_set, chosen.as_deref())),
    );
    // Without ConsistencyLevel Graph ignores `$count=true` silently (aad-advanced-queries).
    if req.eventual() && params.get("$count").is_some_and(is_true) {
        body.insert("@odata.count".to_owned(), Value::from(total));
    }
    body.insert("value".to_owned(), Value::Array(value));
    if offset + top < total {
        body.insert(
            "@odata.nextLink".to_owned(),
            Value::from(next_link(
                &req.shared.base_url,
                &collection.path,
                &params,
                "$skiptoken",
                offset + top,
            )),
        );
    }
    Ok(axum::Json(Value::Object(body)).into_response())
}

/// `GET …/$count`: the number of (filtered) items as text/plain; needs `ConsistencyLevel:
/// eventual`, else Graph's 400.
pub(super) fn count(
    req: &GraphRequest<'_>,
    raw_query: Option<&str>,
    ty: &ResourceType,
    items: Vec<Value>,
) -> Result<Response, GraphError> {
    if !req.eventual() {
        return Err(req.error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    let params = QueryParams::parse(raw_query);
    refuse_unemulated(req, &params)?;
    let total = match filter_of(req, &params, ty)? {
        Some(expr) => items.iter().filter(|i| expr.matches(i)).count(),
        None => items.len(),
    };
    Ok(([(header::CONTENT_TYPE, "text/plain")], total.to_string()).into_response())
}

/// One entity (`#set/$entity` or `#set(a,b)/$entity`), honouring `$select`.
pub(super) fn entity(
    req: &GraphRequest<'_>,
    raw_query: Option<&str>,
    entity_set: &str,
    ty: &ResourceType,
    full: &Value,
) -> Result<Response, GraphError> {
    let params = QueryParams::parse(raw_query);
    refuse_unemulated(req, &params)?;
    let chosen = select(req, &params, ty)?;
    let mut item = project(full, chosen.as_deref(), ty);
    if let Value::Object(map) = &mut item {
        map.insert(
            "@odata.context".to_owned(),
            Value::from(format!(
                "{}/$entity",
                context(entity_set, chosen.as_deref())
            )),
        );
    }
    Ok(axum::Json(item).into_response())
}

/// A whole collection that Graph does not page (organization, domains, SKUs): `$select` only.
pub(super) fn unpaged(
    req: &GraphRequest<'_>,
    raw_query: Option<&str>,
    entity_set: &str,
    ty: &ResourceType,
    items: &[Value],
) -> Result<Response, GraphError> {
    let params = QueryParams::parse(raw_query);
    let chosen = select(req, &params, ty)?;
    let value: Vec<Value> = items
        .iter()
        .map(|full| project(full, chosen.as_deref(), ty))
        .collect();
    Ok(axum::Json(serde_json::json!({
        "@odata.context": context(entity_set, chosen.as_deref()),
        "value": value,
    }))
    .into_response())
}
