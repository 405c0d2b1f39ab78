//! Outbound webhooks, received by a server the test starts on loopback: every delivery is
//! checked with the Standard Webhooks reference library; failures are retried with the same
//! id; the events follow a person through signup, confirmation, preferences, unsubscribe and
//! erasure; private targets are refused unless the operator allows them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Duration as Span;
use enlace::auth::Role;
use enlace::config::Settings;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// What the receiver does with the next request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Answers only after the sender's timeout (1 s in these tests) has passed.
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: i64,
    body: Value,
    raw: String,
    signature: String,
    /// The reference library accepted signature and timestamp.
    verified: bool,
}

#[derive(Default)]
struct ReceiverState {
    secret: Mutex<Option<String>>,
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// A webhook receiver on 127.0.0.1 that verifies and records every request and answers as
/// scripted (200 once the script runs out).
struct Receiver {
    url: String,
    port: u16,
    state: Arc<ReceiverState>,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in req.headers() {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let verified = state
        .secret
        .lock()
        .unwrap()
        .as_deref()
        .is_some_and(|secret| {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(&body, &headers)
                .is_ok()
        });
    state.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).into_owned(),
        signature: header("webhook-signature"),
        verified,
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).body("thanks")
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            HttpResponse::Ok().finish()
        }
    }
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/enlace"),
            port,
            state,
        }
    }

    fn set_secret(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = Some(secret.to_owned());
    }

    fn script(&self, replies: &[Reply]) {
        self.state.script.lock().unwrap().extend(replies);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn types(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.body["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn loopback_allowed(s: &mut Settings) {
    s.webhook_allow_private = true;
    s.webhook_timeout_seconds = 1;
}

async fn admin_app(configure: impl FnOnce(&mut Settings)) -> (TestApp, String) {
    let app = TestApp::builder().settings(configure).spawn().await;
    let token = app.staff_token(Role::Admin).await;
    (app, token)
}

async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let res = app.send_as(token, method, path, body).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Registers `receiver` for `events`; returns the endpoint id, and tells the receiver the secret.
async fn register(app: &TestApp, token: &str, receiver: &Receiver, events: &[&str]) -> String {
    let (status, body) = call(
        app,
        token,
        "POST",
        "/api/v1/webhooks",
        json!({"url": receiver.url, "events": events, "description": "CRM sync"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    receiver.set_secret(body["secret"].as_str().unwrap());
    body["id"].as_str().unwrap().to_owned()
}

async fn deliveries(app: &TestApp, token: &str, endpoint: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        token,
        "GET",
        &format!("/api/v1/webhooks/{endpoint}/deliveries"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn assert_all_verified(receiver: &Receiver) {
    let now = chrono::Utc::now().timestamp();
    for r in receiver.received() {
        assert!(r.verified, "signature of {} verifies", r.id);
        assert!((now - r.timestamp).abs() < 60, "fresh webhook-timestamp");
        assert!(r.id.starts_with("msg_"), "{}", r.id);
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id_and_every_attempt_is_logged() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let receiver = Receiver::start().await;
    let endpoint = register(&app, &admin, &receiver, &["subscriber.created"]).await;
    receiver.script(&[Reply::Status(500), Reply::Hang]);

    let res = app
        .subscribe(json!({"email": "ana@example.org", "name": "Ana"}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(app.run_tasks().await, 1);
    assert_eq!(receiver.received().len(), 1);
    // Not again before the backoff has passed.
    assert_eq!(app.run_tasks().await, 0);
    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log[0]["state"], "pending");
    assert_eq!(log[0]["last_status"], 500);

    // Second attempt: the receiver does not answer in time.
    assert_eq!(app.run_tasks_after(Span::minutes(2)).await, 1);
    assert_eq!(receiver.received().len(), 2);
    // Third attempt: accepted.
    assert_eq!(app.run_tasks_after(Span::minutes(10)).await, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "one webhook-id for every attempt"
    );
    assert!(
        got.iter().all(|r| r.raw == got[0].raw),
        "the same body every time"
    );
    assert_all_verified(&receiver);
    let body = &got[0].body;
    assert_eq!(body["type"], "subscriber.created");
    assert_eq!(body["data"]["email"], "ana@example.org");
    assert_eq!(body["data"]["name"], "Ana");
    assert_eq!(body["data"]["status"], "pending");
    assert!(body["timestamp"].as_str().is_some());

    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log.len(), 1);
    let message = &log[0];
    assert_eq!(message["id"], got[0].id.as_str());
    assert_eq!(message["state"], "delivered");
    assert_eq!(message["attempts"], 3);
    assert!(message["delivered_at"].is_string());
    let attempts = message["log"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["response"], "thanks");
    assert_eq!(attempts[1]["status_code"], Value::Null);
    assert_eq!(attempts[1]["error"], "no answer in time");
    assert_eq!(attempts[2]["status_code"], 200);
    // Delivered means done: nothing more, however long we wait.
    assert_eq!(app.run_tasks_after(Span::days(2)).await, 0);
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_persons_life_arrives_as_events_in_order_and_erasure_carries_no_personal_data() {
    let (app, admin) = admin_app(loopback_allowed).await;
    app.add_interest("news", true);
    let receiver = Receiver::start().await;
    let every: Vec<&str> = vec![
        "subscriber.created",
        "subscriber.confirmed",
        "subscriber.updated",
        "subscriber.unsubscribed",
        "subscriber.erased",
        "subscriber.bounced",
        "subscriber.complained",
    ];
    register(&app, &admin, &receiver, &every).await;

    app.subscribe(
        json!({"email": "lu@example.org", "name": "Lu", "language": "es", "interests": ["news"]}),
    )
    .await;
    app.run_tasks().await;
    let confirmation = app.deliver_one("lu@example.org").await;
    let res = app
        .client
        .post(app.url(&app.link(&confirmation, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.run_tasks().await;
    let welcome = app.deliver_one("lu@example.org").await;
    let preferences = app.link(&welcome, "/preferences/");
    let res = app
        .post_form(&preferences, "action=save&name=Lu+Garc%C3%ADa&language=es")
        .await;
    assert_eq!(res.status(), 200);
    app.run_tasks().await;
    let header = welcome.list_unsubscribe.clone().unwrap();
    let unsubscribe = header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches(&app.address)
        .to_owned();
    let res = app
        .post_form(&unsubscribe, "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(res.status(), 200);
    app.run_tasks().await;
    let id = app.conn_subscriber_id("lu@example.org");
    let res = app.erase(&admin, &id).await;
    assert_eq!(res.status(), 204);
    app.run_tasks().await;

    assert_eq!(
        receiver.types(),
        [
            "subscriber.created",
            "subscriber.confirmed",
            "subscriber.updated",
            "subscriber.unsubscribed",
            "subscriber.erased",
        ]
    );
    assert_all_verified(&receiver);
    let got = receiver.received();
    let data = |i: usize| got[i].body["data"].clone();
    assert_eq!(data(0)["id"], id.as_str());
    assert_eq!(data(0)["status"], "pending");
    assert_eq!(data(0)["language"], "es");
    assert_eq!(data(0)["interests"], json!(["news"]));
    assert_eq!(data(1)["status"], "confirmed");
    assert!(data(1)["confirmed_at"].is_string());
    assert_eq!(data(2)["name"], "Lu García");
    assert_eq!(data(3)["status"], "unsubscribed");
    // Erasure: the id and the time, nothing else.
    let erased = data(4);
    let keys: Vec<&String> = erased.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["erased_at", "id"]);
    assert_eq!(erased["id"], id.as_str());
    assert!(!got[4].raw.contains("lu@example.org") && !got[4].raw.contains("Lu"));
    let ids: std::collections::BTreeSet<_> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 5, "each event has its own webhook-id");
}

#[tokio::test]
async fn erasure_drops_undelivered_messages_about_the_person_and_scrubs_the_log() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let receiver = Receiver::start().await;
    let endpoint = register(
        &app,
        &admin,
        &receiver,
        &[
            "subscriber.created",
            "subscriber.updated",
            "subscriber.erased",
        ],
    )
    .await;
    // The receiver is down for the first two deliveries.
    receiver.script(&[Reply::Status(503), Reply::Status(503)]);
    let (status, created) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/subscribers",
        json!({"email": "kim@example.org", "name": "Kim", "consent": {"mode": "recorded", "source": "paper form", "note": "signed at the fair"}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &app,
        &admin,
        "PATCH",
        &format!("/api/v1/subscribers/{id}"),
        json!({"name": "Kim Lee"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.run_tasks().await, 2);
    assert_eq!(receiver.received().len(), 2);

    let res = app.erase(&admin, &id).await;
    assert_eq!(res.status(), 204);
    // The receiver is back; only the erasure reaches it, never the stale records.
    app.run_tasks_after(Span::hours(3)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 3, "{:?}", receiver.types());
    assert_eq!(got[2].body["type"], "subscriber.erased");
    assert_eq!(
        app.count("jobs WHERE kind = 'webhook.deliver' AND state IN ('queued', 'running')"),
        0
    );

    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log.len(), 3);
    let text = serde_json::to_string(&log).unwrap();
    assert!(
        !text.contains("kim@example.org") && !text.contains("Kim"),
        "the log keeps nothing personal: {text}"
    );
    let dropped: Vec<&Value> = log.iter().filter(|m| m["state"] == "dropped").collect();
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().all(
        |m| m["last_error"] == "subscriber erased" && m["payload"]["data"]["id"] == id.as_str()
    ));
    assert_eq!(
        app.count("webhook_messages WHERE payload LIKE '%kim@example.org%'"),
        0
    );
}

#[tokio::test]
async fn staff_changes_bounces_and_complaints_are_announced() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let receiver = Receiver::start().await;
    register(
        &app,
        &admin,
        &receiver,
        &[
            "subscriber.created",
            "subscriber.confirmed",
            "subscriber.bounced",
            "subscriber.complained",
        ],
    )
    .await;
    let (status, created) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/subscribers",
        json!({"email": "rio@example.org", "consent": {"mode": "recorded", "source": "phone bank", "note": "said yes on the call"}}),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    // An update is not subscribed to: no message.
    call(
        &app,
        &admin,
        "PATCH",
        &format!("/api/v1/subscribers/{id}"),
        json!({"name": "Río"}),
    )
    .await;
    // A hard bounce (as the sending engine records it) and a complaint (as the bounce intake
    // reports it) go through the same functions.
    {
        let mut conn = app.conn();
        enlace::db::write_transaction(&mut conn, |c| {
            enlace::signup::record_hard_bounce(
                c,
                &id.parse().expect("a subscriber id"),
                &enlace::tokens::email_hash("rio@example.org"),
                enlace::db::now(),
            )?;
            enlace::webhooks::emit_subscriber(
                c,
                enlace::webhooks::EventType::SubscriberComplained,
                &id,
                enlace::db::now(),
            )
            .map(drop)
        })
        .unwrap();
    }
    app.run_tasks().await;
    let mut types = receiver.types();
    types.sort();
    assert_eq!(
        types,
        [
            "subscriber.bounced",
            "subscriber.complained",
            "subscriber.confirmed",
            "subscriber.created"
        ]
    );
    let bounced = receiver
        .received()
        .into_iter()
        .find(|r| r.body["type"] == "subscriber.bounced")
        .unwrap();
    assert_eq!(bounced.body["data"]["status"], "bounced");
    assert_eq!(bounced.body["data"]["name"], "Río");
    assert_all_verified(&receiver);
}

#[tokio::test]
async fn newsletter_start_and_finish_are_announced() {
    let (app, admin) = admin_app(|s| {
        loopback_allowed(s);
        s.postal_address = Some(crate::newsletters::POSTAL.into());
    })
    .await;
    let receiver = Receiver::start().await;
    register(
        &app,
        &admin,
        &receiver,
        &["newsletter.started", "newsletter.finished"],
    )
    .await;
    crate::newsletters::add_people(&app, 3);
    let id = crate::newsletters::send_plain(&app, &admin).await;
    app.run_sends().await;
    app.run_sends().await;
    app.run_tasks().await;
    let got = receiver.received();
    let find = |t: &str| {
        got.iter()
            .find(|r| r.body["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {:?}", receiver.types()))
            .body["data"]
            .clone()
    };
    let started = find("newsletter.started");
    assert_eq!(started["id"], id.as_str());
    assert_eq!(started["status"], "sending");
    assert_eq!(started["recipients"], 3);
    let finished = find("newsletter.finished");
    assert_eq!(finished["id"], id.as_str());
    assert_eq!(finished["status"], "sent");
    assert_eq!(finished["sent"], 3);
    assert!(finished["finished_at"].is_string());
    // The finished event carries the results as the results API gives them, small counts
    // hidden the same way (three recipients are "fewer than 5").
    assert!(started.get("results").is_none(), "{started}");
    let mut results = finished["results"].clone();
    assert_eq!(results["threshold"], 5, "{finished}");
    assert_eq!(results["total"]["recipients"], serde_json::Value::Null);
    assert_eq!(results["clicks"], serde_json::Value::Null);
    let mut api: serde_json::Value = app
        .get_as(&admin, &format!("/api/v1/newsletters/{id}/results"))
        .await
        .json()
        .await
        .unwrap();
    for r in [&mut results, &mut api] {
        r.as_object_mut().unwrap().remove("read_at");
    }
    assert_eq!(results, api);
    assert_eq!(got.len(), 2);
    assert_all_verified(&receiver);
}

#[tokio::test]
async fn the_test_action_sends_a_signed_test_event_to_that_endpoint_only() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let receiver = Receiver::start().await;
    let endpoint = register(&app, &admin, &receiver, &["newsletter.finished"]).await;
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{endpoint}/test"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 202);
    let message_id = body["message_id"].as_str().unwrap().to_owned();
    app.run_tasks().await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, message_id);
    assert!(
        got[0].id.len() == 36
            && got[0]
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    );
    assert_eq!(got[0].body["type"], "webhook.test");
    assert_eq!(got[0].body["data"]["endpoint_id"], endpoint.as_str());
    assert_all_verified(&receiver);
    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log[0]["state"], "delivered");

    // The log keeps a month: a message settled long ago goes with the next delivery.
    let old = "2025-01-01 00:00:00";
    app.sql(&format!(
        "INSERT INTO webhook_messages (id, endpoint_id, event_type, payload, state, attempts, created_at, updated_at) \
         VALUES ('msg_0194{}', '{endpoint}', 'webhook.test', '{{}}', 'delivered', 1, '{old}', '{old}')",
        "0".repeat(28)
    ));
    assert_eq!(deliveries(&app, &admin, &endpoint).await.len(), 2);
    call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{endpoint}/test"),
        Value::Null,
    )
    .await;
    app.run_tasks().await;
    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|m| m["id"] != format!("msg_0194{}", "0".repeat(28)).as_str()));

    let missing = uuid::Uuid::now_v7();
    let (status, _) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{missing}/test"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    call(
        &app,
        &admin,
        "PATCH",
        &format!("/api/v1/webhooks/{endpoint}"),
        json!({"enabled": false}),
    )
    .await;
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{endpoint}/test"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn private_loopback_and_link_local_targets_are_refused_by_default() {
    let (app, admin) = admin_app(|s| s.webhook_timeout_seconds = 1).await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost:8443/hook",
        "http://hooks.example.org/plain-http",
        "https://user:pw@hooks.example.org/",
        "not a url",
    ] {
        let (status, body) = call(
            &app,
            &admin,
            "POST",
            "/api/v1/webhooks",
            json!({"url": url, "events": ["subscriber.created"]}),
        )
        .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body["errors"]["url"].is_array(), "{url}: {body}");
    }
    let (_, list) = call(&app, &admin, "GET", "/api/v1/webhooks", Value::Null).await;
    assert_eq!(list["data"], json!([]));

    // Endpoints stored earlier (or by hand) are checked again when delivering: a literal
    // address, and a name that resolves to loopback (as a rebinding name would), are not reached.
    let receiver = Receiver::start().await;
    let now = enlace::db::now();
    for (n, url) in [
        format!("https://127.0.0.1:{}/", receiver.port),
        format!("https://localhost:{}/", receiver.port),
    ]
    .iter()
    .enumerate()
    {
        let id = uuid::Uuid::now_v7();
        app.sql(&format!(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret, enabled, created_at, updated_at) \
             VALUES ('{id}', '{url}', 'old {n}', '[\"subscriber.created\"]', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', TRUE, '{now}', '{now}')"
        ));
        let (status, _) = call(
            &app,
            &admin,
            "POST",
            &format!("/api/v1/webhooks/{id}/test"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 202);
        app.run_tasks().await;
        let log = deliveries(&app, &admin, &id.to_string()).await;
        let error = log[0]["last_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("special-purpose address"), "{url}: {error}");
        assert_eq!(
            log[0]["state"], "pending",
            "retried later, in case DNS changes back"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the loopback receiver"
    );
}

#[tokio::test]
async fn endpoints_are_managed_and_their_secret_is_shown_only_once() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let receiver = Receiver::start().await;
    let (status, created) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/webhooks",
        json!({"url": receiver.url, "events": ["subscriber.created", "subscriber.created", "newsletter.finished"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .unwrap();
    assert!(raw.len() >= 24);
    assert_eq!(
        created["events"],
        json!(["subscriber.created", "newsletter.finished"])
    );
    assert_eq!(created["enabled"], true);

    let (_, one) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{id}"),
        Value::Null,
    )
    .await;
    let (_, list) = call(&app, &admin, "GET", "/api/v1/webhooks", Value::Null).await;
    assert_eq!(one["url"], receiver.url.as_str());
    assert_eq!(list["data"][0]["id"], id.as_str());
    for shown in [&one, &list] {
        assert!(
            !shown.to_string().contains(&secret),
            "the secret is never shown again"
        );
    }

    // Bad input changes nothing.
    for (body, field) in [
        (json!({"events": ["subscriber.deleted"]}), "events"),
        (json!({"events": []}), "events"),
        (json!({"url": "ftp://example.org/"}), "url"),
        (json!({"description": "x".repeat(501)}), "description"),
        (json!({"colour": "red"}), "body"),
    ] {
        let (status, problem) = call(
            &app,
            &admin,
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            body,
        )
        .await;
        assert_eq!(status, 422, "{problem}");
        assert!(problem["errors"][field].is_array(), "{problem}");
    }
    let (status, problem) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/webhooks",
        json!({"url": receiver.url, "events": ["everything"]}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(problem["errors"]["events"][0]
        .as_str()
        .unwrap()
        .contains("subscriber.created"));
    let (_, unchanged) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(unchanged, one);

    let (status, changed) = call(
        &app,
        &admin,
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        json!({"events": ["subscriber.unsubscribed"], "description": "Spreadsheet", "enabled": false}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(changed["events"], json!(["subscriber.unsubscribed"]));
    assert_eq!(changed["description"], "Spreadsheet");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["disabled_reason"], "disabled by staff");
    // A disabled endpoint gets nothing.
    app.subscribe(json!({"email": "x@example.org"})).await;
    assert_eq!(app.count("webhook_messages"), 0);
    let (_, enabled) = call(
        &app,
        &admin,
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(enabled["disabled_reason"], Value::Null);

    let res = app
        .send_as(
            &admin,
            "DELETE",
            &format!("/api/v1/webhooks/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(res.status(), 204);
    let (status, _) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    let res = app
        .send_as(
            &admin,
            "DELETE",
            &format!("/api/v1/webhooks/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(res.status(), 404);
    let (status, _) = call(
        &app,
        &admin,
        "GET",
        "/api/v1/webhooks/not-a-uuid",
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    for action in ["webhook.create", "webhook.update", "webhook.delete"] {
        assert_eq!(
            app.count(&format!(
                "audit_log WHERE action = '{action}' AND object_id = '{id}'"
            )),
            if action == "webhook.update" { 2 } else { 1 },
            "{action}"
        );
    }
}

#[tokio::test]
async fn a_receiver_that_answers_410_gone_disables_its_endpoint() {
    let (app, admin) = admin_app(loopback_allowed).await;
    // Every attempt of this endpoint fails, as the test intends.
    app.expect_failed_jobs();
    let receiver = Receiver::start().await;
    let endpoint = register(&app, &admin, &receiver, &["subscriber.created"]).await;
    receiver.script(&[Reply::Status(410)]);
    app.subscribe(json!({"email": "a@example.org"})).await;
    app.run_tasks().await;
    let (_, shown) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{endpoint}"),
        Value::Null,
    )
    .await;
    assert_eq!(shown["enabled"], false);
    assert!(shown["disabled_reason"].as_str().unwrap().contains("410"));
    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log[0]["state"], "failed");
    // Not retried, and nothing new is queued for it.
    app.subscribe(json!({"email": "b@example.org"})).await;
    assert_eq!(app.run_tasks_after(Span::hours(1)).await, 0);
    assert_eq!(receiver.received().len(), 1);
}

async fn api_key(app: &TestApp, admin: &str, scopes: Value) -> String {
    let (status, body) = call(
        app,
        admin,
        "POST",
        "/api/v1/api-keys",
        json!({"name": "k", "scopes": scopes}),
    )
    .await;
    assert_eq!(status, 201);
    body["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn only_admins_and_keys_with_the_webhooks_scope_manage_webhooks() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let editor = app.staff_token(Role::Editor).await;
    let viewer = app.staff_token(Role::Viewer).await;
    let hooks_key = api_key(&app, &admin, json!(["webhooks:write"])).await;
    let other_key = api_key(
        &app,
        &admin,
        json!(["subscribers:read", "subscribers:write", "exports:read"]),
    )
    .await;
    let body = json!({"url": "http://127.0.0.1:9/", "events": ["subscriber.created"]});
    for token in [&editor, &viewer, &other_key] {
        let (status, _) = call(&app, token, "POST", "/api/v1/webhooks", body.clone()).await;
        assert_eq!(status, 403);
        let (status, _) = call(&app, token, "GET", "/api/v1/webhooks", Value::Null).await;
        assert_eq!(status, 403);
    }
    let res = app
        .client
        .get(app.url("/api/v1/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let (status, created) = call(&app, &hooks_key, "POST", "/api/v1/webhooks", body).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        &hooks_key,
        "GET",
        &format!("/api/v1/webhooks/{id}/deliveries?limit=5"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = call(
        &app,
        &hooks_key,
        "GET",
        &format!("/api/v1/webhooks/{id}/deliveries?limit=0&cursor=x"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 422);
    assert!(problem["errors"]["limit"].is_array() && problem["errors"]["cursor"].is_array());
    assert_eq!(
        app.count(&format!("audit_log WHERE action = 'webhook.create' AND actor_type = 'api_key' AND object_id = '{id}'")),
        1
    );
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_for_a_day() {
    let (app, admin) = admin_app(loopback_allowed).await;
    let receiver = Receiver::start().await;
    let endpoint = register(&app, &admin, &receiver, &["subscriber.created"]).await;
    let (status, rotated) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{endpoint}/rotate-secret"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"));
    assert!(rotated["previous_secret_valid_until"].is_string());
    let test = format!("/api/v1/webhooks/{endpoint}/test");

    // A receiver still on the old secret keeps verifying, and so does one on the new secret.
    call(&app, &admin, "POST", &test, Value::Null).await;
    app.run_tasks().await;
    receiver.set_secret(&new_secret);
    call(&app, &admin, "POST", &test, Value::Null).await;
    app.run_tasks().await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.verified));
    assert_eq!(
        got[1].signature.split(' ').count(),
        2,
        "{}",
        got[1].signature
    );

    // Once the overlap is over, only the new secret signs.
    app.sql("UPDATE webhook_endpoints SET previous_secret_until = '2020-01-01 00:00:00'");
    call(&app, &admin, "POST", &test, Value::Null).await;
    app.run_tasks().await;
    let last = receiver.received().pop().unwrap();
    assert!(last.verified);
    assert_eq!(last.signature.split(' ').count(), 1);
    let (status, _) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{}/rotate-secret", uuid::Uuid::now_v7()),
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_endpoint_that_fails_every_attempt_for_a_day_is_disabled() {
    let (app, admin) = admin_app(loopback_allowed).await;
    // Every attempt of this endpoint fails, as the test intends.
    app.expect_failed_jobs();
    let receiver = Receiver::start().await;
    let endpoint = register(&app, &admin, &receiver, &["subscriber.created"]).await;
    receiver.script(&[Reply::Status(502); 30]);
    app.subscribe(json!({"email": "z@example.org"})).await;
    app.run_tasks().await;
    for hour in 1..=30 {
        app.run_tasks_after(Span::hours(2 * hour)).await;
    }
    let got = receiver.received();
    assert_eq!(got.len(), 30, "30 attempts");
    assert!(got.iter().all(|r| r.id == got[0].id));
    let log = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(log[0]["state"], "failed");
    assert_eq!(log[0]["attempts"], 30);
    assert_eq!(log[0]["log"].as_array().unwrap().len(), 30);
    let (_, shown) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{endpoint}"),
        Value::Null,
    )
    .await;
    assert_eq!(shown["enabled"], false);
    assert!(shown["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("for a day"));
    // Nothing more is tried.
    assert_eq!(app.run_tasks_after(Span::days(5)).await, 0);
}
