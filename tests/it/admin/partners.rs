//! Partner pages and actions: keyset paging and sorting, refresh now, granting app consent to
//! every customer.

use super::*;

#[tokio::test]
async fn partner_pages_follow_the_keyset_without_overlap_or_gaps() {
    let app = TestApp::spawn().await;
    // Names repeat, so the id must break ties for the pages to be stable.
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, domain, status)
         SELECT gen_random_uuid(), gen_random_uuid(), 'Partner ' || lpad((i % 97)::text, 3, '0'),
                'p' || i || '.onmicrosoft.com',
                CASE WHEN i % 10 = 0 THEN 'needs_consent' ELSE 'healthy' END
         FROM generate_series(1, 260) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("seed partners");
    let expected: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM partners ORDER BY display_name, id")
            .fetch_all(&app.pool)
            .await
            .expect("order");
    let (browser, _) = signed_in(&app, Role::Viewer).await;

    let mut seen = Vec::new();
    let mut next = Some("/admin/partners".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let html = browser.get(&path).await.text().await.expect("page");
        seen.extend(partner_ids(&html));
        next = link_href(&html, "id=\"next-page\"");
        pages += 1;
        assert!(pages < 20, "pagination does not end: {path} -> {next:?}");
    }
    assert_eq!(pages, 6, "260 partners in pages of 50");
    assert_eq!(seen, expected, "every partner once, in order");

    // Filters travel with the cursor.
    let html = browser
        .get("/admin/partners?status=needs_consent")
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(partner_ids(&html).len(), 26);
    assert!(link_href(&html, "id=\"next-page\"").is_none());
    let html = browser
        .get("/admin/partners?q=p26.onmicrosoft")
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(partner_ids(&html).len(), 1);
    // A text search over many matches pages the same way (trigram-first query plan).
    let mut searched = Vec::new();
    let mut next = Some("/admin/partners?q=onmicrosoft".to_owned());
    while let Some(path) = next {
        let html = browser.get(&path).await.text().await.expect("page");
        searched.extend(partner_ids(&html));
        next = link_href(&html, "id=\"next-page\"").map(|href| href.replace("&amp;", "&"));
    }
    let unique: std::collections::HashSet<_> = searched.iter().collect();
    assert_eq!(unique.len(), searched.len(), "pages overlap");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM partners WHERE domain ILIKE '%onmicrosoft%' OR display_name ILIKE '%onmicrosoft%'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(
        searched.len() as i64,
        total,
        "every match on exactly one page"
    );
    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM partners LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("tenant");
    let html = browser
        .get(&format!("/admin/partners?q={tenant}"))
        .await
        .text()
        .await
        .expect("page");
    assert_eq!(partner_ids(&html).len(), 1);
    assert_eq!(
        browser.get("/admin/partners?after=junk").await.status(),
        400
    );
}

#[tokio::test]
async fn partners_sorted_by_status_or_last_use_page_in_that_order_and_an_unknown_sort_is_a_400() {
    let app = TestApp::spawn().await;
    // Statuses and names repeat, so the later keys must break ties for the pages to be stable.
    sqlx::query(
        "INSERT INTO partners (id, tenant_id, display_name, status)
         SELECT gen_random_uuid(), gen_random_uuid(), 'Partner ' || (i % 7),
                (ARRAY['healthy', 'degraded', 'needs_consent', 'pending'])[1 + i % 4]
         FROM generate_series(1, 75) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("seed partners");
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let walk = async |first: &str| {
        let (mut seen, mut pages, mut next) = (Vec::new(), 0, Some(first.to_owned()));
        while let Some(path) = next.take() {
            let html = page_text(&browser, &path).await;
            seen.extend(partner_ids(&html));
            next = link_href(&html, "id=\"next-page\"");
            if let Some(next) = &next {
                assert!(
                    next.contains("sort="),
                    "the order travels with the cursor: {next}"
                );
            }
            pages += 1;
            assert!(pages < 10, "pagination does not end");
        }
        (pages, seen)
    };

    let by_status: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM partners ORDER BY
           array_position(ARRAY['degraded', 'needs_consent', 'mfa_required', 'pending', 'healthy'], status),
           display_name, id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("order");
    assert_eq!(walk("/admin/partners?sort=status").await, (2, by_status));

    // Nobody used a grant: never-used partners come last, by id, newest id first.
    let by_use: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM partners ORDER BY id DESC")
        .fetch_all(&app.pool)
        .await
        .expect("order");
    assert_eq!(walk("/admin/partners?sort=used").await, (2, by_use.clone()));

    // One consented partner: refreshed most recently, so first; the never refreshed follow.
    let contoso = app.consent_partner(Contoso).await;
    let by_refresh: Vec<Uuid> = std::iter::once(contoso)
        .chain(by_use.iter().copied())
        .collect();
    assert_eq!(
        walk("/admin/partners?sort=refreshed").await,
        (2, by_refresh)
    );

    // Column headers are links to each order, and say which one is in force.
    let header = |html: &str, id: &str| {
        let at = html.find(&format!("id=\"{id}\"")).expect("a sort link");
        let start = html[..at].rfind("<th").expect("in a header");
        html[start..at].to_owned()
    };
    let html = page_text(&browser, "/admin/partners?sort=used&status=degraded").await;
    assert!(
        header(&html, "sort-used").contains("aria-sort=\"descending\""),
        "{html}"
    );
    assert!(
        header(&html, "sort-name").contains("aria-sort=\"none\""),
        "{html}"
    );
    assert_eq!(
        link_href(&html, "id=\"sort-status\"").as_deref(),
        Some("/admin/partners?q=&status=degraded&sort=status")
    );
    assert_eq!(
        link_href(&html, "id=\"sort-name\"").as_deref(),
        Some("/admin/partners?q=&status=degraded")
    );
    assert!(
        html.contains("name=\"sort\" value=\"used\""),
        "a new search keeps the order"
    );
    let plain = page_text(&browser, "/admin/partners").await;
    assert!(
        header(&plain, "sort-name").contains("aria-sort=\"ascending\""),
        "{plain}"
    );
    for bad in [
        "/admin/partners?sort=tenant_id",
        "/admin/partners.csv?sort=1;DROP",
    ] {
        assert_eq!(browser.get(bad).await.status(), 400, "{bad}");
    }
}

fn partner_ids(html: &str) -> Vec<Uuid> {
    html.split("href=\"/admin/partners/")
        .skip(1)
        .filter_map(|rest| rest.get(..36).and_then(|id| Uuid::parse_str(id).ok()))
        .collect()
}

#[tokio::test]
async fn refresh_now_redeems_the_grant_shows_the_outcome_and_is_audited() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (browser, staff) = signed_in(&app, Role::Operator).await;
    let refreshes = app.microsoft().token_calls("refresh_token");

    let response = browser
        .submit(&format!("/admin/partners/{partner}/refresh"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert_eq!(target, format!("/admin/partners/{partner}"));
    assert_eq!(
        app.microsoft().token_calls("refresh_token"),
        refreshes + 1,
        "one refresh at Microsoft"
    );
    let html = page_text(&browser, &target).await;
    assert!(
        html.contains("Refreshed: Microsoft issued a new token"),
        "{html}"
    );
    assert!(html.contains("id=\"refresh-now\""));

    app.microsoft()
        .revoke_refresh_tokens(ms_emulator::DEMO_CONTOSO_ADMIN);
    let response = browser
        .submit(&format!("/admin/partners/{partner}/refresh"), &[])
        .await;
    let target = location(&response);
    assert_eq!(target, format!("/admin/partners/{partner}"));
    let html = page_text(&browser, &target).await;
    assert!(html.contains("consent is no longer valid"), "{html}");
    assert!(
        html.contains("Needs consent"),
        "the partner's status changed"
    );
    assert!(html.contains("What to do"), "advice is shown");

    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'outcome' FROM audit_events
         WHERE action = 'grant.refresh_requested' AND actor = $1 ORDER BY id",
    )
    .bind(format!("staff:{staff}"))
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(outcomes, ["ok", "consent_required"]);
}

#[tokio::test]
async fn granting_to_all_customers_runs_in_the_background_with_progress_and_is_idempotent() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let client_id = ms_emulator::DEMO_CLIENT_ID;
    app.microsoft()
        .grant_app_consent(Contoso.customer(2), client_id);
    let (browser, _) = signed_in(&app, Role::Operator).await;

    let response = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let run_page = location(&response);
    let run: Uuid = run_page
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("run id");
    assert_eq!(wait_for_run(&app, run).await, "finished");
    assert!(
        app.microsoft()
            .app_consented(Contoso.customer(1), client_id)
    );
    assert!(
        app.microsoft()
            .app_consented(Contoso.customer(2), client_id)
    );

    let html = page_text(&browser, &run_page).await;
    assert!(html.contains("2 of 2 customers done"), "{html}");
    // Customer 2's consent was made outside samgate: Partner Center's 409 says it exists, not
    // with which permissions, so it is not counted as granted with the configured ones.
    assert!(
        html.contains(">Granted<")
            && html.contains(">A consent with other permissions exists: re-apply<"),
        "{html}"
    );
    assert!(html.contains("id=\"run-other-grants\">1"), "{html}");
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "a finished run stops reloading"
    );

    let again = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    let second: Uuid = location(&again)
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("id");
    assert_ne!(second, run);
    assert_eq!(wait_for_run(&app, second).await, "finished");
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM app_consent_run_items WHERE run_id = $1 ORDER BY position",
    )
    .bind(second)
    .fetch_all(&app.pool)
    .await
    .expect("items");
    // What samgate granted is current; the foreign consent stays to be re-applied.
    let mut states = states;
    states.sort();
    assert_eq!(states, ["already_granted", "exists_other_grants"]);
    let finished: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'app_consent.run_finished' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0]["granted"], 1);
    assert_eq!(finished[0]["exists_other_grants"], 1);
    assert_eq!(finished[1]["already_granted"], 1);

    // A run whose instance died (no heartbeat for minutes) is taken over, not waited on forever.
    sqlx::query(
        "INSERT INTO app_consent_runs (id, partner_id, started_by, started_at, heartbeat_at)
         VALUES ($1, $2, 'test', $3, $3)",
    )
    .bind(Uuid::now_v7())
    .bind(partner)
    .bind(app.app.clock.now() - time::Duration::minutes(10))
    .execute(&app.pool)
    .await
    .expect("stale run");
    let third = browser
        .submit(&format!("/admin/partners/{partner}/app-consent-runs"), &[])
        .await;
    let third: Uuid = location(&third)
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("id");
    assert_eq!(wait_for_run(&app, third).await, "finished");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM app_consent_runs WHERE state = 'abandoned'"
        )
        .await,
        1
    );
}
