//! Health, readiness, metrics, and the OpenAPI document kept true to the routes served.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.subscribe(json!({"email": "m@example.org"})).await;
    app.run_jobs().await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for needle in [
        "enlace_signups_total 1",
        "enlace_http_requests_total{method=\"POST\",route=\"/api/v1/subscribe\",status=\"202\"} 1",
        "enlace_confirmations_total 0",
        "enlace_unsubscribes_total 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("m@example.org"));
    // Nothing public tells a new address from a known one.
    assert!(
        !text.contains("outcome=")
            && !text.contains("enlace_subscribers")
            && !text.contains("enlace_mails_sent")
            && !text.contains("enlace_queue_depth"),
        "{text}"
    );
}

/// Public metrics as (series → value), leaving out answer times (see the signup answer floor).
async fn public_series(app: &crate::helpers::TestApp) -> std::collections::BTreeMap<String, f64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("enlace_http_request_duration"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
        .collect()
}

fn changes(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

#[tokio::test]
async fn public_metrics_move_the_same_for_a_new_and_a_suppressed_address() {
    let app = spawn_app().await;
    app.add_subscriber("gone@example.org", "complained", "en", None, json!({}));
    app.suppress("gone@example.org", "complaint", "2026-11-01");
    let start = public_series(&app).await;
    app.subscribe(json!({"email": "gone@example.org"})).await;
    app.run_jobs().await;
    let after_suppressed = public_series(&app).await;
    app.subscribe(json!({"email": "new@example.org"})).await;
    app.run_jobs().await;
    let after_new = public_series(&app).await;
    assert_eq!(
        app.mails_to("new@example.org").len(),
        1,
        "the new address was mailed"
    );
    assert_eq!(
        changes(&start, &after_suppressed),
        changes(&after_suppressed, &after_new),
        "a scraper sees the same change for both signups"
    );
}

#[tokio::test]
async fn detailed_metrics_need_the_metrics_token() {
    let app = TestApp::builder()
        .settings(|s| s.metrics_token = Some("metrics-secret".into()))
        .spawn()
        .await;
    app.subscribe(json!({"email": "d@example.org"})).await;
    let get = |token: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/metrics"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let detail = get("metrics-secret").await.text().await.unwrap();
    assert!(
        detail.contains("enlace_signup_outcomes_total{outcome=\"created\"} 1"),
        "{detail}"
    );
    assert!(detail.contains("enlace_subscribers{status=\"pending\"} 1"));
    assert!(detail.contains("enlace_queue_depth 1"), "{detail}");
    app.run_jobs().await;
    let detail = get("metrics-secret").await.text().await.unwrap();
    assert!(detail.contains("enlace_mails_sent_total 1"), "{detail}");
    assert!(detail.contains("enlace_queue_depth 0"), "{detail}");
    assert_eq!(detail.matches("# EOF").count(), 1);
    let wrong = get("guess").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_openapi_document_is_served_and_matches_the_routes() {
    let app = spawn_app().await;
    let res = app.get("/openapi.yaml").await;
    assert_eq!(res.status(), 200);
    let doc: serde_norway::Value = serde_norway::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(doc["openapi"].as_str().unwrap(), "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "head", "post", "put", "patch", "delete"].contains(&method) {
                documented.insert((method.to_owned(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    let served: BTreeSet<_> = enlace::routes::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
    // And every documented route really answers (not the catch-all 404 of an unknown path).
    for (method, path) in &documented {
        let path = path.replace("{token}", "abc");
        let res = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), 405, "{method} {path}");
    }
}

#[tokio::test]
async fn pages_and_answers_carry_protective_headers() {
    let app = spawn_app().await;
    let res = app.get("/confirm/abc").await;
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
}

/// Sends request headers announcing a body, then one byte of it, and holds the connection.
async fn slow_body(app: &crate::helpers::TestApp, client: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /api/v1/subscribe HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\nX-Forwarded-For: {client}\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// The whole answer on a connection (until the server closes it), or what came in `wait`.
async fn answer(stream: &mut tokio::net::TcpStream, wait: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_clients_cannot_hold_the_service() {
    let app = TestApp::builder()
        .settings(|s| {
            s.client_max_requests = 4;
            s.body_idle_seconds = 2;
            s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        })
        .spawn()
        .await;
    // One client opens twenty connections, each sending its body one byte and then nothing.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(slow_body(&app, "198.51.100.7").await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Beyond its four, the client is told at once to come back later, and disconnected.
    let mut waiting = Vec::new();
    for mut stream in held {
        let text = answer(&mut stream, std::time::Duration::from_millis(300)).await;
        if text.is_empty() {
            waiting.push(stream);
        } else {
            assert!(text.starts_with("HTTP/1.1 429"), "{text}");
            assert!(text.contains("retry-after"), "{text}");
        }
    }
    assert_eq!(waiting.len(), 4, "the client holds only its share");
    // Meanwhile everyone else is served: health checks and signups from other clients.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let res = app
        .client
        .post(app.url("/api/v1/subscribe"))
        .header("x-forwarded-for", "192.0.2.50")
        .json(&json!({"email": "someone@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // The four held bodies are cut off once they stop arriving: 408, and the connection closed.
    for stream in waiting.iter_mut() {
        let text = answer(stream, std::time::Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("application/problem+json"), "{text}");
    }
    assert_eq!(app.count("subscribers"), 1);
}

/// A description in a flow mapping (`{…, description: a, b}`) is cut at its first comma, and the
/// rest becomes a key of no value: the document then says less than was written.
#[test]
fn no_description_in_the_openapi_document_is_cut_short() {
    fn fragments(value: &serde_norway::Value, path: &str, found: &mut Vec<String>) {
        match value {
            serde_norway::Value::Mapping(map) => {
                for (key, inner) in map {
                    let key = key.as_str().unwrap_or_default();
                    if key.contains(' ') && inner.is_null() {
                        found.push(format!("{path}: {key:?}"));
                    }
                    fragments(inner, &format!("{path}/{key}"), found);
                }
            }
            serde_norway::Value::Sequence(items) => {
                for (i, inner) in items.iter().enumerate() {
                    fragments(inner, &format!("{path}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut found = Vec::new();
    fragments(&doc, "", &mut found);
    assert_eq!(found, Vec::<String>::new(), "quote these descriptions");
}
