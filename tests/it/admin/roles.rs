//! The role matrix: every admin route enforces its minimum role for every role.

use super::*;

/// What each role may do: the expected minimum role of every admin route, written out by hand so
/// that a change of the router's table must be mirrored here.
fn expected_policy() -> Vec<(&'static str, &'static str, Access)> {
    use Access::{Public, SecondStep, Staff};
    use Role::{Admin, Operator, Viewer};
    vec![
        ("GET", "/admin/login", Public),
        ("POST", "/admin/login", Public),
        ("POST", "/admin/login/sso", Public),
        ("GET", "/admin/login/sso/callback", Public),
        ("GET", "/admin/login/verify", SecondStep),
        ("POST", "/admin/login/verify", SecondStep),
        ("GET", "/admin/login/enrol", SecondStep),
        ("POST", "/admin/login/enrol", SecondStep),
        ("POST", "/admin/login/enrol/confirm", SecondStep),
        ("GET", "/admin/account", Staff(Viewer)),
        ("POST", "/admin/account/mfa", Staff(Viewer)),
        ("POST", "/admin/account/mfa/confirm", Staff(Viewer)),
        ("POST", "/admin/account/recovery-codes", Staff(Viewer)),
        ("POST", "/admin/logout", Staff(Viewer)),
        ("POST", "/admin/logout-everywhere", Staff(Viewer)),
        ("GET", "/admin", Staff(Viewer)),
        ("GET", "/admin/partners", Staff(Viewer)),
        ("GET", "/admin/partners.csv", Staff(Viewer)),
        ("GET", "/admin/partners/{id}", Staff(Viewer)),
        ("POST", "/admin/partners/{id}/invitations", Staff(Operator)),
        ("POST", "/admin/partners/{id}/refresh", Staff(Operator)),
        ("POST", "/admin/partners/{id}/offboard", Staff(Admin)),
        ("GET", "/admin/partners/{id}/customers", Staff(Viewer)),
        ("GET", "/admin/partners/{id}/customers.csv", Staff(Viewer)),
        ("GET", "/admin/partners/{id}/activity", Staff(Viewer)),
        ("GET", "/admin/partners/{id}/calls", Staff(Viewer)),
        (
            "POST",
            "/admin/partners/{id}/customers/sync",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/customers/app-consents",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/customers/{customer}/app-consent",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/customers/{customer}/app-consent/remove",
            Staff(Operator),
        ),
        (
            "POST",
            "/admin/partners/{id}/app-consent-runs",
            Staff(Operator),
        ),
        (
            "GET",
            "/admin/partners/{id}/app-consent-runs/{run}",
            Staff(Viewer),
        ),
        (
            "GET",
            "/admin/partners/{id}/app-consent-runs/{run}/progress",
            Staff(Viewer),
        ),
        (
            "POST",
            "/admin/partners/{id}/app-consent-runs/{run}/retry",
            Staff(Operator),
        ),
        ("GET", "/admin/invitations", Staff(Viewer)),
        ("POST", "/admin/invitations", Staff(Operator)),
        ("POST", "/admin/invitations/{id}/revoke", Staff(Operator)),
        ("GET", "/admin/audit", Staff(Viewer)),
        ("GET", "/admin/audit.csv", Staff(Viewer)),
        ("GET", "/admin/activity", Staff(Viewer)),
        ("GET", "/admin/clients/{id}/activity", Staff(Viewer)),
        ("GET", "/admin/clients/{id}/calls", Staff(Viewer)),
        ("GET", "/admin/clients", Staff(Admin)),
        ("POST", "/admin/clients", Staff(Admin)),
        ("POST", "/admin/clients/{id}/keys", Staff(Admin)),
        (
            "POST",
            "/admin/clients/{id}/keys/{key}/revoke",
            Staff(Admin),
        ),
        ("POST", "/admin/clients/{id}/disable", Staff(Admin)),
        ("GET", "/admin/webhooks", Staff(Viewer)),
        ("POST", "/admin/webhooks", Staff(Admin)),
        ("GET", "/admin/webhooks/{id}", Staff(Viewer)),
        ("POST", "/admin/webhooks/{id}/rotate-secret", Staff(Admin)),
        ("POST", "/admin/webhooks/{id}/disable", Staff(Admin)),
        ("POST", "/admin/webhooks/{id}/enable", Staff(Admin)),
        (
            "POST",
            "/admin/webhooks/{id}/deliveries/{delivery}/replay",
            Staff(Admin),
        ),
        ("GET", "/admin/staff", Staff(Admin)),
        ("POST", "/admin/staff", Staff(Admin)),
        ("POST", "/admin/staff/{id}/role", Staff(Admin)),
        ("POST", "/admin/staff/{id}/disable", Staff(Admin)),
        ("POST", "/admin/staff/{id}/sessions/revoke", Staff(Admin)),
        ("POST", "/admin/staff/{id}/mfa/reset", Staff(Admin)),
    ]
}

/// Routes whose success needs a current TOTP code the matrix cannot type: for them a 422 ("that
/// code is not right") proves the role check let the request through.
const NEEDS_A_CODE: [&str; 2] = [
    "/admin/account/mfa/confirm",
    "/admin/account/recovery-codes",
];

/// Fills a route template's `{id}` with a fresh fixture and returns the path and form.
async fn fixture(
    app: &TestApp,
    path: &str,
    partner: Uuid,
) -> (String, Vec<(&'static str, String)>) {
    match path {
        "/admin/partners/{id}"
        | "/admin/partners/{id}/invitations"
        | "/admin/partners/{id}/refresh"
        | "/admin/partners/{id}/customers"
        | "/admin/partners/{id}/customers.csv"
        | "/admin/partners/{id}/activity"
        | "/admin/partners/{id}/calls"
        | "/admin/partners/{id}/customers/sync"
        | "/admin/partners/{id}/app-consent-runs" => {
            (path.replace("{id}", &partner.to_string()), vec![])
        }
        "/admin/partners/{id}/customers/app-consents" => (
            path.replace("{id}", &partner.to_string()),
            vec![
                ("action", "grant".to_owned()),
                ("customer", Uuid::new_v4().to_string()),
            ],
        ),
        "/admin/partners/{id}/offboard" => {
            // Its own partner each time: offboarding is once only.
            let (other, _) = seed_partner(app, "Offboard Fixture").await;
            (path.replace("{id}", &other.to_string()), vec![])
        }
        p if p.starts_with("/admin/partners/{id}/customers/{customer}") => (
            path.replace("{id}", &partner.to_string())
                .replace("{customer}", &Uuid::new_v4().to_string()),
            vec![],
        ),
        "/admin/partners/{id}/app-consent-runs/{run}"
        | "/admin/partners/{id}/app-consent-runs/{run}/progress"
        | "/admin/partners/{id}/app-consent-runs/{run}/retry" => {
            let run = seed_run(app, partner).await;
            (
                path.replace("{id}", &partner.to_string())
                    .replace("{run}", &run.to_string()),
                vec![],
            )
        }
        "/admin/clients" => (
            path.to_owned(),
            vec![
                ("name", format!("client-{}", Uuid::new_v4().simple())),
                ("scope", "all".to_owned()),
            ],
        ),
        p if p.starts_with("/admin/clients/{id}") => {
            let (client, key) = seed_client(app).await;
            (
                path.replace("{id}", &client.to_string())
                    .replace("{key}", &key.to_string()),
                vec![],
            )
        }
        "/admin/webhooks" => (
            path.to_owned(),
            vec![("url", "https://hooks.example.com/matrix".to_owned())],
        ),
        p if p.starts_with("/admin/webhooks/{id}") => {
            let (endpoint, delivery) = seed_webhook(app).await;
            (
                path.replace("{id}", &endpoint.to_string())
                    .replace("{delivery}", &delivery.to_string()),
                vec![],
            )
        }
        "/admin/invitations/{id}/revoke" => {
            let id = pending_invitation(app).await;
            (path.replace("{id}", &id.to_string()), vec![])
        }
        "/admin/invitations" => (
            path.to_owned(),
            vec![
                ("partner_name", "Matrix Partner".to_owned()),
                ("expected_tenant", String::new()),
                ("expires_days", "7".to_owned()),
            ],
        ),
        "/admin/staff" => (
            path.to_owned(),
            vec![
                (
                    "email",
                    format!("new-{}@northwind.example", Uuid::new_v4().simple()),
                ),
                ("display_name", "New Member".to_owned()),
                ("role", "viewer".to_owned()),
            ],
        ),
        p if p.starts_with("/admin/staff/{id}") => {
            let id = app.staff(Role::Viewer).await.id;
            (
                path.replace("{id}", &id.to_string()),
                vec![("role", "operator".to_owned())],
            )
        }
        other => (other.to_owned(), vec![]),
    }
}

#[tokio::test]
async fn every_route_enforces_its_minimum_role_for_every_role() {
    let app = TestApp::spawn().await;
    let (partner, _) = seed_partner(&app, "Contoso").await;

    let mut actual: Vec<(String, &str, Access)> = samgate::web::admin::policy()
        .into_iter()
        .map(|(method, path, access)| (method.to_string(), path, access))
        .collect();
    let mut expected: Vec<(String, &str, Access)> = expected_policy()
        .into_iter()
        .map(|(m, p, a)| (m.to_owned(), p, a))
        .collect();
    let key = |r: &(String, &str, Access)| (r.0.clone(), r.1.to_owned());
    actual.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(
        actual, expected,
        "the router's table changed: update this matrix"
    );

    // Session-ending routes go last, so they do not end the session the others use.
    let mut routes = expected_policy();
    routes.sort_by_key(|(_, path, _)| path.starts_with("/admin/logout"));
    for role in Role::ALL {
        let (mut browser, _) = signed_in(&app, role).await;
        for (method, template, access) in &routes {
            let Access::Staff(needed) = *access else {
                continue;
            };
            if template.starts_with("/admin/logout") {
                browser = signed_in(&app, role).await.0;
            }
            let (path, form) = fixture(&app, template, partner).await;
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let response = if *method == "GET" {
                browser.get(&path).await
            } else {
                browser.submit(&path, &form).await
            };
            let status = response.status();
            if role.allows(needed) {
                let code_refused =
                    NEEDS_A_CODE.contains(template) && status == StatusCode::UNPROCESSABLE_ENTITY;
                assert!(
                    status == StatusCode::OK || status == StatusCode::SEE_OTHER || code_refused,
                    "{role} {method} {path}: expected success, got {status}"
                );
                let signed_out = location(&response).starts_with("/admin/login");
                assert_eq!(
                    signed_out,
                    template.starts_with("/admin/logout"),
                    "{role} {method} {path}: only sign-out routes end at the sign-in page"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} {method} {path}");
            }
        }
    }
}
