//! The durable queue: several processes on one database never deliver a job twice, and work
//! held by a process that died comes back when its lease runs out.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

#[tokio::test]
async fn two_processes_on_one_database_deliver_each_mail_once() {
    let first = spawn_app().await;
    let second = TestApp::builder().sharing(&first).spawn().await;
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

/// A relay that takes connections and never says a word: every message sent to it stays in
/// its SMTP exchange.
fn silent_relay() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[tokio::test]
async fn a_crash_can_resend_only_the_mails_in_their_smtp_exchange_and_the_rest_go_at_once() {
    let port = silent_relay();
    let first = TestApp::builder()
        .settings(|s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.mail_concurrency = 3;
        })
        .real_mail()
        .spawn()
        .await;
    for i in 0..40 {
        first
            .subscribe(json!({"email": format!("c{i}@example.org")}))
            .await;
    }
    // The first process sends to the silent relay, then dies while those exchanges hang.
    let worker = first.worker.clone();
    let running = tokio::spawn(async move { worker.run_pending(enlace::db::now()).await });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        first.count("jobs WHERE state = 'running'"),
        3,
        "no more claimed than being sent (ENLACE_MAIL_CONCURRENCY)"
    );
    running.abort();
    // Another process (or the same one restarted) sends everything else at once.
    let second = TestApp::builder().sharing(&first).spawn().await;
    assert_eq!(second.run_jobs().await, 37);
    assert_eq!(second.mails().len(), 37);
    // The three in their exchange come back after the five-minute lease, and go out once.
    assert_eq!(second.run_jobs_after(chrono::Duration::minutes(4)).await, 0);
    assert_eq!(second.run_jobs_after(chrono::Duration::minutes(6)).await, 3);
    let to: HashSet<String> = second.mails().into_iter().map(|m| m.to).collect();
    assert_eq!(to.len(), 40);
}
