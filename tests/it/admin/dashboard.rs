//! The dashboard's grant counts.

use super::*;

#[tokio::test]
async fn the_dashboard_counts_grants_never_used_and_unused_long_enough_to_expire() {
    let app = TestApp::builder().with_consented(Contoso).spawn().await;
    let partner = app.partner_id(Contoso);
    let (browser, _) = signed_in(&app, Role::Viewer).await;
    let html = page_text(&browser, "/admin").await;
    assert!(
        html.contains("<span class=\"tile-count\" id=\"never-used\">1</span>"),
        "{html}"
    );
    assert!(html.contains("<span class=\"tile-count\" id=\"expiring-unused\">0</span>"));

    let now = app.app.clock.now();
    sqlx::query("UPDATE grants SET refreshed_at = $2, last_used_at = $3 WHERE partner_id = $1")
        .bind(partner)
        .bind(now - time::Duration::days(75))
        .bind(now - time::Duration::days(70))
        .execute(&app.pool)
        .await
        .expect("age the grant");
    let html = page_text(&browser, "/admin").await;
    assert!(
        html.contains("<span class=\"tile-count\" id=\"never-used\">0</span>"),
        "{html}"
    );
    assert!(html.contains("<span class=\"tile-count\" id=\"expiring-unused\">1</span>"));
    assert!(html.contains("about 20 days"), "90 - 70 days: {html}");
}
