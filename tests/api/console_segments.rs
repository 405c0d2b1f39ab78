//! The console's segments: the builder's count (the same count and the same refusals as the API,
//! worded in the member's language), saving, changing and deleting a segment, counting without
//! JavaScript, and who may do what.

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::console_client::signed_in;
use crate::helpers::{self, spawn_app, TestApp};

/// Three confirmed people (two Spanish speakers with the interest `news`, one of them from the
/// website's form) and one unsubscribed Spanish speaker who never counts.
async fn app_with_people() -> TestApp {
    let app = spawn_app().await;
    app.add_interest("news", true);
    app.add_field("city", "text", &[], true);
    let person =
        |email: &str, language: &'static str, news: bool, source: Option<&str>| helpers::Person {
            language,
            interests: if news { vec!["news".into()] } else { vec![] },
            source: source.map(str::to_owned),
            attributes: json!({"city": "Phoenix"}),
            ..helpers::Person::new(email)
        };
    app.seed_people(&[
        person("ana@example.org", "es", true, Some("homepage-form")),
        person("luis@example.org", "es", true, None),
        person("ben@example.org", "en", false, Some("homepage-form")),
        helpers::Person {
            status: "unsubscribed",
            ..person("uma@example.org", "es", true, Some("homepage-form"))
        },
    ]);
    app
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_builders_count_is_the_apis_and_refusals_say_where_in_the_members_language() {
    let app = app_with_people().await;
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let token = app.staff_token(Role::Viewer).await;
    for filter in [
        json!({"language": "es"}),
        json!({"all": [{"language": "es"}, {"interest": "news"}]}),
        json!({"any": [{"source": "homepage-form"}, {"not": {"interest": "news"}}]}),
        json!({"attribute": {"key": "city", "op": "eq", "value": "Phoenix"}}),
    ] {
        let text = filter.to_string();
        let page = viewer
            .post("/segments", "/segments/count", &[("filter", &text)])
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let api: Value = app
            .send_as(
                &token,
                "POST",
                "/api/v1/segments/count",
                json!({ "filter": filter }),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(json_of(&page.body), api, "{filter}");
    }
    let two = viewer
        .post(
            "/segments",
            "/segments/count",
            &[("filter", r#"{"language":"es"}"#)],
        )
        .await;
    assert_eq!(json_of(&two.body), json!({"count": 2}));

    // A mistake comes back as a problem document keyed by the filter's path, in Spanish for a
    // member who reads Spanish; text that is not JSON is refused at `filter`.
    viewer.language = "es";
    let bad = r#"{"all":[{"language":"es"},{"interest":"gardening"}]}"#;
    let page = viewer
        .post("/segments", "/segments/count", &[("filter", bad)])
        .await;
    assert_eq!(page.status, 422);
    assert_eq!(page.headers["content-type"], "application/problem+json");
    assert_eq!(
        json_of(&page.body)["errors"],
        json!({"filter.all[1].interest": ["no es un interés"]})
    );
    let page = viewer
        .post("/segments", "/segments/count", &[("filter", "{not json")])
        .await;
    assert_eq!(page.status, 422);
    assert_eq!(
        json_of(&page.body)["errors"],
        json!({"filter": ["no es JSON válido"]})
    );
    // Without the form's token nothing is counted.
    let page = viewer
        .post_raw("/segments/count", &[("filter", r#"{"language":"es"}"#)])
        .await;
    assert_eq!(page.status, 403);
}

#[tokio::test]
async fn editors_save_change_and_delete_segments_and_viewers_only_look() {
    let app = app_with_people().await;
    let mut editor = signed_in(&app, Role::Editor).await;

    // The builder's page holds what the script needs: the interests and declared fields.
    let page = editor.get("/segments/new").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-segment-builder"), "{}", page.body);
    assert!(page.body.contains("segments.js"));
    assert!(
        page.body.contains("&quot;key&quot;:&quot;city&quot;"),
        "{}",
        page.body
    );

    // Counting without JavaScript: the same form with action=count saves nothing.
    let filter = r#"{"all":[{"language":"es"},{"interest":"news"}]}"#;
    let page = editor
        .post(
            "/segments/new",
            "/segments",
            &[
                ("name", "Spanish news"),
                ("filter", filter),
                ("action", "count"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Reaches 2 people right now."),
        "{}",
        page.body
    );
    assert_eq!(app.count("segments"), 0);

    // Mistakes are listed and nothing is saved.
    let page = editor
        .post(
            "/segments/new",
            "/segments",
            &[
                ("name", " "),
                ("filter", r#"{"language":"fr"}"#),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("filter.language"), "{}", page.body);
    assert_eq!(app.count("segments"), 0);

    // Saved, then the API has it with the canonical filter.
    let page = editor
        .post(
            "/segments/new",
            "/segments",
            &[
                ("name", "Spanish news"),
                ("filter", filter),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location().to_owned();
    assert!(location.ends_with("?notice=created"), "{location}");
    let id = location
        .trim_start_matches("/admin/segments/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let token = app.staff_token(Role::Viewer).await;
    let api = app
        .get_json_as(&token, &format!("/api/v1/segments/{id}"))
        .await;
    assert_eq!(api["name"], "Spanish news");
    assert_eq!(api["filter"], json_of(filter));
    assert_eq!(api["count"], 2);
    let page = editor.get(&format!("/segments/{id}?notice=created")).await;
    assert!(page.body.contains("The segment is saved."));
    assert!(
        page.body.contains("Reaches 2 people right now."),
        "{}",
        page.body
    );
    assert_eq!(app.count("audit_log WHERE action = 'segment.create'"), 1);

    // Changed: the source too.
    let changed = r#"{"all":[{"language":"es"},{"source":"homepage-form"}]}"#;
    let page = editor
        .post(
            &format!("/segments/{id}"),
            &format!("/segments/{id}"),
            &[
                ("name", "Spanish, from the form"),
                ("filter", changed),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let api = app
        .get_json_as(&token, &format!("/api/v1/segments/{id}"))
        .await;
    assert_eq!(api["name"], "Spanish, from the form");
    assert_eq!(api["count"], 1);

    // The list shows it; a viewer sees it but has no form to change or delete it.
    let list = editor.get("/segments").await;
    assert!(list.body.contains("Spanish, from the form"));
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let page = viewer.get(&format!("/segments/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-readonly"));
    assert!(!page.body.contains("/delete\""), "{}", page.body);
    assert!(!viewer.get("/segments").await.body.contains("/segments/new"));
    let refused = viewer
        .post(
            &format!("/segments/{id}"),
            &format!("/segments/{id}"),
            &[("name", "Mine"), ("filter", changed), ("action", "save")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(viewer.get("/segments/new").await.status, 403);

    // In use by a draft: deletion refused with the page that says why; then deleted.
    let editor_token = app.staff_token(Role::Editor).await;
    let draft: Value = app
        .send_as(
            &editor_token,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "Hola", "html": "<p>Hola</p>", "segment_id": id}),
        )
        .await
        .json()
        .await
        .unwrap();
    let page = editor
        .post(
            &format!("/segments/{id}"),
            &format!("/segments/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(
        page.body.contains("This segment is in use"),
        "{}",
        page.body
    );
    let res = app
        .send_as(
            &editor_token,
            "DELETE",
            &format!("/api/v1/newsletters/{}", draft["id"].as_str().unwrap()),
            Value::Null,
        )
        .await;
    assert_eq!(res.status(), 204);
    let page = editor
        .post(
            &format!("/segments/{id}"),
            &format!("/segments/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(app.count("segments"), 0);
    assert_eq!(editor.get(&format!("/segments/{id}")).await.status, 404);
}
