//! One mailbox, one person: every entrance (public form and JSON, staff upsert, import, bounce
//! and complaint intake, erasure) treats every spelling of an address as the same person, only
//! deliverable addresses are accepted, and stored rows are put in canonical form by a migration.

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::spellings::{sample_spellings, MAILBOXES};

/// Spellings tried per mailbox at each entrance.
const SPELLINGS: usize = 3;

/// (canonical, another spelling) pairs over every mailbox, the same on every run.
fn pairs() -> Vec<(&'static str, String)> {
    MAILBOXES
        .iter()
        .flat_map(|(canonical, unicode)| {
            sample_spellings(canonical, unicode, SPELLINGS)
                .into_iter()
                .map(move |s| (*canonical, s))
        })
        .collect()
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn staff_upsert(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.send_as(token, "POST", "/api/v1/subscribers", body)
        .await
}

async fn event(app: &TestApp, token: &str, id: &str, kind: &str, email: &str) -> Value {
    let res = app
        .send_as(
            token,
            "POST",
            "/api/v1/events",
            json!({"id": id, "type": kind, "email": email, "occurred_at": "2026-12-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn public_signups_in_any_spelling_are_one_person_stored_in_canonical_form() {
    let app = spawn_app().await;
    for (canonical, spelling) in pairs() {
        let first = app.subscribe(json!({"email": spelling})).await;
        assert_eq!(first.status(), 202, "{spelling:?}");
        // The same person again through the HTML form, in the canonical spelling.
        let again = app
            .post_form(
                "/api/v1/subscribe",
                &format!("email={}", form_encode(canonical)),
            )
            .await;
        assert!(
            again.status().is_success(),
            "{canonical:?}: {}",
            again.status()
        );
        assert_eq!(
            app.count(&format!(
                "subscribers WHERE email = '{}'",
                canonical.replace('\'', "''")
            )),
            1,
            "{spelling:?} is stored as {canonical:?}"
        );
    }
    assert_eq!(app.count("subscribers") as usize, MAILBOXES.len());
    // Every confirmation goes to the canonical address.
    app.run_jobs().await;
    for (canonical, _) in MAILBOXES {
        assert!(
            !app.mails_to(canonical).is_empty(),
            "{canonical:?} was mailed"
        );
    }
}

#[tokio::test]
async fn a_complaint_or_bounce_in_any_spelling_stops_mail_to_every_spelling() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    let mut n = 0;
    for (canonical, spelling) in pairs() {
        n += 1;
        let local = format!("c{n}-");
        // A confirmed person, signed up in one spelling, reported in another.
        let stored = format!("{local}{canonical}");
        let reported = format!("{local}{}", spelling.trim());
        app.subscribe(json!({"email": stored})).await;
        let kind = if n % 2 == 0 {
            "complaint"
        } else {
            "hard_bounce"
        };
        let body = event(&app, &admin, &format!("e-{n}"), kind, &reported).await;
        let expected = if kind == "complaint" {
            "complained"
        } else {
            "bounced"
        };
        assert_eq!(
            body["results"][0]["outcome"], "suppressed",
            "{reported:?}: {body}"
        );
        assert_eq!(
            app.status_of(&stored).as_deref(),
            Some(expected),
            "{reported:?}"
        );
        // Signing up again in yet another spelling mails nothing.
        let res = app
            .subscribe(json!({"email": reported.to_uppercase()}))
            .await;
        assert_eq!(res.status(), 202);
    }
    app.run_jobs().await;
    // Not even the confirmations queued before the reports go out.
    assert_eq!(app.mails().len(), 0);
    assert_eq!(app.count("subscribers") as usize, pairs().len());
}

#[tokio::test]
async fn staff_upsert_and_import_find_the_person_in_any_spelling() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    let editor = app.staff_token(Role::Editor).await;
    let mut n = 0;
    for (canonical, spelling) in pairs() {
        n += 1;
        let bounced = format!("b{n}-{canonical}");
        let stored_as_typed = format!("b{n}-{}", spelling.trim());
        app.subscribe(json!({"email": stored_as_typed})).await;
        event(&app, &admin, &format!("b-{n}"), "hard_bounce", &bounced).await;
        // Staff re-adding them in another spelling are refused, as with the stored one.
        let res = staff_upsert(
            &app,
            &editor,
            json!({"email": format!("B{n}-{}", spelling.trim()), "consent": {"mode": "recorded", "source": "paper", "note": "signed the sheet"}}),
        )
        .await;
        assert_eq!(res.status(), 409, "{spelling:?}");
    }
    assert_eq!(
        app.count("subscribers WHERE status = 'bounced'") as usize,
        n
    );

    // An import naming them in other spellings re-adds nobody and adds no one twice.
    let mut csv = String::from("email\n");
    for (i, (canonical, spelling)) in pairs().into_iter().enumerate() {
        let spelling = spelling.trim().replace('"', "\"\"");
        csv.push_str(&format!("\"b{}-{spelling}\"\n", i + 1));
        csv.push_str(&format!("\"new-{canonical}\"\n\"NEW-{spelling}\"\n"));
    }
    let query = [
        ("mode", "consented"),
        ("source", "sheet"),
        ("consent_note", "ticked"),
    ];
    let res = crate::imports::upload(&app, &editor, &query, &csv).await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    app.run_tasks().await;
    assert_eq!(
        app.count("subscribers WHERE status = 'bounced'") as usize,
        n
    );
    assert_eq!(
        app.count("subscribers WHERE email LIKE 'new-%'") as usize,
        MAILBOXES.len(),
        "one person per mailbox, whatever the spelling"
    );
    assert_eq!(app.count("subscribers") as usize, n + MAILBOXES.len());
}

#[tokio::test]
async fn an_erased_person_stays_erased_in_every_spelling() {
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    let recorded = |email: &str| json!({"email": email, "consent": {"mode": "recorded", "source": "paper", "note": "signed the sheet"}});
    for (canonical, unicode) in MAILBOXES {
        let spellings = sample_spellings(canonical, unicode, SPELLINGS);
        let res = staff_upsert(&app, &editor, recorded(&spellings[0])).await;
        assert_eq!(res.status(), 201);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = app.erase(&editor, &id).await;
        assert_eq!(res.status(), 204);
        // Staff cannot re-add them with recorded consent in any spelling.
        for other in spellings.iter().map(String::as_str).chain([*canonical]) {
            let res = staff_upsert(&app, &editor, recorded(other)).await;
            assert_eq!(res.status(), 409, "{other:?}");
        }
    }
    assert_eq!(app.count("subscribers"), 0);
    assert_eq!(
        app.count("suppressions WHERE reason = 'erased'") as usize,
        MAILBOXES.len()
    );
}

/// Addresses a mailer cannot deliver to, refused with a clear 422 at every entrance.
const UNDELIVERABLE: &[&str] = &[
    "twodots..here@domain.com",
    ".leading@domain.com",
    "trailing.@domain.com",
    "root@localhost",
    "x@[127.0.0.1]",
    "x@[IPv6:2001:db8::1]",
    "x@192.0.2.1",
    "x@exa\u{200b}mple.org",
    "zero\u{200d}width@example.org",
    "\"quoted\"@example.org",
];

#[tokio::test]
async fn undeliverable_addresses_are_refused_everywhere_and_nothing_is_stored() {
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    for raw in UNDELIVERABLE {
        let res = app.subscribe(json!({"email": raw})).await;
        assert_eq!(res.status(), 422, "{raw:?}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{raw:?}"
        );
        let body: Value = res.json().await.unwrap();
        assert!(body["errors"]["email"].is_array(), "{raw:?}: {body}");

        let res = staff_upsert(
            &app,
            &editor,
            json!({"email": raw, "consent": {"mode": "recorded", "source": "paper", "note": "signed the sheet"}}),
        )
        .await;
        assert_eq!(res.status(), 422, "{raw:?}");

        let res = app
            .post_form("/api/v1/subscribe", &format!("email={}", form_encode(raw)))
            .await;
        assert_eq!(res.status(), 422, "{raw:?}");
    }
    let body: Value = app
        .subscribe(json!({"email": "root@localhost"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["errors"]["email"][0].as_str().unwrap().contains("dot"),
        "the reason is said: {body}"
    );
    assert_eq!(app.count("subscribers"), 0);
    assert_eq!(app.count("jobs"), 0);
}

/// Rows stored before addresses were canonical: a migration re-spells them and merges people.
#[tokio::test]
async fn the_migration_merges_spellings_keeping_the_strictest_state_and_both_histories() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    // Three spellings of one mailbox, a lone one to re-spell, and one no longer accepted.
    let pending = app.add_subscriber(
        "x@ｅｘａｍｐｌｅ.org",
        "pending",
        "es",
        None,
        json!({"city": "Tucson"}),
    );
    let confirmed = app.add_subscriber(
        "x@example。org",
        "confirmed",
        "en",
        Some("Equis"),
        json!({}),
    );
    let unsubscribed = app.add_subscriber(
        "x@example.org",
        "unsubscribed",
        "en",
        None,
        json!({"city": "Phoenix"}),
    );
    let lone = app.add_subscriber("ana@MÜNCHEN.de", "confirmed", "en", None, json!({}));
    let refused = app.add_subscriber("twodots..here@domain.com", "pending", "en", None, json!({}));
    for (id, slug, action) in [
        (&pending, "events", "signup"),
        (&confirmed, "news", "confirm"),
        (&unsubscribed, "news", "unsubscribe"),
    ] {
        app.sql(&format!(
            "INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at) VALUES ('{id}', '{slug}', '2026-11-01 00:00:00');
             INSERT INTO consent_events (id, subscriber_id, action, interests, wording, wording_version, language, created_at)
             VALUES ('{id}-c', '{id}', '{action}', '[]', 'words', 'v1', 'en', '2026-11-01 00:00:00')"
        ));
    }
    // A complaint recorded against the full-width spelling's hash.
    let old_hash = enlace::tokens::email_hash("x@ｅｘａｍｐｌｅ.org");
    app.sql(&format!(
        "INSERT INTO suppressions (email_hash, reason, created_at) VALUES ('{old_hash}', 'complaint', '2026-11-01 00:00:00')"
    ));
    app.sql("DELETE FROM data_migrations");

    let report = {
        let mut conn = app.conn();
        enlace::db::canonical::canonicalise_addresses(&mut conn).unwrap()
    }
    .expect("the migration runs when it has not run");
    assert_eq!(report.rewritten, 1);
    assert_eq!(report.refused, 1);
    assert_eq!(report.merged.len(), 1);
    let (kept, gone) = &report.merged[0];
    assert_eq!(kept, &unsubscribed, "the strictest state is kept");
    assert_eq!(gone.len(), 2);

    assert_eq!(app.count("subscribers"), 3);
    assert_eq!(
        app.status_of("x@example.org").as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        app.status_of("ana@xn--mnchen-3ya.de").as_deref(),
        Some("confirmed")
    );
    assert_eq!(app.conn_subscriber_id("ana@xn--mnchen-3ya.de"), lone);
    assert_eq!(
        app.conn_subscriber_id("twodots..here@domain.com"),
        refused,
        "left as it was"
    );
    // Both histories, every interest, the name and the attributes the kept row lacked.
    assert_eq!(
        app.count(&format!("consent_events WHERE subscriber_id = '{kept}'")),
        3
    );
    assert_eq!(
        app.count(&format!(
            "subscriber_interests WHERE subscriber_id = '{kept}'"
        )),
        2
    );
    let viewer = app.staff_token(Role::Viewer).await;
    let person = app
        .get_json_as(&viewer, &format!("/api/v1/subscribers/{kept}"))
        .await;
    assert_eq!(person["name"], "Equis", "{person}");
    assert_eq!(person["attributes"]["city"], "Phoenix", "{person}");
    // The merged ids are gone, as tombstones in the change feed.
    for id in gone {
        assert_eq!(
            app.count(&format!("tombstones WHERE subscriber_id = '{id}'")),
            1
        );
    }
    // The complaint now holds for the canonical address.
    let canonical_hash = enlace::tokens::email_hash("x@example.org");
    assert_eq!(
        app.count(&format!(
            "suppressions WHERE email_hash = '{canonical_hash}' AND reason = 'complaint'"
        )),
        1
    );
    let summary =
        app.count("data_migrations WHERE summary LIKE '%1 addresses re-spelled, 2 people merged%'");
    assert_eq!(summary, 1);
    // It runs once.
    let mut conn = app.conn();
    assert_eq!(
        enlace::db::canonical::canonicalise_addresses(&mut conn).unwrap(),
        None
    );
}
