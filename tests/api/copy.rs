//! `enlace copy --to postgres://…`: a list built through the API on SQLite, copied into an empty
//! PostgreSQL database, checks out table by table, and Enlace started on the copy serves the same
//! people, consent history, staff and keys, and numbers new changes after the copied ones. An
//! interrupted copy goes on to the same result, not from a source that changed meanwhile; a
//! target holding a list, and every wrong URL, is refused and changes nothing.
//!
//! The copies need PostgreSQL: they run when ENLACE_TEST_POSTGRES_URL is set (the refusals of
//! wrong URLs run always).

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{database_url_with_name, TestApp};

const POSTAL: &str = "Calle 1, Tucson";

/// The same statement on both databases.
const LATER_TABLE: &str = "CREATE TABLE later_results (hour TIMESTAMP NOT NULL, \
    n BIGINT NOT NULL, counted BOOLEAN NOT NULL, note TEXT, PRIMARY KEY (hour, n))";

/// An empty PostgreSQL database of the test's own, dropped at the end.
struct Target {
    admin: String,
    name: String,
    url: String,
}

impl Target {
    fn new() -> Option<Self> {
        let admin = std::env::var("ENLACE_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let name = format!("enlace_copy_{}", uuid::Uuid::new_v4().simple());
        PgConnection::establish(&admin)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        let url = database_url_with_name(&admin, &name);
        Some(Self { admin, name, url })
    }

    fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    fn count(&self, table_where: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table_where}"))
            .get_result::<Count>(&mut self.conn())
            .unwrap()
            .n
    }

    /// (table, rows copied) of the progress record.
    fn progress(&self) -> Vec<(String, i64)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table_name: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            copied_rows: i64,
        }
        diesel::sql_query("SELECT table_name, copied_rows FROM enlace_copy_progress")
            .load::<Row>(&mut self.conn())
            .unwrap()
            .into_iter()
            .map(|r| (r.table_name, r.copied_rows))
            .collect()
    }

    /// Whole batches only: each table holds the rows the progress record says were copied.
    fn check_whole_batches(&self) {
        let progress = self.progress();
        assert!(progress.iter().any(|(_, copied)| *copied > 0));
        for (table, copied) in progress {
            if copied > 0 {
                assert_eq!(self.count(&table), copied, "{table}");
            }
        }
    }

    fn sql(&self, statement: &str) {
        self.conn().batch_execute(statement).unwrap();
    }

    fn has_progress(&self) -> bool {
        self.count("pg_tables WHERE tablename = 'enlace_copy_progress'") == 1
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// An application on SQLite whatever the suite runs on: the list to copy.
async fn sqlite_app() -> TestApp {
    TestApp::builder()
        .settings(|s| {
            s.database_url = format!("sqlite://{}", s.data_dir.join("enlace.db").display());
            s.webhook_allow_private = true;
            s.postal_address = Some(POSTAL.into());
        })
        .spawn()
        .await
}

/// Runs the enlace binary on the database `database_url` names: (succeeded, stdout, stderr).
fn enlace(args: &[&str], database_url: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enlace"))
        .args(args)
        .env("ENLACE_DATABASE_URL", database_url)
        .env("ENLACE_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The printed table: table name → (SQLite rows, PostgreSQL rows, sha256, result).
fn printed(stdout: &str) -> BTreeMap<String, (i64, i64, String, String)> {
    stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("every table"))
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert!(cells.len() >= 5, "a line of the table: {line}");
            (
                cells[0].to_owned(),
                (
                    cells[1].parse().unwrap(),
                    cells[2].parse().unwrap(),
                    cells[3].to_owned(),
                    cells[4..].join(" "),
                ),
            )
        })
        .collect()
}

fn copy_into(app: &TestApp, target: &Target, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["copy", "--to", &target.url];
    args.extend_from_slice(extra);
    enlace(&args, &app.database_url)
}

/// Every table of the SQLite database but the record of its migrations.
fn sqlite_tables(app: &TestApp) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = app.conn();
    diesel::sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load::<Name>(&mut *conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

struct Seeded {
    admin_email: String,
    key: String,
    newsletter: String,
    import: String,
}

/// A list as people and staff build it: interests, fields, signups (most confirmed), an
/// unsubscribe, a hard bounce, an erasure, an import, a webhook endpoint, an API key, a segment
/// and a newsletter sent.
async fn seed(app: &TestApp) -> Seeded {
    let admin = app.staff_token(Role::Admin).await;
    let send = |method: &'static str, path: String, body: Value| {
        let admin = admin.clone();
        async move {
            let res = app.send_as(&admin, method, &path, body).await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, key) = send(
        "POST",
        "/api/v1/api-keys".into(),
        json!({"name": "crm", "scopes": ["subscribers:read", "exports:read"]}),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    for (slug, en, es) in [
        ("news", "News", "Noticias"),
        ("housing", "Housing", "Vivienda"),
    ] {
        let body = json!({"slug": slug, "name": {"en": en, "es": es}});
        assert_eq!(send("POST", "/api/v1/interests".into(), body).await.0, 201);
    }
    let fields = [
        json!({"key": "city", "type": "text", "public": true}),
        json!({"key": "shirt", "type": "one_of", "allowed_values": ["S", "M", "L"], "public": true}),
    ];
    for field in fields {
        assert_eq!(send("POST", "/api/v1/fields".into(), field).await.0, 201);
    }
    let endpoint = json!({"url": "http://127.0.0.1:9/crm", "events": ["subscriber.created", "subscriber.confirmed"]});
    assert_eq!(
        send("POST", "/api/v1/webhooks".into(), endpoint).await.0,
        201
    );

    let people = [
        ("ana@example.org", "Ana Ruiz", "es", true),
        ("luis@example.org", "Luis Paz", "es", true),
        ("rosa@example.org", "Rosa Díaz", "en", true),
        ("marta@example.org", "Marta Gil", "en", true),
        ("olga@example.org", "Olga Vega", "es", false),
    ];
    let mut welcomes = BTreeMap::new();
    for (email, name, language, confirm) in people {
        let body = json!({"email": email, "name": name, "language": language,
            "interests": ["news", "housing"], "attributes": {"city": "Tucson", "shirt": "M"}});
        assert_eq!(app.subscribe(body).await.status(), 202);
        let mail = app.deliver_one(email).await;
        if confirm {
            let res = app
                .client
                .post(app.url(&app.link(&mail, "/confirm/")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            welcomes.insert(email, app.deliver_one(email).await);
        }
    }
    // Rosa unsubscribes with one click.
    let header = welcomes["rosa@example.org"]
        .list_unsubscribe
        .clone()
        .unwrap();
    let path = header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches(&app.address)
        .to_owned();
    let res = app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(res.status(), 200);
    // Marta's mailbox is gone; Luis asks to be forgotten.
    let bounce = json!({"id": "b-1", "type": "hard_bounce", "email": "marta@example.org"});
    assert_eq!(send("POST", "/api/v1/events".into(), bounce).await.0, 200);
    let luis = app.conn_subscriber_id("luis@example.org");
    assert_eq!(app.erase(&admin, &luis).await.status(), 204);

    let query = [
        ("mode", "consented"),
        ("source", "Tucson rally sign-up sheet"),
        ("consent_note", "Ticked \"send me news\""),
        ("interests", "news"),
    ];
    let csv = "email,name,city\nuno@example.org,Uno,Tucson\ndos@example.org,Dos,Phoenix\nnot an address,Tres,\n";
    let res = crate::imports::upload(app, &admin, &query, csv).await;
    assert_eq!(res.status(), 202);
    let import: Value = res.json().await.unwrap();
    app.run_tasks().await;

    let segment = json!({"name": "Tucson", "filter": {"language": "es"}});
    assert_eq!(
        send("POST", "/api/v1/segments".into(), segment).await.0,
        201
    );
    let everyone = json!({"not": {"email_domain": "nowhere.invalid"}});
    let draft = json!({"subject": "Hola", "html": "<p>Hola {{ name }}</p>", "filter": everyone});
    let (status, newsletter) = send("POST", "/api/v1/newsletters".into(), draft).await;
    assert_eq!(status, 201, "{newsletter}");
    let newsletter = newsletter["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url(&format!("/api/v1/newsletters/{newsletter}/send")))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "copy")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    app.run_sends().await;
    // The webhook endpoint is unreachable: its deliveries are tried and wait for a retry.
    app.run_tasks().await;
    assert!(app.count("deliveries WHERE state = 'sent'") >= 3);
    assert!(app.count("webhook_attempts") > 0);
    Seeded {
        admin_email: "admin@staff.example.org".into(),
        key: key["key"].as_str().unwrap().to_owned(),
        newsletter,
        import: import["id"].as_str().unwrap().to_owned(),
    }
}

/// The whole subscriber feed (people and tombstones) and where it ends.
async fn feed(app: &TestApp, token: &str) -> (Vec<Value>, String) {
    let body: Value = app
        .get_json_as(token, "/api/v1/subscribers?limit=1000")
        .await;
    assert_eq!(body["has_more"], false);
    (
        body["data"].as_array().unwrap().clone(),
        body["next_cursor"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_list_copied_into_postgresql_checks_out_and_enlace_serves_it_there() {
    let Some(target) = Target::new() else {
        return;
    };
    let app = sqlite_app().await;
    let seeded = seed(&app).await;
    // A database `enlace migrate` has prepared is still empty.
    let (ok, _, err) = enlace(&["migrate"], &target.url);
    assert!(ok, "{err}");

    let (ok, out, err) = copy_into(&app, &target, &[]);
    assert!(ok, "{err}\n{out}");
    assert!(
        !err.contains("@example.org"),
        "no address in the progress lines: {err}"
    );
    assert!(
        err.contains("Enlace is serving"),
        "a warning that later changes are not copied: {err}"
    );
    let table = printed(&out);
    assert_eq!(
        table.keys().cloned().collect::<Vec<_>>(),
        sqlite_tables(&app),
        "every table is copied"
    );
    for (name, (sqlite, postgres, sha256, result)) in &table {
        assert_eq!(result, "OK", "{name}");
        assert_eq!(sqlite, postgres, "{name}");
        assert_eq!(*sqlite, app.count(name), "{name}: the rows SQLite holds");
        assert_eq!(
            *postgres,
            target.count(name),
            "{name}: the rows PostgreSQL holds"
        );
        assert_eq!(sha256.len(), 64);
    }
    for name in [
        "subscribers",
        "consent_events",
        "confirmation_tokens",
        "subscriber_interests",
        "suppressions",
        "tombstones",
        "deliveries",
        "jobs",
        "imports",
        "import_problems",
        "webhook_endpoints",
        "webhook_messages",
        "webhook_attempts",
        "mail_events",
        "staff",
        "api_keys",
        "audit_log",
        "segments",
        "newsletters",
        "custom_fields",
        "interests",
    ] {
        assert!(table[name].0 > 0, "{name} has rows to copy");
    }
    assert!(!target.has_progress(), "the progress record is gone");

    // Enlace on the copy.
    let url = target.url.clone();
    let copy = TestApp::builder()
        .settings(move |s| {
            s.database_url = url;
            s.webhook_allow_private = true;
            s.postal_address = Some(POSTAL.into());
        })
        .spawn()
        .await;
    let before = app.sign_in(&seeded.admin_email).await;
    let after = copy.sign_in(&seeded.admin_email).await;
    let (people, cursor) = feed(&app, &before).await;
    assert_eq!(
        feed(&copy, &after).await,
        (people.clone(), cursor.clone()),
        "the same people, tombstones and change numbers"
    );
    assert!(people.len() >= 6, "{people:?}");
    for person in people.iter().filter(|p| p["erased"] != true) {
        let path = format!(
            "/api/v1/subscribers/{}/data",
            person["id"].as_str().unwrap()
        );
        let held = app.get_json_as(&before, &path).await;
        assert!(held["consent"].as_array().is_some_and(|c| !c.is_empty()));
        assert_eq!(
            copy.get_json_as(&after, &path).await,
            held,
            "profile, consent history, mails and deliveries"
        );
    }
    for path in [
        format!("/api/v1/newsletters/{}", seeded.newsletter),
        format!("/api/v1/imports/{}?problems_limit=100", seeded.import),
        "/api/v1/webhooks".to_owned(),
        "/api/v1/interests".to_owned(),
        "/api/v1/fields".to_owned(),
        "/api/v1/segments".to_owned(),
        "/api/v1/api-keys".to_owned(),
    ] {
        assert_eq!(
            copy.get_json_as(&after, &path).await,
            app.get_json_as(&before, &path).await,
            "{path}"
        );
    }
    assert_eq!(
        copy.get_as(&seeded.key, "/api/v1/subscribers")
            .await
            .status(),
        200,
        "the API key works on the copy"
    );

    // Suppressions hold: the bounced address signs up again and gets no mail.
    let again = json!({"email": "marta@example.org"});
    assert_eq!(copy.subscribe(again).await.status(), 202);
    copy.run_jobs().await;
    assert!(copy.mails_to("marta@example.org").is_empty());
    // A newcomer gets a fresh id and a change number after every copied one, so a sync client
    // polling from its last cursor sees exactly them.
    let newcomer = json!({"email": "nuevo@example.org", "interests": ["news"]});
    assert_eq!(copy.subscribe(newcomer).await.status(), 202);
    copy.deliver_one("nuevo@example.org").await;
    let news: Value = copy
        .get_json_as(&after, &format!("/api/v1/subscribers?cursor={cursor}"))
        .await;
    let news = news["data"].as_array().unwrap();
    assert_eq!(news.len(), 1, "{news:?}");
    assert_eq!(news[0]["email"], "nuevo@example.org");
    assert!(people.iter().all(|p| p["id"] != news[0]["id"]));
}

#[tokio::test]
async fn an_interrupted_copy_goes_on_to_the_same_result_but_not_from_a_changed_list() {
    let Some(resumed) = Target::new() else {
        return;
    };
    let app = sqlite_app().await;
    let admin = app.staff_token(Role::Admin).await;
    app.add_interest("news", true);
    for i in 0..30 {
        let body = json!({"email": format!("p{i}@example.org"), "interests": ["news"]});
        assert_eq!(app.subscribe(body).await.status(), 202);
    }
    app.run_jobs().await;
    // A table a later migration might add, keyed by a time: copied like the others.
    app.sql(LATER_TABLE);
    for (i, at) in [
        "2026-12-06 10:00:00",
        "2026-12-06 10:00:00.5",
        "2026-12-06 10:00:00.25",
        "2026-12-06 09:59:59.999999",
        "2026-12-06 10:00:01",
        "2026-12-07 00:00:00.000001",
    ]
    .iter()
    .enumerate()
    {
        for n in 0..3 {
            app.sql(&format!(
                "INSERT INTO later_results (hour, n, counted, note) VALUES ('{at}', {n}, {}, {})",
                i % 2,
                if n == 1 {
                    "NULL".to_owned()
                } else {
                    format!("'{i}-{n}'")
                }
            ));
        }
    }
    let prepare = |target: &Target| target.sql(LATER_TABLE);
    prepare(&resumed);

    // Stopped after three batches of four rows each, again and again, until done.
    let small = ["--batch-rows", "4", "--stop-after-batches", "3"];
    let (ok, _, err) = copy_into(&app, &resumed, &small);
    assert!(!ok && err.contains("stopped after 3 batches"), "{err}");
    assert!(resumed.has_progress());
    resumed.check_whole_batches();
    let mut runs = 1;
    let resumed_out = loop {
        let (ok, out, err) = copy_into(&app, &resumed, &small);
        runs += 1;
        if ok {
            break out;
        }
        assert!(err.contains("stopped after 3 batches"), "{err}");
        resumed.check_whole_batches();
        assert!(runs < 200, "the copy makes progress");
    };
    assert!(runs > 10, "{runs} runs");
    assert!(!resumed.has_progress());

    // The same as a copy made in one go.
    let whole = Target::new().unwrap();
    prepare(&whole);
    let (ok, whole_out, err) = copy_into(&app, &whole, &[]);
    assert!(ok, "{err}");
    assert_eq!(printed(&resumed_out), printed(&whole_out));
    assert!(printed(&whole_out).values().all(|t| t.3 == "OK"));
    assert_eq!(resumed.count("subscribers"), 30);
    assert_eq!(printed(&resumed_out)["later_results"].0, 18);
    assert_eq!(resumed.count("later_results WHERE counted"), 9);

    // A list that changed after the copy began: its partial copy is not completed.
    let changed = Target::new().unwrap();
    prepare(&changed);
    let (ok, _, err) = copy_into(&app, &changed, &small);
    assert!(!ok && err.contains("stopped after"), "{err}");
    let late = json!({"email": "late@example.org"});
    assert_eq!(app.subscribe(late).await.status(), 202);
    let copied = changed.count("subscribers");
    let (ok, out, err) = copy_into(&app, &changed, &small);
    assert!(!ok, "{out}");
    assert!(
        err.contains("has changed since the interrupted copy began"),
        "{err}"
    );
    assert!(err.contains("drop the PostgreSQL database"), "{err}");
    assert_eq!(
        changed.count("subscribers"),
        copied,
        "nothing more was copied"
    );
    assert!(changed.has_progress());
    let _ = admin;
}

#[tokio::test]
async fn a_target_holding_a_list_and_wrong_urls_are_refused() {
    let app = sqlite_app().await;
    assert_eq!(
        app.subscribe(json!({"email": "ana@example.org"}))
            .await
            .status(),
        202
    );
    let refused = |args: &[&str], url: &str| {
        let (ok, out, err) = enlace(args, url);
        assert!(!ok, "{out}");
        err
    };
    let err = refused(
        &["copy", "--to", "sqlite:///tmp/elsewhere.db"],
        &app.database_url,
    );
    assert!(err.contains("--to must be a PostgreSQL URL"), "{err}");
    let err = refused(
        &["copy", "--to", "postgres://enlace:hunter2@127.0.0.1:1/none"],
        &app.database_url,
    );
    assert!(
        err.contains("cannot connect to PostgreSQL at 127.0.0.1:1/none"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "never the password: {err}");
    let err = refused(
        &["copy", "--to", "postgres://127.0.0.1:1/none"],
        "postgres://127.0.0.1:1/source",
    );
    assert!(
        err.contains("ENLACE_DATABASE_URL names a PostgreSQL database"),
        "{err}"
    );
    let missing = std::env::temp_dir().join(format!("enlace-missing-{}.db", uuid::Uuid::new_v4()));
    let err = refused(
        &["copy", "--to", "postgres://127.0.0.1:1/none"],
        &format!("sqlite://{}", missing.display()),
    );
    assert!(err.contains("there is no SQLite database"), "{err}");
    assert!(!missing.exists(), "no database is made");

    let Some(target) = Target::new() else {
        return;
    };
    // A database Enlace has served.
    let url = target.url.clone();
    let served = TestApp::builder()
        .settings(move |s| s.database_url = url)
        .spawn()
        .await;
    assert_eq!(
        served
            .subscribe(json!({"email": "luis@example.org"}))
            .await
            .status(),
        202
    );
    let err = refused(&["copy", "--to", &target.url], &app.database_url);
    assert!(err.contains("is not empty"), "{err}");
    assert!(err.contains("subscribers"), "{err}");
    assert!(!target.has_progress(), "nothing was changed");
    assert_eq!(target.count("subscribers"), 1);
    assert_eq!(target.count("consent_events"), 1);

    // A list copied once is not copied over again.
    let fresh = Target::new().unwrap();
    let (ok, _, err) = enlace(&["copy", "--to", &fresh.url], &app.database_url);
    assert!(ok, "{err}");
    let err = refused(&["copy", "--to", &fresh.url], &app.database_url);
    assert!(err.contains("is not empty"), "{err}");
    drop(served);
}
