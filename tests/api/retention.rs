//! Retention: people who signed up and never confirmed are removed once their link has been
//! expired for the retention period (`ENLACE_UNCONFIRMED_RETENTION_DAYS`), as an erasure
//! removes them but without suppressing the address; nobody else is touched.

use enlace::auth::Role;
use enlace::services::retention::purge_unconfirmed;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn signups_never_confirmed_go_after_the_retention_period_and_nobody_else_does() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    for email in ["old@example.org", "recent@example.org", "kept@example.org"] {
        let res = app
            .subscribe(json!({"email": email, "interests": ["news"]}))
            .await;
        assert_eq!(res.status(), 202);
    }
    let mail = app.deliver_one("kept@example.org").await;
    let res = app
        .client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.run_jobs().await;
    let old = app.conn_subscriber_id("old@example.org");
    let recent = app.conn_subscriber_id("recent@example.org");
    let kept = app.conn_subscriber_id("kept@example.org");
    // Both signed up 40 days ago; one link expired 31 days ago, the other 29.
    app.age_signup(&old, 40, 31);
    app.age_signup(&recent, 40, 29);
    app.age_signup(&kept, 40, 39);

    let removed = purge_unconfirmed(&app.db, &app.worker.mailer, enlace::db::now(), 30)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(app.status_of("old@example.org"), None);
    for table in [
        "consent_events",
        "confirmation_tokens",
        "subscriber_interests",
        "jobs",
    ] {
        assert_eq!(
            app.count(&format!("{table} WHERE subscriber_id = '{old}'")),
            0,
            "{table} of the purged signup"
        );
    }
    assert_eq!(
        app.status_of("recent@example.org").as_deref(),
        Some("pending")
    );
    assert_eq!(
        app.status_of("kept@example.org").as_deref(),
        Some("confirmed")
    );
    assert!(app.count(&format!("consent_events WHERE subscriber_id = '{recent}'")) > 0);

    // Other tools learn of it from the change feed, as of an erasure.
    let viewer = app.staff_token(Role::Viewer).await;
    let feed = app.get_json_as(&viewer, "/api/v1/subscribers").await;
    let entries = feed["data"].as_array().unwrap();
    let tombstone: Vec<&Value> = entries.iter().filter(|e| e["id"] == old.as_str()).collect();
    assert_eq!(tombstone.len(), 1, "{feed}");
    assert_eq!(tombstone[0]["erased"], true);

    // Nothing is suppressed: the person may sign up again.
    assert_eq!(app.count("suppressions"), 0);
    let res = app
        .subscribe(json!({"email": "old@example.org", "interests": ["news"]}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(app.status_of("old@example.org").as_deref(), Some("pending"));
    assert_eq!(
        purge_unconfirmed(&app.db, &app.worker.mailer, enlace::db::now(), 30)
            .await
            .unwrap(),
        0,
        "a new signup starts a new period"
    );
}
