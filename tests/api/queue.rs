//! The durable queue: several processes on one database never deliver a job twice, and work
//! held by a process that died comes back when its lease runs out.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_sharing};

#[tokio::test]
async fn two_processes_on_one_database_deliver_each_mail_once() {
    let first = spawn_app().await;
    let second = spawn_app_sharing(&first).await;
    for i in 0..120 {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(
            app.subscribe(json!({"email": format!("q{i}@example.org")}))
                .await
                .status(),
            202
        );
    }
    let (a, b) = tokio::join!(first.run_jobs(), second.run_jobs());
    assert_eq!(
        a + b,
        120,
        "every job ran exactly once between the two workers"
    );
    let mut seen = HashSet::new();
    for mail in first.mails().into_iter().chain(second.mails()) {
        assert!(
            seen.insert(mail.to.clone()),
            "{} got two confirmations",
            mail.to
        );
    }
    assert_eq!(seen.len(), 120);
    assert_eq!(first.count("jobs WHERE state = 'done'"), 120);
}

#[tokio::test]
async fn a_job_held_by_a_dead_process_returns_after_its_lease() {
    let app = spawn_app().await;
    app.subscribe(json!({"email": "lease@example.org"})).await;
    // A process claimed it and died before recording anything.
    app.sql(
        "UPDATE jobs SET state = 'running', attempts = 1, locked_until = '2000-01-01 00:00:00'",
    );
    app.deliver_one("lease@example.org").await;
    assert_eq!(app.count("jobs WHERE state = 'done' AND attempts = 2"), 1);
}
