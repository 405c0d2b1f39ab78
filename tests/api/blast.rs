//! The sending engine through a real SMTP server on loopback: bounces and retries, DKIM, a pause
//! that takes effect within a second, and `enlace serve` killed with SIGKILL mid-send.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enlace::auth::Role;
use mailin_embedded::response::{Response, OK};
use mailin_embedded::{Handler, Server, SslConfig};
use serde_json::json;

use crate::dkim::{assert_dkim_pass, Key, KeyFile};
use crate::helpers::{parse_mail, Person, TestApp};
use crate::newsletters::{add_people, newsletter, post, send_plain, POSTAL};

/// What the server received: (recipient, raw message) in order.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An SMTP server that refuses `…bounce…` recipients for good (550 5.1.1) and asks
/// `…later…` recipients to come back once (451).
#[derive(Clone, Default)]
struct Sink {
    to: Vec<String>,
    current: Vec<u8>,
    received: Received,
    deferred: Arc<Mutex<HashMap<String, u32>>>,
}

impl Handler for Sink {
    fn rcpt(&mut self, to: &str) -> Response {
        if to.contains("bounce") {
            return Response::custom(550, "5.1.1 User unknown".into());
        }
        if to.contains("later") {
            let mut deferred = self.deferred.lock().unwrap();
            let n = deferred.entry(to.to_owned()).or_default();
            *n += 1;
            if *n == 1 {
                return Response::custom(451, "4.3.0 Try again later".into());
            }
        }
        OK
    }
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.current.clear();
        OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        let raw = std::mem::take(&mut self.current);
        let mut received = self.received.lock().unwrap();
        for to in &self.to {
            received.push((
                to.trim_matches(|c| c == '<' || c == '>').to_owned(),
                raw.clone(),
            ));
        }
        OK
    }
}

fn start_sink() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Sink::default();
    let received = sink.received.clone();
    let mut server = Server::new(sink);
    server
        .with_name("sink.test")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_num_threads(32)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, received)
}

fn recipients(received: &Received) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|(to, _)| to.clone())
        .collect()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hard_bounces_suppress_soft_failures_retry_and_messages_are_dkim_signed() {
    let (port, received) = start_sink();
    let key_file = KeyFile::new(Key::Ed25519);
    let app = TestApp::builder()
        .settings(|s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.postal_address = Some(POSTAL.into());
            key_file.configure(s);
        })
        .real_mail()
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    // A From outside the signing domain would fail DMARC at every receiver: refused at save.
    let misaligned = app
        .send_as(
            &token,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "S", "html": "<p>B</p>", "from": "news@elsewhere.example.com"}),
        )
        .await;
    assert_eq!(misaligned.status(), 422);
    for email in ["ok@example.org", "bounce@example.org", "later@example.org"] {
        app.add_subscriber(email, "confirmed", "en", None, json!({}));
    }
    let id = &send_plain(&app, &token).await;
    app.run_sends().await;
    assert_eq!(recipients(&received), ["ok@example.org"]);
    assert_eq!(
        app.status_of("bounce@example.org").as_deref(),
        Some("bounced")
    );
    assert_eq!(app.count("suppressions WHERE reason = 'hard_bounce'"), 1);
    let p = &newsletter(&app, &token, id).await["progress"];
    assert_eq!(
        (
            p["sent"].as_i64(),
            p["failed"].as_i64(),
            p["pending"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{p}"
    );
    assert!(app.count("deliveries WHERE state = 'failed' AND outcome LIKE '%550%'") == 1);
    assert_eq!(
        app.count("deliveries WHERE outcome LIKE '%@%'"),
        0,
        "no address in recorded errors"
    );

    // The deferred one is retried after its backoff, and the send finishes.
    app.run_sends().await;
    assert_eq!(recipients(&received).len(), 1, "not before the backoff");
    app.run_sends_after(chrono::Duration::minutes(2)).await;
    assert_eq!(
        recipients(&received),
        ["ok@example.org", "later@example.org"]
    );
    assert_eq!(newsletter(&app, &token, id).await["status"], "sent");

    // As the SMTP server received it, the signature verifies.
    let raw = received.lock().unwrap()[0].1.clone();
    assert_dkim_pass(&raw, Key::Ed25519, "newsletter", &["List-Id"]).await;
    let mail = parse_mail(&received.lock().unwrap()[0].1);
    assert_eq!(
        mail.list_unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
}

#[tokio::test]
async fn a_pause_takes_effect_within_a_second_and_resume_repeats_nothing() {
    let (port, received) = start_sink();
    let app = TestApp::builder()
        .settings(|s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.postal_address = Some(POSTAL.into());
            s.send_rate = 40;
            s.send_concurrency = 4;
        })
        .real_mail()
        .running_workers()
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    add_people(&app, 120);
    let id = &send_plain(&app, &token).await;
    wait_until("the first messages", Duration::from_secs(20), || {
        recipients(&received).len() >= 10
    })
    .await;
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{id}/pause")).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_a_second = recipients(&received).len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        recipients(&received).len(),
        after_a_second,
        "nothing sent more than a second after the pause"
    );
    assert!(after_a_second < 120);
    let p = &newsletter(&app, &token, id).await["progress"];
    assert_eq!(p["sent"].as_i64(), Some(after_a_second as i64), "{p}");

    assert_eq!(
        post(&app, &token, &format!("/api/v1/newsletters/{id}/resume"))
            .await
            .0,
        200
    );
    wait_until("the rest", Duration::from_secs(30), || {
        recipients(&received).len() >= 120
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut all = recipients(&received);
    all.sort();
    all.dedup();
    assert_eq!(
        (recipients(&received).len(), all.len()),
        (120, 120),
        "everyone exactly once"
    );
    wait_until("the send to finish", Duration::from_secs(10), || {
        app.count("newsletters WHERE status = 'sent'") == 1
    })
    .await;
}

/// Adds `count` confirmed subscribers (`p00000@example.org`…).
fn seed_confirmed(app: &TestApp, count: usize) {
    let people: Vec<Person> = (0..count)
        .map(|i| Person {
            confirmed: None,
            ..Person::new(format!("p{i:05}@example.org"))
        })
        .collect();
    app.seed_people(&people);
}

/// Starts the real binary against the test's database, sending through `smtp_port`.
fn start_server(app: &TestApp, smtp_port: u16, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_enlace"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("ENLACE_DATABASE_URL", &app.database_url)
        .env("ENLACE_LISTEN", "127.0.0.1:0")
        .env("ENLACE_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("ENLACE_POSTAL_ADDRESS", POSTAL)
        .env(
            "ENLACE_SECRET_KEY",
            "test-secret-key-that-is-long-enough-0123456789",
        )
        .env("ENLACE_DATA_DIR", dir)
        .env("ENLACE_SEND_CONCURRENCY", "4")
        .env("ENLACE_SEND_RATE", "400")
        .env("ENLACE_SEND_LEASE_SECONDS", "5")
        .env("ENLACE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting enlace serve")
}

#[tokio::test]
async fn killed_mid_send_and_restarted_every_recipient_gets_it_with_duplicates_bounded() {
    const RECIPIENTS: usize = 1200;
    const CONCURRENCY: usize = 4;
    let (port, received) = start_sink();
    // This process only serves the API; the sending is done by the binary below.
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .real_mail()
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    seed_confirmed(&app, RECIPIENTS);
    send_plain(&app, &token).await;

    let dir = std::env::temp_dir().join(format!("enlace-kill-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = start_server(&app, port, &dir);
    wait_until("a third of the send", Duration::from_secs(60), || {
        recipients(&received).len() >= RECIPIENTS / 3
    })
    .await;
    server.kill().unwrap(); // SIGKILL: no shutdown, no chance to record anything
    server.wait().unwrap();
    let at_kill = recipients(&received).len();
    assert!(at_kill < RECIPIENTS, "killed mid-send");

    let mut server = start_server(&app, port, &dir);
    let all_there = || {
        let mut r = recipients(&received);
        r.sort();
        r.dedup();
        r.len() == RECIPIENTS
    };
    wait_until(
        "every recipient after the restart",
        Duration::from_secs(90),
        all_there,
    )
    .await;
    wait_until("the send to finish", Duration::from_secs(20), || {
        app.count("newsletters WHERE status = 'sent'") == 1
    })
    .await;
    server.kill().unwrap();
    server.wait().unwrap();
    let total = recipients(&received).len();
    let duplicates = total - RECIPIENTS;
    eprintln!("killed after {at_kill} messages; {total} received in all, {duplicates} duplicates");
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates; at most the {CONCURRENCY} messages in flight at the kill"
    );
    assert_eq!(
        app.count("deliveries WHERE state = 'sent'"),
        RECIPIENTS as i64
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn two_enlace_serve_processes_on_one_database_send_one_newsletter_without_duplicates() {
    const RECIPIENTS: usize = 1000;
    let (port, received) = start_sink();
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .real_mail()
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    seed_confirmed(&app, RECIPIENTS);
    let dirs: Vec<_> = (0..2)
        .map(|_| {
            let dir = std::env::temp_dir().join(format!("enlace-two-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        })
        .collect();
    let mut servers: Vec<_> = dirs.iter().map(|d| start_server(&app, port, d)).collect();
    send_plain(&app, &token).await;
    wait_until("the send to finish", Duration::from_secs(90), || {
        app.count("newsletters WHERE status = 'sent'") == 1
    })
    .await;
    for server in &mut servers {
        server.kill().unwrap();
        server.wait().unwrap();
    }
    let mut all = recipients(&received);
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (RECIPIENTS, RECIPIENTS),
        "each recipient exactly once"
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
