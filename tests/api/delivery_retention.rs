//! Retention of newsletter deliveries: once a newsletter has been finished (sent or cancelled)
//! for `ENLACE_DELIVERY_RETENTION_DAYS`, its one row per recipient is folded into its results,
//! counts by language, state, reason and hour that name nobody. The numbers the API shows stay
//! the same, a newsletter that may still send is never touched, folding twice changes nothing,
//! and two processes folding at once count each delivery once.

use std::net::TcpListener;

use diesel::prelude::*;
use enlace::auth::Role;
use enlace::db::schema::delivery_results as r;
use enlace::services::retention::fold_deliveries;
use mailin_embedded::response::{Response, OK};
use mailin_embedded::Handler;
use serde_json::{json, Value};

use crate::helpers::{Person, TestApp};
use crate::newsletters::{create, newsletter, post, send_plain, POSTAL};

/// An SMTP server that refuses `…bounce…` recipients for good, quoting the address as real
/// servers do.
#[derive(Clone, Default)]
struct Refuser;

impl Handler for Refuser {
    fn rcpt(&mut self, to: &str) -> Response {
        if to.contains("bounce") {
            return Response::custom(550, format!("5.1.1 {to} User unknown"));
        }
        OK
    }
}

/// A results line: (language, state, reason, hour, recipients).
type Line = (String, String, String, chrono::NaiveDateTime, i64);

fn results_of(app: &TestApp, newsletter_id: &str) -> Vec<Line> {
    r::table
        .filter(r::newsletter_id.eq(newsletter_id))
        .order((r::language, r::state, r::reason, r::hour))
        .select((r::language, r::state, r::reason, r::hour, r::recipients))
        .load(&mut *app.conn())
        .unwrap()
}

fn deliveries_of(app: &TestApp, newsletter_id: &str) -> i64 {
    app.count(&format!(
        "deliveries WHERE newsletter_id = '{newsletter_id}'"
    ))
}

async fn progress(app: &TestApp, token: &str, id: &str) -> Value {
    let n = newsletter(app, token, id).await;
    assert!(n["progress"].is_object(), "{n}");
    n["progress"].clone()
}

/// The newsletters an access request lists for the person.
async fn listed_for(app: &TestApp, admin: &str, subscriber_id: &str) -> Vec<String> {
    let data = app
        .get_json_as(admin, &format!("/api/v1/subscribers/{subscriber_id}/data"))
        .await;
    let mut ids: Vec<String> = data["newsletters"]
        .as_array()
        .unwrap_or_else(|| panic!("{data}"))
        .iter()
        .map(|d| d["newsletter_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn finished_newsletters_are_folded_into_results_that_name_nobody_and_read_the_same() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    crate::smtp::serve(Refuser, listener);
    let app = TestApp::builder()
        .settings(|s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.postal_address = Some(POSTAL.into());
        })
        .real_mail()
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let admin = app.staff_token(Role::Admin).await;
    let people = [
        ("ana@example.org", "en"),
        ("beto@example.org", "es"),
        ("cora@example.org", "en"),
        ("bounce@example.org", "en"),
        ("dani@example.org", "es"),
        ("eva@example.org", "en"),
    ];
    let mut ids = Vec::new();
    let mut addresses = Vec::new();
    for (email, language) in people {
        ids.push(app.add_subscriber(email, "confirmed", language, None, json!({})));
        addresses.push(email.to_owned());
    }
    let (ana, dani, eva) = (ids[0].clone(), ids[4].clone(), ids[5].clone());

    // The old newsletter: three sent, a hard bounce, one who left and one erased once the
    // recipients were fixed.
    let old = send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    app.set_status(&dani, "unsubscribed");
    assert_eq!(app.erase(&admin, &eva).await.status(), 204);
    app.run_sends().await;
    assert_eq!(newsletter(&app, &token, &old).await["status"], "sent");
    // A recent one, sent to whoever is left.
    let recent = send_plain(&app, &token).await;
    app.run_sends().await;
    assert_eq!(newsletter(&app, &token, &recent).await["status"], "sent");
    // One cancelled before anything went out.
    let cancelled = send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    let (status, _) = post(
        &app,
        &token,
        &format!("/api/v1/newsletters/{cancelled}/cancel"),
    )
    .await;
    assert_eq!(status, 200);
    // One still sending: its recipients fixed, nothing sent yet.
    let sending = send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    assert_eq!(
        newsletter(&app, &token, &sending).await["status"],
        "sending"
    );

    for id in [&old, &cancelled, &sending] {
        app.backdate_newsletter(id, 100);
    }
    let all = [&old, &recent, &cancelled, &sending];
    let mut before = Vec::new();
    for id in all {
        before.push(progress(&app, &token, id).await);
    }
    assert_eq!(
        before[0],
        json!({"eta_seconds": null, "failed": 1, "pending": 0, "per_second": 0.0,
               "sent": 3, "skipped": 2, "total": 6})
    );
    let kept: Vec<i64> = all.iter().map(|id| deliveries_of(&app, id)).collect();
    assert_eq!(kept, [6, 3, 3, 3]);
    let mut listed = vec![
        old.clone(),
        recent.clone(),
        cancelled.clone(),
        sending.clone(),
    ];
    listed.sort();
    assert_eq!(listed_for(&app, &admin, &ana).await, listed);

    // 0 keeps every delivery; so does a period longer than the time since they finished.
    let now = enlace::db::now();
    assert_eq!(fold_deliveries(&app.db, now, 0).await.unwrap(), 0);
    assert_eq!(fold_deliveries(&app.db, now, 101).await.unwrap(), 0);
    assert_eq!(app.count("delivery_results"), 0);

    assert_eq!(fold_deliveries(&app.db, now, 90).await.unwrap(), 6 + 3);
    assert_eq!(deliveries_of(&app, &old), 0);
    assert_eq!(deliveries_of(&app, &cancelled), 0);
    assert_eq!(deliveries_of(&app, &recent), 3, "within the period");
    assert_eq!(deliveries_of(&app, &sending), 3, "still sending");
    for (id, was) in all.iter().zip(&before) {
        assert_eq!(&progress(&app, &token, id).await, was, "newsletter {id}");
    }

    // Counted by language (unknown once the person is gone), state, the class of the reason
    // (not the server's text) and the hour the newsletter went out 100 days ago.
    let lines = results_of(&app, &old);
    let hour = lines[0].3;
    let went_out = now - chrono::Duration::days(100);
    assert!(
        hour <= went_out
            && went_out - hour < chrono::Duration::hours(1) + chrono::Duration::minutes(1),
        "{hour} for {went_out}"
    );
    let line = |language: &str, state: &str, reason: &str, n: i64| -> Line {
        (language.into(), state.into(), reason.into(), hour, n)
    };
    assert_eq!(
        lines,
        [
            line("en", "failed", "550 5.1.1", 1),
            line("en", "sent", "", 2),
            line("es", "sent", "", 1),
            line("es", "skipped", "unsubscribed", 1),
            line("unknown", "skipped", "subscriber erased", 1),
        ]
    );
    let cancelled_lines: Vec<(String, String, i64)> = results_of(&app, &cancelled)
        .into_iter()
        .map(|(language, state, reason, _, n)| (format!("{language}/{state}"), reason, n))
        .collect();
    assert_eq!(
        cancelled_lines,
        [
            (
                "en/skipped".to_owned(),
                "newsletter cancelled".to_owned(),
                2
            ),
            (
                "es/skipped".to_owned(),
                "newsletter cancelled".to_owned(),
                1
            ),
        ]
    );

    // Nothing in the results names a person.
    let everything: Vec<(String, String, String, String)> = r::table
        .select((r::newsletter_id, r::language, r::state, r::reason))
        .load(&mut *app.conn())
        .unwrap();
    for row in &everything {
        let text = format!("{row:?}");
        assert!(!text.contains('@'), "{text}");
        for id in &ids {
            assert!(!text.contains(id.as_str()), "{text}");
        }
        for address in &addresses {
            assert!(!text.contains(address.as_str()), "{text}");
        }
    }

    // The person's access request no longer lists the folded newsletters.
    let mut still = vec![recent.clone(), sending.clone()];
    still.sort();
    assert_eq!(listed_for(&app, &admin, &ana).await, still);

    // Folding again changes nothing.
    let lines = everything.len();
    assert_eq!(fold_deliveries(&app.db, now, 90).await.unwrap(), 0);
    assert_eq!(app.count("delivery_results"), lines as i64);
    for (id, was) in all.iter().zip(&before) {
        assert_eq!(&progress(&app, &token, id).await, was, "newsletter {id}");
    }
}

#[tokio::test]
async fn two_processes_folding_at_once_count_each_delivery_once() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .spawn()
        .await;
    let other = TestApp::builder().sharing(&app).spawn().await;
    let token = app.staff_token(Role::Editor).await;
    // A newsletter sent long ago to 2,500 people (several batches), as its delivery rows.
    let people: Vec<Person> = (0..2_500)
        .map(|i| Person::new(format!("p{i}@example.org")))
        .collect();
    let ids = app.seed_people(&people);
    let everyone = json!({"not": {"email_domain": "nowhere.invalid"}});
    let draft = json!({"subject": "S", "html": "<p>B</p>", "filter": everyone});
    let n = create(&app, &token, draft).await;
    let id = n["id"].as_str().unwrap().to_owned();
    app.set_newsletter_status(Some(&id), "sent");
    app.seed_deliveries(&id, &ids[..2_000], "sent", None);
    app.seed_deliveries(
        &id,
        &ids[2_000..],
        "failed",
        Some("permanent error (554): [address] no"),
    );
    app.backdate_newsletter(&id, 100);
    let before = progress(&app, &token, &id).await;
    assert_eq!(
        (before["sent"].as_i64(), before["failed"].as_i64()),
        (Some(2_000), Some(500))
    );

    let now = enlace::db::now();
    let (a, b) = tokio::join!(
        fold_deliveries(&app.db, now, 90),
        fold_deliveries(&other.db, now, 90)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 2_500, "folded by each: {a} and {b}");
    assert_eq!(deliveries_of(&app, &id), 0);
    let lines = results_of(&app, &id);
    let totals: Vec<(String, String, i64)> = lines
        .into_iter()
        .map(|(_, state, reason, _, n)| (state, reason, n))
        .collect();
    assert_eq!(
        totals,
        [
            ("failed".to_owned(), "554".to_owned(), 500),
            ("sent".to_owned(), String::new(), 2_000),
        ]
    );
    assert_eq!(progress(&app, &token, &id).await, before);
}
