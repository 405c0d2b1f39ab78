//! Incremental sync: the subscriber list as a change feed in commit order, with tombstones for
//! erased people, a cursor to poll from, and no change missed while others write.

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// One page of the feed: (entries, cursor, has_more).
async fn page(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, String, bool) {
    let res = app
        .get_as(token, &format!("/api/v1/subscribers?{query}"))
        .await;
    assert_eq!(res.status(), 200, "{query}");
    let body: Value = res.json().await.unwrap();
    (
        body["data"].as_array().unwrap().clone(),
        body["next_cursor"]
            .as_str()
            .expect("always a cursor")
            .to_owned(),
        body["has_more"].as_bool().unwrap(),
    )
}

/// What a sync client keeps: id → record, erased people removed.
#[derive(Default)]
struct Mirror {
    people: BTreeMap<String, Value>,
    erased_seen: Vec<String>,
}

impl Mirror {
    fn apply(&mut self, entries: &[Value]) {
        for entry in entries {
            let id = entry["id"].as_str().unwrap().to_owned();
            if entry["erased"] == true {
                assert!(
                    entry.get("email").is_none(),
                    "a tombstone holds no personal data"
                );
                assert!(entry["erased_at"].is_string());
                self.people.remove(&id);
                self.erased_seen.push(id);
            } else {
                self.people.insert(id, entry.clone());
            }
        }
    }

    /// (id, email, name, interests) of everyone mirrored.
    fn summary(&self) -> Vec<(String, Value, Value, Value)> {
        self.people
            .iter()
            .map(|(id, p)| {
                (
                    id.clone(),
                    p["email"].clone(),
                    p["name"].clone(),
                    p["interests"].clone(),
                )
            })
            .collect()
    }
}

/// The truth, read straight from the API in one go.
async fn everyone(app: &TestApp, token: &str) -> Vec<(String, Value, Value, Value)> {
    let (entries, _, more) = page(app, token, "limit=1000").await;
    assert!(!more);
    let mut mirror = Mirror::default();
    mirror.apply(&entries);
    mirror.summary()
}

#[tokio::test]
async fn a_client_paging_while_others_write_sees_every_final_state_and_every_erasure() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let ids: Vec<String> = (0..10)
        .map(|i| {
            app.add_subscriber(
                &format!("p{i}@example.org"),
                "confirmed",
                "en",
                Some(&format!("P{i}")),
                json!({}),
            )
        })
        .collect();
    let patch = |id: &str, body: Value| {
        let path = format!("/api/v1/subscribers/{id}");
        let editor = editor.clone();
        let app = &app;
        async move {
            let res = app.send_as(&editor, "PATCH", &path, body).await;
            assert_eq!(res.status(), 200);
        }
    };
    let erase = |id: &str| {
        let path = format!("/api/v1/subscribers/{id}");
        let editor = editor.clone();
        let app = &app;
        async move {
            let res = app.send_as(&editor, "DELETE", &path, json!(null)).await;
            assert_eq!(res.status(), 204);
        }
    };

    let mut mirror = Mirror::default();
    let (entries, mut cursor, mut more) = page(&app, &editor, "limit=3").await;
    mirror.apply(&entries);
    let mut round = 0;
    while more {
        // Between pages, someone else changes people already seen and people not yet seen.
        match round {
            0 => {
                patch(&ids[0], json!({"name": "Changed after being read"})).await;
                patch(&ids[8], json!({"name": "Changed before being read"})).await;
            }
            1 => {
                erase(&ids[1]).await;
                erase(&ids[9]).await;
            }
            2 => {
                // Only their interests change.
                patch(&ids[2], json!({"interests": ["news"]})).await;
                let res = app
                    .send_as(
                        &editor,
                        "POST",
                        "/api/v1/subscribers",
                        json!({"email": "new@example.org", "consent": {"mode": "recorded", "source": "event", "note": "signed up at the table"}}),
                    )
                    .await;
                assert_eq!(res.status(), 201);
            }
            _ => {}
        }
        round += 1;
        let (entries, next, has_more) =
            page(&app, &editor, &format!("limit=3&cursor={cursor}")).await;
        mirror.apply(&entries);
        (cursor, more) = (next, has_more);
        assert!(round < 20, "the feed ends");
    }
    assert!(round >= 3, "the writes happened while paging");
    assert_eq!(mirror.summary(), everyone(&app, &editor).await);
    assert!(!mirror.people.contains_key(&ids[1]) && !mirror.people.contains_key(&ids[9]));
    assert_eq!(mirror.people[&ids[2]]["interests"], json!(["news"]));
    assert!(mirror.erased_seen.contains(&ids[9]));

    // Polling later with the stored cursor: nothing new, the same cursor back.
    let (entries, again, more) = page(&app, &editor, &format!("cursor={cursor}")).await;
    assert!(entries.is_empty() && !more);
    assert_eq!(again, cursor);
    // Any change, made by any path (here SQL that touches only the interest table), shows up.
    app.add_interests_to(&ids[3], &["news"], "2026-01-01");
    erase(&ids[4]).await;
    let (entries, _, more) = page(&app, &editor, &format!("cursor={cursor}")).await;
    assert!(!more);
    let got: Vec<(&str, &Value)> = entries
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), &e["erased"]))
        .collect();
    assert_eq!(
        got,
        [
            (ids[3].as_str(), &Value::Null),
            (ids[4].as_str(), &json!(true))
        ],
        "in the order they happened"
    );
    assert_eq!(entries[0]["interests"], json!(["news"]));
}

#[tokio::test]
async fn a_change_not_yet_committed_is_never_skipped_by_a_later_one() {
    let app = spawn_app().await;
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let slow = app.add_subscriber("slow@example.org", "confirmed", "en", None, json!({}));
    let fast = app.add_subscriber("fast@example.org", "confirmed", "en", None, json!({}));
    let (_, cursor, _) = page(&app, &editor, "").await;

    // A writer changes `slow` and has not committed yet...
    let mut held = app.conn();
    let begin = if app.database_url.starts_with("sqlite") {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    held.batch_execute(&format!(
        "{begin}; UPDATE subscribers SET name = 'Slow' WHERE id = '{slow}'"
    ))
    .unwrap();
    // ...while another changes `fast` through the API and a client polls.
    let writer = {
        let (client, url, editor) = (
            app.client.clone(),
            app.url(&format!("/api/v1/subscribers/{fast}")),
            editor.clone(),
        );
        tokio::spawn(async move {
            client
                .patch(url)
                .bearer_auth(editor)
                .json(&json!({"name": "Fast"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Give the second writer time to reach the database (it must wait there, not overtake).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (entries, during, _) = page(&app, &editor, &format!("cursor={cursor}")).await;
    assert!(entries.is_empty(), "nothing is committed yet: {entries:?}");
    assert_eq!(
        during, cursor,
        "the cursor does not move past uncommitted work"
    );

    held.batch_execute("COMMIT").unwrap();
    drop(held);
    assert_eq!(writer.await.unwrap(), 200);
    let (entries, _, _) = page(&app, &editor, &format!("cursor={during}")).await;
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Slow", "Fast"], "both changes, in commit order");
}

#[tokio::test]
async fn tombstones_pass_every_filter_and_updated_since_starts_the_feed() {
    let app = spawn_app().await;
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let es = app.add_subscriber("es@example.org", "confirmed", "es", None, json!({}));
    let gone = app.add_subscriber("gone@example.org", "pending", "en", None, json!({}));
    app.backdate_subscribers("2020-01-01", None);
    let res = app
        .send_as(
            &editor,
            "DELETE",
            &format!("/api/v1/subscribers/{gone}"),
            json!(null),
        )
        .await;
    assert_eq!(res.status(), 204);

    let (entries, _, _) = page(&app, &viewer, "language=es").await;
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [es.as_str(), gone.as_str()],
        "an erasure reaches every filtered feed"
    );
    assert_eq!(
        entries[1],
        json!({"id": gone, "erased": true, "erased_at": entries[1]["erased_at"]}),
        "nothing but the id and the time"
    );

    let (entries, _, _) = page(&app, &viewer, "updated_since=2025-01-01T00:00:00Z").await;
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [gone.as_str()], "only what changed since then");
    let (entries, _, _) = page(&app, &viewer, "updated_since=2019-12-31T23:00:00-01:00").await;
    assert_eq!(entries.len(), 2, "offsets are understood");

    // An API key with subscribers:read follows the feed too; one without it does not.
    let admin = app.staff_token(enlace::auth::Role::Admin).await;
    for (scopes, status) in [
        (json!(["subscribers:read"]), 200),
        (json!(["exports:read"]), 403),
    ] {
        let key: Value = app
            .send_as(
                &admin,
                "POST",
                "/api/v1/api-keys",
                json!({"name": "crm", "scopes": scopes}),
            )
            .await
            .json()
            .await
            .unwrap();
        let res = app
            .get_as(key["key"].as_str().unwrap(), "/api/v1/subscribers")
            .await;
        assert_eq!(res.status(), status, "{scopes}");
    }
}

#[tokio::test]
async fn cursors_are_checked() {
    let app = spawn_app().await;
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    for bad in [
        "forged",
        "YzE6LTE",                                 // c1:-1
        "YzE6eA",                                  // c1:x
        "MTcwMDAwMDAwMHxhYg",                      // the old (time|id) form
        "YzE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk", // beyond 64 bits
    ] {
        let res = app
            .get_as(&viewer, &format!("/api/v1/subscribers?cursor={bad}"))
            .await;
        assert_eq!(res.status(), 422, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert!(body["errors"]["cursor"].is_array());
    }
    // A cursor ahead of every change this database has made (a database restored from a
    // backup, say) would silently skip the changes up to it: the client is told to start over.
    let res = app
        .get_as(&viewer, "/api/v1/subscribers?cursor=YzE6OTk5OQ")
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body["errors"]["cursor"][0]
        .as_str()
        .unwrap()
        .contains("start again"));
}

/// Many writers at once on the same people: a forced interest delete (one statement touching
/// every member), staff edits, erasures and public signups. Every request succeeds (on
/// PostgreSQL, writers take the change lock before any row lock, so none deadlocks another), and
/// a client following the feed ends with exactly what is there.
#[tokio::test]
async fn many_writers_on_the_same_people_all_succeed_and_the_feed_agrees() {
    let app = spawn_app().await;
    let admin = app.staff_token(enlace::auth::Role::Admin).await;
    app.add_interest("news", true);
    app.add_interest("housing", true);
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = app.add_subscriber(
            &format!("p{i}@example.org"),
            "confirmed",
            "es",
            None,
            json!({}),
        );
        app.add_interests_to(&id, &["news"], "2026-01-01");
        ids.push(id);
    }
    let mut mirror = Mirror::default();
    let (entries, mut cursor, _) = page(&app, &admin, "limit=1000").await;
    mirror.apply(&entries);

    let mut requests = Vec::new();
    requests.push(
        app.client
            .delete(app.url("/api/v1/interests/news?force=true")),
    );
    for (i, id) in ids.iter().enumerate() {
        let path = format!("/api/v1/subscribers/{id}");
        requests.push(match i % 3 {
            0 => app.client.delete(app.url(&path)),
            1 => app
                .client
                .patch(app.url(&path))
                .json(&json!({"interests": ["housing"], "name": format!("Name {i}")})),
            _ => app
                .client
                .post(app.url("/api/v1/subscribe"))
                .json(&json!({"email": format!("p{i}@example.org"), "interests": ["housing"]})),
        });
    }
    let sent = requests.into_iter().map(|r| r.bearer_auth(&admin).send());
    for res in futures_util::future::join_all(sent).await {
        let res = res.unwrap();
        assert!(
            res.status().is_success(),
            "{} {}",
            res.status(),
            res.text().await.unwrap()
        );
    }

    loop {
        let (entries, next, more) = page(&app, &admin, &format!("limit=7&cursor={cursor}")).await;
        mirror.apply(&entries);
        cursor = next;
        if !more {
            break;
        }
    }
    assert_eq!(mirror.summary(), everyone(&app, &admin).await);
    assert_eq!(mirror.erased_seen.len(), 14);
}

/// Losing an interest because staff deleted it is a change to the person, also for a client
/// that asks for changes since a time.
#[tokio::test]
async fn a_deleted_interest_shows_as_a_change_since_then() {
    let app = spawn_app().await;
    let admin = app.staff_token(enlace::auth::Role::Admin).await;
    app.add_interest("news", true);
    let id = app.add_subscriber("ana@example.org", "confirmed", "es", None, json!({}));
    app.sql(&format!(
        "INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at) \
         VALUES ('{id}', 'news', '2026-01-01 00:00:00'); \
         UPDATE subscribers SET updated_at = '2026-01-01 00:00:00' WHERE id = '{id}';"
    ));
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let since = since.replace('+', "%2B");
    let (entries, _, _) = page(&app, &admin, &format!("updated_since={since}")).await;
    assert!(entries.is_empty());
    let res = app
        .client
        .delete(app.url("/api/v1/interests/news?force=true"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let (entries, _, _) = page(&app, &admin, &format!("updated_since={since}")).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["interests"], json!([]));
}
