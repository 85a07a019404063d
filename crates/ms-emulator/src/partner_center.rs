//! Partner Center REST (`/v1/…`, protocol page §4–5): bearer validation including the MFA check,
//! profiles, paged customers (`MS-ContinuationToken`), subscriptions, users, CPV application
//! consents (which really grant the consent the identity side checks), and an emulator-only stream.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::tokens::{BearerClaims, PARTNER_CENTER, TokenProblem, validate_bearer};
use crate::state::{ConsentRecord, Shared, Tenant, World};

/// Routes of Partner Center.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/profiles/organization", get(show_organization_profile))
        .route("/v1/profiles/mpn", get(show_mpn_profile))
        .route("/v1/customers", get(list_customers))
        .route("/v1/customers/{id}", get(show_customer))
        .route("/v1/customers/{id}/subscriptions", get(list_subscriptions))
        .route("/v1/customers/{id}/users", get(list_customer_users))
        .route(
            "/v1/customers/{id}/applicationconsents",
            post(create_application_consent),
        )
        .route(
            "/v1/customers/{id}/applicationconsents/{app_id}",
            delete(delete_application_consent),
        )
        .route("/v1/customers/{id}/bigdata", get(stream_big_data))
        .route(
            "/v1/{*rest}",
            get(not_found)
                .post(not_found)
                .put(not_found)
                .patch(not_found)
                .delete(not_found),
        )
        .layer(middleware::from_fn(echo_request_ids))
}

/// A Partner Center error: status, body `{code, description, data, source}`, optional challenge.
pub struct PcError {
    status: StatusCode,
    code: i64,
    description: String,
    challenge: Option<String>,
}

impl PcError {
    fn new(status: StatusCode, code: i64, description: &str) -> PcError {
        PcError {
            status,
            code,
            description: description.to_owned(),
            challenge: None,
        }
    }
}

impl IntoResponse for PcError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code, "description": self.description, "data": [], "source": "PartnerFD",
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

/// Partner Center's error response.
pub fn pc_error(status: StatusCode, code: i64, description: &str) -> Response {
    PcError::new(status, code, description).into_response()
}

fn unauthorized(code: i64, description: &str, www_authenticate: &str) -> PcError {
    PcError {
        status: StatusCode::UNAUTHORIZED,
        code,
        description: description.to_owned(),
        challenge: Some(www_authenticate.to_owned()),
    }
}

/// Echoes `MS-RequestId` and `MS-CorrelationId` (generated when absent), as PC does.
async fn echo_request_ids(req: Request, next: Next) -> Response {
    let request_id =
        header_value(req.headers(), "ms-requestid").unwrap_or_else(|| Uuid::new_v4().to_string());
    let correlation_id = header_value(req.headers(), "ms-correlationid")
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("ms-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        h.insert("ms-correlationid", v);
    }
    h.insert("ms-cv", HeaderValue::from_static("emulator.0"));
    h.insert("ms-serverid", HeaderValue::from_static("ms-emulator"));
    resp
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The caller: validated claims and its partner tenant.
struct Caller {
    claims: BearerClaims,
    partner: Tenant,
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, PcError> {
    let claims = validate_bearer(shared, headers, &[PARTNER_CENTER]).map_err(|p| match p {
        TokenProblem::Missing => {
            unauthorized(800001, "Partner Token missing in request context", "Bearer")
        }
        other => unauthorized(
            400,
            &format!("Access denied: {}", other.describe()),
            &format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                other.describe()
            ),
        ),
    })?;
    let partner = shared
        .world()
        .tenants
        .get(&claims.tenant)
        .filter(|t| t.is_partner)
        .cloned();
    let Some(partner) = partner else {
        return Err(unauthorized(
            400,
            &format!(
                "Access denied: tenant {} is not a Partner Center partner.",
                claims.tenant
            ),
            "Bearer error=\"invalid_token\"",
        ));
    };
    // UNCONFIRMED wire shape (protocol page §4): 401 + invalid_token + code 900421.
    if claims.is_delegated() && !claims.has_mfa() && shared.settings().pc_mfa_enforced {
        return Err(unauthorized(
            900421,
            "Unauthorized - MFA required. The access token does not carry the multi-factor authentication claim (amr: mfa); App+User calls to Partner Center must use a token obtained with MFA.",
            "Bearer error=\"invalid_token\", error_description=\"MFA required\"",
        ));
    }
    Ok(Caller { claims, partner })
}

fn link(uri: &str) -> Value {
    json!({ "uri": uri, "method": "GET", "headers": [] })
}

fn collection(items: Vec<Value>, self_uri: &str, next: Option<Value>) -> Value {
    let mut links = json!({ "self": link(self_uri) });
    if let Some(n) = next {
        links["next"] = n;
    }
    json!({
        "totalCount": items.len(),
        "items": items,
        "links": links,
        "attributes": { "objectType": "Collection" },
    })
}

fn etag() -> String {
    crate::state::random_token(12)
}

async fn show_organization_profile(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let p = &caller.partner;
    let email = shared
        .world()
        .users
        .values()
        .find(|u| u.tenant == p.id)
        .map(|u| u.upn.clone())
        .unwrap_or_else(|| format!("admin@{}", p.default_domain));
    axum::Json(json!({
        "id": p.id,
        "companyName": p.display_name,
        "defaultAddress": {
            "country": "US", "city": "Redmond", "state": "WA", "addressLine1": "1 Microsoft Way",
            "postalCode": "98052", "firstName": "Partner", "lastName": "Admin", "phoneNumber": "4255550100",
        },
        "tenantId": p.id,
        "domain": p.default_domain,
        "email": email,
        "language": "en",
        "culture": "en-US",
        "profileType": "OrganizationProfile",
        "links": { "self": link("/profiles/organization") },
        "attributes": { "etag": etag(), "objectType": "OrganizationProfile" },
    }))
    .into_response()
}

async fn show_mpn_profile(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !caller.claims.is_delegated() {
        return pc_error(
            StatusCode::FORBIDDEN,
            400,
            "Access denied: this API supports App+User authentication only.",
        );
    }
    let Some(mpn) = caller.partner.mpn_id.clone() else {
        return pc_error(
            StatusCode::NOT_FOUND,
            600019,
            "The partner does not have an MPN profile.",
        );
    };
    axum::Json(json!({
        "partnerName": caller.partner.display_name,
        "mpnId": mpn,
        "profileType": "MpnProfile",
        "links": { "self": link("/profiles/mpn") },
        "attributes": { "objectType": "MpnProfile" },
    }))
    .into_response()
}

/// The first user of each listed tenant (its billing contact), in one pass over the users.
fn billing_contacts<'w>(world: &'w World, tenants: &[&Tenant]) -> HashMap<Uuid, &'w str> {
    let wanted: std::collections::HashSet<Uuid> = tenants.iter().map(|t| t.id).collect();
    let mut contacts = HashMap::with_capacity(wanted.len());
    for u in world.users.values() {
        if wanted.contains(&u.tenant) {
            contacts.entry(u.tenant).or_insert(u.upn.as_str());
        }
    }
    contacts
}

fn customer_json(partner: Uuid, c: &Tenant, contact: Option<&str>) -> Value {
    let id = c.id;
    let billing_email = contact
        .map(str::to_owned)
        .unwrap_or_else(|| format!("billing@{}", c.default_domain));
    json!({
        "id": id,
        "commerceId": Uuid::new_v5(&partner, id.as_bytes()),
        "companyProfile": {
            "tenantId": id,
            "domain": c.default_domain,
            "companyName": c.display_name,
            "links": { "self": link(&format!("/customers/{id}/profiles/company")) },
            "attributes": { "objectType": "CustomerCompanyProfile" },
        },
        "billingProfile": {
            "id": Uuid::new_v5(&id, b"billing"),
            "firstName": "Billing", "lastName": "Contact", "email": billing_email,
            "culture": "en-US", "language": "en", "companyName": c.display_name,
            "defaultAddress": { "country": "US", "city": "Redmond", "state": "WA",
                "addressLine1": "1 Main Street", "postalCode": "98052" },
            "links": { "self": link(&format!("/customers/{id}/profiles/billing")) },
            "attributes": { "etag": etag(), "objectType": "CustomerBillingProfile" },
        },
        "relationshipToPartner": "reseller",
        "allowDelegatedAccess": false,
        "customDomains": [c.default_domain],
        "associatedPartnerId": Value::Null,
        "links": {
            "self": link(&format!("/customers/{id}")),
            "subscriptions": link(&format!("/customers/{id}/subscriptions")),
        },
        "attributes": { "objectType": "Customer" },
    })
}

fn continuation_token(partner: Uuid, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}:{partner}"))
}

fn parse_continuation(token: &str, partner: Uuid) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
    let (offset, p) = raw.split_once(':')?;
    (Uuid::parse_str(p).ok()? == partner).then_some(())?;
    offset.parse().ok()
}

async fn list_customers(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let size = match q.get("size").map(|s| s.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            return pc_error(
                StatusCode::BAD_REQUEST,
                400,
                "The size parameter must be between 1 and 500.",
            );
        }
    };
    let offset = if q
        .get("seekOperation")
        .is_some_and(|s| s.eq_ignore_ascii_case("next"))
    {
        let token = headers
            .get("ms-continuationtoken")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match parse_continuation(token, caller.partner.id) {
            Some(o) => o,
            None => {
                return pc_error(
                    StatusCode::BAD_REQUEST,
                    400,
                    "The continuation token is missing or invalid.",
                );
            }
        }
    } else {
        0
    };
    let world = shared.world();
    let ids = &caller.partner.customers;
    let page: Vec<&Tenant> = ids
        .iter()
        .skip(offset)
        .take(size)
        .filter_map(|c| world.tenants.get(c))
        .collect();
    let contacts = billing_contacts(&world, &page);
    let items: Vec<Value> = page
        .iter()
        .map(|c| customer_json(caller.partner.id, c, contacts.get(&c.id).copied()))
        .collect();
    let next = (offset + size < ids.len()).then(|| {
        json!({
            "uri": format!("/v1/customers?size={size}&seekOperation=Next"),
            "method": "GET",
            "headers": [{ "key": "MS-ContinuationToken", "value": continuation_token(caller.partner.id, offset + size) }],
        })
    });
    axum::Json(collection(
        items,
        &format!("/v1/customers?size={size}"),
        next,
    ))
    .into_response()
}

/// The customer, if it belongs to the caller's partner: 404/60003 unknown, 403/20002 foreign.
fn customer_of(world: &World, caller: &Caller, id: &str) -> Result<Tenant, PcError> {
    let not_found = || {
        PcError::new(
            StatusCode::NOT_FOUND,
            60003,
            &format!("Tenant with id {id} was not found."),
        )
    };
    let cid = Uuid::parse_str(id).map_err(|_| not_found())?;
    let tenant = world.tenants.get(&cid).cloned().ok_or_else(not_found)?;
    if !world.is_customer_of(caller.partner.id, cid) {
        return Err(PcError::new(
            StatusCode::FORBIDDEN,
            20002,
            &format!(
                "partner id {} has no commerce relationship with the customer id {cid}",
                caller.partner.id
            ),
        ));
    }
    Ok(tenant)
}

async fn show_customer(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let world = shared.world();
    match customer_of(&world, &caller, &id) {
        Ok(c) => {
            let contacts = billing_contacts(&world, &[&c]);
            axum::Json(customer_json(
                caller.partner.id,
                &c,
                contacts.get(&c.id).copied(),
            ))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn list_subscriptions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let world = shared.world();
    let customer = match customer_of(&world, &caller, &id) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let created = customer
        .created
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let items: Vec<Value> = customer
        .subscriptions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "offerId": "CFQ7TTC0LCHC:0002",
                "entitlementId": Uuid::new_v5(&s.id, b"entitlement"),
                "offerName": s.offer_name,
                "friendlyName": s.offer_name,
                "quantity": s.quantity,
                "unitType": "Licenses",
                "creationDate": created,
                "effectiveStartDate": created,
                "commitmentEndDate": created,
                "status": s.status,
                "autoRenewEnabled": true,
                "billingType": "license",
                "billingCycle": "monthly",
                "termDuration": "P1Y",
                "renewalTermDuration": "P1Y",
                "hasPurchasableAddons": false,
                "isTrial": false,
                "isMicrosoftProduct": true,
                "publisherName": "Microsoft Corporation",
                "actions": [],
                "partnerId": "",
                "suspensionReasons": [],
                "contractType": "subscription",
                "refundOptions": [],
                "orderId": Uuid::new_v5(&s.id, b"order"),
                "links": { "self": link(&format!("/customers/{}/subscriptions/{}", customer.id, s.id)) },
                "attributes": { "etag": etag(), "objectType": "Subscription" },
            })
        })
        .collect();
    axum::Json(json!({
        "totalCount": items.len(),
        "items": items,
        "attributes": { "objectType": "Collection" },
    }))
    .into_response()
}

async fn list_customer_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let world = shared.world();
    let customer = match customer_of(&world, &caller, &id) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let items: Vec<Value> = world
        .users
        .values()
        .filter(|u| u.tenant == customer.id)
        .map(|u| {
            let mut parts = u.display_name.splitn(2, ' ');
            json!({
                "id": u.oid,
                "userPrincipalName": u.upn,
                "firstName": parts.next().unwrap_or_default(),
                "lastName": parts.next().unwrap_or_default(),
                "displayName": u.display_name,
                "userDomainType": "none",
                "state": if u.disabled { "inactive" } else { "active" },
                "links": { "self": link(&format!("/customers/{}/users/{}", customer.id, u.oid)) },
                "attributes": { "objectType": "CustomerUser" },
            })
        })
        .collect();
    axum::Json(collection(
        items,
        &format!("/customers/{}/users", customer.id),
        None,
    ))
    .into_response()
}

async fn create_application_consent(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return pc_error(
            StatusCode::BAD_REQUEST,
            400,
            "The request body is not valid JSON.",
        );
    };
    let mut world = shared.world();
    let customer = match customer_of(&world, &caller, &id) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !may_consent_apps(&world, caller.partner.id, customer.id, shared.now()) {
        return insufficient_privileges();
    }
    let app_id = body
        .get("applicationId")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    let Some(app_id) = app_id.filter(|a| world.apps.contains_key(a)) else {
        return pc_error(
            StatusCode::BAD_REQUEST,
            400,
            "applicationId is missing or is not a known application.",
        );
    };
    let Some(grants) = body
        .get("applicationGrants")
        .and_then(Value::as_array)
        .cloned()
    else {
        return pc_error(
            StatusCode::BAD_REQUEST,
            400,
            "applicationGrants is required.",
        );
    };
    if world.consents.contains_key(&(customer.id, app_id)) {
        // UNCONFIRMED: Microsoft's samples DELETE before POST, which suggests a conflict here.
        return pc_error(
            StatusCode::CONFLICT,
            409,
            "An application consent already exists for this application in the customer tenant.",
        );
    }
    let display_name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    world.consents.insert(
        (customer.id, app_id),
        ConsentRecord {
            display_name: display_name.clone(),
            grants: grants.clone(),
        },
    );
    let echo = json!({
        "applicationId": app_id,
        "displayName": display_name,
        "applicationGrants": grants,
        "customerId": customer.id,
        "attributes": { "objectType": "ApplicationConsent" },
    });
    (StatusCode::CREATED, axum::Json(echo)).into_response()
}

/// GDAP roles that may consent an application in a customer tenant: Global Administrator,
/// Privileged Role Administrator, Cloud Application Administrator ("A GDAP relationship approved
/// by the customer that has one of the following roles", Microsoft's "Use the Exchange Online
/// PowerShell v3 module with GDAP and App consent").
pub const APP_CONSENT_ROLES: [Uuid; 3] = [
    Uuid::from_u128(0x62e90394_69f5_4237_9190_012177145e10),
    Uuid::from_u128(0xe8611ab8_c189_46e8_94e1_60213ab1f814),
    Uuid::from_u128(0x158c047a_c907_4556_b7ef_446551a6b5f7),
];

/// Whether an active relationship partner → customer holds a role that may consent apps.
fn may_consent_apps(world: &World, partner: Uuid, customer: Uuid, now: OffsetDateTime) -> bool {
    world.relationships.iter().any(|r| {
        r.partner == partner
            && r.customer == customer
            && r.grants_access_at(now)
            && r.roles.iter().any(|role| APP_CONSENT_ROLES.contains(role))
    })
}

/// 400 with Microsoft Graph's (AAD Graph's) `odata.error` inside the description, as partners see
/// it when the GDAP roles do not allow consenting (dexmach-csp/azure-csp-securescore#5: "400
/// message odata.error Insufficient privileges to complete the operation"; the inner JSON is
/// AAD Graph's Authorization_RequestDenied shape). UNCONFIRMED: the outer `code`.
fn insufficient_privileges() -> Response {
    pc_error(
        StatusCode::BAD_REQUEST,
        400,
        r#"{"odata.error":{"code":"Authorization_RequestDenied","message":{"lang":"en","value":"Insufficient privileges to complete the operation."}}}"#,
    )
}

async fn delete_application_consent(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, app_id)): Path<(String, String)>,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut world = shared.world();
    let customer = match customer_of(&world, &caller, &id) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let removed = Uuid::parse_str(&app_id)
        .ok()
        .and_then(|a| world.consents.remove(&(customer.id, a)));
    match removed {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => pc_error(
            StatusCode::NOT_FOUND,
            1000,
            "No application consent exists for this application.",
        ),
    }
}

/// Emulator-only: streams `bytes` bytes of JSON (`{"data":"xxxx…"}`) so proxies can be tested on large bodies.
async fn stream_big_data(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = customer_of(&shared.world(), &caller, &id) {
        return e.into_response();
    }
    let total: usize = q
        .get("bytes")
        .and_then(|b| b.parse().ok())
        .unwrap_or(1 << 20)
        .max(11);
    const CHUNK: usize = 64 * 1024;
    let filler = total - 11;
    let stream = futures_util::stream::unfold(
        (0usize, false, false),
        move |(sent, head, tail)| async move {
            if !head {
                return Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from_static(b"{\"data\":\"")),
                    (0, true, false),
                ));
            }
            if sent < filler {
                let n = CHUNK.min(filler - sent);
                return Some((Ok(Bytes::from(vec![b'x'; n])), (sent + n, true, false)));
            }
            if !tail {
                return Some((Ok(Bytes::from_static(b"\"}")), (sent, true, true)));
            }
            None
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

async fn not_found() -> Response {
    pc_error(
        StatusCode::NOT_FOUND,
        1000,
        "The requested resource was not found.",
    )
}
