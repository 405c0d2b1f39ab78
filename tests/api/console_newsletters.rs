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
