//! Backups of the SQLite database (`enlace backup`, `enlace restore`): a copy taken under signup
//! load holds whole signups only, a restore gives back exactly the database that was copied, and
//! a restore never replaces a database silently or one that Enlace is serving.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use enlace::backup::{backup, restore, sums_of, TableSum};
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

fn rows(sums: &[TableSum], table: &str) -> i64 {
    sums.iter()
        .find(|s| s.table == table)
        .unwrap_or_else(|| panic!("no table {table}"))
        .rows
}

/// An application on SQLite (`None` on PostgreSQL, which is backed up with pg_dump), its
/// database file, and an empty folder of the test's own for copies.
async fn sqlite_app(purpose: &str) -> Option<(TestApp, PathBuf, PathBuf)> {
    let app = spawn_app().await;
    let database = PathBuf::from(app.database_url.strip_prefix("sqlite://")?);
    let dir = std::env::temp_dir()
        .join("enlace-tests")
        .join(format!("{purpose}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    Some((app, database, dir))
}

#[tokio::test]
async fn a_backup_under_signup_load_holds_whole_signups_and_restores_to_an_identical_database() {
    let Some((app, database, dir)) = sqlite_app("backups").await else {
        return; // PostgreSQL is backed up with pg_dump.
    };
    app.add_interest("news", true);

    // Four clients sign people up, without pause, for the whole of the first copy.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|client| {
            let (http, url, stop) = (app.client.clone(), app.url("/api/v1/subscribe"), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let res = http
                        .post(&url)
                        .json(&json!({"email": format!("c{client}-{n}@example.org"), "interests": ["news"]}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 202);
                    n += 1;
                }
                n
            })
        })
        .collect();
    while app.count("subscribers") < 40 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let during = dir.join("during.db");
    let (source, to) = (database.clone(), during.clone());
    let sums = tokio::task::spawn_blocking(move || backup(&source, &to))
        .await
        .unwrap()
        .unwrap();
    let before_stop = app.count("subscribers");
    stop.store(true, Ordering::Relaxed);
    let mut signed_up = 0;
    for client in load {
        signed_up += client.await.unwrap();
    }
    assert_eq!(app.count("subscribers"), signed_up);

    // Whole signups only: each person in the copy with their consent record, their
    // confirmation token and their confirmation mail.
    let people = rows(&sums, "subscribers");
    assert!(
        people >= 40 && people <= before_stop,
        "{people} of {before_stop}"
    );
    for table in [
        "consent_events",
        "confirmation_tokens",
        "subscriber_interests",
        "jobs",
    ] {
        assert_eq!(
            rows(&sums, table),
            people,
            "{table} in the copy taken under load"
        );
    }
    assert_eq!(
        sums,
        sums_of(&during).unwrap(),
        "the copy is what was described"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&during).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "a backup holds everyone's address: private to its owner"
        );
    }

    // A copy after the load, restored elsewhere, is the live database table by table.
    let after = dir.join("after.db");
    let copied = backup(&database, &after).unwrap();
    let live = sums_of(&database).unwrap();
    assert_eq!(copied, live);
    assert_eq!(rows(&live, "subscribers"), signed_up);
    let elsewhere = dir.join("restored").join("enlace.db");
    let restored = restore(&after, &elsewhere, false).unwrap();
    assert_eq!(
        restored, live,
        "same rows and same consent ledger, checksum by checksum"
    );

    // Never silently, never under a running Enlace, never over a file.
    let refused = restore(&during, &elsewhere, false).unwrap_err().to_string();
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(
        sums_of(&elsewhere).unwrap(),
        live,
        "a refused restore changes nothing"
    );
    let refused = restore(&during, &database, true).unwrap_err().to_string();
    assert!(refused.contains("stop it"), "{refused}");
    assert_eq!(sums_of(&database).unwrap(), live);
    let refused = backup(&database, &after).unwrap_err().to_string();
    assert!(refused.contains("exists already"), "{refused}");
    assert_eq!(restore(&during, &elsewhere, true).unwrap(), sums);
    let not_enlace = dir.join("not-enlace.db");
    std::fs::write(&not_enlace, b"hello").unwrap();
    assert!(restore(&not_enlace, &elsewhere, true).is_err());
    assert_eq!(sums_of(&elsewhere).unwrap(), sums);

    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn scheduled_backups_keep_the_newest_few() {
    let Some((app, database, dir)) = sqlite_app("scheduled").await else {
        return;
    };
    app.subscribe(json!({"email": "kept@example.org"})).await;
    let dir = dir.join("scheduled");
    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(enlace::backup::scheduled_backup(&database, &dir, 2).unwrap());
    }
    let mut left: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    left.sort();
    assert_eq!(left, made[2..], "the two newest are kept");
    assert_eq!(rows(&sums_of(&left[1]).unwrap(), "subscribers"), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_commands_print_the_same_rows_and_checksums_for_a_backup_and_its_restore() {
    let Some((app, database, dir)) = sqlite_app("commands").await else {
        return;
    };
    app.subscribe(json!({"email": "printed@example.org"})).await;
    let enlace = |args: &[&str], url: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_enlace"))
            .args(args)
            .env("ENLACE_DATABASE_URL", url)
            .env("ENLACE_LOG", "warn")
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.join("copy.db");
    let (ok, backed_up, err) = enlace(&["backup", file.to_str().unwrap()], &app.database_url);
    assert!(ok, "{err}");
    assert!(backed_up.contains("subscribers"), "{backed_up}");
    let target = format!("sqlite://{}", dir.join("new").join("enlace.db").display());
    let (ok, restored, err) = enlace(&["restore", file.to_str().unwrap()], &target);
    assert!(ok, "{err}");
    let table = |out: &str| {
        out.lines()
            .filter(|l| !l.contains(" from ") && !l.contains(" into "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&backed_up), table(&restored));
    let (ok, _, err) = enlace(&["restore", file.to_str().unwrap()], &app.database_url);
    assert!(!ok && err.contains("stop it"), "{err}");
    assert!(database.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
