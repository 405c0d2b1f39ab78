//! The preheader, the preview line mail apps show after the subject: given per language through
//! the API, checked when saved, and sent hidden at the start of the HTML part, escaped, in the
//! version each reader gets.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::newsletters::{create, newsletter, post, sender_app};

const HIDDEN: &str = "<div style=\"display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;\">";

fn everyone() -> Value {
    json!({"not": {"email_domain": "nowhere.invalid"}})
}

/// Creates and sends a newsletter; returns the message each of `to` got.
async fn send(app: &TestApp, token: &str, body: Value, to: &[&str]) -> Vec<crate::helpers::Mail> {
    let n = create(app, token, body).await;
    let id = n["id"].as_str().unwrap();
    let (status, _) = post(app, token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    to.iter()
        .map(|address| {
            let mut got = app.mails_to(address);
            assert!(!got.is_empty(), "a message for {address}");
            got.pop().unwrap()
        })
        .collect()
}

/// The HTML of a message from just after its opening `<body…>` tag.
fn body_of(html: &str) -> &str {
    let at = html.find("<body").expect("a body tag");
    &html[at + html[at..].find('>').unwrap() + 1..]
}

#[tokio::test]
async fn each_reader_gets_the_preheader_of_their_version_hidden_first_in_the_html() {
    let (app, token) = sender_app().await;
    app.add_subscriber("ana@example.org", "confirmed", "en", Some("Ana"), json!({}));
    let beto = app.add_subscriber(
        "beto@example.org",
        "confirmed",
        "es",
        Some("Beto"),
        json!({}),
    );
    let html = "<html><head><title>x</title></head><body style=\"margin:0\"><h1>Hello {{ name }}</h1></body></html>";
    let body = json!({
        "subject": "May news",
        "preheader": "Tips & <tricks> \"inside\" {{ name }}",
        "html": html,
        "variants": {"es": {"subject": "Noticias de mayo", "html": "<p>Hola {{ name }}</p>",
                            "preheader": "Novedades de mayo"}},
        "filter": everyone(),
    });
    let n = create(&app, &token, body.clone()).await;
    assert_eq!(n["preheader"], "Tips & <tricks> \"inside\" {{ name }}");
    assert_eq!(n["variants"]["es"]["preheader"], "Novedades de mayo");
    let read = newsletter(&app, &token, n["id"].as_str().unwrap()).await;
    assert_eq!(read["preheader"], n["preheader"]);
    // The preview and a test send show it as the message will.
    let id = n["id"].as_str().unwrap();
    let preview: Value = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{id}/preview"),
            json!({"subscriber_id": beto}),
        )
        .await
        .json()
        .await
        .unwrap();
    let spanish = format!("{HIDDEN}Novedades de mayo</div><p>Hola Beto</p>");
    assert!(
        preview["html"].as_str().unwrap().starts_with(&spanish),
        "{preview}"
    );
    let res = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{id}/test"),
            json!({"to": ["editor@casa.example.org"], "language": "es"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.run_jobs().await;
    let test = &app.mails_to("editor@casa.example.org")[0];
    assert!(
        test.html
            .starts_with(&format!("{HIDDEN}Novedades de mayo</div>")),
        "{}",
        test.html
    );

    let mails = send(&app, &token, body, &["ana@example.org", "beto@example.org"]).await;
    let (en, es) = (&mails[0], &mails[1]);
    // Escaped, and not a template: the merge tag stays as written.
    assert!(
        body_of(&en.html).starts_with(&format!(
            "{HIDDEN}Tips &amp; &lt;tricks&gt; &quot;inside&quot; {{{{ name }}}}</div><h1>Hello Ana</h1>"
        )),
        "{}",
        en.html
    );
    assert!(en.html.starts_with("<html><head><title>x</title></head>"));
    assert!(
        !en.text.contains("Tips"),
        "the text part is unchanged: {}",
        en.text
    );
    // No body tag in the Spanish HTML: the block opens the part.
    assert!(
        es.html
            .starts_with(&format!("{HIDDEN}Novedades de mayo</div><p>Hola Beto</p>")),
        "{}",
        es.html
    );
    assert!(!es.text.contains("Novedades"), "{}", es.text);
}

#[tokio::test]
async fn spanish_readers_get_the_english_preheader_only_with_the_english_version() {
    let (app, token) = sender_app().await;
    app.add_subscriber(
        "beto@example.org",
        "confirmed",
        "es",
        Some("Beto"),
        json!({}),
    );
    // A Spanish version without a preheader has none, as its subject is its own.
    let own = send(
        &app,
        &token,
        json!({"subject": "One", "preheader": "Only in English", "html": "<p>One</p>",
               "variants": {"es": {"subject": "Uno", "html": "<p>Uno</p>"}},
               "filter": everyone()}),
        &["beto@example.org"],
    )
    .await;
    assert_eq!(own[0].subject, "Uno");
    assert!(own[0].html.starts_with("<p>Uno</p>"), "{}", own[0].html);
    assert!(!own[0].html.contains("display:none"), "{}", own[0].html);
    // Without a Spanish version, Spanish readers get the English one, preheader included.
    let english = send(
        &app,
        &token,
        json!({"subject": "Two", "preheader": "Only in English", "html": "<p>Two</p>",
               "filter": everyone()}),
        &["beto@example.org"],
    )
    .await;
    assert_eq!(english[0].subject, "Two");
    assert!(
        english[0]
            .html
            .starts_with(&format!("{HIDDEN}Only in English</div><p>Two</p>")),
        "{}",
        english[0].html
    );
}

#[tokio::test]
async fn a_preheader_longer_than_200_characters_or_on_two_lines_is_refused() {
    let (app, token) = sender_app().await;
    let long = "a".repeat(201);
    for (body, field) in [
        (
            json!({"subject": "S", "html": "<p>B</p>", "preheader": long}),
            "preheader",
        ),
        (
            json!({"subject": "S", "html": "<p>B</p>", "preheader": "one\ntwo"}),
            "preheader",
        ),
        (
            json!({"subject": "S", "html": "<p>B</p>", "preheader": "  "}),
            "preheader",
        ),
        (
            json!({"subject": "S", "html": "<p>B</p>",
                   "variants": {"es": {"subject": "S", "html": "<p>B</p>", "preheader": "uno\r\ndos"}}}),
            "variants.es.preheader",
        ),
        (
            json!({"subject": "S", "html": "<p>B</p>",
                   "variants": {"es": {"subject": "S", "html": "<p>B</p>", "preheader": "ñ".repeat(201)}}}),
            "variants.es.preheader",
        ),
    ] {
        let res = app
            .send_as(&token, "POST", "/api/v1/newsletters", body.clone())
            .await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let problem: Value = res.json().await.unwrap();
        let errors = problem["errors"].as_object().unwrap();
        assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{problem}");
    }
    assert_eq!(app.count("newsletters"), 0, "nothing saved");

    // 200 characters are accepted; a refused change leaves the draft as it was; null clears it.
    let n = create(
        &app,
        &token,
        json!({"subject": "S", "html": "<p>B</p>", "preheader": "é".repeat(200)}),
    )
    .await;
    let path = format!("/api/v1/newsletters/{}", n["id"].as_str().unwrap());
    let refused = app
        .send_as(&token, "PATCH", &path, json!({"preheader": "x\ty"}))
        .await;
    assert_eq!(refused.status(), 422);
    let read = app.get_json_as(&token, &path).await;
    assert_eq!(read["preheader"], "é".repeat(200));
    let cleared = app
        .send_as(&token, "PATCH", &path, json!({"preheader": null}))
        .await;
    assert_eq!(cleared.status(), 200);
    let read: Value = cleared.json().await.unwrap();
    assert_eq!(read["preheader"], Value::Null);
    let wrong = app
        .send_as(&token, "PATCH", &path, json!({"preheader": 5}))
        .await;
    assert!(wrong.status().is_client_error(), "{}", wrong.status());
}
