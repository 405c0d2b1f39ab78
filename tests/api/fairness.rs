//! "One newsletter cannot starve another's sending": a small newsletter sent while a large one
//! whose messages are slow to render is going out is delivered while the large one is still
//! going, not after it. (Each sending newsletter is claimed and rendered by a task of its own;
//! a render is bounded by the template rules, so the small one waits for at most the render
//! threads' current work.)

use std::time::{Duration, Instant};

use enlace::auth::Role;
use serde_json::json;

use crate::helpers::TestApp;
use crate::newsletters::{create, post, POSTAL};

/// A newsletter that takes long to render for every recipient, within the template rules: many
/// merge fields, each printed only when set.
fn slow_html(fields: usize) -> String {
    let mut html = String::from("<p>");
    for _ in 0..fields {
        html.push_str("{% if name %}{{ name }} {{ email }}{% else %}{{ email }}{% endif %}");
    }
    html.push_str("</p>");
    html
}

#[tokio::test]
async fn a_small_newsletter_goes_out_while_a_large_slow_one_is_still_sending() {
    // Four senders at 200 messages a second: rounds of 32 deliveries, and the large send lasts
    // about ten seconds however fast this machine renders, so "most of the large one still to
    // go" is decided by the engine's fairness, not by the machine's speed (with the default 64
    // senders unpaced, a first round of 512 can go out before the engine has even looked again
    // for newsletters to send).
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            s.send_concurrency = 4;
            s.send_rate = 200;
        })
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let large = 2_000;
    for i in 0..large {
        app.add_subscriber(
            &format!("a{i}@example.org"),
            "confirmed",
            "en",
            Some("Ana María"),
            json!({}),
        );
    }
    for i in 0..8 {
        app.add_subscriber(
            &format!("b{i}@b.example"),
            "confirmed",
            "es",
            None,
            json!({}),
        );
    }
    let slow = create(
        &app,
        &token,
        json!({"subject": "Large", "html": slow_html(2_000), "filter": {"email_domain": "example.org"}}),
    )
    .await;
    let slow = slow["id"].as_str().unwrap().to_owned();
    let small = create(
        &app,
        &token,
        json!({"subject": "Small", "html": "<p>Hola</p>", "filter": {"email_domain": "b.example"}}),
    )
    .await;
    let small = small["id"].as_str().unwrap().to_owned();
    let sent = |id: &str| {
        app.count(&format!(
            "deliveries WHERE newsletter_id = '{id}' AND state = 'sent'"
        ))
    };

    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{slow}/send")).await;
    assert_eq!(status, 202);
    let engine = app.engine.clone();
    let sending = tokio::spawn(async move { engine.run_pending(enlace::db::now()).await });
    let t0 = Instant::now();
    while sent(&slow) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the large send started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{small}/send")).await;
    assert_eq!(status, 202);
    let t1 = Instant::now();
    while sent(&small) < 8 {
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "the small send finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let large_sent_then = sent(&slow);
    eprintln!(
        "small done after {:?}; large sent then {large_sent_then}",
        t1.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(600), sending)
        .await
        .expect("the sends finished")
        .unwrap()
        .unwrap();
    assert_eq!(sent(&slow), large as i64);
    assert!(
        large_sent_then < large as i64 / 2,
        "the small newsletter went out while most of the large one was still to go ({large_sent_then} of {large} sent)"
    );
}
