//! Counts are data about people: a narrow enough filter counts one person, so a caller who
//! could ask for counts at will could read any field of anyone, one yes/no at a time. Every
//! answer derived from contacts goes only to callers who may read contacts (every staff role,
//! a key with `subscribers:read`); everyone else gets the answer without it, or 403 when the
//! whole answer is such data. Walked here with every scope against every such endpoint, and
//! checked against the `contact_data` openapi.yaml declares.

use std::collections::BTreeSet;

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::TestApp;

use enlace::auth::Scope;

/// How many people the probe filter reaches (and have the interest, and a city).
const REACHED: i64 = 3;

struct Caller {
    label: String,
    token: String,
    /// Whether it may read contacts, and so must see counts.
    reads: bool,
}

struct Fixture {
    segment: String,
    newsletter: String,
}

fn probe() -> Value {
    json!({"attribute": {"key": "city", "op": "eq", "value": "Ourense"}})
}

async fn callers(app: &TestApp) -> (String, Vec<Caller>) {
    let admin = app.staff_token(Role::Admin).await;
    let mut callers = Vec::new();
    for role in [Role::Admin, Role::Editor, Role::Viewer] {
        let email = format!("walk-{}@staff.example.org", role.as_str());
        app.add_staff(&email, role);
        callers.push(Caller {
            label: format!("staff {}", role.as_str()),
            token: app.sign_in(&email).await,
            reads: true,
        });
    }
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let mut key_sets: Vec<Vec<&str>> = scopes.iter().map(|s| vec![*s]).collect();
    key_sets.push(scopes[1..].to_vec());
    key_sets.push(vec![
        "subscribers:read",
        "subscribers:write",
        "newsletters:write",
        "newsletters:send",
    ]);
    for scopes in key_sets {
        let res = app
            .send_as(
                &admin,
                "POST",
                "/api/v1/api-keys",
                json!({"name": "walk", "scopes": scopes}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        callers.push(Caller {
            label: format!("key {}", scopes.join("+")),
            token: body["key"].as_str().unwrap().to_owned(),
            reads: scopes.contains(&"subscribers:read"),
        });
    }
    (admin, callers)
}

async fn fixture(app: &TestApp, admin: &str) -> Fixture {
    app.add_field("city", "text", &[], false);
    app.add_interest("news", false);
    for i in 0..REACHED {
        app.add_subscriber(
            &format!("p{i}@ejemplo.org"),
            "confirmed",
            "es",
            None,
            json!({"city": "Ourense"}),
        );
    }
    app.add_subscriber("other@example.org", "confirmed", "en", None, json!({}));
    join_interest(app);
    let res = app
        .send_as(
            admin,
            "POST",
            "/api/v1/segments",
            json!({"name": "Ourense", "filter": probe()}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let segment: Value = res.json().await.unwrap();
    let res = app
        .send_as(
            admin,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "S", "html": "<p>B</p>", "filter": probe()}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let newsletter: Value = res.json().await.unwrap();
    let newsletter = newsletter["id"].as_str().unwrap().to_owned();
    let res = send(app, admin, &newsletter).await;
    assert_eq!(res.status(), 202);
    app.run_sends().await;
    Fixture {
        segment: segment["id"].as_str().unwrap().to_owned(),
        newsletter,
    }
}

/// The people the probe reaches have the `news` interest (again, after a forced delete).
fn join_interest(app: &TestApp) {
    if app.count("interests WHERE slug = 'news'") == 0 {
        app.add_interest("news", false);
    }
    app.sql(
        "INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at) \
         SELECT id, 'news', created_at FROM subscribers WHERE email LIKE '%@ejemplo.org' \
         AND id NOT IN (SELECT subscriber_id FROM subscriber_interests)",
    );
}

async fn send(app: &TestApp, token: &str, newsletter: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/newsletters/{newsletter}/send")))
        .bearer_auth(token)
        .header("Idempotency-Key", "walk")
        .send()
        .await
        .unwrap()
}

async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Checks one answer: `field` is there (and right) for a reader; a non-reader gets no count in
/// any form: the field left out of a success, no number in a conflict, or 403.
fn check(
    caller: &Caller,
    op: &str,
    (status, body): &(u16, Value),
    field: &str,
    expected: &dyn Fn(&Value) -> bool,
) -> bool {
    let what = format!("{} → {op}: {status} {body}", caller.label);
    assert_ne!(*status, 401, "{what}");
    assert!(*status < 500, "{what}");
    let success = (200..300).contains(status);
    if caller.reads {
        if success {
            assert!(expected(&body[field]), "a reader sees `{field}`: {what}");
        }
    } else if success {
        assert!(body.get(field).is_none(), "no `{field}`: {what}");
    } else if *status == 409 {
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.chars().any(|c| c.is_ascii_digit()),
            "no number: {what}"
        );
    } else {
        assert_eq!(*status, 403, "{what}");
    }
    success
}

fn is_reached(v: &Value) -> bool {
    v.as_i64() == Some(REACHED)
}

fn is_progress(v: &Value) -> bool {
    v["total"].as_i64() == Some(REACHED) && v["sent"].as_i64() == Some(REACHED)
}

/// Every operation the walk covers, as openapi.yaml spells it.
const WALKED: [(&str, &str); 13] = [
    ("post", "/api/v1/segments"),
    ("get", "/api/v1/segments/{id}"),
    ("patch", "/api/v1/segments/{id}"),
    ("post", "/api/v1/segments/preview"),
    ("post", "/api/v1/segments/count"),
    ("get", "/api/v1/newsletters/{id}"),
    ("post", "/api/v1/newsletters/{id}/send"),
    ("post", "/api/v1/newsletters/{id}/pause"),
    ("post", "/api/v1/newsletters/{id}/resume"),
    ("post", "/api/v1/newsletters/{id}/cancel"),
    ("put", "/api/v1/newsletters/{id}/archived"),
    ("delete", "/api/v1/interests/{slug}"),
    ("delete", "/api/v1/fields/{key}"),
];

#[tokio::test]
async fn every_scope_gets_counts_only_with_the_right_to_read_contacts() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some("Calle 1, Ourense".into()))
        .spawn()
        .await;
    let (admin, callers) = callers(&app).await;
    let f = fixture(&app, &admin).await;
    let segment = format!("/api/v1/segments/{}", f.segment);
    let newsletter = format!("/api/v1/newsletters/{}", f.newsletter);
    // How many non-readers got a success without the count, per operation: the walk must
    // reach the case it guards, not only refusals.
    let mut stripped = std::collections::BTreeMap::<&str, usize>::new();
    for c in &callers {
        let t = c.token.as_str();
        let mut seen = |op: &'static str, success: bool| {
            if success && !c.reads {
                *stripped.entry(op).or_default() += 1;
            }
        };
        let body = json!({"name": format!("probe {}", c.label), "filter": probe()});
        let a = answer(app.send_as(t, "POST", "/api/v1/segments", body).await).await;
        seen(
            "create segment",
            check(c, "create segment", &a, "count", &is_reached),
        );
        let a = answer(
            app.send_as(t, "PATCH", &segment, json!({"filter": probe()}))
                .await,
        )
        .await;
        seen(
            "change segment",
            check(c, "change segment", &a, "count", &is_reached),
        );
        let a = answer(app.get_as(t, &segment).await).await;
        seen(
            "get segment",
            check(c, "get segment", &a, "count", &is_reached),
        );
        let body = json!({"filter": probe()});
        let a = answer(
            app.send_as(t, "POST", "/api/v1/segments/preview", body)
                .await,
        )
        .await;
        seen("preview", check(c, "preview", &a, "count", &is_reached));
        check(c, "preview", &a, "sample", &|v| {
            v.as_array().is_some_and(|s| s.len() == REACHED as usize)
        });
        let a = answer(
            app.send_as(
                t,
                "POST",
                "/api/v1/segments/count",
                json!({"filter": probe()}),
            )
            .await,
        )
        .await;
        check(c, "count", &a, "count", &is_reached);

        let a = answer(app.get_as(t, &newsletter).await).await;
        seen(
            "get newsletter",
            check(c, "get newsletter", &a, "progress", &is_progress),
        );
        let a = answer(send(&app, t, &f.newsletter).await).await;
        seen(
            "send again",
            check(c, "send again", &a, "progress", &is_progress),
        );
        for (op, from) in [
            ("pause", "sending"),
            ("resume", "paused"),
            ("cancel", "sending"),
        ] {
            app.set_newsletter_status(Some(&f.newsletter), from);
            let a = answer(
                app.send_as(t, "POST", &format!("{newsletter}/{op}"), json!({}))
                    .await,
            )
            .await;
            seen(op, check(c, op, &a, "progress", &is_progress));
        }
        app.set_newsletter_status(Some(&f.newsletter), "sent");
        let a = answer(
            app.send_as(
                t,
                "PUT",
                &format!("{newsletter}/archived"),
                json!({"archived": true}),
            )
            .await,
        )
        .await;
        seen("archive", check(c, "archive", &a, "progress", &is_progress));

        let a = answer(
            app.send_as(t, "DELETE", "/api/v1/interests/news", json!(null))
                .await,
        )
        .await;
        if c.reads && a.0 == 409 {
            assert!(
                a.1["detail"].as_str().unwrap().starts_with("3 subscribers"),
                "{}",
                a.1
            );
        }
        check(c, "delete interest", &a, "memberships_removed", &|_| true);
        let a = answer(
            app.send_as(
                t,
                "DELETE",
                "/api/v1/interests/news?force=true",
                json!(null),
            )
            .await,
        )
        .await;
        seen(
            "force-delete interest",
            check(
                c,
                "force-delete interest",
                &a,
                "memberships_removed",
                &is_reached,
            ),
        );
        join_interest(&app);
        let a = answer(
            app.send_as(t, "DELETE", "/api/v1/fields/city", json!(null))
                .await,
        )
        .await;
        if c.reads && a.0 == 409 {
            assert!(
                a.1["detail"].as_str().unwrap().starts_with("3 subscribers"),
                "{}",
                a.1
            );
        }
        check(c, "delete field", &a, "count", &|_| true);
    }
    for op in [
        "create segment",
        "change segment",
        "get segment",
        "get newsletter",
        "send again",
        "pause",
        "resume",
        "cancel",
        "archive",
        "force-delete interest",
    ] {
        assert!(
            stripped.get(op).copied().unwrap_or(0) > 0,
            "{op}: some key without subscribers:read is answered (without the count)"
        );
    }

    // openapi.yaml declares the contact data of exactly these operations.
    let spec: Value = serde_norway::from_str(include_str!("../../openapi.yaml")).unwrap();
    let mut declared = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let fields = &op["x-enlace-access"]["contact_data"];
            if fields.is_array() {
                assert!(!fields.as_array().unwrap().is_empty(), "{method} {path}");
                declared.insert((method.clone(), path.clone()));
            }
        }
    }
    let walked: BTreeSet<(String, String)> = WALKED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(declared, walked);
}
