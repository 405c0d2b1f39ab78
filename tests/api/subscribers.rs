//! Subscribers for staff: filters, cursor pages, access requests and erasure.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn staff_list_subscribers_with_filters_and_a_stable_cursor() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    for i in 0..7 {
        let interests = if i % 2 == 0 {
            json!(["news"])
        } else {
            json!([])
        };
        let language = if i < 3 { "es" } else { "en" };
        app.subscribe(json!({"email": format!("p{i}@example.org"), "interests": interests, "language": language})).await;
    }
    // Page through everything, three at a time.
    let mut seen = Vec::new();
    let mut path = "/api/v1/subscribers?limit=3".to_owned();
    loop {
        let page: Value = get(&app, &viewer, &path).await.json().await.unwrap();
        for s in page["data"].as_array().unwrap() {
            seen.push(s["email"].as_str().unwrap().to_owned());
            assert_eq!(s["status"], "pending");
        }
        let cursor = page["next_cursor"].as_str().expect("always a cursor");
        if page["has_more"] == false {
            break;
        }
        path = format!("/api/v1/subscribers?limit=3&cursor={cursor}");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "every subscriber once");

    let es: Value = get(&app, &viewer, "/api/v1/subscribers?language=es")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(es["data"].as_array().unwrap().len(), 3);
    let news: Value = get(&app, &viewer, "/api/v1/subscribers?interest=news")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(news["data"].as_array().unwrap().len(), 4);
    assert_eq!(news["data"][0]["interests"], json!(["news"]));
    let one: Value = get(&app, &viewer, "/api/v1/subscribers?email_contains=P5@")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    let none: Value = get(&app, &viewer, "/api/v1/subscribers?email_contains=%25")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        none["data"].as_array().unwrap().len(),
        0,
        "% is a character, not a wildcard"
    );
    let later: Value = get(
        &app,
        &viewer,
        "/api/v1/subscribers?updated_since=2999-01-01T00:00:00Z",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(later["data"].as_array().unwrap().len(), 0);

    for bad in [
        "limit=0",
        "limit=1001",
        "status=happy",
        "language=fr",
        "cursor=forged",
        "cursor=bm90fGFuLWlk",
        "updated_since=yesterday",
        "colour=red",
    ] {
        let res = get(&app, &viewer, &format!("/api/v1/subscribers?{bad}")).await;
        assert!(
            res.status() == 422 || res.status() == 400,
            "{bad}: {}",
            res.status()
        );
    }
}

#[tokio::test]
async fn an_access_request_returns_everything_held_and_erasure_removes_it() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    app.subscribe(json!({"email": "ana@example.org", "name": "Ana", "interests": ["news"], "source": "footer"})).await;
    let mail = app.deliver_one("ana@example.org").await;
    app.client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap();
    app.run_jobs().await;
    let list: Value = get(&app, &viewer, "/api/v1/subscribers")
        .await
        .json()
        .await
        .unwrap();
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();

    assert_eq!(
        get(&app, &viewer, &format!("/api/v1/subscribers/{id}/data"))
            .await
            .status(),
        403,
        "viewers do not export"
    );
    let data: Value = get(&app, &editor, &format!("/api/v1/subscribers/{id}/data"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(data["subscriber"]["email"], "ana@example.org");
    assert_eq!(data["subscriber"]["interests"], json!(["news"]));
    let actions: Vec<&str> = data["consent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["signup", "confirm"]);
    assert!(data["consent"][0]["wording"].as_str().unwrap().len() > 20);
    let kinds: Vec<&str> = data["mails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["confirmation", "welcome"]);

    let res = app.erase(&editor, &id).await;
    assert_eq!(res.status(), 204);
    for table in [
        "subscribers",
        "subscriber_interests",
        "consent_events",
        "jobs",
        "confirmation_tokens",
    ] {
        assert_eq!(app.count(table), 0, "{table} holds nothing about them");
    }
    assert_eq!(
        app.count(&format!("tombstones WHERE subscriber_id = '{id}'")),
        1
    );
    assert_eq!(app.count("suppressions WHERE reason = 'erased'"), 1);
    assert_eq!(
        get(&app, &editor, &format!("/api/v1/subscribers/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(app.count("audit_log WHERE action = 'subscriber.erase'"), 1);

    // Only their own new confirmation brings them back.
    app.subscribe(json!({"email": "ana@example.org"})).await;
    assert_eq!(app.status_of("ana@example.org").as_deref(), Some("pending"));
    let again = app.deliver_one("ana@example.org").await;
    app.client
        .post(app.url(&app.link(&again, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        app.count("suppressions"),
        0,
        "the erased suppression is cleared by their confirmation"
    );
}

#[tokio::test]
async fn staff_add_people_with_a_confirmation_or_with_recorded_consent() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("volunteers", false);
    app.add_field("phone_ok", "boolean", &[], false);
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    let post = |body: Value| {
        let app = &app;
        let editor = editor.clone();
        async move {
            app.client
                .post(app.url("/api/v1/subscribers"))
                .bearer_auth(editor)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Recorded consent: confirmed at once, evidence in the ledger, private fields allowed.
    let res = post(json!({"email": "Rosa@Example.org", "name": "Rosa", "language": "es", "interests": ["volunteers"],
        "attributes": {"phone_ok": true},
        "consent": {"mode": "recorded", "source": "paper form, march 3 meeting", "note": "Signed the sign-up sheet"}})).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["confirmation_sent"].as_bool()),
        (Some("confirmed"), Some(false))
    );
    assert_eq!(app.count("consent_events WHERE action = 'staff_recorded' AND source = 'paper form, march 3 meeting'"), 1);
    // Confirmation mode: pending until they confirm.
    let res = post(json!({"email": "luis@example.org", "consent": {"mode": "confirmation"}})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        app.status_of("luis@example.org").as_deref(),
        Some("pending")
    );
    app.deliver_one("luis@example.org").await;
    // Upsert: the same address again updates (200), and a duplicate never appears.
    let res = post(json!({"email": "rosa@example.org", "name": "Rosa M.", "consent": {"mode": "confirmation"}})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["name"].as_str(), body["language"].as_str()),
        (Some("Rosa M."), Some("es")),
        "absent fields keep their values"
    );
    assert_eq!(body["interests"], json!(["volunteers"]));
    assert_eq!(app.count("subscribers WHERE email = 'rosa@example.org'"), 1);

    for (bad, field) in [
        (
            json!({"email": "x@example.org", "consent": {"mode": "recorded", "source": "", "note": "n"}}),
            "consent.source",
        ),
        (
            json!({"email": "x@example.org", "interests": ["nope"], "consent": {"mode": "confirmation"}}),
            "interests",
        ),
        (
            json!({"email": "x@example.org", "attributes": {"phone_ok": "yes"}, "consent": {"mode": "confirmation"}}),
            "attributes.phone_ok",
        ),
        (
            json!({"email": "bad", "consent": {"mode": "confirmation"}}),
            "email",
        ),
    ] {
        let res = post(bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
        assert!(
            res.json::<Value>().await.unwrap()["errors"][field].is_array(),
            "{bad}"
        );
    }
    assert_eq!(
        post(json!({"email": "x@example.org", "consent": {"mode": "maybe"}}))
            .await
            .status(),
        422
    );
    assert_eq!(app.count("subscribers WHERE email = 'x@example.org'"), 0);

    // Erased people come back only through their own confirmation.
    let id = app.conn_subscriber_id("rosa@example.org");
    app.erase(&editor, &id).await;
    let res = post(json!({"email": "rosa@example.org", "consent": {"mode": "recorded", "source": "s", "note": "n"}})).await;
    assert_eq!(res.status(), 409);
    let res = post(json!({"email": "rosa@example.org", "consent": {"mode": "confirmation"}})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        app.status_of("rosa@example.org").as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn staff_change_profile_interests_and_attributes_but_not_status() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_field("city", "text", &[], true);
    app.add_field("age", "number", &[], false);
    let editor = app.staff_token(enlace::auth::Role::Editor).await;
    app.subscribe(json!({"email": "m@example.org", "name": "Mar", "attributes": {"city": "Mesa"}}))
        .await;
    let id = app.conn_subscriber_id("m@example.org");
    let patch = |body: Value| {
        let app = &app;
        let editor = editor.clone();
        let id = id.clone();
        async move {
            app.client
                .patch(app.url(&format!("/api/v1/subscribers/{id}")))
                .bearer_auth(editor)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let res = patch(json!({"name": null, "language": "es", "interests": ["news"], "attributes": {"city": null, "age": 41}})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], Value::Null);
    assert_eq!(body["language"], "es");
    assert_eq!(body["interests"], json!(["news"]));
    assert_eq!(body["attributes"], json!({"age": 41}));
    assert_eq!(body["status"], "pending");
    assert_eq!(
        patch(json!({"attributes": {"age": "forty"}}))
            .await
            .status(),
        422
    );
    assert_eq!(
        patch(json!({"status": "confirmed"})).await.status(),
        422,
        "status is the person's to change"
    );
    assert_eq!(patch(json!({"interests": ["missing"]})).await.status(), 422);
    let res = app
        .client
        .patch(app.url("/api/v1/subscribers/00000000-0000-0000-0000-000000000000"))
        .bearer_auth(&editor)
        .json(&json!({"language": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
