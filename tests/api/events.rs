//! Bounce and complaint intake: the generic endpoint and each provider's, with their signatures.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const SNS_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:enlace-ses";
const SNS_CERT_URL: &str =
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem";

async fn report(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.send_as(token, "POST", "/api/v1/events", body).await
}

fn outcomes(body: &Value) -> Vec<&str> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect()
}

/// A confirmed subscriber, added directly.
async fn confirmed(app: &TestApp, email: &str) {
    app.add_subscriber(email, "confirmed", "es", Some("Ana"), json!({}));
}

#[tokio::test]
async fn a_hard_bounce_suppresses_and_a_repeat_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    confirmed(&app, "ana@example.org").await;
    let event = json!({
        "id": "b-1", "type": "hard_bounce", "email": "Ana@Example.org",
        "occurred_at": "2026-11-20T10:00:00Z", "detail": "550 5.1.1 user unknown"
    });
    let res = report(&app, &admin, event.clone()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["id"], "b-1");
    assert_eq!(outcomes(&body), ["suppressed"]);
    assert_eq!(app.status_of("ana@example.org").as_deref(), Some("bounced"));
    assert_eq!(app.count("suppressions WHERE reason = 'hard_bounce'"), 1);

    // The provider delivers the same report again: nothing changes.
    let again: Value = report(&app, &admin, event).await.json().await.unwrap();
    assert_eq!(outcomes(&again), ["duplicate"]);
    assert_eq!(app.count("mail_events"), 1);

    // A later signup with the address gets no mail.
    let res = app
        .subscribe(json!({"email": "ana@example.org", "language": "es"}))
        .await;
    assert_eq!(res.status(), 202);
    app.run_jobs().await;
    assert!(app.mails_to("ana@example.org").is_empty());
    // The record keeps no address, and the person's data export lists the report.
    assert_eq!(app.count("mail_events WHERE email_hash LIKE '%@%'"), 0);
    let id = app.conn_subscriber_id("ana@example.org");
    let data = app
        .get_json_as(&admin, &format!("/api/v1/subscribers/{id}/data"))
        .await;
    assert_eq!(data["mail_reports"][0]["kind"], "hard_bounce");
    assert_eq!(data["mail_reports"][0]["detail"], "550 5.1.1 user unknown");
}

#[tokio::test]
async fn a_complaint_unsubscribes_from_everything_with_a_record() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    confirmed(&app, "luis@example.org").await;
    let res = report(
        &app,
        &admin,
        json!([{"id": "c-1", "type": "complaint", "email": "luis@example.org"},
               {"id": "c-2", "type": "complaint", "email": "nobody@example.org"}]),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    // The same answer whether or not the address was on the list; the record says which.
    assert_eq!(outcomes(&body), ["suppressed", "suppressed"]);
    assert_eq!(app.count("mail_events WHERE outcome = 'complained'"), 1);
    assert_eq!(
        app.status_of("luis@example.org").as_deref(),
        Some("complained")
    );
    assert_eq!(
        app.count("consent_events WHERE action = 'unsubscribe' AND source = 'api' AND wording LIKE '%spam%'"),
        1
    );
    assert_eq!(app.count("suppressions WHERE reason = 'complaint'"), 2);
    // Someone who never subscribed and complained is never mailed either.
    app.subscribe(json!({"email": "nobody@example.org"})).await;
    app.run_jobs().await;
    assert!(app.mails_to("nobody@example.org").is_empty());
}

#[tokio::test]
async fn soft_bounces_count_within_the_window_until_the_limit() {
    let app = TestApp::builder()
        .settings(|s| {
            s.soft_bounce_limit = 3;
            s.soft_bounce_window_hours = 72;
        })
        .spawn()
        .await;
    let admin = app.staff_token(Role::Admin).await;
    confirmed(&app, "eva@example.org").await;
    let soft = |id: &str, at: String| json!({"id": id, "type": "soft_bounce", "email": "eva@example.org", "occurred_at": at});
    let ago = |hours: i64| {
        (chrono::Utc::now() - chrono::Duration::hours(hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    // One long ago (outside the window), then two recent ones: still subscribed.
    let body: Value = report(
        &app,
        &admin,
        json!([
            soft("s-0", ago(200)),
            soft("s-1", ago(48)),
            soft("s-2", ago(1))
        ]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(outcomes(&body), ["counted", "counted", "counted"]);
    assert_eq!(
        app.status_of("eva@example.org").as_deref(),
        Some("confirmed")
    );
    // The third within 72 hours bounces the address.
    let body: Value = report(&app, &admin, soft("s-3", ago(0)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outcomes(&body), ["suppressed"]);
    assert_eq!(app.status_of("eva@example.org").as_deref(), Some("bounced"));
}

#[tokio::test]
async fn bad_reports_are_refused_whole_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    confirmed(&app, "ana@example.org").await;
    let res = report(
        &app,
        &admin,
        json!([
            {"id": "ok", "type": "hard_bounce", "email": "ana@example.org"},
            {"id": "", "type": "bounce", "email": "not an address", "occurred_at": "yesterday"},
            {"id": "x", "type": "complaint", "email": "a@b.org", "extra": 1}
        ]),
    )
    .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    for field in [
        "[1].id",
        "[1].type",
        "[1].email",
        "[1].occurred_at",
        "[2].event",
    ] {
        assert!(body["errors"][field].is_array(), "{field}: {body}");
    }
    assert_eq!(app.count("mail_events"), 0);
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("confirmed")
    );
    for bad in [json!([]), json!("text"), json!(vec![json!({}); 1001])] {
        assert_eq!(report(&app, &admin, bad).await.status(), 422);
    }
    let res = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Only admins and keys with events:write report.
    let editor = app.staff_token(Role::Editor).await;
    let event = json!({"id": "e", "type": "complaint", "email": "ana@example.org"});
    assert_eq!(report(&app, &editor, event.clone()).await.status(), 403);
    let key: Value = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/api-keys",
            json!({"name": "bounces", "scopes": ["events:write"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = report(&app, key["key"].as_str().unwrap(), event).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.count("audit_log WHERE action = 'mail_events.record' AND actor_type = 'api_key'"),
        1
    );
}

#[tokio::test]
async fn the_same_report_twice_at_once_is_applied_once() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    confirmed(&app, "ana@example.org").await;
    let event = json!({"id": "race", "type": "soft_bounce", "email": "ana@example.org"});
    let (a, b) = tokio::join!(
        report(&app, &admin, event.clone()),
        report(&app, &admin, event.clone())
    );
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    let mut seen = [outcomes(&a)[0], outcomes(&b)[0]];
    seen.sort_unstable();
    assert_eq!(seen, ["counted", "duplicate"]);
    assert_eq!(app.count("mail_events"), 1);
}

#[tokio::test]
async fn provider_endpoints_are_off_until_configured() {
    let app = spawn_app().await;
    for provider in ["ses", "postmark", "sendgrid", "mailgun"] {
        let res = app
            .post_json(&format!("/api/v1/events/{provider}"), &json!({}))
            .await;
        assert_eq!(res.status(), 404, "{provider}");
    }
}

#[tokio::test]
async fn postmark_reports_need_the_webhook_credentials() {
    let app = TestApp::builder()
        .settings(|s| s.postmark_webhook_token = Some("pm-secret-123".into()))
        .spawn()
        .await;
    confirmed(&app, "ana@example.org").await;
    confirmed(&app, "luis@example.org").await;
    let post = |auth: Option<&'static str>, body: Value| {
        let mut req = app
            .client
            .post(app.url("/api/v1/events/postmark"))
            .json(&body);
        if let Some(password) = auth {
            req = req.basic_auth("postmark", Some(password));
        }
        req.send()
    };
    let bounce = json!({
        "RecordType": "Bounce", "ID": 4323372036854775807u64, "Type": "HardBounce", "TypeCode": 1,
        "Email": "ana@example.org", "BouncedAt": "2026-11-20T16:33:54.9070259Z",
        "Description": "The server was unable to deliver your message"
    });
    // Missing or wrong credentials: 401 with the Basic challenge, and nothing is read.
    for auth in [None, Some("wrong")] {
        let res = post(auth, bounce.clone()).await.unwrap();
        assert_eq!(res.status(), 401);
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(app.count("mail_events"), 0);
    // A record is a JSON object: anything else is refused.
    for body in [json!(false), json!([bounce.clone()]), json!("Bounce")] {
        let res = post(Some("pm-secret-123"), body).await.unwrap();
        assert_eq!(res.status(), 400);
    }
    assert_eq!(app.count("mail_events"), 0);
    let res = post(Some("pm-secret-123"), bounce).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.status_of("ana@example.org").as_deref(), Some("bounced"));
    let complaint = json!({
        "RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512,
        "Email": "luis@example.org", "BouncedAt": "2026-11-20T16:33:54Z"
    });
    let body: Value = post(Some("pm-secret-123"), complaint)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcomes(&body), ["suppressed"]);
    // A message blocked by the receiving provider says nothing bad about the address.
    confirmed(&app, "eva@example.org").await;
    let blocked = json!({
        "RecordType": "Bounce", "ID": 43, "Type": "Blocked", "TypeCode": 100001,
        "Email": "eva@example.org", "BouncedAt": "2026-11-20T16:33:54Z"
    });
    let body: Value = post(Some("pm-secret-123"), blocked)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcomes(&body), ["counted"]);
    assert_eq!(
        app.status_of("eva@example.org").as_deref(),
        Some("confirmed")
    );
    let delivery = json!({"RecordType": "Delivery", "ID": 7, "Recipient": "ana@example.org"});
    let body: Value = post(Some("pm-secret-123"), delivery)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["ignored"], 1);
}

#[tokio::test]
async fn sendgrid_reports_are_checked_against_its_public_key() {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey;
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let public = STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());
    let app = TestApp::builder()
        .settings(|s| s.sendgrid_webhook_public_key = Some(public))
        .spawn()
        .await;
    for email in ["ana@example.org", "luis@example.org", "eva@example.org"] {
        confirmed(&app, email).await;
    }
    let body = json!([
        {"email": "ana@example.org", "timestamp": 1_763_650_000, "event": "bounce", "type": "bounce",
         "sg_event_id": "sg-1", "reason": "550 5.1.1 unknown"},
        {"email": "eva@example.org", "timestamp": 1_763_650_000, "event": "bounce", "type": "blocked",
         "sg_event_id": "sg-2"},
        {"email": "luis@example.org", "timestamp": 1_763_650_000, "event": "spamreport",
         "sg_event_id": "sg-3"},
        {"email": "luis@example.org", "timestamp": 1_763_650_000, "event": "delivered",
         "sg_event_id": "sg-4"}
    ])
    .to_string();
    let post = |signature: String, timestamp: &str, body: String| {
        app.client
            .post(app.url("/api/v1/events/sendgrid"))
            .header("content-type", "application/json")
            .header("X-Twilio-Email-Event-Webhook-Signature", signature)
            .header(
                "X-Twilio-Email-Event-Webhook-Timestamp",
                timestamp.to_owned(),
            )
            .body(body)
            .send()
    };
    let sign = |timestamp: &str, body: &str| {
        let signature: Signature = key.sign(format!("{timestamp}{body}").as_bytes());
        STANDARD.encode(signature.to_der().as_bytes())
    };
    // Signed for another body, or another timestamp: refused.
    let res = post(sign("1763650000", "[]"), "1763650000", body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = post(sign("1763650001", &body), "1763650000", body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.count("mail_events"), 0);

    let res = post(sign("1763650000", &body), "1763650000", body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let result: Value = res.json().await.unwrap();
    assert_eq!(outcomes(&result), ["suppressed", "counted", "suppressed"]);
    assert_eq!(result["ignored"], 1);
    // SendGrid retries a batch it thinks failed: processed once.
    let again: Value = post(sign("1763650000", &body), "1763650000", body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcomes(&again), ["duplicate", "duplicate", "duplicate"]);
}

#[tokio::test]
async fn mailgun_reports_carry_an_hmac_of_the_signing_key() {
    use hmac::{Hmac, Mac};
    let app = TestApp::builder()
        .settings(|s| s.mailgun_signing_key = Some("key-mailgun-test".into()))
        .spawn()
        .await;
    confirmed(&app, "ana@example.org").await;
    confirmed(&app, "luis@example.org").await;
    let signed = |timestamp: &str, token: &str, key: &str, event: Value| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        json!({
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event
        })
    };
    let now = chrono::Utc::now().timestamp().to_string();
    let now = now.as_str();
    let failed = json!({
        "event": "failed", "severity": "permanent", "id": "mg-1", "timestamp": 1763650000.25,
        "recipient": "ana@example.org",
        "delivery-status": {"code": 550, "message": "5.1.1 <ana@example.org>: No such user"}
    });
    let res = app
        .post_json(
            "/api/v1/events/mailgun",
            &signed(now, "tok-1", "another-key", failed.clone()),
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("confirmed")
    );
    // A signature made long ago is refused even with the right key.
    let res = app
        .post_json(
            "/api/v1/events/mailgun",
            &signed("1763650000", "tok-0", "key-mailgun-test", failed.clone()),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .post_json(
            "/api/v1/events/mailgun",
            &signed(now, "tok-1", "key-mailgun-test", failed),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.status_of("ana@example.org").as_deref(), Some("bounced"));
    // The diagnostic is kept without the address it quoted.
    assert_eq!(
        app.count("mail_events WHERE detail = '5.1.1 <[address]>: No such user'"),
        1
    );
    // The signature covers only timestamp and token: someone who saw one request cannot reuse
    // its signature for another event.
    let forged = json!({
        "event": "complained", "id": "mg-forged", "timestamp": 1763650001.0,
        "recipient": "luis@example.org"
    });
    let res = app
        .post_json(
            "/api/v1/events/mailgun",
            &signed(now, "tok-1", "key-mailgun-test", forged),
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.status_of("luis@example.org").as_deref(),
        Some("confirmed")
    );
    let complained = json!({
        "event": "complained", "id": "mg-2", "timestamp": 1763650001.0,
        "recipient": "luis@example.org"
    });
    let body: Value = app
        .post_json(
            "/api/v1/events/mailgun",
            &signed(now, "tok-2", "key-mailgun-test", complained),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(outcomes(&body), ["suppressed"]);
}

/// An SNS message signed with the test certificate's key (signature version 1 or 2).
fn sns_message(kind: &str, message: &str, version: &str, topic: &str) -> Value {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key =
        rsa::RsaPrivateKey::from_pkcs1_pem(include_str!("../fixtures/sns-test-key.pem")).unwrap();
    let mut fields = json!({
        "Type": kind,
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": "2026-11-20T16:33:55.000Z",
        "SignatureVersion": version,
        "SigningCertURL": SNS_CERT_URL,
    });
    let mut signed = String::new();
    let mut add = |name: &str| {
        signed.push_str(&format!("{name}\n{}\n", fields[name].as_str().unwrap()));
    };
    add("Message");
    add("MessageId");
    add("Timestamp");
    add("TopicArn");
    add("Type");
    let signature = match version {
        "1" => SigningKey::<sha1::Sha1>::new(key)
            .sign(signed.as_bytes())
            .to_vec(),
        _ => SigningKey::<sha2::Sha256>::new(key)
            .sign(signed.as_bytes())
            .to_vec(),
    };
    fields["Signature"] = STANDARD.encode(signature).into();
    fields
}

async fn sns_app() -> TestApp {
    TestApp::builder()
        .settings(|s| s.ses_topic_arns = vec![SNS_TOPIC.into()])
        .trusting_sns(vec![(
            SNS_CERT_URL.into(),
            include_str!("../fixtures/sns-test-cert.pem").into(),
        )])
        .spawn()
        .await
}

async fn post_sns(app: &TestApp, message: &Value) -> reqwest::Response {
    // SNS posts JSON labelled text/plain.
    app.client
        .post(app.url("/api/v1/events/ses"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", message["Type"].as_str().unwrap())
        .body(message.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ses_notifications_through_sns_are_verified_and_applied_once() {
    let app = sns_app().await;
    confirmed(&app, "ana@example.org").await;
    confirmed(&app, "luis@example.org").await;
    let bounce = json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "fb-1",
            "timestamp": "2026-11-20T16:33:54.000Z",
            "bouncedRecipients": [
                {"emailAddress": "ana@example.org", "diagnosticCode": "smtp; 550 5.1.1 unknown"}
            ]
        },
        "mail": {"messageId": "m-1"}
    })
    .to_string();
    for version in ["1", "2"] {
        let message = sns_message("Notification", &bounce, version, SNS_TOPIC);
        let res = post_sns(&app, &message).await;
        assert_eq!(res.status(), 200, "signature version {version}");
    }
    assert_eq!(app.status_of("ana@example.org").as_deref(), Some("bounced"));
    assert_eq!(
        app.count("mail_events"),
        1,
        "the second delivery is a duplicate"
    );

    let complaint = json!({
        "eventType": "Complaint",
        "complaint": {"feedbackId": "fb-2", "complaintFeedbackType": "abuse",
                      "complainedRecipients": [{"emailAddress": "luis@example.org"}]},
        "mail": {"messageId": "m-2"}
    })
    .to_string();
    // Tampered with after signing, or from a topic not listed: refused, nothing changes.
    let mut tampered = sns_message("Notification", &complaint, "2", SNS_TOPIC);
    tampered["Message"] = complaint.replace("abuse", "other").into();
    assert_eq!(post_sns(&app, &tampered).await.status(), 403);
    let other_topic = sns_message(
        "Notification",
        &complaint,
        "2",
        "arn:aws:sns:us-east-1:999999999999:someone-else",
    );
    assert_eq!(post_sns(&app, &other_topic).await.status(), 403);
    let mut elsewhere = sns_message("Notification", &complaint, "2", SNS_TOPIC);
    elsewhere["SigningCertURL"] = "https://attacker.example/cert.pem".into();
    assert_eq!(post_sns(&app, &elsewhere).await.status(), 403);
    assert_eq!(
        app.status_of("luis@example.org").as_deref(),
        Some("confirmed")
    );

    let res = post_sns(
        &app,
        &sns_message("Notification", &complaint, "2", SNS_TOPIC),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("luis@example.org").as_deref(),
        Some("complained")
    );
}

#[test]
fn only_sns_hosts_are_trusted_for_certificates() {
    use enlace::bounces::sns::is_sns_url;
    assert!(is_sns_url(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
    ));
    assert!(is_sns_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem"));
    for bad in [
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.attacker.example/x.pem",
        "https://attacker.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sqs.us-east-1.amazonaws.com/x.pem",
        "https://sns..amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?again=1.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem#y.pem",
    ] {
        assert!(!is_sns_url(bad), "{bad}");
    }
}

#[tokio::test]
async fn integrations_hear_of_bounces_and_complaints() {
    let app = TestApp::builder()
        .settings(|s| s.webhook_allow_private = true)
        .spawn()
        .await;
    let admin = app.staff_token(Role::Admin).await;
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/crm",
                   "events": ["subscriber.bounced", "subscriber.complained"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    confirmed(&app, "ana@example.org").await;
    confirmed(&app, "luis@example.org").await;
    let events = json!([
        {"id": "1", "type": "hard_bounce", "email": "ana@example.org"},
        {"id": "2", "type": "complaint", "email": "luis@example.org"},
        {"id": "3", "type": "complaint", "email": "luis@example.org"}
    ]);
    assert_eq!(report(&app, &admin, events).await.status(), 200);
    let announced =
        |event: &str| app.count(&format!("webhook_messages WHERE event_type = '{event}'"));
    assert_eq!(announced("subscriber.bounced"), 1);
    assert_eq!(
        announced("subscriber.complained"),
        1,
        "a second complaint changes nothing"
    );
}

#[tokio::test]
async fn a_report_arriving_after_an_erasure_keeps_no_diagnostic() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    let id = app.add_subscriber(
        "late@example.org",
        "confirmed",
        "en",
        Some("Zenaida Quintero"),
        json!({}),
    );
    let res = app.erase(&admin, &id).await;
    assert_eq!(res.status(), 204);
    let body: Value = report(
        &app,
        &admin,
        json!({"id": "late-1", "type": "hard_bounce", "email": "late@example.org",
               "detail": "550 5.1.1 mailbox of Zenaida Quintero is gone"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(outcomes(&body), ["suppressed"]);
    assert_eq!(
        app.count("mail_events WHERE id LIKE '%late-1'"),
        1,
        "the report is recorded"
    );
    assert_eq!(
        app.count("mail_events WHERE detail IS NOT NULL"),
        0,
        "without its diagnostic"
    );
}
