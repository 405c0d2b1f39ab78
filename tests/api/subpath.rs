//! Enlace behind a reverse proxy under a sub-path (`ENLACE_PUBLIC_URL=https://example.org/lista`):
//! links in mail and the pages' forms carry the path, and requests are served with it (a proxy
//! that passes it on) or without it (a proxy that strips it).

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn links_forms_and_routes_carry_the_public_urls_path() {
    let app = TestApp::builder()
        .settings(|s| s.public_url.set_path("/lista/"))
        .spawn()
        .await;
    app.add_interest("news", true);
    let res = app
        .post_json(
            "/lista/api/v1/subscribe",
            &json!({"email": "sub@example.org", "interests": ["news"]}),
        )
        .await;
    assert_eq!(res.status(), 202, "the API under the path");
    let mail = app.deliver_one("sub@example.org").await;
    let confirm = app.link(&mail, "/lista/confirm/");
    let token = confirm.trim_start_matches("/lista/confirm/");

    for path in [confirm.clone(), format!("/confirm/{token}")] {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        // The pages escape "/" in attributes as "&#x2f;", which a browser reads as "/".
        let page = res.text().await.unwrap().replace("&#x2f;", "/");
        assert!(
            page.contains(&format!("action=\"/lista/confirm/{token}\"")),
            "the form posts under the path: {page}"
        );
    }
    let res = app.client.post(app.url(&confirm)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("sub@example.org").as_deref(),
        Some("confirmed")
    );

    let welcome = app.deliver_one("sub@example.org").await;
    let preferences = app.link(&welcome, "/lista/preferences/");
    let page = app
        .get(&preferences)
        .await
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(page.contains("action=\"/lista/preferences/"), "{page}");
    let unsubscribe = app.link(&welcome, "/lista/unsubscribe/");
    let page = app
        .get(&unsubscribe)
        .await
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(page.contains("action=\"/lista/unsubscribe/"), "{page}");
    let res = app.post_form(&unsubscribe, "").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of("sub@example.org").as_deref(),
        Some("unsubscribed")
    );

    // Only the path itself is taken off: a longer name is another path.
    assert_eq!(app.get("/listas/healthz").await.status(), 404);
    assert_eq!(app.get("/lista/healthz").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
}
