//! What is left on disk: the data folder and every file in it are the service user's alone
//! (0700 and 0600) whatever the umask, and an erasure leaves no byte of the person in it (the
//! database, its WAL and shared-memory files, the outbox) nor in any live row.

use std::path::{Path, PathBuf};

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// An application whose data folder does not exist yet (Enlace creates it): the SQLite database
/// in it, the secret key generated into it, and mail written to its outbox (no SMTP).
async fn app_on_a_fresh_data_folder() -> (TestApp, PathBuf) {
    let mut data = PathBuf::new();
    let app = TestApp::builder()
        .settings(|s| {
            data = s.data_dir.join("data");
            if s.database_url.starts_with("sqlite://") {
                s.database_url = format!("sqlite://{}", data.join("enlace.db").display());
            }
            s.data_dir = data.clone();
            s.secret_key = None;
            s.smtp_url = None;
            s.postal_address = Some("Calle Mayor 1, Ourense".into());
        })
        .real_mail()
        .spawn()
        .await;
    (app, data)
}

fn is_sqlite(app: &TestApp) -> bool {
    app.database_url.starts_with("sqlite://")
}

/// Every file under `dir`, folders included.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

#[cfg(target_os = "linux")]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_data_folder_and_its_files_are_private_whatever_the_umask() {
    for umask in [0o022, 0o000] {
        // The umask is the process's: the usual 022, then the loosest there is.
        let before = unsafe { libc::umask(umask) };
        let (app, data) = app_on_a_fresh_data_folder().await;
        unsafe { libc::umask(before) };
        let res = app
            .subscribe(json!({"email": "ana@example.org", "name": "Ana"}))
            .await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        // The signup is written by a background writer; the confirmation mail follows it.
        for _ in 0..100 {
            if app.run_jobs().await > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut files = Vec::new();
        walk(&data, &mut files);
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&data).unwrap().display().to_string())
            .collect();
        assert!(names.iter().any(|n| n == "secret.key"), "{names:?}");
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("outbox/") && n.ends_with(".eml")),
            "a message in the outbox: {names:?}"
        );
        if is_sqlite(&app) {
            for name in ["enlace.db", "enlace.db-wal", "enlace.db-shm"] {
                assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
            }
        }
        assert_eq!(mode(&data), 0o700, "umask {umask:03o}: the data folder");
        for file in &files {
            let expected = if file.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(
                mode(file),
                expected,
                "umask {umask:03o}: {}",
                file.display()
            );
        }
    }
}

/// Values of one person distinctive enough that finding any of them means they were left.
struct Person {
    email: &'static str,
    name: &'static str,
    city: &'static str,
    note: &'static str,
}

const PERSON: Person = Person {
    email: "xq7.zorrilla-erasure@quetzal-ejemplo.org",
    name: "Ximena Zorrilla-Quetzalcoatl",
    city: "Villaquetzalera",
    note: "quetzal-attr-99317",
};

impl Person {
    /// Each value, and the forms it was given in (a diagnostic with the address URL-encoded).
    fn traces(&self) -> Vec<String> {
        vec![
            self.email.to_owned(),
            self.email.replace('@', "%40"),
            self.email.split('@').next().unwrap().to_owned(),
            self.name.to_owned(),
            "Zorrilla-Quetzalcoatl".to_owned(),
            self.city.to_owned(),
            self.note.to_owned(),
        ]
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every live row of every table on PostgreSQL, and the planner's statistics, that mention
/// `trace`.
fn postgres_rows_with(app: &TestApp, trace: &str) -> Vec<String> {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = app.conn();
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT table_name AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .load(&mut *conn)
    .unwrap();
    assert!(tables.len() > 20, "every table is looked at");
    let like = format!("%{}%", trace.replace('%', "\\%"));
    let mut found = Vec::new();
    for table in tables {
        let n: Count = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM \"{}\" t WHERE t::text ILIKE $1",
            table.name
        ))
        .bind::<Text, _>(&like)
        .get_result(&mut *conn)
        .unwrap();
        if n.n > 0 {
            found.push(table.name);
        }
    }
    let n: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_statistic WHERE concat(stavalues1::text, \
         stavalues2::text, stavalues3::text, stavalues4::text, stavalues5::text) ILIKE $1",
    )
    .bind::<Text, _>(&like)
    .get_result(&mut *conn)
    .unwrap();
    if n.n > 0 {
        found.push("pg_statistic".into());
    }
    found
}

#[tokio::test]
async fn an_erasure_leaves_no_byte_of_the_person_in_the_data_folder_or_any_row() {
    let (app, data) = app_on_a_fresh_data_folder().await;
    let admin = app.staff_token(Role::Admin).await;
    app.add_field("city", "text", &[], false);
    app.add_field("note", "text", &[], false);
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/subscribers",
            json!({
                "email": PERSON.email, "name": PERSON.name, "language": "es",
                "attributes": {"city": PERSON.city, "note": PERSON.note},
                "consent": {"mode": "confirmation"},
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Someone else, who stays.
    app.add_subscriber(
        "stays@example.org",
        "confirmed",
        "es",
        Some("Stays"),
        json!({"city": "Lugo"}),
    );
    assert!(app.run_jobs().await > 0, "the confirmation mail");
    // Confirmed, their details changed a few times (old versions of the row are written too).
    app.set_status(&id, "confirmed");
    for city in ["Lugo", PERSON.city] {
        let res = app
            .send_as(
                &admin,
                "PATCH",
                &format!("/api/v1/subscribers/{id}"),
                json!({"attributes": {"city": city}}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    // A newsletter that quotes their name and attributes, written to the outbox.
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/newsletters",
            json!({
                "subject": "Hola {{ name }}",
                "html": "<p>{{ name }} de {{ attributes.city }} ({{ attributes.note }})</p>",
                "filter": {"language": "es"},
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let newsletter = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .send_as(
            &admin,
            "POST",
            &format!("/api/v1/newsletters/{newsletter}/send"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert!(app.run_sends().await > 0);
    // A bounce whose diagnostic quotes the name and the URL-encoded address.
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/events",
            json!({
                "id": "bounce-1", "type": "soft_bounce", "email": PERSON.email,
                "detail": format!(
                    "452 4.2.2 mailbox of {} full; see https://mx.example/q?rcpt={}",
                    PERSON.name,
                    PERSON.email.replace('@', "%40"),
                ),
            }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let outbox = data.join("outbox");
    let mailed = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(
        mailed, 3,
        "the confirmation, the newsletter, and the other person's newsletter"
    );
    let sqlite = is_sqlite(&app);
    if !sqlite {
        // The planner's samples of the tables, as autovacuum would take them.
        app.sql("ANALYZE");
    }
    // The test sees what an attacker would before the erasure: the traces are there.
    let bytes_in_folder = |trace: &str| -> Vec<String> {
        let mut files = Vec::new();
        walk(&data, &mut files);
        files
            .iter()
            .filter(|f| f.is_file())
            .filter(|f| find(&std::fs::read(f).unwrap(), trace.as_bytes()))
            .map(|f| f.strip_prefix(&data).unwrap().display().to_string())
            .collect()
    };
    if sqlite {
        assert!(!bytes_in_folder(PERSON.city).is_empty());
    } else {
        assert!(!postgres_rows_with(&app, PERSON.city).is_empty());
    }

    let res = app
        .send_as(
            &admin,
            "DELETE",
            &format!("/api/v1/subscribers/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(res.status(), 204);

    for trace in PERSON.traces() {
        let found = bytes_in_folder(&trace);
        assert!(found.is_empty(), "{trace:?} is still in {found:?}");
        if !sqlite {
            let rows = postgres_rows_with(&app, &trace);
            assert!(rows.is_empty(), "{trace:?} is still in {rows:?}");
        }
    }
    // Only the person's messages went; the report stays, without its text.
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
    assert_eq!(
        app.count("mail_events WHERE id LIKE '%bounce-1' AND detail IS NULL"),
        1
    );
    // The other person is untouched, on disk as in the database.
    assert_eq!(
        app.status_of("stays@example.org").as_deref(),
        Some("confirmed")
    );
    if sqlite {
        assert!(!bytes_in_folder("stays@example.org").is_empty());
    }
}
