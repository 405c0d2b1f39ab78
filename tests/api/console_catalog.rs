//! The console's interests, custom fields and exports, used as staff use them: through pages
//! and forms, in both languages, checked against the database and the audit log.

use enlace::auth::Role;

use crate::console_client::{signed_in, Browser};
use crate::helpers::{spawn_app, Person, TestApp};

fn unescape(body: &str) -> String {
    body.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

async fn create_interest(
    browser: &mut Browser<'_>,
    fields: &[(&str, &str)],
) -> crate::console_client::Page {
    browser.post("/interests", "/interests", fields).await
}

#[tokio::test]
async fn editors_create_and_edit_interests_in_both_languages() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;

    let page = editor.get("/interests").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("There are no interests yet."));
    assert!(page.body.contains("Add an interest"));

    let created = create_interest(
        &mut editor,
        &[
            ("slug", "huertos"),
            ("name.en", "Community gardens"),
            ("name.es", "Huertos comunitarios"),
            ("description.en", "Planting days"),
            ("description.es", "Días de siembra"),
            ("public", "yes"),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.location(),
        "/admin/interests/huertos?notice=interest_created"
    );
    assert_eq!(app.count("interests WHERE slug = 'huertos' AND public = TRUE AND name_es = 'Huertos comunitarios'"), 1);
    assert_eq!(
        app.count("audit_log WHERE action = 'interest.create' AND object_id = 'huertos'"),
        1
    );
    let shown = unescape(
        &editor
            .get("/interests/huertos?notice=interest_created")
            .await
            .body,
    );
    assert!(shown.contains("The interest was added."));
    assert!(shown.contains("value=\"Huertos comunitarios\""));
    let list = editor.get("/interests").await.body;
    assert!(list.contains("Community gardens") && list.contains("Huertos comunitarios"));

    // Edited in both languages and made private (an unchecked box).
    let saved = editor
        .post(
            "/interests/huertos",
            "/interests/huertos",
            &[
                ("name.en", "Gardens"),
                ("name.es", "Huertos"),
                ("description.en", ""),
                ("description.es", "Siembra"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(app.count("interests WHERE slug = 'huertos' AND public = FALSE AND name_en = 'Gardens' AND name_es = 'Huertos' AND description_en = '' AND description_es = 'Siembra'"), 1);
    assert_eq!(
        app.count("audit_log WHERE action = 'interest.update' AND object_id = 'huertos'"),
        1
    );
    assert!(editor.get("/interests").await.body.contains("Private"));
}

#[tokio::test]
async fn a_refused_interest_shows_why_in_english_and_spanish_and_changes_nothing() {
    let app = spawn_app().await;
    app.add_interest("taken", true);
    let mut editor = signed_in(&app, Role::Editor).await;

    let refused = create_interest(
        &mut editor,
        &[("slug", "No Good"), ("name.en", "Fine"), ("name.es", "")],
    )
    .await;
    assert_eq!(refused.status, 422);
    let body = unescape(&refused.body);
    assert!(
        body.contains("use 1 to 64 lower-case letters, digits, - or _"),
        "{body}"
    );
    assert!(body.contains("aria-invalid=\"true\""));
    assert!(body.contains("value=\"Fine\""), "what was typed is kept");
    assert_eq!(app.count("interests"), 1);

    editor.language = "es";
    let refused = create_interest(
        &mut editor,
        &[("slug", "bueno"), ("name.en", "Fine"), ("name.es", " ")],
    )
    .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("es obligatorio"));
    assert!(refused
        .body
        .contains("Hay campos que necesitan tu atención"));
    let taken = create_interest(
        &mut editor,
        &[("slug", "taken"), ("name.en", "A"), ("name.es", "B")],
    )
    .await;
    assert_eq!(taken.status, 409);
    assert!(taken
        .body
        .contains("otro interés ya tiene este identificador"));
    assert_eq!(app.count("interests"), 1);
    assert_eq!(app.count("audit_log WHERE action LIKE 'interest.%'"), 0);
}

#[tokio::test]
async fn viewers_read_interests_and_fields_but_may_not_change_them() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_field("city", "text", &[], true);
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let list = viewer.get("/interests").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("news (en)"));
    assert!(!list.body.contains("Add an interest"));
    let one = viewer.get("/interests/news").await;
    assert_eq!(one.status, 200);
    assert!(one.body.contains("About news") && !one.body.contains("/delete"));
    assert_eq!(viewer.get("/fields").await.status, 200);
    assert_eq!(viewer.get("/fields/city").await.status, 200);
    assert_eq!(viewer.get("/interests/nothing").await.status, 404);

    let changes: [(&str, &[(&str, &str)]); 5] = [
        (
            "/interests",
            &[("slug", "x"), ("name.en", "X"), ("name.es", "X")],
        ),
        (
            "/interests/news",
            &[("name.en", "Changed"), ("name.es", "Cambiado")],
        ),
        ("/interests/news/delete", &[]),
        ("/fields/city", &[]),
        ("/fields/city/delete", &[]),
    ];
    for (path, form) in changes {
        let page = viewer.post("/interests", path, form).await;
        assert_eq!(page.status, 403, "{path}");
    }
    assert_eq!(
        app.count("interests WHERE slug = 'news' AND name_en = 'news (en)'"),
        1
    );
    assert_eq!(
        app.count("custom_fields WHERE key = 'city' AND public = TRUE"),
        1
    );
    assert_eq!(
        app.count("audit_log WHERE action LIKE 'interest.%' OR action LIKE 'field.%'"),
        0
    );
    // Exports are for editors and admins.
    assert_eq!(viewer.get("/exports").await.status, 403);
    assert_eq!(viewer.get("/exports/download").await.status, 403);
}

#[tokio::test]
async fn an_interest_people_have_is_deleted_only_when_its_slug_is_typed() {
    let app = spawn_app().await;
    app.add_interest("unused", true);
    app.add_interest("popular", true);
    for email in ["a@example.org", "b@example.org"] {
        let id = app.add_subscriber(email, "confirmed", "en", None, serde_json::json!({}));
        app.add_interests_to(&id, &["popular"], "2026-01-01");
    }
    let mut admin = signed_in(&app, Role::Admin).await;

    let gone = admin
        .post("/interests/unused", "/interests/unused/delete", &[])
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(gone.location(), "/admin/interests?notice=interest_deleted");
    assert!(admin
        .get("/interests?notice=interest_deleted")
        .await
        .body
        .contains("The interest was deleted."));
    assert_eq!(app.count("interests WHERE slug = 'unused'"), 0);

    let refused = admin
        .post("/interests/popular", "/interests/popular/delete", &[])
        .await;
    assert_eq!(refused.status, 409);
    assert!(refused
        .body
        .contains("2 subscribers have this interest, so it was not deleted."));
    assert!(refused.body.contains("Type popular to confirm"));
    let mistyped = admin
        .post(
            "/interests/popular",
            "/interests/popular/delete",
            &[("confirm", "populr")],
        )
        .await;
    assert_eq!(mistyped.status, 422);
    assert!(unescape(&mistyped.body).contains("match the slug"));
    admin.language = "es";
    let refused = admin
        .post("/interests/popular", "/interests/popular/delete", &[])
        .await;
    assert_eq!(refused.status, 409);
    assert!(refused
        .body
        .contains("2 personas suscritas tienen este interés"));
    assert_eq!(app.count("interests WHERE slug = 'popular'"), 1);
    assert_eq!(app.count("subscriber_interests"), 2);

    let forced = admin
        .post(
            "/interests/popular",
            "/interests/popular/delete",
            &[("confirm", "popular")],
        )
        .await;
    assert_eq!(forced.status, 303);
    assert_eq!(app.count("interests WHERE slug = 'popular'"), 0);
    assert_eq!(app.count("subscriber_interests"), 0);
    assert_eq!(app.count("audit_log WHERE action = 'interest.delete'"), 2);
}

#[tokio::test]
async fn editors_declare_change_and_delete_custom_fields() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;

    let refused = editor
        .post(
            "/fields",
            "/fields",
            &[
                ("key", "barrio"),
                ("type", "one_of"),
                ("allowed_values", "\n "),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(unescape(&refused.body).contains("needs 1 to 100 values"));
    editor.language = "es";
    let refused = editor
        .post("/fields", "/fields", &[("key", "1bad"), ("type", "text")])
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("empezando con una letra"));
    editor.language = "en";
    assert_eq!(app.count("custom_fields"), 0);

    let created = editor
        .post(
            "/fields",
            "/fields",
            &[
                ("key", "barrio"),
                ("type", "one_of"),
                ("allowed_values", "Centro\nNorte\n\nSur\n"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.location(),
        "/admin/fields/barrio?notice=field_created"
    );
    assert_eq!(
        app.query_one("SELECT allowed_values AS v FROM custom_fields WHERE key = 'barrio'"),
        r#"["Centro","Norte","Sur"]"#
    );
    assert_eq!(
        app.count(
            "custom_fields WHERE key = 'barrio' AND public = FALSE AND field_type = 'one_of'"
        ),
        1
    );
    assert_eq!(
        app.count("audit_log WHERE action = 'field.create' AND object_id = 'barrio'"),
        1
    );
    assert!(editor
        .get("/fields")
        .await
        .body
        .contains("Centro, Norte, Sur"));

    let saved = editor
        .post(
            "/fields/barrio",
            "/fields/barrio",
            &[("allowed_values", "Centro\nOeste"), ("public", "yes")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        app.query_one("SELECT allowed_values AS v FROM custom_fields WHERE key = 'barrio'"),
        r#"["Centro","Oeste"]"#
    );
    assert_eq!(
        app.count("custom_fields WHERE key = 'barrio' AND public = TRUE"),
        1
    );
    assert_eq!(app.count("audit_log WHERE action = 'field.update'"), 1);

    // A field someone has a value for stays, and the page says how many.
    app.add_subscriber(
        "c@example.org",
        "confirmed",
        "es",
        None,
        serde_json::json!({"barrio": "Centro"}),
    );
    let kept = editor
        .post("/fields/barrio", "/fields/barrio/delete", &[])
        .await;
    assert_eq!(kept.status, 409);
    assert!(kept
        .body
        .contains("1 subscribers have a value for this field"));
    assert_eq!(app.count("custom_fields"), 1);

    app.add_field("unused", "text", &[], true);
    // A text field has no values to edit: only its visibility.
    let text_field = editor.get("/fields/unused").await.body;
    assert!(!text_field.contains("name=\"allowed_values\""));
    assert!(text_field.contains("name=\"public\""));
    assert!(editor
        .get("/fields/barrio")
        .await
        .body
        .contains("name=\"allowed_values\""));
    let gone = editor
        .post("/fields/unused", "/fields/unused/delete", &[])
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(app.count("custom_fields WHERE key = 'unused'"), 0);
    assert_eq!(app.count("audit_log WHERE action = 'field.delete'"), 1);
}

#[tokio::test]
async fn editors_download_exports_chosen_on_a_form() {
    let app = spawn_app().await;
    app.add_subscriber(
        "ana@example.org",
        "confirmed",
        "es",
        Some("Ana"),
        serde_json::json!({}),
    );
    let mut editor = signed_in(&app, Role::Editor).await;

    let form = editor.get("/exports").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("method=\"get\""));
    assert!(unescape(&form.body).contains("action=\"/admin/exports/download\""));

    let csv = editor
        .get("/exports/download?segment_id=&updated_since=&format=csv&delimiter=semicolon")
        .await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let disposition = csv.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"subscribers-"),
        "{disposition}"
    );
    assert!(csv.body.contains("ana@example.org"));
    assert!(csv.body.lines().next().unwrap().contains(';'));
    assert_eq!(
        app.count("audit_log WHERE action = 'subscribers.export_csv'"),
        1
    );

    let ndjson = editor
        .get("/exports/download?format=ndjson&updated_since=2020-01-01")
        .await;
    assert_eq!(ndjson.status, 200);
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    assert!(ndjson.body.contains("\"ana@example.org\""));
    let none = editor
        .get("/exports/download?format=ndjson&updated_since=2999-01-01")
        .await;
    assert_eq!(none.status, 200);
    assert!(!none.body.contains("ana@example.org"));

    let refused = editor
        .get("/exports/download?format=xml&updated_since=yesterday")
        .await;
    assert_eq!(refused.status, 422);
    let body = unescape(&refused.body);
    assert!(
        body.contains("must be CSV or NDJSON") && body.contains("must be a date like 2026-01-31"),
        "{body}"
    );
    editor.language = "es";
    let refused = editor
        .get("/exports/download?segment_id=0b7c5a4e-0000-4000-8000-000000000000")
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("no es un segmento que exista"));
    assert_eq!(
        app.count("audit_log WHERE action LIKE 'subscribers.export%'"),
        3
    );
}

#[tokio::test]
async fn console_exports_are_gzipped_when_the_browser_accepts_it() {
    use std::io::Read;
    let app = spawn_app().await;
    for i in 0..300 {
        let email = format!("person{i}@example.org");
        app.add_subscriber(&email, "confirmed", "en", None, serde_json::json!({}));
    }
    let mut editor = signed_in(&app, Role::Editor).await;
    let plain = editor.get("/exports/download?format=csv").await;
    assert_eq!(plain.status, 200);
    let cookie = editor.cookie_header();
    let res = app
        .client
        .get(app.url("/admin/exports/download?format=csv"))
        .header("cookie", cookie)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let zipped = res.bytes().await.unwrap();
    assert!(
        zipped.len() * 3 < plain.body.len(),
        "{} vs {}",
        zipped.len(),
        plain.body.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    // The same people in the same order (the file name's time may differ, the rows do not).
    assert_eq!(unzipped.lines().count(), 301);
    assert_eq!(unzipped, plain.body);
}

#[tokio::test]
async fn an_export_is_turned_away_while_every_export_slot_is_busy() {
    let app = TestApp::builder()
        .settings(|s| s.export_concurrency = 1)
        .spawn()
        .await;
    let people: Vec<Person> = (1..=20_000)
        .map(|i| Person::new(format!("bulk{i}@example.org")))
        .collect();
    app.seed_people(&people);
    // An export through the API holds the only slot (its client reads nothing yet).
    let token = app.staff_token(Role::Editor).await;
    let held = app
        .get_as(&token, "/api/v1/exports/subscribers?format=ndjson")
        .await;
    assert_eq!(held.status(), 200);
    let mut admin = signed_in(&app, Role::Admin).await;
    let busy = admin.get("/exports/download?format=csv").await;
    assert_eq!(busy.status, 429);
    assert_eq!(busy.headers["retry-after"], "30");
    assert!(busy.body.contains("Too many attempts"));
    assert_eq!(
        app.count("audit_log WHERE action LIKE 'subscribers.export%'"),
        1
    );
    drop(held);
}

/// The slugs in the order a page or an answer lists them.
/// The interests named `slugs` (by their English name) in the order `body` shows them.
fn order_in(body: &str, slugs: &[&str]) -> Vec<String> {
    order_of(body, slugs, |s| format!("{s} (en)"))
}

/// `items` in the order `body` shows them, each found by the text `mark` gives for it.
fn order_of(body: &str, items: &[&str], mark: impl Fn(&str) -> String) -> Vec<String> {
    let mut found: Vec<(usize, String)> = items
        .iter()
        .map(|s| (body.find(&mark(s)).expect(s), (*s).to_owned()))
        .collect();
    found.sort();
    found.into_iter().map(|(_, s)| s).collect()
}

#[tokio::test]
async fn editors_reorder_interests_and_forms_and_the_api_follow() {
    let app = spawn_app().await;
    for slug in ["alpha", "bravo", "charlie"] {
        app.add_interest(slug, true);
    }
    let slugs = ["alpha", "bravo", "charlie", "delta"];
    let mut editor = signed_in(&app, Role::Editor).await;
    let page = editor.get("/interests").await.body;
    assert_eq!(order_in(&page, &slugs[..3]), ["alpha", "bravo", "charlie"]);
    assert!(!page.contains("Move alpha up") && page.contains("Move alpha down"));
    assert!(page.contains("Move charlie up") && !page.contains("Move charlie down"));

    let moved = editor
        .post(
            "/interests",
            "/interests/charlie/move",
            &[("direction", "up")],
        )
        .await;
    assert_eq!(moved.status, 303);
    assert_eq!(moved.location(), "/admin/interests?notice=interest_moved");
    // The first one can't go up: nothing changes, nothing is recorded.
    let still = editor
        .post(
            "/interests",
            "/interests/alpha/move",
            &[("direction", "up")],
        )
        .await;
    assert_eq!(still.status, 303);
    assert_eq!(
        app.count("audit_log WHERE action = 'interest.reorder' AND object_id = 'charlie'"),
        1
    );
    assert_eq!(app.count("audit_log WHERE action = 'interest.reorder'"), 1);
    // A new interest goes last.
    let created = editor
        .post(
            "/interests",
            "/interests",
            &[
                ("slug", "delta"),
                ("name.en", "delta (en)"),
                ("name.es", "delta (es)"),
                ("public", "yes"),
            ],
        )
        .await;
    assert_eq!(created.status, 303);

    let expected = ["alpha", "charlie", "bravo", "delta"];
    let page = editor.get("/interests?notice=interest_moved").await.body;
    assert!(page.contains("The order was saved."));
    assert_eq!(order_in(&page, &slugs), expected);
    let token = app.staff_token(Role::Viewer).await;
    let listed = app
        .get_json_as(&token, "/api/v1/interests")
        .await
        .to_string();
    assert_eq!(order_in(&listed, &slugs), expected);
    let refused = editor
        .post(
            "/interests",
            "/interests/alpha/move",
            &[("direction", "sideways")],
        )
        .await;
    assert_eq!(refused.status, 400);
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let refused = viewer
        .post(
            "/interests",
            "/interests/alpha/move",
            &[("direction", "down")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(app.count("audit_log WHERE action = 'interest.reorder'"), 1);
}

#[tokio::test]
async fn editors_reorder_custom_fields_and_the_api_follows() {
    let app = spawn_app().await;
    for key in ["barrio", "city", "zip"] {
        app.add_field(key, "text", &[], true);
    }
    let keys = ["barrio", "city", "zip", "ward"];
    let mut editor = signed_in(&app, Role::Editor).await;
    let page = editor.get("/fields").await.body;
    let on_page = |k: &str| format!("/fields/{k}\"");
    assert_eq!(
        order_of(&page, &keys[..3], on_page),
        ["barrio", "city", "zip"]
    );
    assert!(!page.contains("Move barrio up") && page.contains("Move zip up"));

    let moved = editor
        .post("/fields", "/fields/zip/move", &[("direction", "up")])
        .await;
    assert_eq!(moved.status, 303);
    assert_eq!(moved.location(), "/admin/fields?notice=field_moved");
    // The last one can't go down: nothing changes, nothing is recorded.
    let still = editor
        .post("/fields", "/fields/city/move", &[("direction", "down")])
        .await;
    assert_eq!(still.status, 303);
    let created = editor
        .post("/fields", "/fields", &[("key", "ward"), ("type", "text")])
        .await;
    assert_eq!(created.status, 303, "{}", created.body);

    let expected = ["barrio", "zip", "city", "ward"];
    editor.language = "es";
    let page = editor.get("/fields?notice=field_moved").await.body;
    assert!(page.contains("Se guardó el orden."));
    assert_eq!(order_of(&page, &keys, on_page), expected);
    let token = app.staff_token(Role::Viewer).await;
    let listed = app.get_json_as(&token, "/api/v1/fields").await.to_string();
    let in_json = |k: &str| format!("\"{k}\"");
    assert_eq!(order_of(&listed, &keys, in_json), expected);
    assert_eq!(app.count("audit_log WHERE action = 'field.reorder'"), 1);

    assert_eq!(
        editor
            .post("/fields", "/fields/nope/move", &[("direction", "up")])
            .await
            .status,
        404
    );
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let refused = viewer
        .post("/fields", "/fields/zip/move", &[("direction", "up")])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(app.count("audit_log WHERE action = 'field.reorder'"), 1);
}
