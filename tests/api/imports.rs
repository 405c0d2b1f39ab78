//! CSV imports: both consent modes end to end, people who must never be re-added, re-runs that
//! change nothing, the per-row report, refused files, access, and resuming after a crash.

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const CONSENTED: &[(&str, &str)] = &[
    ("mode", "consented"),
    ("source", "Tucson rally sign-up sheet, 2026-03-03"),
    ("consent_note", "Ticked \"send me news\" on the paper sheet"),
];

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    query: &[(&str, &str)],
    csv: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/imports"))
        .query(query)
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap()
}

async fn report(app: &TestApp, token: &str, id: &str) -> Value {
    let res = app
        .get_as(token, &format!("/api/v1/imports/{id}?problems_limit=1000"))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Uploads, runs the import job to the end, and returns the finished report.
async fn import(app: &TestApp, token: &str, query: &[(&str, &str)], csv: &str) -> Value {
    let res = upload(app, token, query, csv).await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let queued: Value = res.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(
        location,
        format!("/api/v1/imports/{}", queued["id"].as_str().unwrap())
    );
    app.run_tasks().await;
    let done = report(app, token, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    done
}

fn counts(report: &Value) -> [i64; 7] {
    let c = &report["counts"];
    [
        "rows",
        "processed",
        "created",
        "updated",
        "unchanged",
        "skipped",
        "failed",
    ]
    .map(|k| c[k].as_i64().unwrap())
}

/// (line, column, outcome) of every report entry.
fn problems(report: &Value) -> Vec<(i64, Option<String>, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_i64().unwrap(),
                p["column"].as_str().map(str::to_owned),
                p["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn subscriber(app: &TestApp, token: &str, email: &str) -> Value {
    let list: Value = app
        .client
        .get(app.url("/api/v1/subscribers"))
        .query(&[("email_contains", email)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["data"][0].clone()
}

#[tokio::test]
async fn consented_import_adds_confirmed_people_with_the_evidence_and_a_rerun_changes_nothing() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_interest("housing", false);
    app.add_field("home_city", "text", &[], false);
    app.add_field("volunteer", "boolean", &[], false);
    let editor = app.staff_token(Role::Editor).await;
    // A sheet saved by a Spanish-locale spreadsheet: BOM, `;`, Spanish headers, a formula-looking
    // cell (kept as given: it is neutralised only on export).
    let csv = "\u{feff}Correo;Nombre;Idioma;Intereses;Home City;Volunteer\r\n\
               Rosa@Example.org;Rosa Pérez;es;housing;=HYPERLINK(\"http://x\");sí\r\n\
               luis@example.org;;;;+1 555 0100;no\r\n\
               \"ana@example.org\";\"Ana; la de la tienda\";EN;news, housing;;\r\n\
               ;;;;;\r\n";
    let mut query = CONSENTED.to_vec();
    query.push(("interests", "news"));
    query.push(("language", "es"));
    let done = import(&app, &editor, &query, csv).await;
    assert_eq!(counts(&done), [3, 3, 3, 0, 0, 0, 0], "{done}");
    assert_eq!(done["problems"], json!([]));
    assert_eq!(done["mode"], "consented");
    assert_eq!(done["source"], "Tucson rally sign-up sheet, 2026-03-03");
    assert!(done["finished_at"].is_string() && done["started_at"].is_string());
    assert_eq!(
        done["columns"][4],
        json!({"column": "Home City", "field": "attributes.home_city"})
    );

    let rosa = subscriber(&app, &editor, "rosa@example.org").await;
    assert_eq!(rosa["status"], "confirmed");
    assert_eq!(rosa["name"], "Rosa Pérez");
    assert_eq!(rosa["language"], "es");
    assert_eq!(rosa["interests"], json!(["housing", "news"]));
    assert_eq!(
        rosa["attributes"],
        json!({"home_city": "=HYPERLINK(\"http://x\")", "volunteer": true})
    );
    let luis = subscriber(&app, &editor, "luis@example.org").await;
    assert_eq!(
        (luis["language"].as_str(), luis["name"].as_str()),
        (Some("es"), None),
        "the import's default language"
    );
    assert_eq!(
        luis["attributes"],
        json!({"home_city": "+1 555 0100", "volunteer": false})
    );
    let ana = subscriber(&app, &editor, "ana@example.org").await;
    assert_eq!(ana["name"], "Ana; la de la tienda");
    assert_eq!(ana["language"], "en");

    // The ledger holds the evidence given, for each person.
    let data: Value = app
        .get_json_as(
            &editor,
            &format!("/api/v1/subscribers/{}/data", rosa["id"].as_str().unwrap()),
        )
        .await;
    let consent = &data["consent"][0];
    assert_eq!(consent["action"], "staff_recorded");
    assert_eq!(consent["source"], "Tucson rally sign-up sheet, 2026-03-03");
    assert_eq!(
        consent["wording"],
        "Ticked \"send me news\" on the paper sheet"
    );
    assert_eq!(consent["interests"], json!(["housing", "news"]));
    assert_eq!(app.count("consent_events"), 3);
    // No mail: they are on the list already, and nobody is mailed a welcome in bulk.
    assert_eq!(app.run_jobs().await, 0);
    assert_eq!(app.count("import_parts"), 0, "the stored file is gone");
    assert_eq!(app.count("audit_log WHERE action = 'import.create'"), 1);

    // The same file again changes nothing.
    let again = import(&app, &editor, &query, csv).await;
    assert_eq!(counts(&again), [3, 3, 0, 0, 3, 0, 0], "{again}");
    assert_eq!(app.count("consent_events"), 3);
    assert_eq!(app.count("subscribers"), 3);
    assert_eq!(app.run_jobs().await, 0);
    assert_eq!(again["file"]["sha256"], done["file"]["sha256"]);

    // A later sheet fills gaps only: a missing name, new interests (with their evidence); it
    // never overwrites what is there.
    let later = "email,name,home_city,interests\nluis@example.org,Luis,Phoenix,housing\nrosa@example.org,Someone Else,Mesa,\n";
    let filled = import(&app, &editor, CONSENTED, later).await;
    assert_eq!(counts(&filled), [2, 2, 0, 1, 1, 0, 0], "{filled}");
    let luis = subscriber(&app, &editor, "luis@example.org").await;
    assert_eq!(luis["name"], "Luis");
    assert_eq!(luis["interests"], json!(["housing", "news"]));
    assert_eq!(luis["attributes"]["home_city"], "+1 555 0100");
    assert_eq!(
        subscriber(&app, &editor, "rosa@example.org").await["name"],
        "Rosa Pérez"
    );
    assert_eq!(
        app.count("consent_events"),
        4,
        "evidence for the interest added"
    );

    let list: Value = app.get_json_as(&editor, "/api/v1/imports?limit=2").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][0]["id"], filled["id"], "newest first");
    let next = list["next"].as_str().unwrap();
    let rest: Value = app
        .get_json_as(&editor, &format!("/api/v1/imports?limit=2&before={next}"))
        .await;
    assert_eq!(rest["data"][0]["id"], done["id"]);
}

#[tokio::test]
async fn confirm_import_mails_each_new_person_once_and_clicking_confirms() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let editor = app.staff_token(Role::Editor).await;
    // Already pending with a fresh confirmation, and already confirmed.
    app.subscribe(json!({"email": "pending@example.org"})).await;
    app.deliver_one("pending@example.org").await;
    // An hour ago: past the resend interval, but the link still works.
    app.age_jobs(60);
    app.add_subscriber("member@example.org", "confirmed", "en", None, json!({}));
    let csv = "email,language,interests\n\
               nueva@example.org,es,news\n\
               new@example.org,,\n\
               pending@example.org,,news\n\
               member@example.org,,news\n";
    let query = [("mode", "confirm"), ("source", "CRM export")];
    let done = import(&app, &editor, &query, csv).await;
    assert_eq!(counts(&done), [4, 4, 2, 1, 1, 0, 0], "{done}");
    assert_eq!(
        problems(&done),
        [(5, Some("interests".into()), "note".into())],
        "a confirmed person gets no interests without evidence of consent"
    );
    assert_eq!(
        app.status_of("nueva@example.org").as_deref(),
        Some("pending")
    );

    app.run_jobs().await;
    assert_eq!(
        app.mails_to("pending@example.org").len(),
        1,
        "no second confirmation"
    );
    assert!(app.mails_to("member@example.org").is_empty());
    let mails = app.mails_to("nueva@example.org");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].content_language.as_deref(), Some("es"));
    assert_eq!(app.mails_to("new@example.org").len(), 1);
    // Clicking the link confirms, as for a signup on the website.
    let link = app.link(&mails[0], "/confirm/");
    let res = app.client.post(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("nueva@example.org").as_deref(),
        Some("confirmed")
    );
    let nueva = subscriber(&app, &editor, "nueva@example.org").await;
    assert_eq!(nueva["interests"], json!(["news"]));
    assert_eq!(nueva["source"], "CRM export");
    assert_eq!(
        subscriber(&app, &editor, "pending@example.org").await["interests"],
        json!(["news"]),
        "a pending person's request grows; their confirmation covers it"
    );

    // The same file again: nothing new, no mail.
    app.run_jobs().await;
    app.age_jobs(60);
    let sent = app.mails().len();
    let events = app.count("consent_events");
    let again = import(&app, &editor, &query, csv).await;
    assert_eq!(counts(&again), [4, 4, 0, 0, 4, 0, 0], "{again}");
    app.run_jobs().await;
    assert_eq!(app.mails().len(), sent);
    assert_eq!(app.count("consent_events"), events);
}

#[tokio::test]
async fn suppressed_erased_unsubscribed_and_bounced_people_are_never_added() {
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    enlace::db::suppressions::insert_suppression(
        &mut app.conn(),
        &enlace::tokens::email_hash("blocked@example.org"),
        enlace::domain::SuppressionReason::HardBounce,
        enlace::db::now(),
    )
    .unwrap();
    let erased = app.add_subscriber("gone@example.org", "confirmed", "en", None, json!({}));
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/subscribers/{erased}")))
        .bearer_auth(&editor)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.add_subscriber(
        "left@example.org",
        "unsubscribed",
        "en",
        Some("Left"),
        json!({}),
    );
    app.add_subscriber("bounced@example.org", "bounced", "en", None, json!({}));
    let csv = "email,name\nBlocked@example.org,B\ngone@example.org,G\nleft@example.org,L\nbounced@example.org,X\nfresh@example.org,F\n";
    for query in [CONSENTED.to_vec(), vec![("mode", "confirm")]] {
        let done = import(&app, &editor, &query, csv).await;
        assert_eq!(counts(&done)[5], 4, "{done}");
        let skipped: Vec<i64> = problems(&done)
            .into_iter()
            .filter(|(_, column, outcome)| {
                outcome == "skipped" && column.as_deref() == Some("email")
            })
            .map(|(line, ..)| line)
            .collect();
        assert_eq!(skipped, [2, 3, 4, 5]);
        let text = done.to_string();
        for address in ["blocked@", "gone@", "left@", "bounced@"] {
            assert!(
                !text.contains(address),
                "the report never repeats an address"
            );
        }
    }
    assert_eq!(app.status_of("gone@example.org"), None);
    assert_eq!(app.status_of("blocked@example.org"), None);
    assert_eq!(
        app.status_of("left@example.org").as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        app.status_of("bounced@example.org").as_deref(),
        Some("bounced")
    );
    assert_eq!(
        app.status_of("fresh@example.org").as_deref(),
        Some("confirmed")
    );
    app.run_jobs().await;
    assert!(
        app.mails().is_empty(),
        "the confirm run mailed nobody it skipped"
    );
}

#[tokio::test]
async fn the_report_names_the_line_and_column_of_each_problem() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_field("age", "number", &[], false);
    let editor = app.staff_token(Role::Editor).await;
    let csv = concat!(
        "E-mail Address,Name,Language,Interests,Age,Notes\n",
        "ok1@example.org,Ana,es,,,\"a note\n",
        "over two lines\"\n",
        "not-an-email,Bob,en,,,\n",
        "ok2@example.org,Carla,fr,,,\n",
        "OK1@example.org,Dup,en,,,\n",
        "ok3@example.org,\"Eve\n",
        "Adams\",en,,,\n",
        "ok4@example.org,Fay,en,\"news;knitting\",abc,\n",
        "ok5@example.org,\"Gil \"\"G\"\" Ruiz\",en,News,41,\"x\"\n",
        "ok6@example.org,Hal,en,hal@elsewhere.org,,\n",
    );
    let done = import(
        &app,
        &editor,
        &[("mode", "confirm"), ("map", "Notes:ignore")],
        csv,
    )
    .await;
    assert_eq!(counts(&done), [8, 8, 2, 0, 0, 1, 5], "{done}");
    assert_eq!(
        problems(&done),
        [
            (4, Some("E-mail Address".into()), "failed".into()),
            (5, Some("Language".into()), "failed".into()),
            (6, Some("E-mail Address".into()), "skipped".into()),
            (7, Some("Name".into()), "failed".into()),
            (9, Some("Age".into()), "failed".into()),
            (9, Some("Interests".into()), "failed".into()),
            (11, Some("Interests".into()), "failed".into()),
        ]
    );
    assert!(
        !done.to_string().contains("elsewhere.org"),
        "a cell's address is never quoted back"
    );
    let entries = done["problems"].as_array().unwrap();
    assert_eq!(entries[0]["problem"], "is not a valid e-mail address");
    assert!(entries[2]["problem"].as_str().unwrap().contains("line 2"));
    assert!(entries[5]["problem"].as_str().unwrap().contains("knitting"));
    assert_eq!(done["problems_total"], 7);
    assert_eq!(
        done["columns"][5],
        json!({"column": "Notes", "field": "ignore"})
    );
    let gil = subscriber(&app, &editor, "ok5@example.org").await;
    assert_eq!(gil["name"], "Gil \"G\" Ruiz");
    assert_eq!(gil["interests"], json!(["news"]));
    assert_eq!(gil["attributes"], json!({"age": 41}));

    // The report pages.
    let id = done["id"].as_str().unwrap();
    let page: Value = app
        .get_json_as(&editor, &format!("/api/v1/imports/{id}?problems_limit=4"))
        .await;
    assert_eq!(page["problems"].as_array().unwrap().len(), 4);
    assert_eq!(page["next_problems_offset"], 4);
    let rest: Value = app
        .get_json_as(
            &editor,
            &format!("/api/v1/imports/{id}?problems_limit=4&problems_offset=4"),
        )
        .await;
    assert_eq!(rest["problems"][0]["line"], 9);
    assert_eq!(rest["problems"].as_array().unwrap().len(), 3);
    assert_eq!(rest["next_problems_offset"], Value::Null);
}

#[tokio::test]
async fn malformed_files_and_options_are_refused_at_once_and_nothing_is_queued() {
    let app = TestApp::builder()
        .settings(|s| s.import_max_bytes = 200)
        .spawn()
        .await;
    app.add_interest("news", true);
    let editor = app.staff_token(Role::Editor).await;
    let good = "email\na@example.org\n";
    let large = "email\n".repeat(40);
    // (content type, query, body, status, a word the answer must hold)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "text/plain",
            vec![("mode", "confirm")],
            good.as_bytes(),
            415,
            "text/csv",
        ),
        (
            "application/x-www-form-urlencoded",
            vec![("mode", "confirm")],
            good.as_bytes(),
            415,
            "text/csv",
        ),
        (
            "text/csv; charset=windows-1252",
            vec![("mode", "confirm")],
            good.as_bytes(),
            415,
            "UTF-8",
        ),
        ("text/csv", vec![("mode", "confirm")], b"", 422, "empty"),
        (
            "text/csv",
            vec![("mode", "confirm")],
            b"email\n",
            422,
            "no rows",
        ),
        (
            "text/csv",
            vec![("mode", "confirm")],
            b"email,name\nJos\xe9@example.org,Jos\xe9\n",
            422,
            "UTF-8",
        ),
        (
            "text/csv",
            vec![("mode", "confirm")],
            b"email,name\na@example.org,A\nb@example.org,B,extra\n",
            422,
            "line 3",
        ),
        (
            "text/csv",
            vec![("mode", "confirm")],
            b"email,name\na@example.org,\"open\nb@example.org,B\n",
            422,
            "never closed",
        ),
        (
            "text/csv",
            vec![("mode", "confirm")],
            b"email,shoe size\na@example.org,9\n",
            422,
            "shoe size",
        ),
        (
            "text/csv",
            vec![("mode", "confirm")],
            b"name\nAna\n",
            422,
            "e-mail",
        ),
        (
            "text/csv",
            vec![("mode", "confirm"), ("map", "name:email")],
            b"email,name\na@example.org,A\n",
            422,
            "both hold email",
        ),
        ("text/csv", vec![], good.as_bytes(), 422, "mode"),
        (
            "text/csv",
            vec![("mode", "subscribe")],
            good.as_bytes(),
            422,
            "consented or confirm",
        ),
        (
            "text/csv",
            vec![("mode", "consented")],
            good.as_bytes(),
            422,
            "consent_note",
        ),
        (
            "text/csv",
            vec![("mode", "confirm"), ("interests", "news,knitting")],
            good.as_bytes(),
            422,
            "knitting",
        ),
        (
            "text/csv",
            vec![("mode", "confirm"), ("map", "email:shoe_size")],
            good.as_bytes(),
            422,
            "shoe_size",
        ),
        (
            "text/csv",
            vec![("mode", "confirm"), ("language", "fr")],
            good.as_bytes(),
            422,
            "language",
        ),
        (
            "text/csv",
            vec![("mode", "confirm"), ("colour", "red")],
            good.as_bytes(),
            422,
            "colour",
        ),
        (
            "text/csv",
            vec![("mode", "confirm")],
            large.as_bytes(),
            413,
            "larger",
        ),
    ];
    for (content_type, query, body, status, needle) in cases {
        let res = app
            .client
            .post(app.url("/api/v1/imports"))
            .query(&query)
            .bearer_auth(&editor)
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            status,
            "{content_type} {query:?} {:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let text = res.text().await.unwrap();
        assert!(text.contains(needle), "{needle} not in {text}");
        assert!(!text.contains("@example.org"), "{text}");
    }
    assert_eq!(app.count("imports"), 0);
    assert_eq!(app.count("jobs"), 0);
    assert_eq!(app.count("subscribers"), 0);
}

#[tokio::test]
async fn only_those_who_may_write_contacts_import() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    let viewer = app.staff_token(Role::Viewer).await;
    let csv = "email\na@example.org\n";
    let query = [("mode", "confirm")];
    let res = app
        .client
        .post(app.url("/api/v1/imports?mode=confirm"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(upload(&app, &viewer, &query, csv).await.status(), 403);
    let key = |scopes: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let created: Value = app
                .client
                .post(app.url("/api/v1/api-keys"))
                .bearer_auth(admin)
                .json(&json!({"name": "script", "scopes": scopes}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            created["key"].as_str().unwrap().to_owned()
        }
    };
    let reader = key(json!(["subscribers:read"])).await;
    let exporter = key(json!(["exports:read"])).await;
    let writer = key(json!(["subscribers:write"])).await;
    assert_eq!(upload(&app, &reader, &query, csv).await.status(), 403);
    assert_eq!(upload(&app, &exporter, &query, csv).await.status(), 403);
    let done = import(&app, &writer, &query, csv).await;
    assert_eq!(done["created_by"]["type"], "api_key");
    let id = done["id"].as_str().unwrap();
    for (token, status) in [
        (&viewer, 200),
        (&reader, 200),
        (&writer, 200),
        (&exporter, 403),
    ] {
        let res = app.get_as(token, &format!("/api/v1/imports/{id}")).await;
        assert_eq!(res.status(), status);
    }
    let missing = app
        .get_as(
            &viewer,
            &format!("/api/v1/imports/{}", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(upload(&app, &admin, &query, csv).await.status(), 202);
}

/// Imports the next part of an import directly, as a worker's run would.
fn import_one_part(app: &TestApp, id: &str) -> enlace::imports::Step {
    let templates = enlace::email::Templates::new("Enlace", None).unwrap();
    let policy = enlace::signup::SignupPolicy {
        confirm_ttl: chrono::Duration::days(7),
    };
    let ctx = enlace::imports::run::PartContext {
        templates: &templates,
        policy: &policy,
        now: enlace::db::now(),
    };
    enlace::imports::run::next_part(&mut app.conn(), &ctx, id).unwrap()
}

#[tokio::test]
async fn staff_can_stop_an_import_part_way() {
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    let viewer = app.staff_token(Role::Viewer).await;
    let rows = enlace::imports::plan::PART_ROWS + 5;
    let mut csv = String::from("email\n");
    for i in 0..rows {
        csv.push_str(&format!("person{i}@example.org\n"));
    }
    let queued: Value = upload(&app, &editor, &[("mode", "confirm")], &csv)
        .await
        .json()
        .await
        .unwrap();
    let id = queued["id"].as_str().unwrap().to_owned();
    assert_eq!(
        import_one_part(&app, &id),
        enlace::imports::Step::More { mail_queued: true }
    );
    let cancel = |token: String| {
        let app = &app;
        let path = format!("/api/v1/imports/{id}/cancel");
        async move {
            app.client
                .post(app.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(cancel(viewer.clone()).await.status(), 403);
    let res = cancel(editor.clone()).await;
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_string());
    assert_eq!(app.count("import_parts"), 0, "the rest of the file is gone");
    app.run_tasks().await;
    let after = report(&app, &editor, &id).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(
        after["counts"]["created"],
        enlace::imports::plan::PART_ROWS,
        "rows already imported stay; no more are"
    );
    assert_eq!(
        app.count("subscribers"),
        enlace::imports::plan::PART_ROWS as i64
    );
    assert_eq!(cancel(editor.clone()).await.status(), 409);
    assert_eq!(app.count("audit_log WHERE action = 'import.cancel'"), 1);
    let missing = app
        .client
        .post(app.url(&format!("/api/v1/imports/{}/cancel", uuid::Uuid::new_v4())))
        .bearer_auth(&editor)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn an_import_cut_short_by_a_crash_resumes_where_it_stopped() {
    use enlace::db::jobs::{claim_jobs, Family};
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    let rows = enlace::imports::plan::PART_ROWS * 2 + 10;
    let mut csv = String::from("email,name\n");
    for i in 0..rows {
        csv.push_str(&format!("person{i}@example.org,Person {i}\n"));
    }
    let res = upload(&app, &editor, CONSENTED, &csv).await;
    assert_eq!(res.status(), 202);
    let queued: Value = res.json().await.unwrap();
    let id = queued["id"].as_str().unwrap().to_owned();
    assert_eq!(queued["counts"]["rows"], rows);
    assert_eq!(app.count("import_parts"), 3);

    // A worker claims the job, imports one part, and dies before recording anything else.
    let now = enlace::db::now();
    let mut conn = app.conn();
    let claimed = enlace::db::write_transaction(&mut conn, |c| {
        claim_jobs(
            c,
            Family::Task,
            now,
            now + chrono::Duration::minutes(15),
            10,
        )
    })
    .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(conn);
    assert_eq!(
        import_one_part(&app, &id),
        enlace::imports::Step::More { mail_queued: false }
    );
    let halfway = report(&app, &editor, &id).await;
    assert_eq!(halfway["status"], "running");
    assert_eq!(
        halfway["counts"]["processed"],
        enlace::imports::plan::PART_ROWS
    );
    assert_eq!(app.count("import_parts"), 2, "the imported part is gone");

    // Its lease holds the job for a while; then another worker takes over and finishes.
    assert_eq!(app.run_tasks().await, 0);
    assert!(app.run_tasks_after(chrono::Duration::minutes(16)).await > 0);
    let done = report(&app, &editor, &id).await;
    assert_eq!(done["status"], "done");
    assert_eq!(
        counts(&done),
        [rows as i64, rows as i64, rows as i64, 0, 0, 0, 0]
    );
    assert_eq!(app.count("subscribers"), rows as i64);
    assert_eq!(
        app.count("consent_events"),
        rows as i64,
        "no part imported twice"
    );
    assert_eq!(app.count("import_parts"), 0);
}

#[tokio::test]
async fn integrations_hear_of_imported_people_once() {
    let app = TestApp::builder()
        .settings(|s| s.webhook_allow_private = true)
        .spawn()
        .await;
    let admin = app.staff_token(Role::Admin).await;
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/crm", "events": ["subscriber.created", "subscriber.confirmed"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // Eva signed up on the website but never clicked the link; the sheet is her consent.
    app.add_subscriber("eva@example.org", "pending", "es", None, json!({}));
    let csv = "email,name\nrosa@example.org,Rosa\nluis@example.org,Luis\neva@example.org,Eva\n";
    import(&app, &admin, CONSENTED, csv).await;
    let announced =
        |event: &str| app.count(&format!("webhook_messages WHERE event_type = '{event}'"));
    assert_eq!(announced("subscriber.created"), 2);
    assert_eq!(announced("subscriber.confirmed"), 3);
    // Running the same file again changes nothing, so nothing is announced.
    import(&app, &admin, CONSENTED, csv).await;
    assert_eq!(announced("subscriber.created"), 2);
    assert_eq!(announced("subscriber.confirmed"), 3);
}

#[tokio::test]
async fn an_erasure_takes_the_person_out_of_an_import_not_yet_run() {
    // Ana is on the list and on a sheet being imported; she is erased before the import runs.
    // The stored file no longer holds her (address, name, note), the import passes her lines
    // over, and the other lines keep their numbers in the report.
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    let admin = app.staff_token(Role::Admin).await;
    app.add_subscriber(
        "ana.garcia@example.org",
        "confirmed",
        "es",
        Some("Ana García"),
        json!({}),
    );
    let csv = concat!(
        "email,name,language,notes\n",
        "ok1@example.org,Bea,es,\n",
        "Ana.Garcia@EXAMPLE.org,\"Ana\n",
        "García\",es,\"Vive en Tucson\"\n",
        "not-an-email,Bob,en,\n",
        "ana.garcia@example.org,Ana G.,es,otra vez\n",
        "ok2@example.org,Carla,fr,\n",
    );
    let res = upload(
        &app,
        &editor,
        &[("mode", "confirm"), ("map", "notes:ignore")],
        csv,
    )
    .await;
    assert_eq!(res.status(), 202);
    let queued: Value = res.json().await.unwrap();
    let id = queued["id"].as_str().unwrap().to_owned();

    let ana = app.conn_subscriber_id("ana.garcia@example.org");
    assert_eq!(app.erase(&admin, &ana).await.status(), 204);
    for trace in ["%ana%", "%Ana%", "%Garc%", "%Tucson%", "%G.%"] {
        assert_eq!(
            app.count(&format!("import_parts WHERE body LIKE '{trace}'")),
            0,
            "the stored file still holds {trace}"
        );
    }

    app.run_tasks().await;
    let done = report(&app, &editor, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        problems(&done),
        [
            (5, Some("email".into()), "failed".into()),
            (7, Some("language".into()), "failed".into()),
        ],
        "{done}"
    );
    assert!(!done.to_string().contains("Ana"), "{done}");
    assert_eq!(
        app.status_of("ana.garcia@example.org"),
        None,
        "not added back"
    );
    assert_eq!(app.status_of("ok1@example.org").as_deref(), Some("pending"));
}
