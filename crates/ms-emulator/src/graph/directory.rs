//! Directory objects of the token's tenant: users (by object id or userPrincipalName), groups
//! and group members, with the OData options of [`super::odata`]. Another tenant's object is
//! answered like an unknown one (404 `Request_ResourceNotFound`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::filter::Op;
use super::odata::{self, Collection, ResourceType};
use super::{GraphRequest, respond};
use crate::state::{Group, GroupKind, Shared, Tenant, User, World};

/// `microsoft.graph.user`: the default properties of
/// <https://learn.microsoft.com/graph/api/user-get> plus a few returned only on `$select`.
const USER: ResourceType = ResourceType {
    name: "user",
    filter_name: "User",
    properties: &[
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
        "accountEnabled",
        "mailNickname",
        "userType",
    ],
    defaults: &[
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    ],
    filters: &[
        ("id", &[Op::Eq]),
        ("userPrincipalName", &[Op::Eq, Op::StartsWith, Op::EndsWith]),
        ("mail", &[Op::Eq, Op::StartsWith, Op::EndsWith]),
        ("displayName", &[Op::Eq, Op::StartsWith]),
        ("givenName", &[Op::Eq, Op::StartsWith]),
        ("surname", &[Op::Eq, Op::StartsWith]),
        ("mailNickname", &[Op::Eq, Op::StartsWith]),
        ("accountEnabled", &[Op::Eq]),
        ("userType", &[Op::Eq]),
    ],
};

/// `microsoft.graph.group` with the default properties of
/// <https://learn.microsoft.com/graph/api/group-get>.
const GROUP: ResourceType = ResourceType {
    name: "group",
    filter_name: "Group",
    properties: GROUP_PROPERTIES,
    defaults: GROUP_PROPERTIES,
    filters: &[
        ("id", &[Op::Eq]),
        ("displayName", &[Op::Eq, Op::StartsWith]),
        ("mail", &[Op::Eq, Op::StartsWith]),
        ("mailNickname", &[Op::Eq, Op::StartsWith]),
        ("mailEnabled", &[Op::Eq]),
        ("securityEnabled", &[Op::Eq]),
        ("groupTypes", &[Op::Any]),
    ],
};

const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
];

/// Every property of a user as the emulator knows it.
fn user_json(u: &User) -> Value {
    let mut parts = u.display_name.splitn(2, ' ');
    let nickname = u.upn.split('@').next().unwrap_or(&u.upn);
    json!({
        "id": u.oid,
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": parts.next(),
        "surname": parts.next(),
        "jobTitle": Value::Null,
        "mail": u.upn,
        "mobilePhone": Value::Null,
        "officeLocation": Value::Null,
        "preferredLanguage": "en-US",
        "userPrincipalName": u.upn,
        "accountEnabled": !u.disabled,
        "mailNickname": nickname,
        "userType": "Member",
    })
}

/// Graph's `securityIdentifier` of an Entra object: `S-1-12-1-` and the object id's 16 bytes
/// (in GUID byte order) as four little-endian 32-bit numbers; group-get's example pairs
/// `02bd9fd6-8f93-4758-87c3-1fb73740a315` with `S-1-12-1-45981654-1196986259-3072312199-363020343`.
fn security_identifier(id: Uuid) -> String {
    let b = id.to_bytes_le();
    let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    format!("S-1-12-1-{}-{}-{}-{}", part(0), part(4), part(8), part(12))
}

/// Every default property of a group.
fn group_json(g: &Group, tenant: &Tenant) -> Value {
    let created = tenant.created.format(&Rfc3339).unwrap_or_default();
    let unified = g.kind == GroupKind::Microsoft365;
    let mail = unified.then(|| format!("{}@{}", g.mail_nickname, tenant.default_domain));
    let dynamic = g.kind == GroupKind::DynamicSecurity;
    json!({
        "id": g.id,
        "deletedDateTime": Value::Null,
        "classification": Value::Null,
        "createdDateTime": created,
        "creationOptions": [],
        "description": g.description,
        "displayName": g.display_name,
        "expirationDateTime": Value::Null,
        "groupTypes": match g.kind {
            GroupKind::Microsoft365 => vec!["Unified"],
            GroupKind::DynamicSecurity => vec!["DynamicMembership"],
            GroupKind::Security => vec![],
        },
        "isAssignableToRole": Value::Null,
        "mail": mail,
        "mailEnabled": unified,
        "mailNickname": g.mail_nickname,
        "membershipRule": if dynamic { Value::from("(user.objectId -ne null)") } else { Value::Null },
        "membershipRuleProcessingState": if dynamic { Value::from("On") } else { Value::Null },
        "onPremisesDomainName": Value::Null,
        "onPremisesLastSyncDateTime": Value::Null,
        "onPremisesNetBiosName": Value::Null,
        "onPremisesSamAccountName": Value::Null,
        "onPremisesSecurityIdentifier": Value::Null,
        "onPremisesSyncEnabled": Value::Null,
        "preferredDataLocation": Value::Null,
        "preferredLanguage": Value::Null,
        "proxyAddresses": mail.iter().map(|m| format!("SMTP:{m}")).collect::<Vec<_>>(),
        "renewedDateTime": created,
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": !unified,
        "securityIdentifier": security_identifier(g.id),
        "theme": Value::Null,
        "visibility": if unified { Value::from("Public") } else { Value::Null },
        "onPremisesProvisioningErrors": [],
        "serviceProvisioningErrors": [],
    })
}

/// A user of `tenant` by object id or userPrincipalName.
fn find_user<'w>(world: &'w World, tenant: Uuid, id: &str) -> Option<&'w User> {
    let user = match Uuid::parse_str(id) {
        Ok(oid) => world.users.get(&oid),
        Err(_) => world.user_by_upn(id),
    };
    user.filter(|u| u.tenant == tenant)
}

/// UNCONFIRMED: a non-GUID group id is a 404 like an unknown one.
fn find_group(world: &World, tenant: &Tenant, id: &str) -> Option<Group> {
    let id = Uuid::parse_str(id).ok()?;
    world.groups_of(tenant).into_iter().find(|g| g.id == id)
}

pub(super) async fn list_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let items: Vec<Value> = shared.world().users_of(t.id).map(user_json).collect();
        let users = Collection {
            entity_set: "users",
            path: "users".to_owned(),
            ty: &USER,
            item_type: None,
            filterable: true,
        };
        odata::list(&req, raw.as_deref(), &users, items)
    })())
}

pub(super) async fn count_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let items: Vec<Value> = shared.world().users_of(t.id).map(user_json).collect();
        odata::count(&req, raw.as_deref(), &USER, items)
    })())
}

pub(super) async fn show_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let user = find_user(&shared.world(), t.id, &id).map(user_json);
        let user = user.ok_or_else(|| req.not_found(&id))?;
        odata::entity(&req, raw.as_deref(), "users", &USER, &user)
    })())
}

pub(super) async fn list_groups(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let items: Vec<Value> = shared
            .world()
            .groups_of(&t)
            .iter()
            .map(|g| group_json(g, &t))
            .collect();
        let groups = Collection {
            entity_set: "groups",
            path: "groups".to_owned(),
            ty: &GROUP,
            item_type: None,
            filterable: true,
        };
        odata::list(&req, raw.as_deref(), &groups, items)
    })())
}

pub(super) async fn count_groups(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let items: Vec<Value> = shared
            .world()
            .groups_of(&t)
            .iter()
            .map(|g| group_json(g, &t))
            .collect();
        odata::count(&req, raw.as_deref(), &GROUP, items)
    })())
}

pub(super) async fn show_group(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let group = find_group(&shared.world(), &t, &id).map(|g| group_json(&g, &t));
        let group = group.ok_or_else(|| req.not_found(&id))?;
        odata::entity(&req, raw.as_deref(), "groups", &GROUP, &group)
    })())
}

/// Members are `directoryObject`s; every member here is a user, so each carries
/// `"@odata.type": "#microsoft.graph.user"` and the user's properties.
pub(super) async fn list_group_members(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let req = GraphRequest::new(&shared, &headers);
    respond((|| {
        let (_, t) = req.authenticate()?;
        let items: Option<Vec<Value>> = {
            let world = shared.world();
            find_group(&world, &t, &id).map(|g| {
                g.members
                    .iter()
                    .filter_map(|oid| world.users.get(oid))
                    .map(user_json)
                    .collect()
            })
        };
        let items = items.ok_or_else(|| req.not_found(&id))?;
        let members = Collection {
            entity_set: "directoryObjects",
            path: format!("groups/{id}/members"),
            ty: &USER,
            item_type: Some("#microsoft.graph.user"),
            filterable: false,
        };
        odata::list(&req, raw.as_deref(), &members, items)
    })())
}
