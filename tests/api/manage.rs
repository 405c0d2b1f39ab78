//! Unsubscribe (RFC 8058 one-click included) and the preferences page.

use serde_json::json;

use crate::helpers::{spawn_app, Mail, TestApp};

async fn confirmed(app: &TestApp, email: &str, language: &str) -> Mail {
    app.subscribe(json!({"email": email, "language": language, "interests": ["news"]}))
        .await;
    let mail = app.deliver_one(email).await;
    let page = app
        .client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("news ({language})")),
        "the confirmed page names the interests: {page}"
    );
    app.deliver_one(email).await
}

fn header_url(app: &TestApp, mail: &Mail) -> String {
    let header = mail.list_unsubscribe.clone().unwrap();
    header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches(&app.address)
        .to_owned()
}

#[tokio::test]
async fn one_click_unsubscribe_works_urlencoded_and_is_idempotent() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let welcome = confirmed(&app, "o@example.org", "en").await;
    let path = header_url(&app, &welcome);
    // GET (what link scanners do) shows a button and changes nothing.
    let page = app.get(&path).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("method=\"post\""));
    assert_eq!(app.status_of("o@example.org").as_deref(), Some("confirmed"));

    let res = app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none(), "no redirect");
    assert_eq!(
        app.status_of("o@example.org").as_deref(),
        Some("unsubscribed")
    );
    let res = app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.count("consent_events WHERE action = 'unsubscribe'"),
        1,
        "a repeat records nothing new"
    );
}

#[tokio::test]
async fn one_click_unsubscribe_accepts_multipart_and_needs_no_cookie_or_rate_budget() {
    let app = TestApp::builder()
        .settings(|s| s.public_rate_limit = 2)
        .spawn()
        .await;
    app.add_interest("news", true);
    let welcome = confirmed(&app, "m@example.org", "es").await;
    let boundary = "XyZ";
    let body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--{boundary}--\r\n");
    let res = app
        .client
        .post(app.url(&header_url(&app, &welcome)))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("lang=\"es\""),
        "the page is in the subscriber's language"
    );
    assert_eq!(
        app.status_of("m@example.org").as_deref(),
        Some("unsubscribed")
    );
}

#[tokio::test]
async fn a_tampered_unsubscribe_link_changes_nothing() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let welcome = confirmed(&app, "x@example.org", "en").await;
    let path = header_url(&app, &welcome);
    let forged = format!(
        "{}{}",
        &path[..path.len() - 2],
        if path.ends_with("AA") { "BB" } else { "AA" }
    );
    assert_eq!(
        app.post_form(&forged, "List-Unsubscribe=One-Click")
            .await
            .status(),
        404
    );
    assert_eq!(app.post_form("/unsubscribe/abc", "").await.status(), 404);
    assert_eq!(app.status_of("x@example.org").as_deref(), Some("confirmed"));
}

#[tokio::test]
async fn preferences_change_name_language_and_interests_or_unsubscribe() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("events", true);
    app.add_interest("internal", false);
    let welcome = confirmed(&app, "p@example.org", "en").await;
    let path = app.link(&welcome, "/preferences/");
    let page = app.get(&path).await.text().await.unwrap();
    assert!(
        page.contains("value=\"events\"") && !page.contains("value=\"internal\""),
        "public interests only"
    );

    let res = app
        .post_form(
            &path,
            "action=save&name=Pat+Jim%C3%A9nez&language=es&interests=events",
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("lang=\"es\"") && page.contains("Pat Jiménez"));
    assert_eq!(
        app.count("subscriber_interests WHERE interest_slug = 'events'"),
        1
    );
    assert_eq!(
        app.count("subscriber_interests WHERE interest_slug = 'news'"),
        0
    );
    assert_eq!(
        app.count("subscribers WHERE language = 'es' AND name = 'Pat Jiménez'"),
        1
    );
    assert_eq!(app.count("consent_events WHERE action = 'preferences'"), 1);

    let res = app.post_form(&path, "action=save&interests=internal").await;
    assert_eq!(res.status(), 422, "a private interest cannot be chosen");
    let res = app.post_form(&path, "action=save&language=fr").await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        app.count("subscribers WHERE language = 'es'"),
        1,
        "nothing changed"
    );

    let res = app.post_form(&path, "action=unsubscribe").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("p@example.org").as_deref(),
        Some("unsubscribed")
    );
}

#[tokio::test]
async fn unsubscribing_drops_mail_still_waiting_to_be_sent() {
    let app = spawn_app().await;
    app.subscribe(json!({"email": "w@example.org"})).await;
    let first = app.deliver_one("w@example.org").await;
    // A second confirmation is queued (and, say, held back by the relay)…
    app.age_jobs(11);
    app.subscribe(json!({"email": "w@example.org"})).await;
    // …then the person uses the first mail's one-click unsubscribe.
    let path = header_url(&app, &first);
    app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(
        app.run_jobs().await,
        0,
        "the waiting confirmation is not sent"
    );
    assert_eq!(app.mails_to("w@example.org").len(), 1);
    // The used-up first link does not subscribe them again.
    let res = app
        .client
        .post(app.url(&app.link(&first, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.status_of("w@example.org").as_deref(),
        Some("unsubscribed")
    );
}
