//! POST /api/v1/subscribe: every branch behind the identical answer, bad input, forms, abuse.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

#[tokio::test]
async fn a_new_address_becomes_pending_and_gets_a_confirmation_mail() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let res = app
        .subscribe(json!({"email": " Ana.Lopez@Example.ORG ", "name": "Ana López", "interests": ["news"], "language": "es", "source": "home page"}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "pending"})
    );
    assert_eq!(
        app.status_of("ana.lopez@example.org").as_deref(),
        Some("pending")
    );

    let mail = app.deliver_one("ana.lopez@example.org").await;
    // The name is unconfirmed until the person confirms: it is not used in this mail.
    assert_eq!(mail.to_name, None);
    assert!(!mail.text.contains("Ana"));
    assert!(
        mail.subject.contains("Confirma"),
        "Spanish subject: {}",
        mail.subject
    );
    assert_eq!(mail.content_language.as_deref(), Some("es"));
    assert!(
        mail.text.contains("news (es)"),
        "the chosen interest is named in Spanish"
    );
    assert!(
        !mail.html.is_empty() && !mail.text.is_empty(),
        "multipart text + HTML"
    );
    let unsubscribe = mail.list_unsubscribe.clone().expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with(&format!("<{}/unsubscribe/", app.address)),
        "{unsubscribe}"
    );
    assert!(
        !unsubscribe.contains("ana"),
        "links never contain the address"
    );
    assert_eq!(
        mail.list_unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    app.link(&mail, "/confirm/");
    app.link(&mail, "/unsubscribe/");
    assert_eq!(
        app.count("consent_events WHERE action = 'signup' AND ip = '127.0.0.1'"),
        1
    );
}

#[tokio::test]
async fn the_answer_is_identical_whatever_the_address_state() {
    let app = spawn_app().await;
    let ask = |email: &'static str| {
        let app = &app;
        async move {
            let res = app.subscribe(json!({"email": email})).await;
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let new = ask("new@example.org").await;
    let pending = ask("new@example.org").await;
    app.subscribe(json!({"email": "confirmed@example.org"}))
        .await;
    let mail = app.deliver_one("confirmed@example.org").await;
    app.client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap();
    let confirmed = ask("confirmed@example.org").await;
    app.suppress("blocked@example.org", "complaint", "2026-01-01");
    let suppressed = ask("blocked@example.org").await;
    for other in [&pending, &confirmed, &suppressed] {
        assert_eq!(&new, other);
    }
    assert_eq!(new.0, 202);
}

#[tokio::test]
async fn a_pending_address_gets_the_confirmation_again_within_the_limits() {
    let app = spawn_app().await;
    app.subscribe(json!({"email": "p@example.org"})).await;
    app.deliver_one("p@example.org").await;
    // Again at once: throttled (at most one per 10 minutes).
    app.subscribe(json!({"email": "p@example.org"})).await;
    app.run_jobs().await;
    assert_eq!(app.mails_to("p@example.org").len(), 1);
    // Eleven minutes later: sent again, with a new working link.
    app.age_jobs(11);
    app.subscribe(json!({"email": "p@example.org"})).await;
    let second = app.deliver_one("p@example.org").await;
    app.age_jobs(11);
    app.subscribe(json!({"email": "p@example.org"})).await;
    app.deliver_one("p@example.org").await;
    // Three in a day is the ceiling.
    app.age_jobs(11);
    app.subscribe(json!({"email": "p@example.org"})).await;
    app.run_jobs().await;
    assert_eq!(app.mails_to("p@example.org").len(), 3);
    let res = app
        .client
        .post(app.url(&app.link(&second, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.status_of("p@example.org").as_deref(), Some("confirmed"));
}

#[tokio::test]
async fn a_confirmed_address_gets_an_already_subscribed_notice_and_nothing_changes() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    app.subscribe(json!({"email": "c@example.org", "name": "Carmen", "interests": ["news"]}))
        .await;
    let mail = app.deliver_one("c@example.org").await;
    app.client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap();
    app.deliver_one("c@example.org").await; // welcome
    app.age_jobs(11);
    app.subscribe(json!({"email": "c@example.org", "name": "Someone Else", "interests": ["events"], "language": "es"})).await;
    let notice = app.deliver_one("c@example.org").await;
    assert!(
        notice.text.contains("/preferences/"),
        "the notice links to the preferences page"
    );
    assert!(!notice.text.contains("/confirm/"));
    assert_eq!(
        notice.to_name.as_deref(),
        Some("Carmen"),
        "a stranger cannot rename a confirmed subscriber"
    );
    assert_eq!(
        app.count("subscriber_interests WHERE interest_slug = 'events'"),
        0
    );
    assert_eq!(app.status_of("c@example.org").as_deref(), Some("confirmed"));
}

#[tokio::test]
async fn an_unsubscribed_address_must_confirm_again() {
    let app = spawn_app().await;
    app.subscribe(json!({"email": "u@example.org"})).await;
    let mail = app.deliver_one("u@example.org").await;
    app.client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap();
    app.client
        .post(app.url(&app.link(&mail, "/unsubscribe/")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.status_of("u@example.org").as_deref(),
        Some("unsubscribed")
    );
    app.run_jobs().await;
    app.age_jobs(11);
    app.subscribe(json!({"email": "u@example.org"})).await;
    assert_eq!(
        app.status_of("u@example.org").as_deref(),
        Some("unsubscribed"),
        "no mail until confirmed"
    );
    let again = app.deliver_one("u@example.org").await;
    assert!(again.text.contains("/confirm/"));
    app.client
        .post(app.url(&app.link(&again, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(app.status_of("u@example.org").as_deref(), Some("confirmed"));
    assert_eq!(app.count("consent_events WHERE action = 'confirm'"), 2);
}

#[tokio::test]
async fn a_suppressed_address_gets_nothing() {
    let app = spawn_app().await;
    app.suppress("gone@example.org", "hard_bounce", "2026-01-01");
    let res = app.subscribe(json!({"email": "Gone@Example.org"})).await;
    assert_eq!(res.status(), 202);
    assert_eq!(app.run_jobs().await, 0);
    assert_eq!(app.count("subscribers"), 0);
}

#[tokio::test]
async fn invalid_input_is_a_422_that_names_the_fields_and_stores_nothing() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("staff-only", false);
    app.add_field("city", "text", &[], true);
    app.add_field("age", "number", &[], true);
    app.add_field("member", "boolean", &[], false);
    let cases = [
        (json!({"email": "not-an-email"}), "email"),
        (json!({}), "body"),
        (
            json!({"email": "a@example.org", "interests": ["nope"]}),
            "interests",
        ),
        (
            json!({"email": "a@example.org", "interests": ["staff-only"]}),
            "interests",
        ),
        (
            json!({"email": "a@example.org", "attributes": {"shoe": "42"}}),
            "attributes.shoe",
        ),
        (
            json!({"email": "a@example.org", "attributes": {"age": "forty"}}),
            "attributes.age",
        ),
        (
            json!({"email": "a@example.org", "attributes": {"member": true}}),
            "attributes.member",
        ),
        (
            json!({"email": "a@example.org", "name": "x".repeat(101)}),
            "name",
        ),
        (
            json!({"email": "a@example.org", "name": "Eve\r\nBcc: all@example.org"}),
            "name",
        ),
        (
            json!({"email": "a@example.org", "language": "fr"}),
            "language",
        ),
        (
            json!({"email": "a@example.org", "interest": ["news"]}),
            "body",
        ),
        (json!({"email": 42}), "body"),
    ];
    for (body, field) in cases {
        let res = app.subscribe(body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["status"], 422);
        assert!(problem["errors"][field].is_array(), "{body} → {problem}");
    }
    assert_eq!(app.count("subscribers"), 0);
    assert_eq!(app.count("jobs"), 0);
    // A valid typed attribute is kept.
    let res = app
        .subscribe(json!({"email": "a@example.org", "attributes": {"city": "Phoenix", "age": 40}}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        app.count("subscribers WHERE attributes LIKE '%Phoenix%'"),
        1
    );
}

#[tokio::test]
async fn malformed_bodies_get_clear_problems() {
    let app = TestApp::builder()
        .settings(|s| s.max_body_bytes = 1024)
        .spawn()
        .await;
    let post = |ct: &'static str, body: Vec<u8>| {
        let app = &app;
        async move {
            let res = app
                .client
                .post(app.url("/api/v1/subscribe"))
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, ct)
        }
    };
    let problem = Some("application/problem+json".to_owned());
    assert_eq!(
        post("application/json", b"{\"email\": ".to_vec()).await,
        (400, problem.clone())
    );
    assert_eq!(
        post("text/plain", b"email=a@example.org".to_vec()).await,
        (415, problem.clone())
    );
    let big = format!(
        "{{\"email\":\"a@example.org\",\"name\":\"{}\"}}",
        "x".repeat(4096)
    );
    assert_eq!(
        post("application/json", big.into_bytes()).await,
        (413, problem.clone())
    );
    let res = app.get("/api/v1/subscribe").await;
    assert_eq!(res.status(), 405);
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count("subscribers"), 0);
}

#[tokio::test]
async fn an_html_form_post_works_with_repeated_interests_and_redirects() {
    let app = TestApp::builder()
        .settings(|s| s.redirect_allowlist = vec!["https://example.org/gracias".into()])
        .spawn()
        .await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    let res = app
        .post_form("/api/v1/subscribe", "email=f%40example.org&name=Flor&language=es&interests=news&interests=events&source=footer")
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("lang=\"es\""));
    assert_eq!(app.count("subscriber_interests"), 2);

    let res = app
        .post_form(
            "/api/v1/subscribe",
            "email=g%40example.org&redirect_to=https%3A%2F%2Fexample.org%2Fgracias%3Fok%3D1",
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "https://example.org/gracias?ok=1"
    );
    let res = app
        .post_form(
            "/api/v1/subscribe",
            "email=h%40example.org&redirect_to=https%3A%2F%2Fevil.example%2F",
        )
        .await;
    assert_eq!(
        res.status(),
        200,
        "an unlisted redirect is ignored, not followed"
    );

    let res = app
        .client
        .post(app.url("/api/v1/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept-language", "es-MX,es;q=0.9")
        .body("email=broken&interests=zzz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("lang=\"es\"") && page.contains("Correo electrónico"),
        "a helpful page in Spanish: {page}"
    );
    assert_eq!(app.count("subscribers"), 3);
}

#[tokio::test]
async fn the_honeypot_answers_success_and_does_nothing() {
    let app = spawn_app().await;
    let res = app
        .subscribe(json!({"email": "bot@example.org", "website": "http://spam.example"}))
        .await;
    assert_eq!(res.status(), 202);
    let res = app
        .post_form("/api/v1/subscribe", "email=bot2%40example.org&website=spam")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("subscribers"), 0);
    assert_eq!(app.run_jobs().await, 0);
}

#[tokio::test]
async fn public_posts_are_rate_limited_per_client() {
    let app = TestApp::builder()
        .settings(|s| s.public_rate_limit = 2)
        .spawn()
        .await;
    for i in 0..2 {
        let res = app
            .subscribe(json!({"email": format!("r{i}@example.org")}))
            .await;
        assert_eq!(res.status(), 202);
    }
    let res = app.subscribe(json!({"email": "r3@example.org"})).await;
    assert_eq!(res.status(), 429);
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count("subscribers"), 2);
}

/// (name, language, interests, city, source) as stored.
async fn profile(
    app: &crate::helpers::TestApp,
    viewer: &str,
    email: &str,
) -> (Value, Value, Value, Value, Value) {
    let id = app.conn_subscriber_id(email);
    let s = app
        .get_json_as(viewer, &format!("/api/v1/subscribers/{id}"))
        .await;
    (
        s["name"].clone(),
        s["language"].clone(),
        s["interests"].clone(),
        s["attributes"]["city"].clone(),
        s["source"].clone(),
    )
}

#[tokio::test]
async fn a_signup_changes_someone_on_the_list_only_when_they_confirm_it() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    app.add_field("city", "text", &[], true);
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    let ana = app.add_subscriber(
        "ana@example.org",
        "unsubscribed",
        "en",
        Some("Ana"),
        json!({"city": "Tucson"}),
    );
    app.set_source(&ana, "footer");
    app.add_interests_to(&ana, &["news"], "2026-11-01");
    let before = profile(&app, &viewer, "ana@example.org").await;
    assert_eq!(
        before,
        (
            json!("Ana"),
            json!("en"),
            json!(["news"]),
            json!("Tucson"),
            json!("footer")
        )
    );
    // Someone types Ana's address into a form, with other details.
    let res = app
        .subscribe(
            json!({"email": "ana@example.org", "name": "Mallory", "language": "es",
            "interests": ["events"], "attributes": {"city": "Nowhere"}, "source": "elsewhere"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        profile(&app, &viewer, "ana@example.org").await,
        before,
        "nothing changes yet"
    );
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("unsubscribed")
    );
    // The link goes to Ana, and says what confirming would do.
    let mail = app.deliver_one("ana@example.org").await;
    assert_eq!(mail.content_language.as_deref(), Some("es"));
    assert!(mail.text.contains("events (es)"), "{}", mail.text);
    assert!(!mail.text.contains("news (es)"), "{}", mail.text);
    assert!(!mail.text.contains("Mallory") && mail.to_name.is_none());
    let link = app.link(&mail, "/confirm/");
    let page = app.get(&link).await.text().await.unwrap();
    assert!(
        page.contains("events (es)"),
        "the page lists what the form asked for"
    );
    assert_eq!(
        profile(&app, &viewer, "ana@example.org").await,
        before,
        "a GET changes nothing"
    );
    // Ana confirms: now the request takes effect, with its evidence.
    let res = app.client.post(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        profile(&app, &viewer, "ana@example.org").await,
        (
            json!("Mallory"),
            json!("es"),
            json!(["events"]),
            json!("Nowhere"),
            json!("elsewhere")
        )
    );
    assert_eq!(
        app.count(&format!(
            "consent_events WHERE subscriber_id = '{ana}' AND action = 'confirm' AND interests = '[\"events\"]' AND source = 'elsewhere'"
        )),
        1
    );
}

#[tokio::test]
async fn a_second_signup_for_a_pending_person_waits_for_its_own_link() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    let viewer = app.staff_token(enlace::auth::Role::Viewer).await;
    app.subscribe(json!({"email": "ben@example.org", "name": "Ben", "interests": ["news"]}))
        .await;
    let first = app.deliver_one("ben@example.org").await;
    app.age_jobs(11);
    app.subscribe(json!({"email": "ben@example.org", "name": "Someone Else", "language": "es", "interests": ["events"]}))
        .await;
    let second = app.deliver_one("ben@example.org").await;
    assert_eq!(second.content_language.as_deref(), Some("es"));
    let before = profile(&app, &viewer, "ben@example.org").await;
    assert_eq!(
        (before.0.clone(), before.2.clone()),
        (json!("Ben"), json!(["news"]))
    );
    // Confirming through the first link confirms what Ben asked for, not the later request.
    let res = app
        .client
        .post(app.url(&app.link(&first, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("ben@example.org").as_deref(),
        Some("confirmed")
    );
    assert_eq!(profile(&app, &viewer, "ben@example.org").await, before);
    // The later link now only says "already confirmed", and changes nothing.
    app.client
        .post(app.url(&app.link(&second, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(profile(&app, &viewer, "ben@example.org").await, before);
}

#[tokio::test]
async fn every_signup_answer_waits_for_the_floor_whatever_the_address_knows() {
    let floor = std::time::Duration::from_millis(250);
    let app = TestApp::builder()
        .settings(|s| s.signup_answer_ms = 250)
        .spawn()
        .await;
    app.add_subscriber("confirmed@example.org", "confirmed", "en", None, json!({}));
    app.add_subscriber("gone@example.org", "complained", "en", None, json!({}));
    let hash = enlace::tokens::email_hash("gone@example.org");
    app.sql(&format!(
        "INSERT INTO suppressions (email_hash, reason, created_at) VALUES ('{hash}', 'complaint', '2026-11-01 00:00:00')"
    ));
    // New, pending (resent), pending again (throttled), confirmed, suppressed.
    for email in [
        "new@example.org",
        "new@example.org",
        "new@example.org",
        "confirmed@example.org",
        "gone@example.org",
    ] {
        let started = std::time::Instant::now();
        let res = app.subscribe(json!({ "email": email })).await;
        assert_eq!(res.status(), 202);
        assert!(
            started.elapsed() >= floor,
            "{email}: {:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        let res = app
            .post_form("/api/v1/subscribe", &format!("email={email}"))
            .await;
        assert!(res.status().is_success() || res.status().is_redirection());
        assert!(
            started.elapsed() >= floor,
            "form, {email}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_whatever_address_they_take() {
    // Behind a trusted proxy, so each request can come from another address.
    let app = TestApp::builder()
        .settings(|s| {
            s.public_rate_limit = 5;
            s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        })
        .spawn()
        .await;
    let from = |client: String, i: usize| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/v1/subscribe"))
                .header("x-forwarded-for", client)
                .json(&json!({"email": format!("v6-{i}@example.org")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut accepted = 0;
    for i in 0..60 {
        // Sixty addresses of one /64, as a host can take.
        if from(format!("2001:db8:aa:bb:{i:x}:{:x}::1", i * 7), i).await == 202 {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 5, "one /64 shares one limit");
    // Another /64, and an IPv4 client written as IPv4-mapped IPv6, have limits of their own.
    assert_eq!(from("2001:db8:aa:cc::1".into(), 100).await, 202);
    assert_eq!(from("::ffff:192.0.2.7".into(), 101).await, 202);
    for i in 102..106 {
        from("192.0.2.7".into(), i).await;
    }
    assert_eq!(
        from("::ffff:192.0.2.7".into(), 106).await,
        429,
        "one IPv4 client, two spellings"
    );
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let app = TestApp::builder()
        .settings(|s| s.cors_origins = vec!["https://organize.example".into()])
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/api/v1/subscribe"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://organize.example").await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://organize.example"
    );
    let other = preflight("https://elsewhere.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
