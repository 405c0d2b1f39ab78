//! Health, readiness, metrics, and the OpenAPI document kept true to the routes served.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::spawn_app;

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
    let hash = enlace::tokens::email_hash("gone@example.org");
    app.sql(&format!(
        "INSERT INTO suppressions (email_hash, reason, created_at) VALUES ('{hash}', 'complaint', '2026-11-01 00:00:00')"
    ));
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
    let app =
        crate::helpers::spawn_app_with(|s| s.metrics_token = Some("metrics-secret".into())).await;
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
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
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
