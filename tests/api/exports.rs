//! Streamed exports: every field in CSV (RFC 4180, formulas defanged) and NDJSON, segment and
//! time filters, gzip, the sync cursor header, permissions, and a limit on exports at once.

use std::io::Read;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Person, TestApp};

async fn export(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get_as(token, &format!("/api/v1/exports/subscribers?{query}"))
        .await
}

/// Adds `n` confirmed subscribers; ids sort in the order they are numbered.
fn seed(app: &TestApp, n: usize) {
    let people: Vec<Person> = (1..=n)
        .map(|i| Person {
            id: Some(format!("00000000-0000-7000-8000-{}", 100_000_000_000 + i)),
            ..Person::new(format!("bulk{i}@example.org"))
        })
        .collect();
    app.seed_people(&people);
}

#[tokio::test]
async fn csv_export_has_every_field_and_defangs_formulas() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("volunteers", true);
    app.add_field("city", "text", &[], true);
    app.add_field("age", "number", &[], false);
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let ana = app.add_subscriber(
        "ana@example.org",
        "confirmed",
        "es",
        Some("Ana \"la jefa\", Pérez\nsegunda línea"),
        json!({"city": "Phoenix", "age": 41}),
    );
    let evil = app.add_subscriber(
        "evil@example.org",
        "pending",
        "en",
        Some("=HYPERLINK(\"http://evil.example\",\"click\")"),
        json!({"city": "+1 555 0100", "age": -3}),
    );
    app.set_source(&evil, "@footer");
    app.add_interests_to(&ana, &["volunteers", "news"], "2026-01-01");

    let res = export(&app, &editor, "format=csv").await;
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    let today = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"subscribers-{today}.csv\"")
    );
    assert!(!header("enlace-sync-cursor").is_empty());
    assert_eq!(header("cache-control"), "no-store");
    let body = res.text().await.unwrap();
    assert!(body.ends_with("\r\n"), "RFC 4180 line ends");

    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "email",
            "name",
            "language",
            "status",
            "interests",
            "source",
            "created_at",
            "confirmed_at",
            "unsubscribed_at",
            "updated_at",
            "attributes.age",
            "attributes.city"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    let row = |id: &str| rows.iter().find(|r| r[0] == id).unwrap().clone();
    let ana_row = row(&ana);
    assert_eq!(ana_row[1], "ana@example.org");
    assert_eq!(
        ana_row[2], "Ana \"la jefa\", Pérez\nsegunda línea",
        "quoted, not broken"
    );
    assert_eq!(
        (ana_row[3].as_str(), ana_row[4].as_str()),
        ("es", "confirmed")
    );
    assert_eq!(ana_row[5], "news;volunteers");
    assert!(ana_row[8].ends_with('Z') && ana_row[9].is_empty());
    assert_eq!(
        (ana_row[11].as_str(), ana_row[12].as_str()),
        ("41", "Phoenix")
    );
    let evil_row = row(&evil);
    assert_eq!(
        evil_row[2],
        "'=HYPERLINK(\"http://evil.example\",\"click\")"
    );
    assert_eq!(evil_row[6], "'@footer");
    assert_eq!(evil_row[11], "'-3");
    assert_eq!(evil_row[12], "'+1 555 0100");
    assert!(evil_row[8].is_empty(), "not confirmed");

    // An empty list is a header alone.
    let res = export(&app, &editor, "updated_since=2999-01-01T00:00:00Z").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.starts_with("id,email,") && body.matches("\r\n").count() == 1);
}

#[tokio::test]
async fn ndjson_export_matches_the_api_and_filters_by_segment_and_time() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let admin = app.staff_token(enlace::auth::Role::Admin).await;
    let es = app.add_subscriber("es@example.org", "confirmed", "es", None, json!({}));
    let es_pending = app.add_subscriber("esp@example.org", "pending", "es", None, json!({}));
    let en = app.add_subscriber("en@example.org", "confirmed", "en", Some("En"), json!({}));
    app.backdate_subscribers("2020-01-01", Some(&en));

    let res = export(&app, &admin, "format=ndjson").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with(".ndjson\""));
    let body = res.text().await.unwrap();
    assert!(body.ends_with('\n'));
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let id = line["id"].as_str().unwrap();
        let api: Value = app
            .get_json_as(&admin, &format!("/api/v1/subscribers/{id}"))
            .await;
        assert_eq!(line, &api, "the same object the API gives");
    }

    // A segment holds confirmed people only.
    let segment: Value = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/segments",
            json!({"name": "Spanish", "filter": {"language": "es"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let segment_id = segment["id"].as_str().unwrap();
    let ids = |body: String| -> Vec<String> {
        body.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let res = export(
        &app,
        &admin,
        &format!("format=ndjson&segment_id={segment_id}"),
    )
    .await;
    assert_eq!(ids(res.text().await.unwrap()), [es.as_str()]);
    assert!(!ids(body.clone()).is_empty() && ids(body).contains(&es_pending));
    let res = export(
        &app,
        &admin,
        "format=ndjson&updated_since=2025-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(ids(res.text().await.unwrap()), [en]);
    assert_eq!(
        app.count("audit_log WHERE action = 'subscribers.export_ndjson'"),
        3,
        "every export is in the audit log"
    );

    for (query, field) in [
        ("format=xlsx", "format"),
        ("segment_id=nope", "segment_id"),
        (
            "segment_id=00000000-0000-0000-0000-000000000000",
            "segment_id",
        ),
        ("updated_since=yesterday", "updated_since"),
    ] {
        let res = export(&app, &admin, query).await;
        assert_eq!(res.status(), 422, "{query}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: Value = res.json().await.unwrap();
        assert!(body["errors"][field].is_array(), "{query}: {body}");
    }
    assert_eq!(export(&app, &admin, "colour=red").await.status(), 422);

    // Who may export: admins and editors, and keys with exports:read. Not viewers.
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    assert_eq!(export(&app, &viewer, "").await.status(), 403);
    assert_eq!(export(&app, "nonsense", "").await.status(), 401);
    for (scopes, status) in [
        (json!(["exports:read"]), 200),
        (json!(["subscribers:read"]), 403),
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
        let res = export(&app, key["key"].as_str().unwrap(), "").await;
        assert_eq!(res.status(), status, "{scopes}");
    }
}

#[tokio::test]
async fn no_fragment_of_any_cell_is_a_formula_whatever_the_spreadsheet_splits_on() {
    let app = spawn_app().await;
    app.add_field("note", "text", &[], true);
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let attacks = [
        "x;=cmd|' /C calc'!A0;",
        "ok, =1+1",
        "a\t@SUM(A1)",
        "line\n-2+3",
        "x;;+1",
        "＝HYPERLINK(\"http://evil.example\")",
        "a; ;\t=1",
    ];
    for (i, attack) in attacks.iter().enumerate() {
        app.add_subscriber(
            &format!("p{i}@example.org"),
            "confirmed",
            "es",
            Some(attack),
            json!({ "note": attack }),
        );
    }
    for delimiter in ["comma", "semicolon", "tab"] {
        let res = export(&app, &editor, &format!("format=csv&delimiter={delimiter}")).await;
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        let byte = match delimiter {
            "comma" => b',',
            "semicolon" => b';',
            _ => b'\t',
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(byte)
            .from_reader(body.as_bytes());
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(rows.len(), attacks.len(), "{delimiter}");
        for cell in rows.iter().flatten() {
            // What a spreadsheet splitting on any delimiter, or on lines, would put in a cell.
            for fragment in cell.split([',', ';', '\t', '\n', '\r']) {
                let fragment = fragment.trim_start_matches(' ');
                assert!(
                    !fragment.starts_with(['=', '+', '-', '@', '＝', '＋', '－', '＠']),
                    "{delimiter}: {cell:?} has the fragment {fragment:?}"
                );
            }
        }
        // The text is kept, each dangerous fragment marked by one apostrophe.
        assert!(
            rows.iter().any(|r| r[2] == "x;'=cmd|' /C calc'!A0;"),
            "{delimiter}"
        );
    }
    let res = export(&app, &editor, "format=csv&delimiter=pipe").await;
    assert_eq!(res.status(), 422);
    // The delimiter is about CSV cells: with NDJSON it has no effect, but must still be one.
    let res = export(&app, &editor, "format=ndjson&delimiter=semicolon").await;
    assert_eq!(res.status(), 200);
    let res = export(&app, &editor, "format=ndjson&delimiter=pipe").await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn exports_are_gzipped_when_the_client_accepts_it() {
    let app = spawn_app().await;
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    seed(&app, 300);
    let plain = export(&app, &editor, "").await.bytes().await.unwrap();
    let res = app
        .client
        .get(app.url("/api/v1/exports/subscribers"))
        .bearer_auth(&editor)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let zipped = res.bytes().await.unwrap();
    assert!(
        zipped.len() * 3 < plain.len(),
        "{} vs {}",
        zipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);
}

#[tokio::test]
async fn export_once_then_follow_the_feed_from_the_cursor_it_gave() {
    let app = spawn_app().await;
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let kept = app.add_subscriber("kept@example.org", "confirmed", "en", None, json!({}));
    let changed = app.add_subscriber("changed@example.org", "confirmed", "en", None, json!({}));
    let res = export(&app, &editor, "format=ndjson").await;
    let cursor = res.headers()["enlace-sync-cursor"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(res.text().await.unwrap().lines().count(), 2);

    let res = app
        .send_as(
            &editor,
            "PATCH",
            &format!("/api/v1/subscribers/{changed}"),
            json!({"name": "New"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .send_as(
            &editor,
            "DELETE",
            &format!("/api/v1/subscribers/{kept}"),
            json!(null),
        )
        .await;
    assert_eq!(res.status(), 204);
    let feed: Value = app
        .get_json_as(&editor, &format!("/api/v1/subscribers?cursor={cursor}"))
        .await;
    let got: Vec<(&str, &Value)> = feed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), &e["erased"]))
        .collect();
    assert_eq!(
        got,
        [
            (changed.as_str(), &Value::Null),
            (kept.as_str(), &json!(true))
        ],
        "exactly what changed after the export"
    );
}

#[tokio::test]
async fn a_large_export_streams_whole_and_busy_exports_are_turned_away() {
    let app = TestApp::builder()
        .settings(|s| s.export_concurrency = 1)
        .spawn()
        .await;
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    seed(&app, 20_000);

    // The first export has started (headers are in) and its client reads nothing yet.
    let first = export(&app, &editor, "format=ndjson").await;
    assert_eq!(first.status(), 200);
    let busy = export(&app, &editor, "format=csv").await;
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "30");
    assert_eq!(busy.headers()["content-type"], "application/problem+json");

    // That client goes away: its export stops and frees its place.
    drop(first);
    let mut attempts = 0;
    let second = loop {
        let res = export(&app, &editor, "format=csv").await;
        if res.status() == 200 {
            break res;
        }
        assert_eq!(res.status(), 429);
        attempts += 1;
        assert!(attempts < 100, "the abandoned export never stopped");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let body = second.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let ids: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(ids.len(), 20_000, "every row, across many chunks");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "each once, in id order"
    );
}

/// A finished export always ends cleanly: the end of the body is never taken for a cut-off,
/// however the reader's last chunk and the client's last read interleave.
#[tokio::test]
async fn every_finished_export_ends_cleanly() {
    let app = spawn_app().await;
    let admin = app.staff_token(enlace::auth::Role::Admin).await;
    seed(&app, 50);
    for format in ["csv", "ndjson"].iter().cycle().take(40) {
        let res = export(&app, &admin, &format!("format={format}")).await;
        assert_eq!(res.status(), 200);
        let body = res.bytes().await.expect("a whole body");
        let lines = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(lines, if *format == "csv" { 51 } else { 50 });
    }
}
