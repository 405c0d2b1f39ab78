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
        "enlace_mails_sent_total 1",
        "enlace_queue_depth 0",
        "enlace_http_requests_total{method=\"POST\",route=\"/api/v1/subscribe\",status=\"202\"} 1",
        "enlace_confirmations_total 0",
        "enlace_unsubscribes_total 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("m@example.org"));
    // Nothing public tells a new address from a known one.
    assert!(
        !text.contains("outcome=") && !text.contains("enlace_subscribers"),
        "{text}"
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
