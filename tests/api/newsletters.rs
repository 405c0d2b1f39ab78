//! Newsletters through the API with the engine driven step by step: drafts are checked when
//! saved, a send reaches exactly the confirmed, unsuppressed people once, in their language,
//! with the list headers and footer; pause, resume, cancel, schedules and idempotent sends.

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::TestApp;

pub const POSTAL: &str = "Casa del Pueblo\n123 Calle Principal\nPhoenix, AZ 85001";

pub async fn sender_app() -> (TestApp, String) {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    (app, token)
}

pub async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app
        .send_as(token, "POST", "/api/v1/newsletters", body)
        .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn post(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app.send_as(token, "POST", path, json!({})).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn newsletter(app: &TestApp, token: &str, id: &str) -> Value {
    let res = app
        .send_as(
            token,
            "GET",
            &format!("/api/v1/newsletters/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Adds `count` confirmed English-speaking subscribers `p0@example.org`, `p1@…`.
pub fn add_people(app: &TestApp, count: usize) {
    for i in 0..count {
        app.add_subscriber(
            &format!("p{i}@example.org"),
            "confirmed",
            "en",
            None,
            json!({}),
        );
    }
}

/// Creates a plain newsletter to every confirmed subscriber and sends it; returns its id.
pub async fn send_plain(app: &TestApp, token: &str) -> String {
    let n = create(
        app,
        token,
        json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    let id = n["id"].as_str().unwrap().to_owned();
    let (status, _) = post(app, token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    id
}

fn everyone() -> Value {
    json!({"not": {"email_domain": "nowhere.invalid"}})
}

#[tokio::test]
async fn drafts_with_broken_templates_or_targets_are_refused_when_saved() {
    let (app, token) = sender_app().await;
    app.add_field("city", "text", &[], false);
    let res = app
        .send_as(
            &token,
            "POST",
            "/api/v1/newsletters",
            json!({
                "subject": "Hi {{ name",
                "html": "<p>{{ nmae }} {{ attributes.zip }}</p>",
                "variants": {"es": {"subject": "Hola", "html": "{% if %}"}},
                "filter": {"interest": "nope"},
            }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    let errors = problem["errors"].as_object().unwrap();
    for field in ["subject", "html", "variants.es.html", "filter.interest"] {
        assert!(errors.contains_key(field), "{field} in {problem}");
    }
    assert!(problem["errors"]["html"].to_string().contains("nmae"));
    assert_eq!(app.count("newsletters"), 0, "nothing saved");

    let both = app
        .send_as(
            &token,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "x", "html": "<p>x</p>", "filter": everyone(),
                   "segment_id": "0190a0a0-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(both.status(), 422);

    let draft = create(
        &app,
        &token,
        json!({"subject": "Hi {{ name }}", "html": "<p>{{ attributes.city }}</p>", "filter": everyone(),
               "from": "Casa <news@casa.example.org>", "reply_to": "hola@casa.example.org"}),
    )
    .await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["from"], "Casa <news@casa.example.org>");
    let id = draft["id"].as_str().unwrap();
    let patched = app
        .send_as(
            &token,
            "PATCH",
            &format!("/api/v1/newsletters/{id}"),
            json!({"subject": "New subject", "text": "Plain {{ name }}"}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let n = newsletter(&app, &token, id).await;
    assert_eq!(
        (n["subject"].as_str(), n["text"].as_str()),
        (Some("New subject"), Some("Plain {{ name }}"))
    );
    let bad_patch = app
        .send_as(
            &token,
            "PATCH",
            &format!("/api/v1/newsletters/{id}"),
            json!({"html": "{{ }}"}),
        )
        .await;
    assert_eq!(bad_patch.status(), 422);
    assert_eq!(
        newsletter(&app, &token, id).await["html"],
        "<p>{{ attributes.city }}</p>"
    );

    // Viewers read; they do not write.
    let viewer = app.staff_token(Role::Viewer).await;
    assert_eq!(
        app.send_as(&viewer, "GET", "/api/v1/newsletters", json!(null))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.send_as(
            &viewer,
            "DELETE",
            &format!("/api/v1/newsletters/{id}"),
            json!(null)
        )
        .await
        .status(),
        403
    );
    let deleted = app
        .send_as(
            &token,
            "DELETE",
            &format!("/api/v1/newsletters/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(deleted.status(), 204);
}

#[tokio::test]
async fn a_send_reaches_each_confirmed_unsuppressed_person_once_in_their_language() {
    let (app, token) = sender_app().await;
    app.add_field("city", "text", &[], false);
    let ana = app.add_subscriber(
        "ana@example.org",
        "confirmed",
        "en",
        Some("Ana <b>"),
        json!({"city": "Phoenix"}),
    );
    let beto = app.add_subscriber(
        "beto@example.org",
        "confirmed",
        "es",
        Some("Beto"),
        json!({}),
    );
    app.add_subscriber("pending@example.org", "pending", "en", None, json!({}));
    app.add_subscriber("gone@example.org", "unsubscribed", "en", None, json!({}));
    app.add_subscriber("bounced@example.org", "bounced", "en", None, json!({}));
    app.add_subscriber("blocked@example.org", "confirmed", "en", None, json!({}));
    app.suppress("blocked@example.org", "manual", "2026-01-01");
    let n = create(
        &app,
        &token,
        json!({
            "subject": "News for {{ name }}",
            "html": "<html><body><h1>Hello {{ name }}</h1><p>City: {{ attributes.city }}</p></body></html>",
            "variants": {"es": {"subject": "Noticias para {{ name }}", "html": "<p>Hola {{ name }}</p>"}},
            "filter": everyone(),
            "from": "Casa del Pueblo <news@casa.example.org>",
            "reply_to": "hola@casa.example.org",
        }),
    )
    .await;
    let id = n["id"].as_str().unwrap().to_owned();
    let send = |key: &'static str| {
        let app = &app;
        let token = token.clone();
        let id = id.clone();
        async move {
            app.client
                .post(app.url(&format!("/api/v1/newsletters/{id}/send")))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send("send-1").await;
    assert_eq!(first.status(), 202);
    assert_eq!(first.json::<Value>().await.unwrap()["status"], "scheduled");
    app.run_sends().await;

    let mails = app.mails();
    let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    to.sort();
    assert_eq!(
        to,
        ["ana@example.org", "beto@example.org"],
        "confirmed and unsuppressed only"
    );
    let en = &app.mails_to("ana@example.org")[0];
    assert_eq!(en.subject, "News for Ana <b>");
    assert!(
        en.html.contains("Hello Ana &lt;b&gt;") && en.html.contains("City: Phoenix"),
        "{}",
        en.html
    );
    assert!(
        en.text.contains("Hello Ana <b>"),
        "text derived from the HTML: {}",
        en.text
    );
    let es = &app.mails_to("beto@example.org")[0];
    assert_eq!(es.subject, "Noticias para Beto");
    assert!(
        es.text.contains("Cancela tu suscripción"),
        "Spanish footer: {}",
        es.text
    );
    assert!(
        es.text.contains("123 Calle Principal"),
        "postal address in the footer"
    );
    for (mail, id) in [(en, &ana), (es, &beto)] {
        let unsubscribe = mail.list_unsubscribe.clone().expect("List-Unsubscribe");
        assert!(unsubscribe.starts_with(&format!("<{}/unsubscribe/", app.address)));
        assert_eq!(
            mail.list_unsubscribe_post.as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(
            mail.raw.contains(&format!(
                "Message-ID: <{}.{id}@casa.example.org>",
                n["id"].as_str().unwrap()
            )),
            "{}",
            mail.raw
        );
        assert!(mail.raw.contains("List-Id: <newsletter.127.0.0.1>"));
        assert!(mail.raw.contains("Reply-To: hola@casa.example.org"));
        assert!(mail.raw.contains("multipart/alternative"));
        assert!(
            mail.text.contains(&unsubscribe[1..unsubscribe.len() - 1]),
            "footer link = header link"
        );
    }

    let n = newsletter(&app, &token, &id).await;
    assert_eq!(n["status"], "sent");
    let p = &n["progress"];
    assert_eq!(
        (
            p["total"].as_i64(),
            p["sent"].as_i64(),
            p["skipped"].as_i64(),
            p["pending"].as_i64()
        ),
        (Some(3), Some(2), Some(1), Some(0)),
        "{p}"
    );

    // Nothing goes twice: the engine again, the same request again, another request.
    app.run_sends().await;
    assert_eq!(app.mails().len(), 2);
    let again = send("send-1").await;
    assert_eq!(again.status(), 202, "the same Idempotency-Key is a no-op");
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "sent");
    assert_eq!(send("send-2").await.status(), 409);
    app.run_sends().await;
    assert_eq!(app.mails().len(), 2);
    assert_eq!(app.count("deliveries WHERE state = 'sent'"), 2);

    // An access request shows what the person was sent.
    let admin = app.staff_token(Role::Admin).await;
    let data: Value = app
        .send_as(
            &admin,
            "GET",
            &format!("/api/v1/subscribers/{ana}/data"),
            json!(null),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(data["newsletters"][0]["newsletter_id"], json!(id));
    assert_eq!(data["newsletters"][0]["state"], "sent");
}

#[tokio::test]
async fn who_leaves_after_the_send_starts_is_skipped_and_recorded() {
    let (app, token) = sender_app().await;
    add_people(&app, 4);
    let id = &send_plain(&app, &token).await;
    // Recipients are fixed when the send starts...
    app.engine.schedule(enlace::db::now()).await.unwrap();
    assert_eq!(app.count("deliveries"), 4);
    // ...then one unsubscribes, one is erased, and someone new confirms.
    app.set_status(&app.conn_subscriber_id("p0@example.org"), "unsubscribed");
    let p1 = app.conn_subscriber_id("p1@example.org");
    let admin = app.staff_token(Role::Admin).await;
    assert_eq!(
        app.send_as(
            &admin,
            "DELETE",
            &format!("/api/v1/subscribers/{p1}"),
            json!(null)
        )
        .await
        .status(),
        204
    );
    app.add_subscriber("late@example.org", "confirmed", "en", None, json!({}));
    app.run_sends().await;
    let mut to: Vec<String> = app.mails().into_iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, ["p2@example.org", "p3@example.org"]);
    assert_eq!(
        app.count("deliveries WHERE state = 'skipped' AND outcome = 'unsubscribed'"),
        1
    );
    assert_eq!(
        app.count("deliveries WHERE state = 'skipped' AND outcome = 'subscriber erased'"),
        1
    );
    let p = &newsletter(&app, &token, id).await["progress"];
    assert_eq!(
        (p["sent"].as_i64(), p["skipped"].as_i64()),
        (Some(2), Some(2))
    );
}

#[tokio::test]
async fn sending_is_refused_while_the_postal_address_is_unset() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = None)
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    app.add_subscriber("ana@example.org", "confirmed", "en", None, json!({}));
    let n = create(
        &app,
        &token,
        json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    let (status, problem) = post(
        &app,
        &token,
        &format!("/api/v1/newsletters/{}/send", n["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("ENLACE_POSTAL_ADDRESS"),
        "{problem}"
    );
    app.run_sends().await;
    assert!(app.mails().is_empty());
}

#[tokio::test]
async fn pause_stops_the_send_and_resume_continues_without_repeats() {
    let (app, token) = sender_app().await;
    add_people(&app, 30);
    let id = &send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    let (status, paused) = post(&app, &token, &format!("/api/v1/newsletters/{id}/pause")).await;
    assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));
    app.run_sends().await;
    assert!(app.mails().is_empty(), "a paused send sends nothing");
    assert_eq!(
        post(&app, &token, &format!("/api/v1/newsletters/{id}/pause"))
            .await
            .0,
        409
    );
    let (status, resumed) = post(&app, &token, &format!("/api/v1/newsletters/{id}/resume")).await;
    assert_eq!((status, resumed["status"].as_str()), (200, Some("sending")));
    app.run_sends().await;
    assert_eq!(app.mails().len(), 30);
    let mut to: Vec<String> = app.mails().into_iter().map(|m| m.to).collect();
    to.dedup();
    assert_eq!(to.len(), 30, "each once");
    assert_eq!(newsletter(&app, &token, id).await["status"], "sent");
}

#[tokio::test]
async fn cancel_skips_what_was_not_sent() {
    let (app, token) = sender_app().await;
    add_people(&app, 5);
    let n = create(
        &app,
        &token,
        json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    let (status, cancelled) = post(&app, &token, &format!("/api/v1/newsletters/{id}/cancel")).await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(cancelled["progress"]["skipped"], 5);
    app.run_sends().await;
    assert!(app.mails().is_empty());
    assert_eq!(
        post(&app, &token, &format!("/api/v1/newsletters/{id}/resume"))
            .await
            .0,
        409
    );
    let delete = app
        .send_as(
            &token,
            "DELETE",
            &format!("/api/v1/newsletters/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(
        delete.status(),
        409,
        "a send that started is kept as a record"
    );
}

#[tokio::test]
async fn scheduled_sends_wait_for_their_time_and_overdue_ones_wait_for_staff() {
    let (app, token) = sender_app().await;
    app.add_subscriber("ana@example.org", "confirmed", "en", None, json!({}));
    let hour = chrono::Duration::hours(1);
    let at = (chrono::Utc::now() + hour).to_rfc3339();
    let n = create(
        &app,
        &token,
        json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    let res = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{id}/send"),
            json!({"send_at": at}),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.run_sends().await;
    assert!(app.mails().is_empty(), "not before its time");
    app.run_sends_after(hour + chrono::Duration::minutes(5))
        .await;
    assert_eq!(
        app.mails().len(),
        1,
        "sent when due (a few minutes late is fine)"
    );

    // A send found long past its time (the server was down, or a backup was restored) waits.
    let late = create(
        &app,
        &token,
        json!({"subject": "Late", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    let late_id = late["id"].as_str().unwrap();
    let at = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    app.send_as(
        &token,
        "POST",
        &format!("/api/v1/newsletters/{late_id}/send"),
        json!({"send_at": at}),
    )
    .await;
    app.run_sends_after(chrono::Duration::hours(3)).await;
    assert_eq!(app.mails().len(), 1, "nothing sent silently");
    assert_eq!(newsletter(&app, &token, late_id).await["status"], "overdue");
    // Staff decide: send it now.
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{late_id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    assert_eq!(app.mails().len(), 2);
    assert_eq!(app.mails()[1].subject, "Late");
}

#[tokio::test]
async fn preview_and_test_send_show_the_message_without_touching_subscribers() {
    let (app, token) = sender_app().await;
    app.add_field("city", "text", &[], false);
    let beto = app.add_subscriber(
        "beto@example.org",
        "confirmed",
        "es",
        Some("Beto"),
        json!({"city": "Tucson"}),
    );
    let n = create(
        &app,
        &token,
        json!({"subject": "Hi {{ name }}", "html": "<p>{{ attributes.city }}</p>",
               "variants": {"es": {"subject": "Hola {{ name }}", "html": "<p>Ciudad: {{ attributes.city }}</p>"}},
               "filter": everyone()}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    let res = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{id}/preview"),
            json!({"subscriber_id": beto}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let preview: Value = res.json().await.unwrap();
    assert_eq!(
        (preview["subject"].as_str(), preview["language"].as_str()),
        (Some("Hola Beto"), Some("es"))
    );
    assert!(preview["html"].as_str().unwrap().contains("Ciudad: Tucson"));

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
    let mails = app.mails_to("editor@casa.example.org");
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].subject.starts_with("[TEST] Hola"),
        "{}",
        mails[0].subject
    );
    assert!(app.mails_to("beto@example.org").is_empty());
    assert_eq!(newsletter(&app, &token, id).await["status"], "draft");
    let bad = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{id}/test"),
            json!({"to": ["not an address"]}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    // Test sends are for checking a draft, not for mailing people: 30 at once, then 2 a minute.
    let ten: Vec<String> = (0..10).map(|i| format!("t{i}@casa.example.org")).collect();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = app
            .send_as(
                &token,
                "POST",
                &format!("/api/v1/newsletters/{id}/test"),
                json!({"to": ten}),
            )
            .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(
        statuses,
        [202, 202, 429],
        "1 + 20 sent; ten more would pass 30"
    );
}

#[tokio::test]
async fn two_processes_on_one_database_send_each_message_once() {
    let (app, token) = sender_app().await;
    add_people(&app, 300);
    let other = TestApp::builder().sharing(&app).spawn().await;
    let n = create(
        &app,
        &token,
        json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    post(
        &app,
        &token,
        &format!("/api/v1/newsletters/{}/send", n["id"].as_str().unwrap()),
    )
    .await;
    let (a, b) = tokio::join!(app.run_sends(), other.run_sends());
    let mut to: Vec<String> = app
        .mails()
        .into_iter()
        .chain(other.mails())
        .map(|m| m.to)
        .collect();
    to.sort();
    let total = to.len();
    to.dedup();
    assert_eq!(
        (total, to.len()),
        (300, 300),
        "every recipient exactly once ({a} + {b} handled)"
    );
}

#[tokio::test]
async fn a_send_whose_templates_stop_compiling_is_paused_not_sent_broken() {
    let (app, token) = sender_app().await;
    app.add_field("city", "text", &[], false);
    app.add_subscriber("ana@example.org", "confirmed", "en", None, json!({}));
    let n = create(
        &app,
        &token,
        json!({"subject": "Hi {{ name or 'friend' }}", "html": "<p>{{ attributes.city }}</p>", "filter": everyone()}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    // The field it uses is removed while it waits to go out.
    let admin = app.staff_token(Role::Admin).await;
    let res = app
        .send_as(&admin, "DELETE", "/api/v1/fields/city", json!(null))
        .await;
    assert_eq!(res.status(), 204);
    app.run_sends().await;
    assert!(app.mails().is_empty());
    let paused = newsletter(&app, &token, id).await;
    assert_eq!(paused["status"], "paused");
    let reason = paused["pause_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("attributes.city"), "{paused}");
    // Declared again, the send resumes (the reason goes) and goes out once.
    app.add_field("city", "text", &[], false);
    let (status, resumed) = post(&app, &token, &format!("/api/v1/newsletters/{id}/resume")).await;
    assert_eq!(status, 200);
    assert_eq!(resumed["pause_reason"], Value::Null, "{resumed}");
    app.run_sends().await;
    let mails = app.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject, "Hi friend",
        "no name reads as empty, not \"none\""
    );
}

#[tokio::test]
async fn a_nul_character_in_a_body_is_refused_not_stored() {
    // PostgreSQL refuses NUL in text; nothing else would deliver it either.
    let app = TestApp::builder().spawn().await;
    let token = app.staff_token(Role::Editor).await;
    let n = create(&app, &token, json!({"subject": "S", "html": "<p>B</p>"})).await;
    let path = format!("/api/v1/newsletters/{}", n["id"].as_str().unwrap());
    for (body, field) in [
        (
            json!({"html": "<p>a\u{0}b</p>", "count_clicks": true, "archived": true}),
            "html",
        ),
        (json!({"text": "a\u{0}b"}), "text"),
        (
            json!({"variants": {"es": {"subject": "S", "html": "<p>\u{0}</p>"}}}),
            "variants.es.html",
        ),
    ] {
        let res = app.send_as(&token, "PATCH", &path, body).await;
        assert_eq!(res.status(), 422);
        let problem: Value = res.json().await.unwrap();
        assert!(problem["errors"][field].is_array(), "{problem}");
    }
    let res = app
        .send_as(
            &token,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "S", "html": "\u{0}"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.get_json_as(&token, &path).await["html"], "<p>B</p>");
}
