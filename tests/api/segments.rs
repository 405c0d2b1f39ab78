//! Segments: every filter leaf and operator reaches exactly the right confirmed people, on
//! whichever database the tests run; bad filters are 422s that say where; saved segments.

use std::collections::BTreeSet;

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{self, spawn_app, TestApp};

struct Person {
    email: &'static str,
    status: &'static str,
    language: &'static str,
    interests: &'static [&'static str],
    attributes: Value,
    created: &'static str,
    confirmed: Option<&'static str>,
}

fn add_person(app: &TestApp, p: &Person) {
    let time = |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap();
    app.seed_people(&[helpers::Person {
        name: Some("Someone".into()),
        language: p.language,
        status: p.status,
        attributes: p.attributes.clone(),
        interests: p.interests.iter().map(|s| s.to_string()).collect(),
        created: time(p.created),
        confirmed: p.confirmed.map(time),
        // Who signed up where: ana and ben on the website's form, cy at a fair, the rest
        // without a source.
        source: match p.email.split('@').next() {
            Some("ana" | "ben" | "pat") => Some("homepage-form".into()),
            Some("cy") => Some("fair".into()),
            _ => None,
        },
        ..helpers::Person::new(p.email)
    }]);
}

/// Five confirmed people, and four others who match nearly everything but must never count.
async fn populated_app() -> (TestApp, String) {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    app.add_field("city", "text", &[], true);
    app.add_field("age", "number", &[], true);
    app.add_field("born", "date", &[], true);
    app.add_field("member", "boolean", &[], true);
    app.add_field("tier", "one_of", &["gold", "silver"], true);
    let ana_like =
        json!({"city": "Phoenix", "age": 30, "born": "1990-05-01", "member": true, "tier": "gold"});
    let people = [
        Person {
            email: "ana@example.org",
            status: "confirmed",
            language: "en",
            interests: &["news"],
            attributes: ana_like.clone(),
            created: "2025-01-10 08:00:00",
            confirmed: Some("2025-01-11 08:00:00"),
        },
        Person {
            email: "ben@example.org",
            status: "confirmed",
            language: "es",
            interests: &["news", "events"],
            attributes: json!({"city": "Tucson", "age": 45.5, "born": "1980-12-31", "member": false, "tier": "silver"}),
            created: "2025-03-01 00:00:00",
            confirmed: Some("2025-03-02 00:00:00"),
        },
        Person {
            email: "cy@mail.example.org",
            status: "confirmed",
            language: "en",
            interests: &[],
            attributes: json!({"city": "phoenix", "age": 17}),
            created: "2025-06-01 00:00:00",
            confirmed: Some("2025-06-01 12:00:00"),
        },
        Person {
            email: "dee@other.net",
            status: "confirmed",
            language: "es",
            interests: &["events"],
            attributes: json!({}),
            created: "2025-09-01 00:00:00",
            confirmed: Some("2025-09-02 00:00:00"),
        },
        Person {
            email: "eve@example.org",
            status: "confirmed",
            language: "en",
            interests: &[],
            attributes: json!({"city": "Phoenix West", "age": 29.99, "born": "1990-05-02", "member": true}),
            created: "2025-10-01 00:00:00",
            confirmed: Some("2025-10-01 00:05:00"),
        },
    ];
    for p in &people {
        add_person(&app, p);
    }
    for (email, status) in [
        ("pat@example.org", "pending"),
        ("uma@example.org", "unsubscribed"),
        ("bob@example.org", "bounced"),
        ("col@example.org", "complained"),
    ] {
        add_person(
            &app,
            &Person {
                email,
                status,
                language: "en",
                interests: &["news", "events"],
                attributes: ana_like.clone(),
                created: "2025-05-01 00:00:00",
                confirmed: Some("2025-05-01 00:00:00"),
            },
        );
    }
    let token = app.staff_token(Role::Editor).await;
    (app, token)
}

/// Whom the filter reaches (by the part of the address before @), checked against the count.
async fn reached(app: &TestApp, token: &str, filter: Value) -> Vec<String> {
    let res = app
        .send_as(
            token,
            "POST",
            "/api/v1/segments/preview",
            json!({ "filter": filter }),
        )
        .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{filter}: {body}");
    let sample = body["sample"].as_array().unwrap();
    assert!(sample.len() < 10, "a sample this large may be cut short");
    assert_eq!(body["count"], sample.len(), "{filter}: {body}");
    // The builder's count alone says the same.
    let res = app
        .send_as(
            token,
            "POST",
            "/api/v1/segments/count",
            json!({ "filter": filter }),
        )
        .await;
    assert_eq!(res.status(), 200, "{filter}");
    let counted: Value = res.json().await.unwrap();
    assert_eq!(counted, json!({"count": body["count"]}), "{filter}");
    let names: BTreeSet<String> = sample
        .iter()
        .map(|s| {
            let email = s["email"].as_str().unwrap();
            email.split('@').next().unwrap().to_owned()
        })
        .collect();
    names.into_iter().collect()
}

async fn assert_reaches(app: &TestApp, token: &str, filter: Value, expected: &[&str]) {
    assert_eq!(
        reached(app, token, filter.clone()).await,
        expected,
        "filter {filter}"
    );
}

fn attr(key: &str, op: &str, value: Value) -> Value {
    json!({"attribute": {"key": key, "op": op, "value": value}})
}

fn presence(key: &str, op: &str) -> Value {
    json!({"attribute": {"key": key, "op": op}})
}

#[tokio::test]
async fn every_leaf_reaches_exactly_the_right_confirmed_people() {
    let (app, t) = populated_app().await;
    let t = t.as_str();
    let everyone = ["ana", "ben", "cy", "dee", "eve"];
    // Pending, unsubscribed, bounced and complained people match all of these, yet never count.
    assert_reaches(
        &app,
        t,
        json!({"not": {"email_domain": "nowhere.invalid"}}),
        &everyone,
    )
    .await;
    assert_reaches(&app, t, json!({"interest": "news"}), &["ana", "ben"]).await;
    assert_reaches(&app, t, json!({"interest": "events"}), &["ben", "dee"]).await;
    assert_reaches(&app, t, json!({"language": "es"}), &["ben", "dee"]).await;
    assert_reaches(&app, t, json!({"language": "en"}), &["ana", "cy", "eve"]).await;
    // The whole domain only, whatever its case; not subdomains.
    assert_reaches(
        &app,
        t,
        json!({"email_domain": "Example.ORG"}),
        &["ana", "ben", "eve"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        json!({"email_domain": "mail.example.org"}),
        &["cy"],
    )
    .await;
    assert_reaches(&app, t, json!({"email_domain": "example"}), &[]).await;
    // The signup's source, exactly; people without one are left out, and `not` takes them in.
    assert_reaches(&app, t, json!({"source": "homepage-form"}), &["ana", "ben"]).await;
    assert_reaches(&app, t, json!({"source": "Homepage-Form"}), &[]).await;
    assert_reaches(
        &app,
        t,
        json!({"not": {"source": "homepage-form"}}),
        &["cy", "dee", "eve"],
    )
    .await;
    // after is inclusive, before exclusive.
    let created = |range: Value| json!({ "created": range });
    assert_reaches(
        &app,
        t,
        created(json!({"after": "2025-03-01T00:00:00Z"})),
        &["ben", "cy", "dee", "eve"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        created(json!({"before": "2025-06-01T00:00:00Z"})),
        &["ana", "ben"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        created(json!({"after": "2025-01-10T09:00:00+01:00", "before": "2025-06-01T00:00:01Z"})),
        &["ana", "ben", "cy"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        json!({"confirmed": {"after": "2025-06-01T00:00:00Z", "before": "2025-10-01T00:05:00Z"}}),
        &["cy", "dee"],
    )
    .await;
}

#[tokio::test]
async fn every_attribute_operator_behaves_the_same_on_both_databases() {
    let (app, t) = populated_app().await;
    let t = t.as_str();
    let cases: Vec<(Value, &[&str])> = vec![
        // text: exact and case-sensitive; ne and not_exists include people without a value.
        (attr("city", "eq", json!("Phoenix")), &["ana"]),
        (
            attr("city", "ne", json!("Phoenix")),
            &["ben", "cy", "dee", "eve"],
        ),
        (
            attr("city", "in", json!(["Phoenix", "Tucson"])),
            &["ana", "ben"],
        ),
        (
            attr("city", "contains", json!("hoen")),
            &["ana", "cy", "eve"],
        ),
        (attr("city", "contains", json!("Phoe")), &["ana", "eve"]),
        (attr("city", "contains", json!("100%")), &[]),
        (
            attr("city", "starts_with", json!("Phoenix")),
            &["ana", "eve"],
        ),
        (attr("city", "starts_with", json!("West")), &[]),
        (presence("city", "exists"), &["ana", "ben", "cy", "eve"]),
        (presence("city", "not_exists"), &["dee"]),
        // number
        (attr("age", "eq", json!(30)), &["ana"]),
        (attr("age", "eq", json!(30.0)), &["ana"]),
        (attr("age", "eq", json!(45.5)), &["ben"]),
        (attr("age", "ne", json!(30)), &["ben", "cy", "dee", "eve"]),
        (attr("age", "gt", json!(30)), &["ben"]),
        (attr("age", "gte", json!(30)), &["ana", "ben"]),
        (attr("age", "lt", json!(30)), &["cy", "eve"]),
        (attr("age", "lte", json!(29.99)), &["cy", "eve"]),
        (attr("age", "gt", json!(-1)), &["ana", "ben", "cy", "eve"]),
        (presence("age", "not_exists"), &["dee"]),
        // date
        (attr("born", "eq", json!("1990-05-01")), &["ana"]),
        (attr("born", "before", json!("1990-05-02")), &["ana", "ben"]),
        (attr("born", "lt", json!("1990-05-02")), &["ana", "ben"]),
        (attr("born", "after", json!("1990-05-01")), &["eve"]),
        (
            attr("born", "gt", json!("1980-12-30")),
            &["ana", "ben", "eve"],
        ),
        (presence("born", "exists"), &["ana", "ben", "eve"]),
        (presence("born", "not_exists"), &["cy", "dee"]),
        // boolean
        (attr("member", "eq", json!(true)), &["ana", "eve"]),
        (attr("member", "eq", json!(false)), &["ben"]),
        (presence("member", "exists"), &["ana", "ben", "eve"]),
        (presence("member", "not_exists"), &["cy", "dee"]),
        // one_of
        (attr("tier", "eq", json!("gold")), &["ana"]),
        (
            attr("tier", "ne", json!("gold")),
            &["ben", "cy", "dee", "eve"],
        ),
        (
            attr("tier", "in", json!(["gold", "silver"])),
            &["ana", "ben"],
        ),
        (attr("tier", "starts_with", json!("sil")), &["ben"]),
    ];
    for (filter, expected) in cases {
        assert_reaches(&app, t, filter, expected).await;
    }
}

#[tokio::test]
async fn all_any_and_not_combine_as_logic_says() {
    let (app, t) = populated_app().await;
    let t = t.as_str();
    assert_reaches(
        &app,
        t,
        json!({"not": {"interest": "news"}}),
        &["cy", "dee", "eve"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        json!({"all": [{"language": "en"}, {"interest": "news"}]}),
        &["ana"],
    )
    .await;
    let either = json!({"any": [{"language": "es"}, attr("city", "eq", json!("Phoenix"))]});
    assert_reaches(&app, t, either.clone(), &["ana", "ben", "dee"]).await;
    assert_reaches(&app, t, json!({ "not": either }), &["cy", "eve"]).await;
    // A missing value does not match a comparison, so its negation does: the complement is exact.
    assert_reaches(
        &app,
        t,
        json!({"not": attr("age", "gt", json!(20))}),
        &["cy", "dee"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        json!({"not": {"not": attr("age", "gt", json!(20))}}),
        &["ana", "ben", "eve"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        json!({"not": {"confirmed": {"before": "2025-06-01T00:00:00Z"}}}),
        &["cy", "dee", "eve"],
    )
    .await;
    assert_reaches(
        &app,
        t,
        json!({"all": [
            {"any": [{"interest": "events"}, attr("member", "eq", json!(true))]},
            {"not": {"email_domain": "other.net"}},
            {"not": attr("tier", "eq", json!("silver"))},
        ]}),
        &["ana", "eve"],
    )
    .await;
}

async fn problem(app: &TestApp, token: &str, filter: Value) -> Value {
    let res = app
        .send_as(
            token,
            "POST",
            "/api/v1/segments/preview",
            json!({ "filter": filter }),
        )
        .await;
    assert_eq!(res.status(), 422, "{filter}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    // The count refuses it with the same errors.
    let res = app
        .send_as(
            token,
            "POST",
            "/api/v1/segments/count",
            json!({ "filter": filter }),
        )
        .await;
    assert_eq!(res.status(), 422, "{filter}");
    let counted: Value = res.json().await.unwrap();
    assert_eq!(counted["errors"], body["errors"], "{filter}");
    body["errors"].clone()
}

#[tokio::test]
async fn bad_filters_are_422_with_the_path_of_each_mistake() {
    let (app, t) = populated_app().await;
    let t = t.as_str();
    let e = problem(
        &app,
        t,
        json!({"all": [{"interest": "news"}, {"colour": "red"}]}),
    )
    .await;
    assert!(
        e["filter.all[1]"][0]
            .as_str()
            .unwrap()
            .contains("unknown condition"),
        "{e}"
    );
    let e = problem(
        &app,
        t,
        json!({"all": [{"language": "en"}, attr("city", "like", json!("P%"))]}),
    )
    .await;
    assert_eq!(
        e["filter.all[1].attribute.op"],
        json!(["unknown operator \"like\""])
    );
    let e = problem(&app, t, attr("age", "gt", json!("thirty"))).await;
    assert!(e["filter.attribute.value"].is_array(), "{e}");
    let e = problem(&app, t, attr("age", "contains", json!("3"))).await;
    assert!(e["filter.attribute.op"].is_array(), "{e}");
    let e = problem(&app, t, attr("tier", "eq", json!("bronze"))).await;
    assert!(e["filter.attribute.value"].is_array(), "{e}");
    let e = problem(&app, t, attr("nickname", "eq", json!("Al"))).await;
    assert_eq!(
        e["filter.attribute.key"],
        json!(["is not a declared field"])
    );
    let e = problem(
        &app,
        t,
        json!({"any": [{"interest": "news"}, {"interest": "gardening"}]}),
    )
    .await;
    assert_eq!(e["filter.any[1].interest"], json!(["is not an interest"]));
    let e = problem(&app, t, json!({"source": ""})).await;
    assert!(e["filter.source"].is_array(), "{e}");
    let e = problem(&app, t, json!({"any": []})).await;
    assert!(e["filter.any"].is_array(), "{e}");
    let mut deep = json!({"interest": "news"});
    for _ in 0..11 {
        deep = json!({ "not": deep });
    }
    let e = problem(&app, t, deep).await;
    assert!(
        e.as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("filter.not.not")),
        "{e}"
    );
    let wide = vec![json!({"interest": "news"}); 500];
    let e = problem(&app, t, json!({ "any": wide })).await;
    assert_eq!(e.as_object().unwrap().len(), 1, "{e}");
    // Name and filter mistakes come back together.
    let res = app
        .send_as(
            t,
            "POST",
            "/api/v1/segments",
            json!({"name": " ", "filter": {"language": "fr"}}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let e = res.json::<Value>().await.unwrap()["errors"].clone();
    assert!(
        e["name"].is_array() && e["filter.language"].is_array(),
        "{e}"
    );
    let res = app
        .send_as(
            t,
            "POST",
            "/api/v1/segments",
            json!({"name": "Ok", "filter": {"interest": "nope"}}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("segments"), 0);
}

#[tokio::test]
async fn staff_save_change_and_delete_segments() {
    let (app, t) = populated_app().await;
    let t = t.as_str();
    let res = app
        .send_as(
            t,
            "POST",
            "/api/v1/segments",
            json!({"name": "  Spanish speakers ", "filter": {"language": "ES"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "Spanish speakers");
    assert_eq!(
        created["filter"],
        json!({"language": "es"}),
        "stored canonically"
    );
    assert_eq!(created["count"], 2);
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/segments/{id}");

    let viewer = app.staff_token(Role::Viewer).await;
    let got: Value = app
        .send_as(&viewer, "GET", &path, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (got["id"].as_str(), got["count"].as_i64()),
        (Some(id.as_str()), Some(2))
    );
    // Someone new who matches is counted at once: the count is live.
    add_person(
        &app,
        &Person {
            email: "fay@example.org",
            status: "confirmed",
            language: "es",
            interests: &[],
            attributes: json!({}),
            created: "2025-11-01 00:00:00",
            confirmed: Some("2025-11-01 00:00:00"),
        },
    );
    let got: Value = app
        .send_as(&viewer, "GET", &path, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["count"], 3);
    assert_eq!(
        app.send_as(&viewer, "PATCH", &path, json!({"name": "x"}))
            .await
            .status(),
        403
    );
    // Viewers may preview (it only reads).
    assert_eq!(
        app.send_as(
            &viewer,
            "POST",
            "/api/v1/segments/preview",
            json!({"filter": {"language": "en"}})
        )
        .await
        .status(),
        200
    );

    let res = app
        .send_as(
            t,
            "PATCH",
            &path,
            json!({"filter": {"all": [{"language": "es"}, {"interest": "events"}]}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(
        (changed["name"].as_str(), changed["count"].as_i64()),
        (Some("Spanish speakers"), Some(2))
    );
    let res = app
        .send_as(t, "PATCH", &path, json!({"name": "Eventos"}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Eventos");
    assert_eq!(
        app.send_as(t, "PATCH", &path, json!({"filter": {"language": "de"}}))
            .await
            .status(),
        422
    );
    let list: Value = app
        .send_as(&viewer, "GET", "/api/v1/segments", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["data"][0]["filter"]["all"][1],
        json!({"interest": "events"})
    );

    // Unknown or malformed ids are 404.
    for missing in [
        "/api/v1/segments/not-a-uuid",
        "/api/v1/segments/0190d6f4-0000-7000-8000-000000000000",
    ] {
        assert_eq!(
            app.send_as(t, "GET", missing, json!({})).await.status(),
            404
        );
        assert_eq!(
            app.send_as(t, "PATCH", missing, json!({"name": "x"}))
                .await
                .status(),
            404
        );
        assert_eq!(
            app.send_as(t, "DELETE", missing, json!({})).await.status(),
            404
        );
    }

    // A draft newsletter uses it: refused. Once that newsletter has been sent: deleted, and the
    // newsletter forgets it.
    app.sql(&format!(
        "INSERT INTO newsletters (id, subject, html, segment_id, status, created_at, updated_at) \
         VALUES ('{}', 'Hola', '<p>Hola</p>', '{id}', 'draft', '2025-11-01 00:00:00', '2025-11-01 00:00:00')",
        uuid::Uuid::now_v7()
    ));
    let res = app.send_as(t, "DELETE", &path, json!({})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    app.set_newsletter_status(None, "sent");
    assert_eq!(
        app.send_as(t, "DELETE", &path, json!({})).await.status(),
        204
    );
    assert_eq!(app.send_as(t, "GET", &path, json!({})).await.status(), 404);
    assert_eq!(app.count("newsletters WHERE segment_id IS NULL"), 1);
    assert_eq!(
        app.count(&format!(
            "audit_log WHERE object_type = 'segment' AND object_id = '{id}'"
        )),
        4,
        "create, two changes, delete"
    );
}
