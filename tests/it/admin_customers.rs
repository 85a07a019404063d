//! The admin customers page over the customer directory: sync now, the facts per customer, the
//! filters and keyset pages, bulk app consent changes, the partner page's counts, and the page in
//! a real browser on a laptop and a phone.

use reqwest::StatusCode;
use samgate::staff::Role;
use uuid::Uuid;

use crate::admin::{count, link_href, location, page_text, seed_partner, signed_in, wait_for_run};
use crate::harness::DemoPartner::Contoso;
use crate::harness::TestApp;
use crate::harness::session::AdminClient;

const CLIENT_ID: Uuid = ms_emulator::DEMO_CLIENT_ID;
/// Customers one bulk action may change.
const MAX_SELECTED: usize = 200;
/// Contoso's demo customer whose Conditional Access blocks partner users (`with_demo_edge_cases`).
const BLOCKED: Uuid = Uuid::from_u128(0xc0570000_0000_4000_8000_00000000c003);
/// Contoso's demo customer without a GDAP relationship (`with_demo_edge_cases`).
const WITHOUT_GDAP: Uuid = Uuid::from_u128(0xc0570000_0000_4000_8000_00000000c004);

fn customers_path(partner: Uuid) -> String {
    format!("/admin/partners/{partner}/customers")
}

/// Syncs through the page's button; returns the page it redirects to.
async fn sync_now(browser: &AdminClient, partner: Uuid) -> String {
    let response = browser
        .submit(&format!("/admin/partners/{partner}/customers/sync"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "sync redirects");
    let target = location(&response);
    assert!(target.starts_with(&customers_path(partner)), "{target}");
    page_text(browser, &target).await
}

/// The HTML of one customer's row.
fn row(html: &str, customer: Uuid) -> &str {
    let start = html
        .find(&format!("<tr id=\"customer-{customer}\""))
        .unwrap_or_else(|| panic!("no row for {customer} in {html}"));
    let end = html[start..]
        .find("</tr>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

fn row_ids(html: &str) -> Vec<Uuid> {
    html.split("<tr id=\"customer-")
        .skip(1)
        .filter_map(|rest| rest.get(..36)?.parse().ok())
        .collect()
}

async fn directory_consent(app: &TestApp, customer: Uuid) -> String {
    sqlx::query_scalar("SELECT consent::text FROM customers WHERE tenant_id = $1")
        .bind(customer)
        .fetch_one(&app.pool)
        .await
        .expect("customer row")
}

/// Makes one proxied Graph call for `customer`; returns its status.
async fn call_customer_graph(app: &TestApp, key: &str, customer: Uuid) -> StatusCode {
    app.client
        .get(app.url(&format!(
            "/api/v1/partners/{}/customers/{customer}/graph/v1.0/users?$top=1",
            ms_emulator::DEMO_CONTOSO
        )))
        .bearer_auth(key)
        .send()
        .await
        .expect("proxy call")
        .status()
}

#[tokio::test]
async fn admin_customers_page_after_a_sync_shows_each_customer_with_its_gdap_consent_and_token_facts()
 {
    let app = TestApp::builder()
        .with_seed(|seed| seed.with_demo_edge_cases())
        .spawn()
        .await;
    let partner = app.consent_partner(Contoso).await;
    let (viewer, _) = signed_in(&app, Role::Viewer).await;
    let html = page_text(&viewer, &customers_path(partner)).await;
    assert!(html.contains("Never synced."), "{html}");
    assert!(html.contains("an operator can sync them"), "{html}");
    assert!(
        !html.contains("id=\"sync-now\""),
        "viewers get no sync button"
    );

    let (operator, _) = signed_in(&app, Role::Operator).await;
    let html = page_text(&operator, &customers_path(partner)).await;
    assert!(html.contains("id=\"sync-now\""), "{html}");
    let html = sync_now(&operator, partner).await;
    assert!(
        html.contains("Customers synced: Partner Center lists 4 customers; 4 new"),
        "{html}"
    );
    assert!(
        html.contains("GDAP relationships were read: 3 customers have one"),
        "{html}"
    );
    assert!(html.contains("Last synced <strong>"), "{html}");
    assert_eq!(row_ids(&html).len(), 4);
    for n in [1, 2] {
        let line = row(&html, Contoso.customer(n));
        assert!(line.contains(">GDAP active<"), "{line}");
        assert!(line.contains("3 roles · ends 20"), "{line}");
        assert!(line.contains(">Not granted<"), "{line}");
        assert!(line.contains(">Not tried<"), "{line}");
        assert!(
            line.contains("onmicrosoft.com"),
            "the domain is shown: {line}"
        );
    }
    let line = row(&html, WITHOUT_GDAP);
    assert!(line.contains(">No GDAP<"), "{line}");
    assert!(
        line.contains("Consent would be granted but samgate cannot act there without GDAP"),
        "{line}"
    );
    assert!(html.contains("id=\"without-gdap-warning\""), "{html}");

    // The notice is shown once.
    let again = page_text(&operator, &customers_path(partner)).await;
    assert!(!again.contains("id=\"action-outcome\""), "{again}");

    // A refused token at the customer's authority is shown with its codes and advice, once.
    let grant = format!(
        "/admin/partners/{partner}/customers/{}/app-consent",
        Contoso.customer(1)
    );
    let response = operator.submit(&grant, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    app.microsoft().grant_app_consent(BLOCKED, CLIENT_ID);
    let key = app.api_key("reader", None, true).await;
    assert_eq!(
        call_customer_graph(&app, &key, BLOCKED).await,
        StatusCode::FORBIDDEN
    );
    let html = page_text(&operator, &customers_path(partner)).await;
    let line = row(&html, Contoso.customer(1));
    assert!(line.contains(">Granted<"), "{line}");
    let line = row(&html, BLOCKED);
    assert!(line.contains(">Refused<"), "{line}");
    assert!(
        line.contains("customer_policy_blocked · AADSTS53003"),
        "{line}"
    );
    assert!(line.contains("checked 20"), "{line}");
    assert_eq!(
        html.matches("Conditional Access in the customer").count(),
        1,
        "the advice is said once: {line}"
    );
}

#[tokio::test]
async fn admin_needs_attention_lists_a_customer_whose_gdap_expired_and_the_partner_page_counts_it()
{
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (operator, _) = signed_in(&app, Role::Operator).await;
    sync_now(&operator, partner).await;
    let (expiring, fine) = (Contoso.customer(1), Contoso.customer(2));
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &[
                ("action", "grant"),
                ("customer", &expiring.to_string()),
                ("customer", &fine.to_string()),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let attention = format!("{}?state=needs_attention", customers_path(partner));
    let html = page_text(&operator, &attention).await;
    assert!(row_ids(&html).is_empty(), "all is well: {html}");
    assert!(html.contains("No customer matches"), "{html}");

    app.microsoft().set_relationship_status(
        ms_emulator::DEMO_CONTOSO,
        expiring,
        ms_emulator::RelationshipStatus::Expired,
    );
    sync_now(&operator, partner).await;
    let html = page_text(&operator, &attention).await;
    assert_eq!(row_ids(&html), [expiring]);
    let line = row(&html, expiring);
    assert!(line.contains(">GDAP expired<"), "{line}");
    assert!(line.contains("ended 20"), "{line}");
    assert!(
        html.contains("Needs attention (1)"),
        "the filter shows its count"
    );
    let html = page_text(
        &operator,
        &format!("{}?state=gdap_active", customers_path(partner)),
    )
    .await;
    assert_eq!(row_ids(&html), [fine]);

    let html = page_text(&operator, &format!("/admin/partners/{partner}")).await;
    let tile = |filter: &str| {
        let marker = format!("id=\"customers-{filter}\"");
        let at = html
            .find(&marker)
            .unwrap_or_else(|| panic!("{marker} in {html}"));
        let count = &html[at..];
        let start = count.find("tile-count\">").expect("count") + "tile-count\">".len();
        count[start..start + count[start..].find('<').expect("end")].to_owned()
    };
    assert_eq!(
        html.matches("class=\"tile tile-").count(),
        7,
        "one tile per count"
    );
    assert_eq!(tile("all"), "2");
    assert_eq!(tile("gdap_active"), "1");
    assert_eq!(tile("no_gdap"), "1");
    assert_eq!(tile("consent_missing"), "0");
    assert_eq!(tile("needs_attention"), "1");
    let link = link_href(&html, "id=\"customers-needs_attention\"").expect("a link");
    assert_eq!(link, attention);
}

#[tokio::test]
async fn admin_bulk_grant_of_two_selected_customers_records_both_as_granted() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (operator, staff) = signed_in(&app, Role::Operator).await;
    sync_now(&operator, partner).await;
    let (one, two) = (Contoso.customer(1), Contoso.customer(2));
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &[
                ("action", "grant"),
                ("customer", &one.to_string()),
                ("customer", &two.to_string()),
                ("customer", &one.to_string()),
                ("state", "consent_missing"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert_eq!(
        target,
        format!("{}?state=consent_missing", customers_path(partner)),
        "back to the same view"
    );
    for customer in [one, two] {
        assert!(app.microsoft().app_consented(customer, CLIENT_ID));
        assert_eq!(directory_consent(&app, customer).await, "granted");
    }
    let audited = count(
        &app,
        &format!(
            "SELECT count(*) FROM audit_events WHERE action = 'app_consent.granted' \
             AND actor = 'staff:{staff}'"
        ),
    )
    .await;
    assert_eq!(audited, 2, "each customer once, duplicates ignored");
    let html = page_text(&operator, &target).await;
    assert!(
        html.contains("Grant app consent for 2 customers: 2 done."),
        "{html}"
    );
    for customer in [one, two] {
        assert!(
            html.contains(&format!("data-outcome=\"{customer}\"")),
            "{html}"
        );
    }
    assert!(row_ids(&html).is_empty(), "none is missing its consent now");

    // Removing them again, in bulk, reports each too.
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &[
                ("action", "remove"),
                ("customer", &one.to_string()),
                ("customer", &two.to_string()),
            ],
        )
        .await;
    let html = page_text(&operator, &location(&response)).await;
    assert!(
        html.contains("Remove app consent for 2 customers: 2 done."),
        "{html}"
    );
    for customer in [one, two] {
        assert!(!app.microsoft().app_consented(customer, CLIENT_ID));
        assert_eq!(directory_consent(&app, customer).await, "none");
        assert!(row(&html, customer).contains("class=\"changed\""));
    }

    // A customer that is not in the partner's directory is reported, not sent to Microsoft.
    let stranger = Uuid::new_v4();
    let before = app.microsoft().route_calls("/v1/customers");
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &[("action", "grant"), ("customer", &stranger.to_string())],
        )
        .await;
    let html = page_text(&operator, &location(&response)).await;
    assert!(
        html.contains("customer directory; nothing was done"),
        "{html}"
    );
    assert_eq!(app.microsoft().route_calls("/v1/customers"), before);

    // Too many customers at once, or a broken id, is a clear 400.
    let many: Vec<String> = (0..=MAX_SELECTED)
        .map(|_| Uuid::new_v4().to_string())
        .collect();
    let mut form: Vec<(&str, &str)> = vec![("action", "grant")];
    form.extend(many.iter().map(|id| ("customer", id.as_str())));
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &form,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .expect("page")
            .contains("At most 200 customers")
    );
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &[("action", "grant"), ("customer", "not-a-tenant")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_reapplying_a_stale_consent_replaces_it_at_partner_center() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (operator, _) = signed_in(&app, Role::Operator).await;
    sync_now(&operator, partner).await;
    let customer = Contoso.customer(1);
    // Consented earlier with other permissions than samgate now asks for.
    app.microsoft().grant_app_consent(customer, CLIENT_ID);
    sqlx::query(
        "UPDATE customers SET consent = 'stale', consent_grants = 'old:User.Read',
                consent_changed_at = now() WHERE tenant_id = $1",
    )
    .bind(customer)
    .execute(&app.pool)
    .await
    .expect("stale consent");
    let html = page_text(&operator, &customers_path(partner)).await;
    let line = row(&html, customer);
    assert!(line.contains(">Stale<"), "{line}");
    assert!(
        line.contains("granted with other permissions than configured — re-apply"),
        "{line}"
    );
    assert!(line.contains("data-reapply="), "{line}");
    assert!(!line.contains("data-grant="), "{line}");

    // Grant leaves a stale consent alone and says to re-apply.
    let bulk = format!("/admin/partners/{partner}/customers/app-consents");
    let response = operator
        .submit(
            &bulk,
            &[("action", "grant"), ("customer", &customer.to_string())],
        )
        .await;
    let html = page_text(&operator, &location(&response)).await;
    assert!(html.contains("Use Re-apply"), "{html}");
    assert_eq!(directory_consent(&app, customer).await, "stale");

    app.microsoft().clear_recorded_requests();
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/{customer}/app-consent"),
            &[("action", "reapply")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let calls: Vec<(String, String)> = app
        .microsoft()
        .recorded_requests()
        .into_iter()
        .filter(|r| r.path.contains("/applicationconsents"))
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "DELETE".to_owned(),
                format!("/v1/customers/{customer}/applicationconsents/{CLIENT_ID}")
            ),
            (
                "POST".to_owned(),
                format!("/v1/customers/{customer}/applicationconsents")
            ),
        ],
        "the old consent is removed, then the configured one granted"
    );
    assert_eq!(directory_consent(&app, customer).await, "granted");
    let html = page_text(&operator, &location(&response)).await;
    assert!(
        html.contains("Re-applied with the configured permissions"),
        "{html}"
    );
}

#[tokio::test]
async fn admin_granting_without_gdap_is_refused_with_gdap_advice_and_the_run_counts_each_outcome() {
    let app = TestApp::builder()
        .with_seed(|seed| seed.with_demo_edge_cases())
        .spawn()
        .await;
    let partner = app.consent_partner(Contoso).await;
    let (operator, _) = signed_in(&app, Role::Operator).await;
    sync_now(&operator, partner).await;
    let response = operator
        .submit(
            &format!("/admin/partners/{partner}/customers/app-consents"),
            &[("action", "grant"), ("customer", &WITHOUT_GDAP.to_string())],
        )
        .await;
    // Partner Center refuses to consent an app where the partner has no GDAP role that may do it
    // (400, the directory's "Insufficient privileges"): the operator is told what to set up.
    let html = page_text(&operator, &location(&response)).await;
    assert!(html.contains("Not granted"), "{html}");
    assert!(
        html.contains("active GDAP relationship with this customer"),
        "{html}"
    );

    let response = operator
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    let run_page = location(&response);
    let run: Uuid = run_page
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("run id");
    assert_eq!(wait_for_run(&app, run).await, "finished");
    let html = page_text(&operator, &run_page).await;
    assert!(html.contains("4 of 4 customers done"), "{html}");
    // Two granted; the blocked customer's seeded consent was not made by samgate; the customer
    // without GDAP is refused by Partner Center, with GDAP advice.
    assert!(html.contains("id=\"run-succeeded\">2"), "{html}");
    assert!(html.contains("id=\"run-other-grants\">1"), "{html}");
    assert!(html.contains("id=\"run-failed\">1"), "{html}");
    assert!(html.contains("gdap_privileges"), "{html}");

    // The progress the page's script reads says the same.
    let progress: serde_json::Value = operator
        .get(&format!("{run_page}/progress"))
        .await
        .json()
        .await
        .expect("progress JSON");
    assert_eq!(progress["state"], "finished");
    assert_eq!(progress["reading"], false);
    assert_eq!(
        (&progress["total"], &progress["done"], &progress["failed"]),
        (&4.into(), &4.into(), &1.into())
    );
    assert_eq!(progress["summary"], "4 of 4 customers done");

    // "Needing attention" lists the failure and the foreign consent, not the two granted.
    let problems = page_text(&operator, &format!("{run_page}?show=problems")).await;
    assert!(problems.contains(&WITHOUT_GDAP.to_string()), "{problems}");
    assert_eq!(
        problems.matches("data-label=\"Customer\"").count(),
        2,
        "{problems}"
    );
    assert!(problems.contains("Needing attention (2)"), "{problems}");
    let bad = operator.get(&format!("{run_page}?show=everything")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // "Retry failed" runs again over the one failed customer only, and says so.
    assert!(html.contains("Retry the 1 failed"), "{html}");
    let response = operator.submit(&format!("{run_page}/retry"), &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let retry_page = location(&response);
    let retry: Uuid = retry_page
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("retry run id");
    assert_ne!(retry, run);
    assert_eq!(wait_for_run(&app, retry).await, "finished");
    let customers: Vec<Uuid> = sqlx::query_scalar(
        "SELECT customer_tenant_id FROM app_consent_run_items WHERE run_id = $1",
    )
    .bind(retry)
    .fetch_all(&app.pool)
    .await
    .expect("items");
    assert_eq!(customers, [WITHOUT_GDAP], "only the failure is retried");
    let retried_of: Option<Uuid> =
        sqlx::query_scalar("SELECT retry_of FROM app_consent_runs WHERE id = $1")
            .bind(retry)
            .fetch_one(&app.pool)
            .await
            .expect("run");
    assert_eq!(retried_of, Some(run));
    let html = page_text(&operator, &retry_page).await;
    assert!(
        html.contains("Retrying the 1 customer that failed"),
        "{html}"
    );
    assert!(html.contains("Retry of failed customers"), "{html}");
    assert!(html.contains("1 of 1 customer done"), "{html}");

    // A viewer may watch but not retry; another partner's run is not found under this one.
    let (viewer, _) = signed_in(&app, Role::Viewer).await;
    let refused = viewer.submit(&format!("{run_page}/retry"), &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (other, _) = seed_partner(&app, "Fabrikam Partners").await;
    let crossed = operator
        .get(&format!(
            "/admin/partners/{other}/app-consent-runs/{run}/progress"
        ))
        .await;
    assert_eq!(crossed.status(), StatusCode::NOT_FOUND);
    let crossed = operator
        .submit(
            &format!("/admin/partners/{other}/app-consent-runs/{run}/retry"),
            &[],
        )
        .await;
    assert_eq!(crossed.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_running_grant_to_all_updates_its_page_in_place_and_reloads_once_it_ends() {
    let Some(browser) = crate::harness::browser::Browser::launch("run-progress").await else {
        return;
    };
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    app.microsoft()
        .add_customers(ms_emulator::DEMO_CONTOSO, 10)
        .expect("customers");
    // Each consent takes a while, so the run is seen going (4 at a time, 12 customers).
    app.microsoft().fail_next(
        ms_emulator::control::Fault::path("/v1/customers/")
            .method("POST")
            .latency(std::time::Duration::from_millis(1200))
            .times(12),
    );
    let email = "ops@northwind.example";
    let (id, password) = crate::admin::add_staff(&app, email, Role::Operator).await;
    let (secret, _) = crate::admin::enrol_totp(&app, id).await;
    crate::admin::sign_in_in_browser(
        &browser,
        &app,
        &customers_path(partner),
        email,
        secrecy::ExposeSecret::expose_secret(&password),
        &secret,
    )
    .await;
    browser.find("#grant-all").await;
    browser.click("#grant-all").await;
    browser.find("#run-summary").await;
    assert!(browser.url().await.path().contains("/app-consent-runs/"));
    browser
        .eval("window.samgateMarker = 'same page'; return null;")
        .await;
    // The counts move while the page stays the same document (no reload).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen_partial = false;
    loop {
        let state = browser
            .eval("return [window.samgateMarker || null, document.getElementById('run-summary').textContent, document.getElementById('run-state').textContent];")
            .await;
        let summary = state[1].as_str().unwrap_or_default().to_owned();
        if state[0] == "same page"
            && summary.contains(" of 12 customers done")
            && !summary.starts_with("12 of")
            && !summary.starts_with("0 of")
        {
            seen_partial = true;
        }
        if state[0].is_null() {
            // The page loaded again: the run ended.
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run page never moved on: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    assert!(
        seen_partial,
        "progress was shown in place while the run went"
    );
    browser.find("#run-items").await;
    assert_eq!(browser.text("#run-state").await, "finished");
    assert!(
        browser
            .text("#run-summary")
            .await
            .contains("12 of 12 customers done")
    );
    browser.screenshot("run-finished").await;
    browser.close().await;
}

#[tokio::test]
async fn admin_customer_pages_follow_the_directory_keyset_and_a_bad_link_is_a_clear_400() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    app.microsoft()
        .add_customers(ms_emulator::DEMO_CONTOSO, 55)
        .expect("customers");
    let (viewer, _) = signed_in(&app, Role::Viewer).await;
    let (operator, _) = signed_in(&app, Role::Operator).await;
    sync_now(&operator, partner).await;
    let before = app.microsoft().route_calls("/v1/customers");

    let first = page_text(&viewer, &customers_path(partner)).await;
    assert!(
        !first.contains("data-grant="),
        "viewers get no consent buttons"
    );
    assert!(!first.contains("name=\"customer\""), "nor checkboxes");
    let next = link_href(&first, "id=\"next-page\"").expect("a next page");
    assert!(
        next.contains("after=") && next.contains("after_name="),
        "{next}"
    );
    let second = page_text(&viewer, &next).await;
    assert!(second.contains("rel=\"first\""));
    assert!(!second.contains("id=\"next-page\""), "the last page");
    let (first, second) = (row_ids(&first), row_ids(&second));
    assert_eq!((first.len(), second.len()), (50, 57 - 50));
    let mut all: Vec<Uuid> = first.iter().chain(&second).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 57, "no overlap, no gap");
    assert_eq!(
        app.microsoft().route_calls("/v1/customers"),
        before,
        "the page reads samgate's directory, not Partner Center"
    );

    let search = page_text(
        &viewer,
        &format!("{}?q=contosocust2", customers_path(partner)),
    )
    .await;
    assert_eq!(row_ids(&search), [Contoso.customer(2)]);

    let id = Uuid::new_v4();
    for query in [
        "after=not-a-tenant&after_name=Contoso".to_owned(),
        format!("after={id}"),
        "after_name=Contoso".to_owned(),
        format!("after={id}&after_name=A%0D%0AB"),
        "state=everything".to_owned(),
    ] {
        let response = viewer
            .get(&format!("{}?{query}", customers_path(partner)))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let html = response.text().await.expect("page");
        assert!(
            html.contains("This customers link is not valid"),
            "{query}: {html}"
        );
        assert!(html.contains("first page of customers"), "{query}: {html}");
    }
}

#[tokio::test]
async fn admin_a_failed_sync_is_explained_in_plain_words() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (operator, _) = signed_in(&app, Role::Operator).await;
    app.microsoft()
        .fail_next(ms_emulator::Fault::path("/v1/customers").throttle(30));
    let html = sync_now(&operator, partner).await;
    assert!(html.contains("Customers not synced"), "{html}");
    assert!(html.contains("throttling"), "{html}");
    assert!(html.contains("Never synced."), "{html}");
    assert!(html.contains("id=\"sync-error\""), "{html}");
    let html = sync_now(&operator, partner).await;
    assert!(html.contains("Customers synced"), "{html}");
    assert!(!html.contains("id=\"sync-error\""), "{html}");

    let (never, _) = seed_partner(&app, "Never Consented").await;
    let html = sync_now(&operator, never).await;
    assert!(html.contains("holds no consent for this partner"), "{html}");
}

#[tokio::test]
async fn admin_a_viewer_cannot_sync_customers_or_change_app_consents() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (viewer, _) = signed_in(&app, Role::Viewer).await;
    let customer = Contoso.customer(1).to_string();
    for (path, form) in [
        (format!("/admin/partners/{partner}/customers/sync"), vec![]),
        (
            format!("/admin/partners/{partner}/customers/app-consents"),
            vec![("action", "grant"), ("customer", customer.as_str())],
        ),
        (
            format!("/admin/partners/{partner}/customers/{customer}/app-consent"),
            vec![],
        ),
    ] {
        let response = viewer.submit(&path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(app.microsoft().route_calls("/v1/customers"), 0);
    assert!(
        !app.microsoft()
            .app_consented(Contoso.customer(1), CLIENT_ID)
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_events WHERE action LIKE 'customers.%' \
             OR action LIKE 'app_consent.%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn admin_customers_page_works_in_a_real_browser_on_a_laptop_and_a_phone() {
    let Some(browser) = crate::harness::browser::Browser::launch("admin-customers").await else {
        return;
    };
    let app = TestApp::builder()
        .with_seed(|seed| seed.with_demo_edge_cases())
        .spawn()
        .await;
    let partner = app.consent_partner(Contoso).await;
    app.microsoft()
        .add_customers(ms_emulator::DEMO_CONTOSO, 8)
        .expect("customers");
    let (_, password) =
        crate::admin::add_staff(&app, "ada@northwind.example", Role::Operator).await;
    let client = browser.client();
    client
        .set_window_size(1280, 900)
        .await
        .expect("window size");
    browser.goto(&app.url(&customers_path(partner))).await;
    browser.fill("#email", "ada@northwind.example").await;
    browser
        .fill("#password", secrecy::ExposeSecret::expose_secret(&password))
        .await;
    browser.click("form.stack button[type=submit]").await;
    browser.find("#sync-now").await;
    assert!(browser.text("#sync-state").await.contains("Never synced"));
    browser.screenshot("01-never-synced").await;

    browser.click("#sync-now").await;
    let notice = browser.text("#action-outcome").await;
    assert!(notice.contains("Customers synced"), "{notice}");
    // A refused token for one customer, so the page shows every kind of fact.
    app.microsoft().grant_app_consent(BLOCKED, CLIENT_ID);
    let key = app.api_key("reader", None, true).await;
    call_customer_graph(&app, &key, BLOCKED).await;

    browser.goto(&app.url(&customers_path(partner))).await;
    browser
        .click(&format!("#select-{}", Contoso.customer(1)))
        .await;
    browser
        .click(&format!("#select-{}", Contoso.customer(2)))
        .await;
    browser.click("#bulk-grant").await;
    let notice = browser.text("#action-outcome").await;
    assert!(
        notice.contains("Grant app consent for 2 customers: 2 done."),
        "{notice}"
    );
    assert_eq!(
        directory_consent(&app, Contoso.customer(1)).await,
        "granted"
    );
    assert_eq!(
        directory_consent(&app, Contoso.customer(2)).await,
        "granted"
    );
    browser.screenshot("02-desktop-after-bulk-grant").await;
    let scroll_to =
        |css: &str| format!("document.querySelector('{css}').scrollIntoView(); return null;");
    browser.eval(&scroll_to("#bulk")).await;
    browser.screenshot("02b-desktop-table").await;
    let overflow =
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth";
    assert_eq!(
        browser.eval(overflow).await,
        serde_json::json!(0),
        "desktop"
    );

    browser
        .goto(&app.url(&format!(
            "{}?state=needs_attention",
            customers_path(partner)
        )))
        .await;
    browser.find("table#customers").await;
    browser.eval(&scroll_to(".filters")).await;
    browser.screenshot("03-desktop-needs-attention").await;

    browser
        .goto(&app.url(&format!("/admin/partners/{partner}")))
        .await;
    browser.find("#customer-counts").await;
    browser.eval(&scroll_to("#customer-counts")).await;
    browser.screenshot("04-desktop-partner-counts").await;

    client.set_window_size(390, 844).await.expect("phone size");
    browser.goto(&app.url(&customers_path(partner))).await;
    browser.find("table#customers").await;
    assert_eq!(
        browser.eval(overflow).await,
        serde_json::json!(0),
        "nothing overflows the phone's width"
    );
    let widest = browser
        .eval(
            "const limit = document.documentElement.clientWidth;
             return [...document.querySelectorAll('main *')]
               .filter(e => !e.closest('.table-scroll') || e.classList.contains('table-scroll'))
               .filter(e => e.getBoundingClientRect().right > limit + 1)
               .map(e => e.tagName + '.' + e.className).slice(0, 5);",
        )
        .await;
    assert_eq!(widest, serde_json::json!([]), "no element sticks out");
    browser.screenshot("05-phone-customers").await;
    browser.eval(&scroll_to("#customers")).await;
    browser.screenshot("06-phone-customers-table").await;
    browser
        .goto(&app.url(&format!("/admin/partners/{partner}")))
        .await;
    browser.find("#customer-counts").await;
    browser.eval(&scroll_to("#customer-counts")).await;
    assert_eq!(
        browser.eval(overflow).await,
        serde_json::json!(0),
        "partner page"
    );
    browser.screenshot("07-phone-partner-counts").await;
    browser.close().await;
}

#[tokio::test]
async fn admin_customers_csv_lists_the_directory_of_the_filter_with_formulas_defused() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    // More than one export batch (500 rows).
    app.microsoft()
        .add_customers(ms_emulator::DEMO_CONTOSO, 505)
        .expect("customers");
    let (operator, _) = signed_in(&app, Role::Operator).await;
    sync_now(&operator, partner).await;
    sqlx::query("UPDATE customers SET company_name = $2 WHERE tenant_id = $1")
        .bind(Contoso.customer(2))
        .bind("=HYPERLINK(\"https://evil.example\",\"Contoso\")")
        .execute(&app.pool)
        .await
        .expect("name");
    let (viewer, _) = signed_in(&app, Role::Viewer).await;
    let page = page_text(&viewer, &format!("{}?q=contoso", customers_path(partner))).await;
    let export = link_href(&page, "id=\"export-csv\"").expect("an export link");
    assert_eq!(
        export,
        format!("/admin/partners/{partner}/customers.csv?q=contoso")
    );

    let response = viewer
        .get(&format!("{}.csv", customers_path(partner)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains(&format!(
                "samgate-customers-{}.csv",
                ms_emulator::DEMO_CONTOSO
            ))
    );
    let csv = response.text().await.expect("csv");
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert!(
        lines[0].starts_with("company_name,tenant_id,domain,gdap,"),
        "{}",
        lines[0]
    );
    let current: Vec<Uuid> = sqlx::query_scalar(
        "SELECT tenant_id FROM customers WHERE partner_id = $1 AND removed_at IS NULL",
    )
    .bind(partner)
    .fetch_all(&app.pool)
    .await
    .expect("directory");
    assert!(current.len() > 500, "{}", current.len());
    assert_eq!(
        lines.len(),
        current.len() + 1,
        "a header and one line a customer"
    );
    for customer in &current {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(&customer.to_string()))
                .count(),
            1,
            "{customer}"
        );
    }
    let evil = lines
        .iter()
        .find(|l| l.contains(&Contoso.customer(2).to_string()))
        .expect("the renamed customer");
    assert!(
        evil.starts_with("\"'=HYPERLINK(\"\"https://evil.example\"\""),
        "a formula is defused: {evil}"
    );

    // The page's search applies.
    let one = viewer
        .get(&format!("{}.csv?q=hyperlink", customers_path(partner)))
        .await
        .text()
        .await
        .expect("csv");
    let lines: Vec<&str> = one.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 2, "{one}");
    assert!(lines[1].contains(&Contoso.customer(2).to_string()), "{one}");
    let bad = viewer
        .get(&format!("{}.csv?state=everything", customers_path(partner)))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
