//! The newsletter template language through the API: every construct outside the merge-field
//! language is refused when saved, by name and line; what it allows saves and sends in both
//! languages; a message that fails to render fails alone, and enough of them pause the send;
//! a batch a process died rendering is rendered again alone, and a second death on it pauses
//! the send before it becomes a crash loop; content stored before these rules is reported and
//! refused when sent, never changed.

use chrono::Duration;
use enlace::db::deliveries;
use enlace::db::newsletters::{self as store, Newsletter};
use enlace::sending::guard;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::newsletters::{add_people, create, newsletter, post, send_plain, sender_app};

fn everyone() -> Value {
    json!({"not": {"email_domain": "nowhere.invalid"}})
}

/// The attack: a few KiB on the sample data tried when saved (Ana's address is skipped),
/// gigabytes for everyone else.
const ATTACK: &str = "<p>Hi</p>\n{% if email != 'ana@example.org' %}\n{% set a = email * 6000000 %}{% set b = a ~ a ~ a ~ a %}{% set c = b ~ b ~ b ~ b %}{{ c ~ c }}\n{% endif %}";

#[tokio::test]
async fn every_construct_outside_the_merge_language_is_refused_by_name_and_line() {
    let (app, token) = sender_app().await;
    app.add_field("city", "text", &[], false);
    // (where the template goes, the template, what the refusal must say)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "html",
            ATTACK,
            &["`set` is not allowed (line 3)", "`*`", "`~`"],
        ),
        (
            "html",
            "{% for c in name %}{{ c }}{% endfor %}",
            &["`for` loops", "(line 1)"],
        ),
        (
            "html",
            "<p>\n{% set x = name %}{{ x }}",
            &["`set` is not allowed (line 2)"],
        ),
        (
            "html",
            "{% set x %}{{ name }}{% endset %}{{ x }}",
            &["`set`"],
        ),
        (
            "html",
            "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(name) }}",
            &["macros"],
        ),
        ("html", "{% call m() %}x{% endcall %}", &["`call` blocks"]),
        ("html", "{% include 'default/body.html' %}", &["`include`"]),
        (
            "html",
            "{% import 'default/body.html' as b %}",
            &["`import`"],
        ),
        (
            "html",
            "{% from 'default/body.html' import b %}",
            &["`import`"],
        ),
        ("html", "{% extends 'default/body.html' %}", &["`extends`"]),
        ("html", "{% block b %}x{% endblock %}", &["`block`"]),
        (
            "html",
            "{% filter upper %}{{ name }}{% endfilter %}",
            &["`filter` blocks"],
        ),
        (
            "html",
            "{% with x = name %}{{ x }}{% endwith %}",
            &["`with` blocks"],
        ),
        (
            "html",
            "{% autoescape false %}{{ name }}{% endautoescape %}",
            &["`autoescape`"],
        ),
        ("html", "{{ name * 3 }}", &["`*` is not allowed"]),
        ("html", "{{ 'x' * 6000000 }}", &["`*` is not allowed"]),
        ("html", "{{ name ~ email }}", &["`~`"]),
        ("html", "{{ name + email }}", &["`+` is not allowed"]),
        ("html", "{{ 2 ** 64 }}", &["`**`"]),
        ("html", "{{ range(100000)|length }}", &["`range(…)`"]),
        ("html", "{{ lipsum(100) }}", &["`lipsum(…)`"]),
        ("html", "{{ cycler('a', 'b') }}", &["`cycler(…)`"]),
        ("html", "{{ name.upper() }}", &["`.upper(…)`"]),
        ("html", "{{ attributes.items() }}", &["`.items(…)`"]),
        (
            "html",
            "{{ name|replace('a', name) }}",
            &["`replace` filter"],
        ),
        ("html", "{{ name|join(name) }}", &["`join` filter"]),
        ("html", "{{ name|indent(100000) }}", &["`indent` filter"]),
        ("html", "{{ name|batch(100000, 'x') }}", &["`batch` filter"]),
        ("html", "{{ '%s'|format(name) }}", &["`format` filter"]),
        (
            "html",
            "{{ name|trim('ab') }}",
            &["`trim` filter takes no arguments"],
        ),
        ("html", "{{ [name, email] }}", &["only literals"]),
        ("html", "{{ {'a': name} }}", &["maps"]),
        (
            "html",
            "{% if name is callable %}x{% endif %}",
            &["`callable` test"],
        ),
        (
            "html",
            "{{ attributes.city|e|upper|e|upper|e|upper|e }}",
            &["could make a value", "KiB"],
        ),
        ("subject", "Hi {{ name ~ name }}", &["`~`"]),
        ("text", "{% for c in email %}{% endfor %}", &["`for` loops"]),
        (
            "variants.es.subject",
            "Hola {% set n = name %}{{ n }}",
            &["`set`"],
        ),
        (
            "variants.es.html",
            ATTACK,
            &["`set` is not allowed (line 3)"],
        ),
    ];
    for (field, template, expected) in cases {
        let mut body = json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()});
        match field.split_once('.') {
            Some(("variants", part)) => {
                let (_, part) = part.split_once('.').unwrap();
                let mut es = json!({"subject": "Hola", "html": "<p>Hola</p>"});
                es[part] = json!(template);
                body["variants"] = json!({ "es": es });
            }
            _ => body[field] = json!(template),
        }
        let res = app
            .send_as(&token, "POST", "/api/v1/newsletters", body)
            .await;
        let status = res.status();
        let problem: Value = res.json().await.unwrap();
        assert_eq!(status, 422, "{template}: {problem}");
        let said = problem["errors"][field].to_string();
        for words in *expected {
            assert!(said.contains(words), "{template} → {field}: {problem}");
        }
    }
    assert_eq!(app.count("newsletters"), 0, "nothing saved");
    // A draft cannot be changed into one either.
    let draft = create(
        &app,
        &token,
        json!({"subject": "S", "html": "<p>B</p>", "filter": everyone()}),
    )
    .await;
    let id = draft["id"].as_str().unwrap();
    let res = app
        .send_as(
            &token,
            "PATCH",
            &format!("/api/v1/newsletters/{id}"),
            json!({"html": ATTACK}),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(newsletter(&app, &token, id).await["html"], "<p>B</p>");
    assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
}

#[tokio::test]
async fn merge_fields_conditions_and_filters_save_and_send_in_english_and_spanish() {
    let (app, token) = sender_app().await;
    app.add_field("city", "text", &[], false);
    app.add_subscriber(
        "ana@example.org",
        "confirmed",
        "en",
        Some("ana lópez"),
        json!({"city": "Phoenix"}),
    );
    app.add_subscriber("bo@example.org", "confirmed", "en", None, json!({}));
    app.add_subscriber(
        "carla@example.org",
        "confirmed",
        "es",
        Some("Carla <3"),
        json!({"city": "Tucson"}),
    );
    app.add_subscriber("dani@example.org", "confirmed", "es", None, json!({}));
    let n = create(
        &app,
        &token,
        json!({
            "subject": "{% if attributes.city %}News for {{ attributes.city }}{% else %}News{% endif %}",
            "html": "<p>Hi {{ name|default('friend', true)|title }},</p>\
                     {% if attributes.city == 'Phoenix' and language == 'en' %}<p>See you downtown.</p>\
                     {% elif attributes.city is defined %}<p>See you in {{ attributes.city|upper }}.</p>\
                     {% else %}<p>Tell us your city.</p>{% endif %}<p>Sent to {{ email|e }}.</p>",
            "variants": {"es": {
                "subject": "Noticias{% if attributes.city %} para {{ attributes.city|upper }}{% endif %}",
                "html": "<p>Hola {{ name or 'amiga, amigo' }}:</p>\
                         {% if not name %}<p>¿Nos dices tu nombre?</p>{% endif %}\
                         {% if language in ['es'] and attributes.city|default('')|length > 3 %}<p>Nos vemos en {{ attributes.city }}.</p>{% endif %}",
            }},
            "filter": everyone(),
        }),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;

    let ana = &app.mails_to("ana@example.org")[0];
    assert_eq!(ana.subject, "News for Phoenix");
    assert!(
        ana.html.contains("Hi Ana López,") && ana.html.contains("See you downtown."),
        "{}",
        ana.html
    );
    assert!(
        ana.html.contains("Sent to ana@example.org."),
        "{}",
        ana.html
    );
    let bo = &app.mails_to("bo@example.org")[0];
    assert_eq!(bo.subject, "News");
    assert!(
        bo.html.contains("Hi Friend,") && bo.html.contains("Tell us your city."),
        "{}",
        bo.html
    );
    let carla = &app.mails_to("carla@example.org")[0];
    assert_eq!(carla.subject, "Noticias para TUCSON");
    assert!(
        carla.html.contains("Hola Carla &lt;3:") && carla.html.contains("Nos vemos en Tucson."),
        "{}",
        carla.html
    );
    assert!(!carla.html.contains("¿Nos dices"), "{}", carla.html);
    let dani = &app.mails_to("dani@example.org")[0];
    assert_eq!(dani.subject, "Noticias");
    assert!(
        dani.html.contains("Hola amiga, amigo:") && dani.html.contains("¿Nos dices tu nombre?"),
        "{}",
        dani.html
    );
    assert_eq!(newsletter(&app, &token, id).await["status"], "sent");
    assert_eq!(
        app.count("render_marks"),
        0,
        "every rendered batch unmarked"
    );
}

/// A template that prints a long attribute many times: empty on the sample data tried when
/// saved, over the 2 MiB a message may render to for someone with a 500-character value.
fn too_large_for_some() -> Value {
    json!({
        "subject": "S",
        "html": format!("<p>Hi {{{{ name }}}}</p>{}", "{{ attributes.bio }}".repeat(4400)),
        "text": "Hi {{ name }}",
        "filter": everyone(),
    })
}

#[tokio::test]
async fn messages_that_fail_to_render_fail_alone_and_enough_of_them_pause_the_send() {
    let (app, token) = sender_app().await;
    app.add_field("bio", "text", &[], false);
    for i in 0..3 {
        app.add_subscriber(
            &format!("short{i}@example.org"),
            "confirmed",
            "en",
            None,
            json!({"bio": "short"}),
        );
    }
    for i in 0..6 {
        app.add_subscriber(
            &format!("long{i}@example.org"),
            "confirmed",
            "en",
            None,
            json!({"bio": "b".repeat(500)}),
        );
    }
    let id = create(&app, &token, too_large_for_some()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;

    // Six failures, past the five allowed: paused, with the reason, before anyone got it.
    let n = newsletter(&app, &token, &id).await;
    assert_eq!(n["status"], "paused", "{n}");
    let reason = n["pause_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("6 messages could not be rendered") && reason.contains("larger than 2 MiB"),
        "{reason}"
    );
    assert!(app.mails().is_empty());
    let p = &n["progress"];
    assert_eq!(
        (
            p["failed"].as_i64(),
            p["sent"].as_i64(),
            p["pending"].as_i64()
        ),
        (Some(6), Some(0), Some(3)),
        "{p}"
    );
    // Each failed message is recorded with the reason, never with the address.
    assert_eq!(
        app.count(
            "deliveries WHERE state = 'failed' AND outcome LIKE 'rendering: %larger than 2 MiB%' \
             AND outcome NOT LIKE '%@%'"
        ),
        6
    );
    assert_eq!(app.count("render_marks"), 0);

    // Resumed: the reason goes, and the others get it.
    let (status, resumed) = post(&app, &token, &format!("/api/v1/newsletters/{id}/resume")).await;
    assert_eq!((status, &resumed["pause_reason"]), (200, &Value::Null));
    app.run_sends().await;
    assert_eq!(app.mails().len(), 3);
    assert_eq!(newsletter(&app, &token, &id).await["status"], "sent");
}

#[tokio::test]
async fn a_few_messages_that_fail_to_render_do_not_stop_the_send() {
    let (app, token) = sender_app().await;
    app.add_field("bio", "text", &[], false);
    add_people(&app, 4);
    for i in 0..2 {
        app.add_subscriber(
            &format!("long{i}@example.org"),
            "confirmed",
            "en",
            None,
            json!({"bio": "b".repeat(500)}),
        );
    }
    let id = create(&app, &token, too_large_for_some()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    app.run_sends().await;
    let n = newsletter(&app, &token, &id).await;
    assert_eq!(
        (n["status"].as_str(), &n["pause_reason"]),
        (Some("sent"), &Value::Null),
        "{n}"
    );
    assert_eq!(
        (
            n["progress"]["sent"].as_i64(),
            n["progress"]["failed"].as_i64()
        ),
        (Some(4), Some(2))
    );
    assert!(app.mails_to("long0@example.org").is_empty());
}

/// Seconds after which a mark left from before a start counts as a dead process's.
fn past_the_grace() -> Duration {
    Duration::seconds(guard::MARK_GRACE_SECONDS + 1)
}

/// A process claimed `count` deliveries of the newsletter as `claim` and died rendering them:
/// its claim's lease and its mark are left as they were.
fn died_rendering(app: &TestApp, id: &str, claim: &str, count: i64) {
    let now = enlace::db::now();
    let until = now + Duration::minutes(5);
    let mut conn = app.conn();
    let held =
        deliveries::claim_deliveries(&mut conn, id, claim, now, until, count, false).unwrap();
    assert_eq!(held.len() as i64, count);
    store::mark_rendering(&mut conn, id, claim, store::MARK_BATCH, now, until).unwrap();
}

#[tokio::test]
async fn a_batch_a_process_died_rendering_is_rendered_again_alone_and_the_send_goes_on() {
    let (app, token) = sender_app().await;
    add_people(&app, 3);
    let id = send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    died_rendering(&app, &id, "dead-1", 2);

    // Started again, it claims nothing of that newsletter while the mark may be a live peer's…
    let restarted = TestApp::builder().sharing(&app).spawn().await;
    let token = restarted.sign_in("editor@staff.example.org").await;
    assert_eq!(restarted.run_sends().await, 0);
    // …nor after: the batch is a suspect, rendered again alone once its lease has run out, and
    // nothing else of the newsletter goes before it.
    assert_eq!(restarted.run_sends_after(past_the_grace()).await, 0);
    assert!(restarted.mails().is_empty());
    assert_eq!(restarted.count("render_marks WHERE kind = 'suspect'"), 1);
    assert_eq!(
        newsletter(&restarted, &token, &id).await["status"],
        "sending"
    );
    // It renders fine (that process was killed for some other reason): the send goes on.
    restarted.run_sends_after(Duration::minutes(6)).await;
    assert_eq!(restarted.mails().len(), 3);
    let n = newsletter(&restarted, &token, &id).await;
    assert_eq!(
        (n["status"].as_str(), &n["pause_reason"]),
        (Some("sent"), &Value::Null)
    );
    assert_eq!(restarted.count("render_marks"), 0);
}

#[tokio::test]
async fn a_process_dying_again_on_the_same_batch_pauses_the_send_instead_of_a_crash_loop() {
    let (app, token) = sender_app().await;
    add_people(&app, 3);
    let id = send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    died_rendering(&app, &id, "dead-1", 1);
    let restarted = TestApp::builder().sharing(&app).spawn().await;
    let token = restarted.sign_in("editor@staff.example.org").await;
    assert_eq!(restarted.run_sends_after(past_the_grace()).await, 0);

    // The next process renders the suspect batch alone once its lease is over, and dies too.
    let later = enlace::db::now() + Duration::minutes(6);
    {
        let mut conn = restarted.conn();
        let held = deliveries::claim_held_deliveries(
            &mut conn,
            &id,
            "dead-1",
            "dead-2",
            later,
            later + Duration::minutes(5),
        )
        .unwrap();
        assert!(matches!(held, deliveries::Held::Claimed(ref b) if b.len() == 1));
        store::clear_render_marks(&mut conn, &["dead-1".to_owned()]).unwrap();
        store::mark_rendering(
            &mut conn,
            &id,
            "dead-2",
            store::MARK_PROBE,
            later,
            later + Duration::minutes(5),
        )
        .unwrap();
    }
    // The same message killed two processes: paused, with the reason, before a third renders it.
    assert_eq!(restarted.run_sends_after(Duration::minutes(12)).await, 0);
    assert!(restarted.mails().is_empty());
    let n = newsletter(&restarted, &token, &id).await;
    assert_eq!(n["status"], "paused", "{n}");
    assert!(
        n["pause_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped twice while rendering the same messages"),
        "{n}"
    );
    assert_eq!(restarted.count("render_marks"), 0);

    // Staff checked it and resume: everyone gets it once.
    let (status, resumed) = post(
        &restarted,
        &token,
        &format!("/api/v1/newsletters/{id}/resume"),
    )
    .await;
    assert_eq!((status, &resumed["pause_reason"]), (200, &Value::Null));
    restarted.run_sends_after(Duration::minutes(13)).await;
    assert_eq!(restarted.mails().len(), 3);
    assert_eq!(newsletter(&restarted, &token, &id).await["status"], "sent");
}

/// A newsletter stored as is, as one saved before the template rules would be.
fn stored(id: &str, status: &str, html: &str) -> Newsletter {
    let now = enlace::db::now();
    Newsletter {
        id: id.parse().expect("a newsletter id"),
        subject: "Old".into(),
        html: html.into(),
        text: None,
        variants: "{}".into(),
        from_address: None,
        reply_to: None,
        segment_id: None,
        filter: Some(everyone().to_string()),
        status: enlace::db::states::NewsletterState::parse(status).expect("a newsletter state"),
        send_at: (status == "scheduled").then_some(now),
        send_key: None,
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
        pause_reason: None,
        preheader: None,
        count_clicks: false,
        archived: false,
    }
}

#[tokio::test]
async fn content_stored_before_the_rules_is_reported_and_refused_never_changed() {
    let (app, token) = sender_app().await;
    add_people(&app, 2);
    let looped = "<p>{% for c in name %}{{ c }}{% endfor %}</p>";
    let draft = uuid::Uuid::now_v7().to_string();
    let scheduled = uuid::Uuid::now_v7().to_string();
    let fine = uuid::Uuid::now_v7().to_string();
    for n in [
        stored(&draft, "draft", looped),
        stored(&scheduled, "scheduled", ATTACK),
        stored(&fine, "draft", "<p>Hi {{ name }}</p>"),
    ] {
        store::insert_newsletter(&mut app.conn(), &n).unwrap();
    }
    // What a start reports (as a warning naming them).
    let reported =
        enlace::sending::guard::report_refused(&mut app.conn(), &[], "Org", None).unwrap();
    assert_eq!(reported, [draft.clone(), scheduled.clone()]);

    // Sending (or scheduling) the draft answers 422 with the reason; it stays as it was.
    let tomorrow = (chrono::Utc::now() + Duration::days(1)).to_rfc3339();
    for body in [json!({}), json!({ "send_at": tomorrow })] {
        let res = app
            .send_as(
                &token,
                "POST",
                &format!("/api/v1/newsletters/{draft}/send"),
                body,
            )
            .await;
        assert_eq!(res.status(), 422);
        let problem: Value = res.json().await.unwrap();
        assert!(
            problem["errors"]["html"]
                .to_string()
                .contains("`for` loops"),
            "{problem}"
        );
    }
    let kept = newsletter(&app, &token, &draft).await;
    assert_eq!(
        (kept["status"].as_str(), kept["html"].as_str()),
        (Some("draft"), Some(looped))
    );
    let res = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{draft}/preview"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 422);

    // The one already scheduled is paused when its turn comes, with the reason; nobody gets it.
    app.run_sends().await;
    assert!(app.mails().is_empty());
    let n = newsletter(&app, &token, &scheduled).await;
    assert_eq!(n["status"], "paused", "{n}");
    let reason = n["pause_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("`set` is not allowed (line 3)"), "{reason}");
    assert_eq!(n["html"], ATTACK, "content kept as stored");
}
