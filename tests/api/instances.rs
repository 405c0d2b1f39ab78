//! Several `enlace serve` processes on one PostgreSQL database (README, "Several instances").
//! The work they share is tested where it is done (the queue, the newsletter engine); here, what
//! happens when they start together.

use std::sync::{Arc, Barrier};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use enlace::db::Db;
use enlace::services::retention::purge_unconfirmed;

use crate::helpers::{database_url_with_name, spawn_app, Person, TestApp};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Processes started at the same moment on a database whose migrations are pending (a first
/// start, or an upgrade of every instance) all start, and every migration is applied once.
/// Runs when the suite runs on PostgreSQL (`ENLACE_TEST_POSTGRES_URL`); SQLite serves one
/// instance.
#[test]
fn processes_starting_together_on_one_postgres_database_all_migrate() {
    let admin_url = match std::env::var("ENLACE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => return,
    };
    let name = format!("enlace_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&admin_url).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap();
    let url = database_url_with_name(&admin_url, &name);

    const PROCESSES: usize = 4;
    let together = Arc::new(Barrier::new(PROCESSES));
    let starts: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let (url, together) = (url.clone(), together.clone());
            std::thread::spawn(move || {
                // What `Application::build` does first: open the pool, then migrate.
                let db = Db::connect(&url, 1)?;
                together.wait();
                db.migrate()
            })
        })
        .collect();
    let outcomes: Vec<_> = starts
        .into_iter()
        .map(|s| s.join().unwrap().map_err(|e| format!("{e:#}")))
        .collect();

    let embedded = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_dir())
        .count() as i64;
    let applied = diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
        .get_result::<Count>(&mut PgConnection::establish(&url).unwrap())
        .map(|c| c.n);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));

    for outcome in &outcomes {
        assert!(outcome.is_ok(), "a process failed to start: {outcome:?}");
    }
    assert_eq!(applied.unwrap(), embedded);
}

/// Every process runs the hourly retention purge. Two running it at the same moment remove each
/// unconfirmed signup once between them (one tombstone each), and neither fails.
#[tokio::test]
async fn two_processes_purging_unconfirmed_signups_at_once_remove_each_person_once() {
    let a = spawn_app().await;
    let b = TestApp::builder().sharing(&a).spawn().await;
    // More than one purge transaction's worth (200), never confirmed, signed up long ago.
    let people: Vec<Person> = (0..450)
        .map(|i| Person {
            status: "pending",
            confirmed: None,
            ..Person::new(format!("unconfirmed{i}@example.org"))
        })
        .collect();
    a.seed_people(&people);

    let now = enlace::db::now();
    let (by_a, by_b) = tokio::join!(
        purge_unconfirmed(&a.db, &a.worker.mailer, now, 30),
        purge_unconfirmed(&b.db, &b.worker.mailer, now, 30),
    );
    let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
    assert_eq!(by_a + by_b, 450, "a removed {by_a}, b removed {by_b}");
    assert_eq!(a.count("subscribers"), 0);
    assert_eq!(a.count("tombstones"), 450);
}
