//! A newsletter's results: counted from the delivery ledger and from what people did through the
//! newsletter's own links (unsubscribe, preferences) or reported about it (bounces, complaints),
//! by language and hour, with every count under the threshold shown only as "fewer than N" —
//! in the API, the CSV and the console. Nothing counted names a person.

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::console_client::signed_in;
use crate::helpers::{Mail, TestApp};
use crate::newsletters::{create, post, POSTAL};

/// A newsletter sent to six English and two Spanish speakers; its id and the mail each got.
async fn sent_newsletter(threshold: u32) -> (TestApp, String, String, Vec<Mail>) {
    let app = TestApp::builder()
        .settings(move |s| {
            s.postal_address = Some(POSTAL.into());
            s.results_min_count = threshold;
        })
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let mut people = Vec::new();
    for i in 0..8 {
        let email = format!("p{i}@example.org");
        let language = if i < 6 { "en" } else { "es" };
        app.add_subscriber(&email, "confirmed", language, Some("Pat"), json!({}));
        people.push(email);
    }
    let n = create(
        &app,
        &token,
        json!({"subject": "Rally", "html": "<p>Join us</p>",
               "filter": {"any": [{"language": "en"}, {"language": "es"}]}}),
    )
    .await;
    let id = n["id"].as_str().unwrap().to_owned();
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    let mails = people
        .iter()
        .map(|p| app.mails_to(p).pop().expect("a newsletter"))
        .collect();
    (app, token, id, mails)
}

fn unsubscribe_path(app: &TestApp, mail: &Mail) -> String {
    mail.list_unsubscribe
        .clone()
        .unwrap()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches(&app.address)
        .to_owned()
}

/// Unsubscribes p0 with one click, changes p1's preferences through its link, and reports a
/// hard bounce for p2.
async fn act(app: &TestApp, id: &str, mails: &[Mail]) {
    let one_click = unsubscribe_path(app, &mails[0]);
    assert!(
        one_click.ends_with(&format!("?from={id}")),
        "the link names the newsletter, the same for everyone: {one_click}"
    );
    let res = app
        .post_form(&one_click, "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(res.status(), 200);
    // A second click changes nothing and counts nothing.
    app.post_form(&one_click, "List-Unsubscribe=One-Click")
        .await;

    let preferences = app.link(&mails[1], "/preferences/");
    assert!(
        preferences.ends_with(&format!("?from={id}")),
        "{preferences}"
    );
    let page = app.get(&preferences).await.text().await.unwrap();
    assert!(
        page.contains(&format!("?from={id}\"")),
        "the page's form keeps the newsletter"
    );
    let res = app.post_form(&preferences, "name=Pat+B&language=en").await;
    assert_eq!(res.status(), 200);

    let admin = app.staff_token(Role::Admin).await;
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/events",
            json!({"id": "r-1", "type": "hard_bounce", "email": "p2@example.org"}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

/// A newsletter's results as the API gives them.
pub async fn results(app: &TestApp, viewer: &str, id: &str) -> Value {
    let res = app
        .get_as(viewer, &format!("/api/v1/newsletters/{id}/results"))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn results_count_what_people_did_through_the_newsletter_by_language() {
    let (app, editor, id, mails) = sent_newsletter(1).await;
    act(&app, &id, &mails).await;
    let viewer = app.staff_token(Role::Viewer).await;
    let r = results(&app, &viewer, &id).await;
    assert_eq!(r["threshold"], 1);
    let total = &r["total"];
    assert_eq!(total["recipients"], 8, "{r}");
    assert_eq!(total["accepted"], 8);
    assert_eq!(total["failed_permanent"], 0);
    assert_eq!(total["unsubscribes"], 1);
    assert_eq!(total["preference_changes"], 1);
    assert_eq!(total["hard_bounces"], 1);
    assert_eq!(total["complaints"], 0);
    assert_eq!(r["languages"]["en"]["recipients"], 6);
    assert_eq!(r["languages"]["es"]["recipients"], 2);
    assert_eq!(r["languages"]["en"]["unsubscribes"], 1);
    assert_eq!(r["languages"]["en"]["preference_changes"], 1);
    let hours = r["hours"].as_array().unwrap();
    let accepted: i64 = hours.iter().map(|h| h["accepted"].as_i64().unwrap()).sum();
    assert_eq!(accepted, 8);

    // What is kept: counts by newsletter, language, action and hour, nothing about a person.
    assert_eq!(app.count("newsletter_actions"), 3);
    let columns: Vec<String> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            language: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            action: String,
        }
        diesel::sql_query("SELECT language, action FROM newsletter_actions ORDER BY action")
            .load::<Row>(&mut *app.conn())
            .unwrap()
            .into_iter()
            .map(|r| format!("{}:{}", r.language, r.action))
            .collect()
    };
    assert_eq!(
        columns,
        ["en:hard_bounce", "en:preferences", "en:unsubscribe"]
    );

    // A link naming a newsletter that never went out counts nothing.
    let draft = create(&app, &editor, json!({"subject": "D", "html": "<p>D</p>"})).await;
    let forged = unsubscribe_path(&app, &mails[3]).replace(&id, draft["id"].as_str().unwrap());
    assert_eq!(app.post_form(&forged, "").await.status(), 200);
    assert_eq!(app.count("newsletter_actions"), 3);
}

#[tokio::test]
async fn small_counts_are_only_fewer_than_the_threshold_everywhere() {
    let (app, _token, id, mails) = sent_newsletter(5).await;
    act(&app, &id, &mails).await;
    let token = app.staff_token(Role::Viewer).await;
    let r = results(&app, &token, &id).await;
    assert_eq!(r["threshold"], 5);
    assert_eq!(r["total"]["recipients"], 8);
    assert_eq!(r["languages"]["en"]["recipients"], 6);
    for (scope, key) in [
        (&r["total"], "unsubscribes"),
        (&r["total"], "hard_bounces"),
        (&r["total"], "complaints"),
        (&r["languages"]["es"], "recipients"),
    ] {
        assert_eq!(scope[key], Value::Null, "{key} in {r}");
    }

    // The CSV says so in words.
    let res = app
        .get_as(
            &token,
            &format!("/api/v1/newsletters/{id}/results?format=csv"),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let cell = |row: &csv::StringRecord, name: &str| {
        row[header.iter().position(|h| h == name).unwrap()].to_owned()
    };
    assert_eq!(&rows[0][0], "all");
    assert_eq!(cell(&rows[0], "recipients"), "8");
    assert_eq!(cell(&rows[0], "unsubscribes"), "fewer than 5");
    let es = rows.iter().find(|r| &r[1] == "es").unwrap();
    assert_eq!(cell(es, "recipients"), "fewer than 5");

    // The console's page, in Spanish: the same figures, the same words.
    let mut viewer = signed_in(&app, Role::Viewer).await;
    viewer.language = "es";
    let page = viewer.get(&format!("/newsletters/{id}/results")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("menos de 5"), "{}", page.body);
    assert!(page.body.contains("Destinatarios"));
    let csv = viewer.get(&format!("/newsletters/{id}/results.csv")).await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.contains("fewer than 5"));
    // Unknown newsletters and bad formats are refused.
    assert_eq!(
        viewer
            .get("/newsletters/01a2503f-011d-738e-9aa1-75f022195dab/results")
            .await
            .status,
        404
    );
    let res = app
        .get_as(
            &token,
            &format!("/api/v1/newsletters/{id}/results?format=xml"),
        )
        .await;
    assert_eq!(res.status(), 422);
}
