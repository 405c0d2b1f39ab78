//! End to end through a real SMTP server on loopback: the mails arrive, their links work, and an
//! SMTP outage loses nothing.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::{Response, OK};
use mailin_embedded::{Handler, Server, SslConfig};
use serde_json::json;

use crate::helpers::{parse_mail, spawn_app_with_smtp, spawn_app_with_smtp_manual, Mail, TestApp};

#[derive(Clone, Default)]
struct Sink {
    current: Vec<u8>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Handler for Sink {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.current.clear();
        OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        self.received
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        OK
    }
}

/// Starts an SMTP server on `listener` in a thread; returns what it receives.
fn start_sink(listener: TcpListener) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let sink = Sink::default();
    let received = sink.received.clone();
    serve(sink, listener);
    received
}

/// Serves SMTP on `listener` in a thread, each connection handled by a clone of `handler`.
fn serve(handler: impl Handler + Clone + Send + 'static, listener: TcpListener) {
    let mut server = Server::new(handler);
    server
        .with_name("sink.test")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_num_threads(16)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
}

async fn wait_for_mail(received: &Arc<Mutex<Vec<Vec<u8>>>>, count: usize) -> Vec<Mail> {
    for _ in 0..200 {
        let mails: Vec<Mail> = received
            .lock()
            .unwrap()
            .iter()
            .map(|raw| parse_mail(raw))
            .collect();
        if mails.len() >= count {
            return mails;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the SMTP server received fewer than {count} messages");
}

fn path(app: &TestApp, url: &str) -> String {
    url.trim_start_matches(&app.address).to_owned()
}

#[tokio::test]
async fn signup_confirm_and_one_click_unsubscribe_through_real_smtp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = start_sink(listener);
    let app = spawn_app_with_smtp(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;

    let res = app
        .subscribe(json!({"email": "lucia@example.org", "name": "Lucía", "language": "es"}))
        .await;
    assert_eq!(res.status(), 202);
    let mails = wait_for_mail(&received, 1).await;
    let confirmation = &mails[0];
    assert_eq!(confirmation.to, "lucia@example.org");
    assert_eq!(
        confirmation.to_name, None,
        "an unconfirmed name is not used"
    );
    assert!(confirmation
        .raw
        .contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));

    let confirm = path(
        &app,
        confirmation
            .text
            .split_whitespace()
            .find(|w| w.contains("/confirm/"))
            .unwrap(),
    );
    assert_eq!(app.get(&confirm).await.status(), 200);
    assert_eq!(
        app.client
            .post(app.url(&confirm))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mails = wait_for_mail(&received, 2).await;
    let welcome = &mails[1];
    assert!(
        welcome.subject.contains("Bienvenid") || welcome.subject.contains(" "),
        "{}",
        welcome.subject
    );
    assert_eq!(welcome.content_language.as_deref(), Some("es"));
    assert_eq!(
        welcome.to_name.as_deref(),
        Some("Lucía"),
        "non-ASCII names survive the headers"
    );

    let header = welcome.list_unsubscribe.clone().unwrap();
    let one_click = path(&app, header.trim_start_matches('<').trim_end_matches('>'));
    let res = app
        .post_form(&one_click, "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("lucia@example.org").as_deref(),
        Some("unsubscribed")
    );
}

#[tokio::test]
async fn an_smtp_outage_loses_nothing() {
    // Reserve a port, then close it: the relay is "down".
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app =
        spawn_app_with_smtp_manual(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    for i in 0..5 {
        app.subscribe(json!({"email": format!("wait{i}@example.org")}))
            .await;
    }
    assert_eq!(app.run_jobs().await, 5);
    assert_eq!(
        app.count("jobs WHERE state = 'queued' AND attempts = 1 AND last_error IS NOT NULL"),
        5
    );
    // Minutes later, still down: retried with backoff, still queued.
    assert_eq!(app.run_jobs_after(chrono::Duration::minutes(2)).await, 5);
    assert_eq!(app.count("jobs WHERE state = 'queued' AND attempts = 2"), 5);

    let received = start_sink(TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert_eq!(app.run_jobs_after(chrono::Duration::minutes(10)).await, 5);
    let mails = wait_for_mail(&received, 5).await;
    assert_eq!(mails.len(), 5);
    assert_eq!(app.count("jobs WHERE state = 'done'"), 5);
    assert_eq!(
        app.count("jobs WHERE payload <> '{}'"),
        0,
        "tokens do not outlive delivery"
    );
}

/// Counts what a server sees: connections greeted, transactions opened (DATA accepted) and
/// messages received.
#[derive(Clone, Default)]
struct Counter {
    greeted: Arc<Mutex<usize>>,
    opened: Arc<Mutex<usize>>,
    received: Arc<Mutex<usize>>,
}

impl Handler for Counter {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> Response {
        *self.greeted.lock().unwrap() += 1;
        OK
    }
    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> Response {
        *self.opened.lock().unwrap() += 1;
        OK
    }
    fn data_end(&mut self) -> Response {
        *self.received.lock().unwrap() += 1;
        OK
    }
}

/// The newsletter engine's in-flight bound rests on this: a message's content goes out only
/// once its gate passes, so until then the server has delivered nothing; a withheld message is
/// never delivered (its connection is closed mid-transaction) and the next one goes out.
#[tokio::test]
async fn a_gated_message_is_delivered_only_once_its_gate_passes() {
    use enlace::email::{Handed, SmtpConfig, SmtpPool};
    use lettre::address::{Address, Envelope};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = Counter::default();
    serve(counter.clone(), listener);
    let pool = Arc::new(SmtpPool::new(
        SmtpConfig::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap(),
        4,
    ));
    let envelope = Envelope::new(
        Some("news@example.org".parse::<Address>().unwrap()),
        vec!["ana@example.org".parse::<Address>().unwrap()],
    )
    .unwrap();
    let raw = b"Subject: hello\r\n\r\nHello Ana.\r\n".to_vec();
    let count = |c: &Arc<Mutex<usize>>| *c.lock().unwrap();

    // Held at the gate: the transaction is open, nothing is delivered.
    let (open_gate, gate) = tokio::sync::oneshot::channel::<&'static str>();
    let sending = {
        let (pool, envelope, raw) = (pool.clone(), envelope.clone(), raw.clone());
        tokio::spawn(async move {
            pool.send_gated(&envelope, &raw, async { gate.await.ok() })
                .await
        })
    };
    for _ in 0..100 {
        if count(&counter.opened) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count(&counter.opened),
        1,
        "MAIL, RCPT and DATA go out at once"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        count(&counter.received),
        0,
        "no content before the gate passes"
    );
    open_gate.send("slot").unwrap();
    match sending.await.unwrap() {
        Handed::Sent(Ok(()), "slot") => {}
        _ => panic!("the message was not sent once the gate passed"),
    }
    assert_eq!(count(&counter.received), 1);

    // Withheld: the connection is closed mid-transaction, so nothing is delivered.
    match pool.send_gated(&envelope, &raw, async { None::<()> }).await {
        Handed::Withheld => {}
        _ => panic!("a gate that says no withholds the message"),
    }
    assert_eq!(count(&counter.opened), 2);
    assert_eq!(
        count(&counter.received),
        1,
        "a withheld message is not delivered"
    );
    pool.send(&envelope, &raw).await.unwrap();
    assert_eq!(count(&counter.received), 2);
    assert_eq!(
        count(&counter.greeted),
        2,
        "the first message's connection carried the second; the third needed a new one"
    );
}
