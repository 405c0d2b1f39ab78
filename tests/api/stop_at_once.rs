//! "Unsubscribing takes effect immediately": people who stop their mail while a send is under
//! way, with their messages already rendered and waiting to go, get none once their unsubscribe
//! has been answered, whichever way they stop it and whichever process answers. Judged by what a
//! real SMTP server on loopback received.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enlace::auth::Role;
use mailin_embedded::response::{Response, OK};
use mailin_embedded::Handler;
use serde_json::json;

use crate::helpers::TestApp;
use crate::newsletters::{add_people, send_plain, POSTAL};

/// An SMTP server that records each message's recipient, the moment its exchange reached the
/// server (MAIL FROM read: the sender began it a little earlier, and no content has come yet)
/// and the moment it was delivered (final dot). While
/// `hold` is set it keeps the first message it delivers waiting at its final dot, so the sender
/// stalls with the messages behind it already prepared.
#[derive(Clone, Default)]
struct Recorder {
    to: Vec<String>,
    opened_at: Option<Instant>,
    hold: Arc<AtomicBool>,
    held: Arc<Mutex<Option<String>>>,
    /// (recipient, exchange begun, delivered)
    delivered: Arc<Mutex<Vec<(String, Instant, Instant)>>>,
    /// When set, the final dot is answered with this refusal instead of 250.
    refusal: Arc<Mutex<Option<String>>>,
}

impl Handler for Recorder {
    fn mail(&mut self, _: std::net::IpAddr, _: &str, _: &str) -> Response {
        self.opened_at = Some(Instant::now());
        OK
    }
    fn data_start(&mut self, _: &str, _: &str, _: bool, to: &[String]) -> Response {
        self.to = to
            .iter()
            .map(|t| t.trim_matches(|c| c == '<' || c == '>').to_owned())
            .collect();
        OK
    }
    fn data_end(&mut self) -> Response {
        let first = {
            let mut held = self.held.lock().unwrap();
            let first = held.is_none() && self.hold.load(Ordering::SeqCst);
            if first {
                *held = self.to.first().cloned();
            }
            first
        };
        while first && self.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(refusal) = self.refusal.lock().unwrap().clone() {
            self.opened_at = None;
            return Response::custom(554, refusal);
        }
        let opened = self.opened_at.take().expect("MAIL came first");
        let mut delivered = self.delivered.lock().unwrap();
        for to in &self.to {
            delivered.push((to.clone(), opened, Instant::now()));
        }
        OK
    }
}

fn start_recorder(hold: bool) -> (u16, Recorder) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder = Recorder::default();
    recorder.hold.store(hold, Ordering::SeqCst);
    crate::smtp::serve(recorder.clone(), listener);
    (port, recorder)
}

/// An app whose newsletters go to the recorder on `port` over `connections` connections, at most
/// `rate` messages a second (0: no limit); its engine runs only when a test drives it.
async fn app_sending_to(port: u16, connections: usize, rate: u32) -> TestApp {
    TestApp::builder()
        .settings(|s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.postal_address = Some(POSTAL.into());
            s.send_concurrency = connections;
            s.send_rate = rate;
        })
        .real_mail()
        .spawn()
        .await
}

/// Adds `people` confirmed subscribers, sends them a newsletter and runs the engine in the
/// background until the send is done.
async fn start_send(
    app: &TestApp,
    admin: &str,
    people: usize,
) -> tokio::task::JoinHandle<anyhow::Result<usize>> {
    add_people(app, people);
    send_plain(app, admin).await;
    let engine = app.engine.clone();
    tokio::spawn(async move { engine.run_pending(enlace::db::now()).await })
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One-click unsubscribe, as a mail client does it from the List-Unsubscribe header.
async fn one_click(app: &TestApp, email: &str) {
    let id = app.conn_subscriber_id(email).parse().unwrap();
    let path = format!("/unsubscribe/{}", app.engine.tokens.sign(id));
    let res = app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(res.status(), 200);
}

/// A complaint (a spam report) fed back by the mail provider.
async fn complaint(app: &TestApp, admin: &str, email: &str) {
    let res = app
        .send_as(
            admin,
            "POST",
            "/api/v1/events",
            json!([{"id": format!("c-{email}"), "type": "complaint", "email": email}]),
        )
        .await;
    assert_eq!(res.status(), 200);
}

fn in_state(app: &TestApp, email: &str, state: &str) -> bool {
    app.count(&format!(
        "deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
         WHERE s.email = '{email}' AND d.state = '{state}'"
    )) == 1
}

/// The addresses whose delivery is in `state`.
fn emails_in_state(app: &TestApp, state: &str) -> Vec<String> {
    use diesel::sql_types::Text;
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        email: String,
    }
    let mut conn = app.conn();
    diesel::sql_query(format!(
        "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
         WHERE d.state = '{state}' ORDER BY s.email"
    ))
    .load::<Row>(&mut *conn as &mut enlace::db::AnyConnection)
    .unwrap()
    .into_iter()
    .map(|r| r.email)
    .collect()
}

#[tokio::test]
async fn people_who_stop_mail_mid_send_get_none_of_the_messages_prepared_for_them() {
    let (port, server) = start_recorder(true);
    // One connection: while the server holds its message, the rest wait, rendered.
    let app = app_sending_to(port, 1, 0).await;
    let other = TestApp::builder().sharing(&app).spawn().await;
    let admin = app.staff_token(Role::Admin).await;
    let people = 40;
    let sending = start_send(&app, &admin, people).await;

    // The first message is held at its final dot; the engine claims and renders rounds ahead
    // until its queue is full, and then claims no more.
    wait_until("the first message", Duration::from_secs(20), || {
        server.held.lock().unwrap().is_some()
    })
    .await;
    let claimed = || app.count("deliveries WHERE state = 'sending'");
    let (mut last, mut since) = (claimed(), Instant::now());
    while since.elapsed() < Duration::from_millis(700) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = claimed();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    let held = server.held.lock().unwrap().clone().unwrap();
    let waiting: Vec<String> = (0..people)
        .map(|i| format!("p{i}@example.org"))
        .filter(|e| *e != held && in_state(&app, e, "sending"))
        .collect();
    assert!(
        waiting.len() >= 8,
        "messages prepared ahead of the sender: {}",
        waiting.len()
    );

    // Three people stop their mail: by the one-click link, by a spam complaint, and by the
    // one-click link answered by another process on the same database.
    let (by_link, by_complaint, elsewhere) = (&waiting[1], &waiting[3], &waiting[5]);
    one_click(&app, by_link).await;
    complaint(&app, &admin, by_complaint).await;
    one_click(&other, elsewhere).await;

    server.hold.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("the send finished")
        .unwrap()
        .unwrap();

    let delivered: Vec<String> = server
        .delivered
        .lock()
        .unwrap()
        .iter()
        .map(|(to, _, _)| to.clone())
        .collect();
    for stopped in [by_link, by_complaint, elsewhere] {
        assert!(
            !delivered.contains(stopped),
            "{stopped} got the newsletter after their unsubscribe was answered"
        );
    }
    assert_eq!(delivered.len(), people - 3, "everyone else got it once");
    let mut distinct = delivered.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), delivered.len(), "nobody got it twice");
    assert!(
        other.sent.lock().unwrap().is_empty(),
        "the other process sent nothing"
    );
    // Recorded as skipped, with the reason, like anyone who stopped before the send.
    assert_eq!(
        app.count("deliveries WHERE state = 'skipped' AND outcome = 'unsubscribed'"),
        2
    );
    assert_eq!(
        app.count("deliveries WHERE state = 'skipped' AND outcome = 'complained'"),
        1
    );
    assert!(in_state(&app, by_complaint, "skipped"));
}

#[tokio::test]
async fn an_unsubscribe_answered_mid_send_stops_every_message_not_yet_in_its_smtp_exchange() {
    // Free running, several connections: people stop their mail one after another while
    // messages stream out. A message to one of them may reach the server only if its SMTP
    // exchange had already begun when their unsubscribe was answered.
    let (port, server) = start_recorder(false);
    // Slow enough that the people below can stop their mail while it streams out.
    let app = app_sending_to(port, 4, 300).await;
    let other = TestApp::builder().sharing(&app).spawn().await;
    let admin = app.staff_token(Role::Admin).await;
    let people = 600;
    let sending = start_send(&app, &admin, people).await;

    wait_until("the send to start", Duration::from_secs(20), || {
        !server.delivered.lock().unwrap().is_empty()
    })
    .await;
    let mut answered: Vec<(String, Instant)> = Vec::new();
    for round in 0..24 {
        // Someone whose message is claimed (so typically rendered) and not yet delivered.
        let claimed = emails_in_state(&app, "sending");
        let Some(victim) = claimed
            .into_iter()
            .rev()
            .find(|e| answered.iter().all(|(a, _)| a != e))
        else {
            break;
        };
        match round % 3 {
            0 => one_click(&app, &victim).await,
            1 => complaint(&app, &admin, &victim).await,
            _ => one_click(&other, &victim).await,
        }
        answered.push((victim, Instant::now()));
    }
    tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .expect("the send finished")
        .unwrap()
        .unwrap();
    assert!(
        answered.len() >= 6,
        "people stopped mid-send: {}",
        answered.len()
    );

    let delivered = server.delivered.lock().unwrap().clone();
    for (victim, at) in &answered {
        for (to, opened, _) in delivered.iter().filter(|(to, _, _)| to == victim) {
            assert!(
                opened < at,
                "{to} got a message whose SMTP exchange began after their unsubscribe was answered"
            );
        }
    }
    let stopped = answered.len() as i64;
    assert_eq!(
        app.count("deliveries WHERE state = 'sent'") as usize,
        delivered.len(),
        "what was recorded as sent is what the server received"
    );
    assert_eq!(
        app.count("deliveries WHERE state = 'skipped'")
            + app.count("deliveries WHERE state = 'sent'"),
        people as i64,
        "every message was sent or skipped ({stopped} stopped)"
    );
}

#[tokio::test]
async fn a_message_in_its_smtp_exchange_during_an_erasure_leaves_no_trace_of_the_person() {
    // The person is erased while their message waits at its final dot; the server then refuses
    // it with a reply that quotes them. What was recorded keeps nothing of theirs.
    let (port, server) = start_recorder(true);
    let app = app_sending_to(port, 1, 0).await;
    let admin = app.staff_token(Role::Admin).await;
    let email = "ana.garcia@example.org";
    app.add_subscriber(email, "confirmed", "es", Some("Ana García"), json!({}));
    let id = app.conn_subscriber_id(email);
    send_plain(&app, &admin).await;
    let engine = app.engine.clone();
    let sending = tokio::spawn(async move { engine.run_pending(enlace::db::now()).await });
    wait_until(
        "the message to reach its final dot",
        Duration::from_secs(20),
        || server.held.lock().unwrap().is_some(),
    )
    .await;
    *server.refusal.lock().unwrap() =
        Some("5.7.1 message for Ana García (ana.garcia) refused by policy".into());
    let res = app.erase(&admin, &id).await;
    assert!(res.status().is_success(), "erased: {}", res.status());
    server.hold.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("the send finished")
        .unwrap()
        .unwrap();
    assert_eq!(
        app.count("deliveries WHERE state = 'failed'"),
        1,
        "the refusal was recorded"
    );
    assert_eq!(
        app.count(
            "deliveries WHERE outcome IS NOT NULL OR outcome LIKE '%Garc%' OR outcome LIKE '%ana%'"
        ),
        0,
        "the server's reply about an erased person is not kept"
    );
}
