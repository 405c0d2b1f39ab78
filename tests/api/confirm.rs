//! Confirmation links: GET changes nothing, POST confirms once, expiry, renewal, tampering.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn pending(app: &TestApp, email: &str, language: &str) -> String {
    app.subscribe(json!({"email": email, "language": language}))
        .await;
    let mail = app.deliver_one(email).await;
    app.link(&mail, "/confirm/")
}

#[tokio::test]
async fn get_shows_a_button_and_changes_nothing_post_confirms_and_welcomes() {
    let app = spawn_app().await;
    let link = pending(&app, "ana@example.org", "es").await;
    for _ in 0..3 {
        let page = app.get(&link).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("method=\"post\"") && html.contains("lang=\"es\""),
            "{html}"
        );
    }
    assert_eq!(app.status_of("ana@example.org").as_deref(), Some("pending"));

    let res = app
        .client
        .post(app.url(&link))
        .header("user-agent", "Firefox/Test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("confirmed")
    );
    let welcome = app.deliver_one("ana@example.org").await;
    assert_eq!(welcome.content_language.as_deref(), Some("es"));
    assert!(welcome.list_unsubscribe.is_some() && welcome.text.contains("/preferences/"));
    assert_eq!(app.count("consent_events WHERE action = 'confirm' AND user_agent = 'Firefox/Test' AND ip IS NOT NULL"), 1);

    // Second use: "already confirmed", no side effects.
    let again = app.client.post(app.url(&link)).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(app.run_jobs().await, 0, "no second welcome");
    assert_eq!(app.count("consent_events WHERE action = 'confirm'"), 1);
}

#[tokio::test]
async fn the_json_endpoint_confirms_for_javascript_clients() {
    let app = spawn_app().await;
    let link = pending(&app, "js@example.org", "en").await;
    let token = link.trim_start_matches("/confirm/");
    let res = app
        .post_json("/api/v1/confirm", &json!({"token": token}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "confirmed"})
    );
    let res = app
        .post_json("/api/v1/confirm", &json!({"token": token}))
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "already_confirmed"})
    );
    let res = app
        .post_json("/api/v1/confirm", &json!({"token": "x".repeat(43)}))
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app
        .post_json("/api/v1/confirm", &json!({"tok": token}))
        .await;
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(app.url("/api/v1/confirm"))
        .body("token=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
}

#[tokio::test]
async fn expired_links_answer_410_and_offer_a_new_one() {
    let app = spawn_app().await;
    let link = pending(&app, "late@example.org", "es").await;
    app.expire_tokens();
    let page = app.get(&link).await;
    assert_eq!(page.status(), 410);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("{link}/renew")),
        "offers a new link: {html}"
    );
    let res = app.client.post(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), 410);
    let res = app
        .post_json(
            "/api/v1/confirm",
            &json!({"token": link.trim_start_matches("/confirm/")}),
        )
        .await;
    assert_eq!(res.status(), 410);
    assert_eq!(
        app.status_of("late@example.org").as_deref(),
        Some("pending")
    );

    // Renewal obeys the resend limit, then sends a fresh link that works.
    app.client
        .post(app.url(&format!("{link}/renew")))
        .send()
        .await
        .unwrap();
    assert_eq!(app.run_jobs().await, 0, "too soon after the first mail");
    app.age_jobs(11);
    let res = app
        .client
        .post(app.url(&format!("{link}/renew")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fresh = app.deliver_one("late@example.org").await;
    let res = app
        .client
        .post(app.url(&app.link(&fresh, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("late@example.org").as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn bad_and_tampered_tokens_are_404_pages_in_the_readers_language() {
    let app = spawn_app().await;
    let link = pending(&app, "t@example.org", "en").await;
    let mut tampered = link.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for path in [
        tampered.as_str(),
        "/confirm/short",
        "/confirm/%00%01",
        &format!("/confirm/{}", "a".repeat(500)),
    ] {
        let res = app
            .client
            .get(app.url(path))
            .header("accept-language", "es")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(res.text().await.unwrap().contains("lang=\"es\""));
        let res = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    assert_eq!(app.status_of("t@example.org").as_deref(), Some("pending"));
}
