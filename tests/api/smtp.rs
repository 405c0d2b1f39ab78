//! End to end through a real SMTP server on loopback: the mails arrive, their links work, and an
//! SMTP outage loses nothing.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::{Response, OK};
use mailin_embedded::{Handler, Server, SslConfig};
use serde_json::json;

use crate::helpers::{parse_mail, Mail, TestApp};

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
pub(crate) fn serve(handler: impl Handler + Clone + Send + 'static, listener: TcpListener) {
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
    let app = TestApp::builder()
        .settings(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}")))
        .real_mail()
        .running_workers()
        .spawn()
        .await;

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
    let app = TestApp::builder()
        .settings(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}")))
        .real_mail()
        .spawn()
        .await;
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
/// messages received. Each connection has a clone of its own, so `this_greeted` counts a
/// connection once however often it says EHLO.
#[derive(Clone, Default)]
struct Counter {
    greeted: Arc<Mutex<usize>>,
    opened: Arc<Mutex<usize>>,
    received: Arc<Mutex<usize>>,
    this_greeted: bool,
}

impl Handler for Counter {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> Response {
        if !std::mem::replace(&mut self.this_greeted, true) {
            *self.greeted.lock().unwrap() += 1;
        }
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

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = Counter::default();
    serve(counter.clone(), listener);
    let pool = Arc::new(SmtpPool::new(
        SmtpConfig::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap(),
        4,
    ));
    let envelope = envelope_to("ana@example.org");
    let raw = b"Subject: hello\r\n\r\nHello Ana.\r\n".to_vec();
    let count = |c: &Arc<Mutex<usize>>| *c.lock().unwrap();

    // Held at the gate: the transaction is open, nothing is delivered. The gate is made once,
    // as the exchange begins.
    let (open_gate, gate) = tokio::sync::oneshot::channel::<&'static str>();
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sending = {
        let (pool, envelope, raw) = (pool.clone(), envelope.clone(), raw.clone());
        let made = made.clone();
        let mut gate = Some(gate);
        tokio::spawn(async move {
            pool.send_gated(&envelope, &raw, move || {
                made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let gate = gate.take();
                async move {
                    match gate {
                        Some(gate) => gate.await.ok(),
                        None => None,
                    }
                }
            })
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
    assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
    open_gate.send("slot").unwrap();
    match sending.await.unwrap() {
        Handed::Sent(Ok(()), "slot") => {}
        _ => panic!("the message was not sent once the gate passed"),
    }
    assert_eq!(count(&counter.received), 1);

    // Withheld: the connection is closed mid-transaction, so nothing is delivered.
    match pool
        .send_gated(&envelope, &raw, || async { None::<()> })
        .await
    {
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

/// What a scripted SMTP server saw: each packet it read, and each message's content with the
/// transparency dots removed.
#[derive(Clone, Default)]
pub(crate) struct Wire {
    pub(crate) packets: Arc<Mutex<Vec<String>>>,
    pub(crate) messages: Arc<Mutex<Vec<String>>>,
}

/// A pool of Enlace's SMTP client connected to `scripted_server`, and what the server saw.
async fn pipelining_server(one_ehlo: bool) -> (Wire, enlace::email::SmtpPool) {
    use enlace::email::{SmtpConfig, SmtpPool};
    let (wire, port) = scripted_server(one_ehlo).await;
    let pool = SmtpPool::new(
        SmtpConfig::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap(),
        4,
    );
    (wire, pool)
}

/// A scripted SMTP server on loopback, and its port. It offers PIPELINING, answers everything it
/// has read in one write, and refuses the recipient `nobody@…` (then DATA, for want of a
/// recipient). With `one_ehlo`, it refuses a connection's second EHLO, as a few servers do.
pub(crate) async fn scripted_server(one_ehlo: bool) -> (Wire, u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let wire = Wire::default();
    let seen = wire.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                socket.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let (mut pending, mut content) = (String::new(), None::<String>);
                let (mut recipients, mut greeted) = (0, false);
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let packet = String::from_utf8_lossy(&buf[..n]).into_owned();
                    seen.packets.lock().unwrap().push(packet.clone());
                    pending.push_str(&packet);
                    let mut replies = String::new();
                    while let Some(end) = pending.find("\r\n") {
                        let line: String = pending.drain(..end + 2).collect();
                        if let Some(text) = content.as_mut() {
                            if line == ".\r\n" {
                                seen.messages.lock().unwrap().push(content.take().unwrap());
                                replies.push_str("250 2.0.0 queued\r\n");
                            } else {
                                text.push_str(line.strip_prefix('.').unwrap_or(&line));
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                        replies.push_str(match verb.as_str() {
                            "EHLO" if one_ehlo && greeted => "503 5.5.1 duplicate EHLO\r\n",
                            "EHLO" => {
                                greeted = true;
                                "250-test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                            }
                            "MAIL" => {
                                recipients = 0;
                                "250 2.1.0 ok\r\n"
                            }
                            "RCPT" if line.contains("<nobody@") => "550 5.1.1 no such user\r\n",
                            "RCPT" => {
                                recipients += 1;
                                "250 2.1.5 ok\r\n"
                            }
                            "DATA" if recipients == 0 => "554 5.5.1 no valid recipients\r\n",
                            "DATA" => {
                                content = Some(String::new());
                                "354 go ahead\r\n"
                            }
                            "QUIT" => "221 bye\r\n",
                            _ => "250 ok\r\n",
                        });
                    }
                    socket.write_all(replies.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (wire, port)
}

/// One message's envelope, from the newsletter address to `to`.
fn envelope_to(to: &str) -> lettre::address::Envelope {
    use lettre::address::{Address, Envelope};
    Envelope::new(
        Some("news@example.org".parse::<Address>().unwrap()),
        vec![to.parse::<Address>().unwrap()],
    )
    .unwrap()
}

/// Where the server offers PIPELINING (RFC 2920), a transaction opens in one round trip: MAIL,
/// RCPT and DATA in one packet. Lines that start with a dot arrive intact, a refused recipient
/// is a permanent failure, and the next message goes out on a fresh connection.
#[tokio::test]
async fn a_pipelining_server_gets_each_transaction_in_one_packet() {
    use enlace::email::SendError;

    let (wire, pool) = pipelining_server(false).await;
    let envelope = envelope_to;
    let raw = ".starts with a dot\r\nSubject: dots\r\n\r\n.\r\n..two\r\nmiddle . of a line\r\n";
    pool.send(&envelope("ana@example.org"), raw.as_bytes())
        .await
        .unwrap();
    pool.send(&envelope("ben@example.org"), raw.as_bytes())
        .await
        .unwrap();

    let messages = wire.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert_eq!(
            message.trim_end(),
            raw.trim_end(),
            "dots survive transparency"
        );
    }
    let packets = wire.packets.lock().unwrap().clone();
    let opening: Vec<&String> = packets.iter().filter(|p| p.contains("MAIL FROM")).collect();
    assert_eq!(opening.len(), 2);
    for packet in opening {
        assert!(
            packet.contains("RCPT TO:") && packet.ends_with("DATA\r\n"),
            "MAIL, RCPT and DATA in one packet: {packet:?}"
        );
    }

    assert!(
        packets
            .iter()
            .any(|p| p.starts_with("..starts with a dot") && p.ends_with("\r\n.\r\n")),
        "the content and its final dot in one packet"
    );

    match pool
        .send(&envelope("nobody@example.org"), raw.as_bytes())
        .await
    {
        Err(SendError::Permanent(e)) => assert!(e.contains("550"), "{e}"),
        other => panic!("a refused recipient is a permanent failure: {other:?}"),
    }
    pool.send(&envelope("cara@example.org"), raw.as_bytes())
        .await
        .unwrap();
    assert_eq!(wire.messages.lock().unwrap().len(), 3);
}

/// A server that refuses a repeated EHLO still gets every message, one command at a time.
#[tokio::test]
async fn a_server_refusing_a_second_ehlo_gets_its_messages_unpipelined() {
    let (wire, pool) = pipelining_server(true).await;
    let envelope = envelope_to("ana@example.org");
    for _ in 0..2 {
        pool.send(&envelope, b"Subject: hi\r\n\r\nHello.\r\n")
            .await
            .unwrap();
    }
    assert_eq!(wire.messages.lock().unwrap().len(), 2);
    let packets = wire.packets.lock().unwrap().clone();
    assert!(
        packets
            .iter()
            .filter(|p| p.contains("MAIL FROM"))
            .all(|p| !p.contains("RCPT")),
        "no pipelining where it was not confirmed: {packets:?}"
    );
}

#[tokio::test]
async fn an_address_that_needs_smtputf8_fails_at_once_where_the_relay_lacks_it() {
    // The sink offers no SMTPUTF8 (RFC 6531).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = start_sink(listener);
    let app = TestApp::builder()
        .settings(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}")))
        .real_mail()
        .spawn()
        .await;
    // The mail to the address the relay cannot take fails, as the test intends.
    app.expect_failed_jobs();
    for email in ["ñandú@correo.example.mx", "nandu@correo.example.mx"] {
        assert_eq!(app.subscribe(json!({ "email": email })).await.status(), 202);
    }
    app.run_jobs().await;
    let mails = wait_for_mail(&received, 1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].to, "nandu@correo.example.mx",
        "everyone else's mail goes out"
    );
    // Recorded as a permanent failure with its reason after one attempt, not retried.
    assert_eq!(
        app.count("jobs WHERE state = 'failed' AND attempts = 1 AND last_error LIKE '%SMTPUTF8%'"),
        1
    );
    assert_eq!(app.run_jobs_after(chrono::Duration::hours(2)).await, 0);
}

/// A server that closes an idle session says `421` to the next command (Postfix and most test
/// sinks do this after a minute). The message that meets it goes out at once on a new connection,
/// not after a retry's wait: nothing had been delivered.
#[tokio::test]
async fn a_kept_connection_the_server_closed_with_421_is_replaced_at_once() {
    use enlace::email::{SmtpConfig, SmtpPool};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let delivered = Arc::new(Mutex::new(0usize));
    let (seen, connections) = (delivered.clone(), Arc::new(Mutex::new(0usize)));
    let opened = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            *opened.lock().unwrap() += 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                socket.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let (mut pending, mut in_data, mut done) = (String::new(), false, 0);
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                    while let Some(end) = pending.find("\r\n") {
                        let line: String = pending.drain(..end + 2).collect();
                        let reply = if in_data {
                            if line != ".\r\n" {
                                continue;
                            }
                            in_data = false;
                            done += 1;
                            *seen.lock().unwrap() += 1;
                            "250 2.0.0 queued\r\n"
                        } else {
                            match line
                                .get(..4)
                                .unwrap_or_default()
                                .to_ascii_uppercase()
                                .as_str()
                            {
                                // One message per session; then the session has "timed out".
                                "MAIL" if done > 0 => {
                                    let _ = socket.write_all(b"421 4.4.2 idle too long\r\n").await;
                                    return;
                                }
                                "EHLO" => "250-test\r\n250 8BITMIME\r\n",
                                "DATA" => {
                                    in_data = true;
                                    "354 go ahead\r\n"
                                }
                                _ => "250 ok\r\n",
                            }
                        };
                        socket.write_all(reply.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    let pool = SmtpPool::new(
        SmtpConfig::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap(),
        4,
    );
    let raw = b"Subject: hello\r\n\r\nHello\r\n";
    for to in ["ana@example.org", "ben@example.org", "cy@example.org"] {
        pool.send(&envelope_to(to), raw)
            .await
            .unwrap_or_else(|e| panic!("{to}: {e:?}"));
    }
    assert_eq!(*delivered.lock().unwrap(), 3);
    assert_eq!(*connections.lock().unwrap(), 3, "a new connection for each");
}
