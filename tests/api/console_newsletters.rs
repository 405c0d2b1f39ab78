//! The console's newsletters: the list by state, the editor in both languages (refusals shown at
//! their field, a colleague's newer save never overwritten), duplicating, deleting a draft, and
//! pausing, resuming and cancelling a send — through the same rules as the API.

use enlace::auth::Role;

use crate::console_client::{field_value, signed_in};
use crate::helpers::{spawn_app, TestApp};
use crate::newsletters::{add_people, send_plain, sender_app};

fn unescape(body: &str) -> String {
    body.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The id of the newsletter a redirect (`/admin/newsletters/{id}?notice=…`) names.
fn id_in(location: &str) -> String {
    location
        .trim_start_matches("/admin/newsletters/")
        .split(['?', '/'])
        .next()
        .unwrap()
        .to_owned()
}

const DRAFT: &[(&str, &str)] = &[
    ("subject", "Rally on Saturday"),
    ("html", "<p>Hello {{ name }}, join us.</p>"),
    ("text", ""),
    ("variants.es.subject", "Marcha el sábado"),
    ("variants.es.html", "<p>Hola {{ name }}, acompáñanos.</p>"),
    ("variants.es.text", ""),
    ("from", ""),
    ("reply_to", ""),
    ("audience", "everyone"),
];

async fn new_draft(app: &TestApp) -> (crate::console_client::Browser<'_>, String) {
    let mut editor = signed_in(app, Role::Editor).await;
    let created = editor.post("/newsletters/new", "/newsletters", DRAFT).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert!(created.location().ends_with("?notice=draft_created"));
    let id = id_in(created.location());
    (editor, id)
}

#[tokio::test]
async fn editors_write_a_draft_in_both_languages_and_everyone_reads_it() {
    let app = spawn_app().await;
    let (mut editor, id) = new_draft(&app).await;

    let page = editor
        .get(&format!("/newsletters/{id}?notice=draft_created"))
        .await;
    assert_eq!(page.status, 200);
    let body = unescape(&page.body);
    assert!(body.contains("The draft was saved."));
    assert!(body.contains("Rally on Saturday") && body.contains("Marcha el sábado"));
    assert!(body.contains("Everyone subscribed and confirmed"), "{body}");
    // The API sees the same draft: the Spanish version and an audience it can send to.
    let token = app.staff_token(Role::Viewer).await;
    let api = app
        .get_json_as(&token, &format!("/api/v1/newsletters/{id}"))
        .await;
    assert_eq!(api["status"], "draft");
    assert_eq!(api["variants"]["es"]["subject"], "Marcha el sábado");
    assert!(api["filter"].is_object(), "{api}");
    assert_eq!(app.count("audit_log WHERE action = 'newsletter.create'"), 1);

    // The list, by state, in Spanish.
    let mut viewer = signed_in(&app, Role::Viewer).await;
    viewer.language = "es";
    let list = unescape(&viewer.get("/newsletters").await.body);
    assert!(
        list.contains("Rally on Saturday") && list.contains("Borrador"),
        "{list}"
    );
    assert!(list.contains("Inglés y español"));
    assert!(!list.contains("/newsletters/new"), "viewers can't write");
    let sent_only = unescape(&viewer.get("/newsletters?status=sent").await.body);
    assert!(!sent_only.contains("Rally on Saturday"));
    assert!(sent_only.contains("Todavía no hay boletines aquí."));
    assert_eq!(
        viewer.get(&format!("/newsletters/{id}/edit")).await.status,
        403
    );
    let page = viewer.get(&format!("/newsletters/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/edit\""), "no edit link for a viewer");
}

#[tokio::test]
async fn a_refused_draft_is_shown_at_its_fields_in_the_members_language_and_nothing_is_saved() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;
    editor.language = "es";
    let mut draft = DRAFT.to_vec();
    draft[0] = ("subject", "");
    draft[4] = ("variants.es.html", "<p>{{ nombre_que_no_existe }}</p>");
    draft[6] = ("from", "not an address");
    let refused = editor
        .post("/newsletters/new", "/newsletters", &draft)
        .await;
    assert_eq!(refused.status, 422);
    let body = unescape(&refused.body);
    assert!(body.contains("No se pudo guardar el borrador"), "{body}");
    assert!(body.contains("id=\"e-from\""), "{body}");
    assert!(body.contains("debe ser una dirección como Nombre <noticias@example.org>"));
    assert!(body.contains("aria-invalid=\"true\""));
    // What was typed stays on the page.
    assert!(body.contains("Marcha el sábado"));
    assert_eq!(app.count("newsletters"), 0);

    draft[0] = ("subject", "Rally");
    draft[6] = ("from", "");
    let refused = editor
        .post("/newsletters/new", "/newsletters", &draft)
        .await;
    assert_eq!(refused.status, 422);
    let body = unescape(&refused.body);
    assert!(body.contains("id=\"e-variants.es.html\""), "{body}");
    assert!(
        body.contains("nombre_que_no_existe"),
        "the unknown merge field is named"
    );
    assert_eq!(app.count("newsletters"), 0);
}

#[tokio::test]
async fn a_colleagues_newer_save_is_never_overwritten() {
    let app = spawn_app().await;
    let (mut ana, id) = new_draft(&app).await;
    app.add_staff("luis@console.example.org", Role::Editor);
    let mut luis = crate::console_client::Browser::new(&app);
    luis.sign_in("luis@console.example.org").await;

    // Both open the editor; Ana saves first.
    let ana_form = ana.get(&format!("/newsletters/{id}/edit")).await;
    let luis_form = luis.get(&format!("/newsletters/{id}/edit")).await;
    let version = field_value(&luis_form.body, "version").unwrap();
    assert_eq!(field_value(&ana_form.body, "version").unwrap(), version);
    let edit = format!("/newsletters/{id}/edit");
    let mut ana_draft = DRAFT.to_vec();
    ana_draft[0] = ("subject", "Rally moved to Sunday");
    ana_draft.push(("version", &version));
    let saved = ana.post(&edit, &edit, &ana_draft).await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    // Luis saves his older version: told, and nothing of Ana's is lost.
    let mut luis_draft = DRAFT.to_vec();
    luis_draft[0] = ("subject", "Rally with music");
    luis_draft.push(("version", &version));
    let told = luis.post(&edit, &edit, &luis_draft).await;
    assert_eq!(told.status, 409);
    let body = unescape(&told.body);
    assert!(body.contains("A colleague saved this draft"), "{body}");
    assert!(
        body.contains("Rally with music"),
        "his text stays on the page"
    );
    let token = app.staff_token(Role::Viewer).await;
    let api = app
        .get_json_as(&token, &format!("/api/v1/newsletters/{id}"))
        .await;
    assert_eq!(api["subject"], "Rally moved to Sunday");

    // Opening it again gives the new version, which saves.
    let fresh = luis.get(&format!("/newsletters/{id}/edit")).await;
    assert!(unescape(&fresh.body).contains("Rally moved to Sunday"));
    let version = field_value(&fresh.body, "version").unwrap();
    let mut again = DRAFT.to_vec();
    again[0] = ("subject", "Rally with music on Sunday");
    again.push(("version", &version));
    let saved = luis.post(&edit, &edit, &again).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let api = app
        .get_json_as(&token, &format!("/api/v1/newsletters/{id}"))
        .await;
    assert_eq!(api["subject"], "Rally with music on Sunday");
    assert_eq!(app.count("audit_log WHERE action = 'newsletter.update'"), 2);
}

#[tokio::test]
async fn sends_are_paused_resumed_and_cancelled_and_sent_newsletters_duplicated_not_deleted() {
    let (app, token) = sender_app().await;
    add_people(&app, 5);
    let id = send_plain(&app, &token).await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let page = unescape(&editor.get(&format!("/newsletters/{id}")).await.body);
    assert!(page.contains("Scheduled for"), "{page}");
    app.engine.schedule(enlace::db::now()).await.unwrap();

    let list = unescape(&editor.get("/newsletters").await.body);
    assert!(
        list.contains("0 of 5 handled"),
        "the list shows a send's progress: {list}"
    );
    assert!(list.contains("id=\"newsletter-list\" data-refresh=\"5\""));
    let page = unescape(&editor.get(&format!("/newsletters/{id}")).await.body);
    assert!(
        page.contains("Sending") && page.contains("data-refresh"),
        "{page}"
    );
    assert!(page.contains("Pause the send") && page.contains("Cancel the send"));
    let paused = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send-state"),
            &[("action", "pause")],
        )
        .await;
    assert_eq!(paused.status, 303);
    assert!(paused.location().ends_with("?notice=paused"));
    assert_eq!(
        app.query_one(&format!(
            "SELECT status AS v FROM newsletters WHERE id = '{id}'"
        )),
        "paused"
    );
    // Pausing again: the send has moved on; nothing changes.
    let again = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send-state"),
            &[("action", "pause")],
        )
        .await;
    assert_eq!(again.status, 409);
    let resumed = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send-state"),
            &[("action", "resume")],
        )
        .await;
    assert_eq!(resumed.status, 303);
    app.run_sends().await;
    assert_eq!(app.mails().len(), 5);
    let page = unescape(&editor.get(&format!("/newsletters/{id}")).await.body);
    assert!(
        page.contains("Sent") && page.contains("5 of 5 handled"),
        "{page}"
    );

    // A sent newsletter is kept; it can be duplicated as a new draft.
    let kept = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(kept.status, 409);
    let copy = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/duplicate"),
            &[],
        )
        .await;
    assert_eq!(copy.status, 303, "{}", copy.body);
    assert!(
        copy.location().ends_with("/edit?notice=duplicated"),
        "{}",
        copy.location()
    );
    let copy_id = id_in(copy.location());
    assert_ne!(copy_id, id);
    let opened = editor
        .get(copy.location().trim_start_matches("/admin"))
        .await;
    assert!(
        opened
            .body
            .contains("This is a new draft copied from the newsletter."),
        "{}",
        opened.body
    );
    assert_eq!(app.count("newsletters WHERE status = 'draft'"), 1);
    assert_eq!(
        app.count("audit_log WHERE action = 'newsletter.duplicate'"),
        1
    );
    let copied = app
        .get_json_as(&token, &format!("/api/v1/newsletters/{copy_id}"))
        .await;
    assert_eq!(copied["subject"], "S");
    // The copy is a draft: deleted at once; nothing more is mailed.
    let deleted = editor
        .post(
            &format!("/newsletters/{copy_id}"),
            &format!("/newsletters/{copy_id}/delete"),
            &[],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(app.count("newsletters"), 1);

    // Cancelling a send.
    let second = send_plain(&app, &token).await;
    app.engine.schedule(enlace::db::now()).await.unwrap();
    let cancelled = editor
        .post(
            &format!("/newsletters/{second}"),
            &format!("/newsletters/{second}/send-state"),
            &[("action", "cancel")],
        )
        .await;
    assert_eq!(cancelled.status, 303);
    app.run_sends().await;
    assert_eq!(app.mails().len(), 5, "nothing more after the cancel");
    // Why the rest were not sent, by reason, in the member's language.
    editor.language = "es";
    let page = unescape(&editor.get(&format!("/newsletters/{second}")).await.body);
    assert!(page.contains("Sin enviar, y por qué"), "{page}");
    assert!(page.contains("Se canceló el envío") && page.contains("Se dejó fuera a propósito"));
    assert!(page.contains("<td class=\"num\">5</td>"), "{page}");
    editor.language = "en";
    let bad = editor
        .post(
            &format!("/newsletters/{second}"),
            &format!("/newsletters/{second}/send-state"),
            &[("action", "explode")],
        )
        .await;
    assert_eq!(bad.status, 400);

    // Viewers read, but neither send nor stop.
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let refused = viewer
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send-state"),
            &[("action", "pause")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(viewer.get("/newsletters/not-an-id").await.status, 404);
}

fn add_person(app: &TestApp, email: &str, status: &str, language: &str) {
    app.add_subscriber(email, status, language, None, serde_json::json!({}));
}

#[tokio::test]
async fn a_draft_goes_out_only_after_a_confirmation_showing_whom_it_reaches_per_language() {
    let (app, _token) = sender_app().await;
    for i in 0..3 {
        add_person(&app, &format!("en{i}@example.org"), "confirmed", "en");
    }
    for i in 0..2 {
        add_person(&app, &format!("es{i}@example.org"), "confirmed", "es");
    }
    add_person(&app, "waiting@example.org", "pending", "es");
    let (mut editor, id) = new_draft(&app).await;

    let page = editor.get(&format!("/newsletters/{id}/send")).await;
    assert_eq!(page.status, 200);
    let body = unescape(&page.body);
    assert!(body.contains("Send to 5 people"), "{body}");
    assert!(body.contains("<td class=\"num\">3</td>") && body.contains("<td class=\"num\">2</td>"));
    assert!(
        body.contains("Enlace <no-reply@localhost>"),
        "the From it will carry"
    );
    assert_eq!(
        app.count("newsletters WHERE status = 'draft'"),
        1,
        "showing sends nothing"
    );
    let version = field_value(&page.body, "version").unwrap();
    let key = field_value(&page.body, "key").unwrap();
    let form = [
        ("when", "now"),
        ("send_at", ""),
        ("version", version.as_str()),
        ("key", key.as_str()),
    ];
    let sent = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send"),
            &form,
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(sent.location().ends_with("?notice=sending"));
    // The same confirmation again (a double click): still one send.
    let again = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send"),
            &form,
        )
        .await;
    assert_eq!(again.status, 303);
    assert_eq!(app.count("audit_log WHERE action = 'newsletter.send'"), 1);
    app.engine.schedule(enlace::db::now()).await.unwrap();
    app.run_sends().await;
    let mails = app.mails();
    assert_eq!(mails.len(), 5);
    assert_eq!(
        app.mails_to("es0@example.org")[0].subject,
        "Marcha el sábado"
    );
    assert_eq!(
        app.mails_to("en0@example.org")[0].subject,
        "Rally on Saturday"
    );
    assert!(app.mails_to("waiting@example.org").is_empty());
}

#[tokio::test]
async fn a_send_confirmed_for_an_older_version_is_refused_and_scheduling_uses_the_members_time() {
    let (app, _token) = sender_app().await;
    add_person(&app, "ana@example.org", "confirmed", "es");
    let (mut editor, id) = new_draft(&app).await;
    let page = editor.get(&format!("/newsletters/{id}/send")).await;
    let version = field_value(&page.body, "version").unwrap();
    let key = field_value(&page.body, "key").unwrap();

    // A colleague changes the draft after the counts were shown.
    let edit = format!("/newsletters/{id}/edit");
    let fresh = editor.get(&edit).await;
    let current = field_value(&fresh.body, "version").unwrap();
    let mut changed = DRAFT.to_vec();
    changed[0] = ("subject", "Rally moved");
    changed.push(("version", &current));
    assert_eq!(editor.post(&edit, &edit, &changed).await.status, 303);
    let form = [
        ("when", "now"),
        ("send_at", ""),
        ("version", version.as_str()),
        ("key", key.as_str()),
    ];
    let refused = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send"),
            &form,
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(unescape(&refused.body).contains("changed after this page was shown"));
    assert_eq!(app.count("newsletters WHERE status = 'draft'"), 1);

    // Scheduled at a time in the member's zone (Madrid: UTC+1 in December).
    app.sql("UPDATE staff SET time_zone = 'Europe/Madrid'");
    let page = editor.get(&format!("/newsletters/{id}/send")).await;
    assert!(unescape(&page.body).contains("Europe/Madrid"));
    let version = field_value(&page.body, "version").unwrap();
    let key = field_value(&page.body, "key").unwrap();
    let bad = [
        ("when", "later"),
        ("send_at", "tomorrow"),
        ("version", version.as_str()),
        ("key", key.as_str()),
    ];
    let refused = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send"),
            &bad,
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("id=\"e-send_at\""));
    let past = [
        ("when", "later"),
        ("send_at", "2020-01-01T10:00"),
        ("version", version.as_str()),
        ("key", key.as_str()),
    ];
    let refused = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send"),
            &past,
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(unescape(&refused.body).contains("is in the past"));
    let at =
        (chrono::Utc::now() + chrono::Duration::days(2)).with_timezone(&chrono_tz::Europe::Madrid);
    let local = at.format("%Y-%m-%dT%H:%M").to_string();
    let later = [
        ("when", "later"),
        ("send_at", local.as_str()),
        ("version", version.as_str()),
        ("key", key.as_str()),
    ];
    let scheduled = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/send"),
            &later,
        )
        .await;
    assert_eq!(scheduled.status, 303, "{}", scheduled.body);
    assert!(scheduled.location().ends_with("?notice=scheduled"));
    let stored = app.query_one(&format!(
        "SELECT CAST(send_at AS TEXT) AS v FROM newsletters WHERE id = '{id}'"
    ));
    let expected = at
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    assert!(
        stored.replace('T', " ").starts_with(&expected),
        "{stored} vs {expected}"
    );
}

#[tokio::test]
async fn nothing_is_sent_without_a_postal_address_or_an_audience_and_tests_reach_only_their_addresses(
) {
    let app = spawn_app().await;
    add_person(&app, "ana@example.org", "confirmed", "es");
    let (mut editor, id) = new_draft(&app).await;
    let page = editor.get(&format!("/newsletters/{id}/send")).await;
    assert!(unescape(&page.body).contains("ENLACE_POSTAL_ADDRESS"));
    assert!(!page.body.contains("name=\"key\""), "no send button");

    let mut no_audience = DRAFT.to_vec();
    no_audience[8] = ("audience", "none");
    let created = editor
        .post("/newsletters/new", "/newsletters", &no_audience)
        .await;
    let other = id_in(created.location());
    let page = unescape(&editor.get(&format!("/newsletters/{other}/send")).await.body);
    assert!(page.contains("Choose who gets it before sending"), "{page}");

    // A test copy in Spanish to the member's own address; nobody on the list gets anything.
    let test = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/test"),
            &[("to", "editor@console.example.org"), ("language", "es")],
        )
        .await;
    assert_eq!(test.status, 303, "{}", test.body);
    assert!(test.location().ends_with("?notice=test_sent"));
    app.run_jobs().await;
    let mails = app.mails_to("editor@console.example.org");
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].subject.contains("Marcha el sábado"),
        "{}",
        mails[0].subject
    );
    assert!(app.mails_to("ana@example.org").is_empty());
    editor.language = "es";
    let refused = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/test"),
            &[("to", ""), ("language", "es")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(unescape(&refused.body).contains("indica de 1 a 10 direcciones"));
}

#[tokio::test]
async fn the_preview_shows_a_persons_message_in_either_language_in_a_sandboxed_frame() {
    let app = spawn_app().await;
    app.add_subscriber(
        "beto@example.org",
        "confirmed",
        "es",
        Some("Beto"),
        serde_json::json!({}),
    );
    let (_editor, id) = new_draft(&app).await;
    let mut viewer = signed_in(&app, Role::Viewer).await;

    let sample = unescape(&viewer.get(&format!("/newsletters/{id}/preview")).await.body);
    assert!(sample.contains("Rally on Saturday"), "{sample}");
    assert!(
        sample.contains("Hello Ana, join us."),
        "sample data in the text part"
    );
    assert!(
        sample.contains("sandbox src=\"/admin/newsletters/"),
        "{sample}"
    );

    let page = viewer
        .get(&format!(
            "/newsletters/{id}/preview?language=&person=beto%40example.org"
        ))
        .await;
    assert_eq!(page.status, 200);
    let body = unescape(&page.body);
    assert!(
        body.contains("Marcha el sábado") && body.contains("Hola Beto, acompáñanos."),
        "his language, his name"
    );
    let english = unescape(
        &viewer
            .get(&format!(
                "/newsletters/{id}/preview?language=en&person=beto%40example.org"
            ))
            .await
            .body,
    );
    assert!(english.contains("Hello Beto, join us."));

    let frame = viewer
        .get(&format!(
            "/newsletters/{id}/preview/frame?language=es&person=beto%40example.org"
        ))
        .await;
    assert_eq!(frame.status, 200);
    assert!(
        frame.body.contains("<p>Hola Beto, acompáñanos.</p>"),
        "{}",
        frame.body
    );
    let csp = frame.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("sandbox;") && csp.contains("frame-ancestors 'self'"),
        "{csp}"
    );
    assert_eq!(frame.headers["x-frame-options"], "SAMEORIGIN");

    let unknown = viewer
        .get(&format!(
            "/newsletters/{id}/preview?person=nobody%40example.org"
        ))
        .await;
    assert_eq!(unknown.status, 422);
    assert!(unescape(&unknown.body).contains("is not anyone on the list"));
}

#[tokio::test]
async fn autosave_keeps_the_version_current_and_stops_at_a_colleagues_save() {
    let app = spawn_app().await;
    let (mut editor, id) = new_draft(&app).await;
    let edit = format!("/newsletters/{id}/edit");
    let page = editor.get(&edit).await;
    assert!(unescape(&page.body).contains(&format!(
        "data-autosave=\"/admin/newsletters/{id}/autosave\""
    )));
    let first = field_value(&page.body, "version").unwrap();

    let mut draft = DRAFT.to_vec();
    draft[0] = ("subject", "Rally (draft 2)");
    draft.push(("version", &first));
    let saved = editor
        .post(&edit, &format!("/newsletters/{id}/autosave"), &draft)
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let body: serde_json::Value = serde_json::from_str(&saved.body).unwrap();
    assert_eq!(body["state"], "saved");
    let second = body["version"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let token = app.staff_token(Role::Viewer).await;
    let api = app
        .get_json_as(&token, &format!("/api/v1/newsletters/{id}"))
        .await;
    assert_eq!(api["subject"], "Rally (draft 2)");

    // The next autosave carries the version the last one returned.
    let mut draft = DRAFT.to_vec();
    draft[0] = ("subject", "Rally (draft 3)");
    draft.push(("version", &second));
    let saved = editor
        .post(&edit, &format!("/newsletters/{id}/autosave"), &draft)
        .await;
    assert_eq!(saved.status, 200);

    // A page still holding an older version is stopped, and saves nothing.
    let mut stale = DRAFT.to_vec();
    stale[0] = ("subject", "Rally (from an old tab)");
    stale.push(("version", &first));
    let refused = editor
        .post(&edit, &format!("/newsletters/{id}/autosave"), &stale)
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("\"conflict\""));
    let api = app
        .get_json_as(&token, &format!("/api/v1/newsletters/{id}"))
        .await;
    assert_eq!(api["subject"], "Rally (draft 3)");

    // A draft that can't be saved as it stands says why, in the member's language.
    editor.language = "es";
    let current = field_value(&editor.get(&edit).await.body, "version").unwrap();
    let mut broken = DRAFT.to_vec();
    broken[6] = ("from", "nadie");
    broken.push(("version", &current));
    let invalid = editor
        .post(&edit, &format!("/newsletters/{id}/autosave"), &broken)
        .await;
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert!(
        invalid.body.contains("debe ser una dirección como"),
        "{}",
        invalid.body
    );
    // Without the form token nothing is saved.
    let forged = editor
        .post_raw(&format!("/newsletters/{id}/autosave"), &broken)
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(app.count("audit_log WHERE action = 'newsletter.update'"), 2);
}

/// The header block of the preview page (`<pre>` after the wire-headers summary), unescaped.
fn wire_headers(page: &str) -> String {
    let body = unescape(page);
    let after = body
        .split("<summary>The headers exactly as they go on the wire</summary>")
        .nth(1)
        .expect("the wire headers on the preview");
    let start = after.find('>').unwrap() + 1;
    after[start..after.find("</pre>").unwrap()].to_owned()
}

#[tokio::test]
async fn the_preview_shows_the_headers_the_message_then_goes_out_with() {
    let (app, token) = sender_app().await;
    app.add_subscriber(
        "beto@example.org",
        "confirmed",
        "es",
        Some("Beto Núñez"),
        serde_json::json!({}),
    );
    let mut editor = signed_in(&app, Role::Editor).await;
    let mut draft = DRAFT.to_vec();
    draft.push(("reply_to", "Equipo <equipo@example.org>"));
    draft.retain(|(k, v)| *k != "reply_to" || !v.is_empty());
    let created = editor
        .post("/newsletters/new", "/newsletters", &draft)
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = id_in(created.location());
    let page = editor
        .get(&format!(
            "/newsletters/{id}/preview?person=beto%40example.org"
        ))
        .await;
    assert_eq!(page.status, 200);
    let shown = wire_headers(&page.body);
    let body = unescape(&page.body);
    assert!(
        body.contains("<dt>List-Unsubscribe-Post</dt><dd>List-Unsubscribe=One-Click</dd>"),
        "{body}"
    );
    assert!(
        body.contains("<dt>Subject</dt><dd>Marcha el sábado</dd>"),
        "{body}"
    );

    // Sent for real, the message to Beto carries the same headers; only the unsubscribe link
    // (inert in the preview) and the date differ. Both are read by an independent parser.
    let (status, _) =
        crate::newsletters::post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    let sent = app.mails_to("beto@example.org");
    assert_eq!(sent.len(), 1);
    let parse = |raw: &str| {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parsable headers")
            .headers()
            .iter()
            .map(|h| (h.name().to_ascii_lowercase(), format!("{:?}", h.value())))
            .collect::<std::collections::BTreeMap<String, String>>()
    };
    let preview = parse(&format!(
        "{}\r\n\r\n",
        shown.replace("\r\n", "\n").replace('\n', "\r\n")
    ));
    let real = parse(&sent[0].raw);
    for name in [
        "From",
        "Reply-To",
        "To",
        "Subject",
        "List-Id",
        "List-Unsubscribe-Post",
        "Content-Language",
        "Message-ID",
        "MIME-Version",
    ] {
        let name = name.to_ascii_lowercase();
        assert!(
            preview.contains_key(&name),
            "the preview lacks {name}: {shown}"
        );
        assert_eq!(preview.get(&name), real.get(&name), "{name}");
    }
    assert!(preview["list-unsubscribe"].contains("/unsubscribe/preview"));
    assert!(!real["list-unsubscribe"].contains("/unsubscribe/preview"));
}

#[tokio::test]
async fn editors_give_a_preheader_per_language_and_a_duplicate_keeps_it() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let mut draft = DRAFT.to_vec();
    draft.push(("preheader", "Bring a friend & <a sign>"));
    draft.push(("variants.es.preheader", "Trae a una amiga"));
    let created = editor
        .post("/newsletters/new", "/newsletters", &draft)
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = id_in(created.location());
    let token = app.staff_token(Role::Viewer).await;
    let path = format!("/api/v1/newsletters/{id}");
    let api = app.get_json_as(&token, &path).await;
    assert_eq!(api["preheader"], "Bring a friend & <a sign>");
    assert_eq!(api["variants"]["es"]["preheader"], "Trae a una amiga");

    // The page shows both, escaped; the editor has them under each subject, in both languages.
    let page = editor.get(&format!("/newsletters/{id}")).await;
    assert!(
        page.body
            .contains("Preheader: Bring a friend &amp; &lt;a sign&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Trae a una amiga"));
    let edit = format!("/newsletters/{id}/edit");
    let form = editor.get(&edit).await;
    assert_eq!(
        field_value(&form.body, "preheader")
            .as_deref()
            .map(unescape),
        Some("Bring a friend & <a sign>".into())
    );
    assert_eq!(
        field_value(&form.body, "variants.es.preheader").as_deref(),
        Some("Trae a una amiga")
    );
    let body = unescape(&form.body);
    assert!(
        body.find("name=\"subject\"") < body.find("name=\"preheader\"")
            && body.find("name=\"preheader\"") < body.find("name=\"html\""),
        "under the subject"
    );
    assert!(body.contains("The preview line mail apps show after the subject"));
    editor.language = "es";
    let form_es = unescape(&editor.get(&edit).await.body);
    assert!(form_es.contains("Texto de vista previa"), "{form_es}");
    editor.language = "en";

    // Too long: shown at its field, nothing saved; emptied: none.
    let version = field_value(&form.body, "version").unwrap();
    let long = "x".repeat(201);
    let mut change = DRAFT.to_vec();
    change.push(("variants.es.preheader", &long));
    change.push(("version", &version));
    let refused = editor.post(&edit, &edit, &change).await;
    assert_eq!(refused.status, 422);
    let body = unescape(&refused.body);
    assert!(body.contains("id=\"e-variants.es.preheader\""), "{body}");
    assert!(body.contains("must be one line of at most 200 characters"));
    editor.language = "es";
    let refused = editor.post(&edit, &edit, &change).await;
    assert!(
        unescape(&refused.body).contains("debe ser una sola línea de 200 caracteres como máximo"),
        "{}",
        refused.body
    );
    editor.language = "en";
    assert_eq!(
        app.get_json_as(&token, &path).await["variants"]["es"]["preheader"],
        "Trae a una amiga"
    );
    let mut change = DRAFT.to_vec();
    change.push(("preheader", "  "));
    change.push(("variants.es.preheader", "Ven el sábado"));
    change.push(("version", &version));
    let saved = editor.post(&edit, &edit, &change).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let api = app.get_json_as(&token, &path).await;
    assert_eq!(api["preheader"], serde_json::Value::Null);
    assert_eq!(api["variants"]["es"]["preheader"], "Ven el sábado");
    let page = unescape(&editor.get(&format!("/newsletters/{id}")).await.body);
    assert!(page.contains("No preheader"), "{page}");

    // A copy keeps both.
    let mut change = DRAFT.to_vec();
    change.push(("preheader", "Bring a friend"));
    change.push(("variants.es.preheader", "Ven el sábado"));
    let version = field_value(&editor.get(&edit).await.body, "version").unwrap();
    change.push(("version", &version));
    assert_eq!(editor.post(&edit, &edit, &change).await.status, 303);
    let copy = editor
        .post(
            &format!("/newsletters/{id}"),
            &format!("/newsletters/{id}/duplicate"),
            &[],
        )
        .await;
    assert_eq!(copy.status, 303, "{}", copy.body);
    let copied = app
        .get_json_as(
            &token,
            &format!("/api/v1/newsletters/{}", id_in(copy.location())),
        )
        .await;
    assert_eq!(copied["preheader"], "Bring a friend");
    assert_eq!(copied["variants"]["es"]["preheader"], "Ven el sábado");
}
