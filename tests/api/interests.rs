//! Interests managed over the staff API, in English and Spanish.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn staff_create_list_change_and_delete_interests() {
    let app = spawn_app().await;
    let token = app.staff_token(enlace::auth::Role::Editor).await;
    let send = |method: &'static str, path: &'static str, body: Value| {
        app.send_as(&token, method, path, body)
    };
    let created = send(
        "POST",
        "/api/v1/interests",
        json!({"slug": "housing", "name": {"en": "Housing justice", "es": "Vivienda digna"}, "description": {"en": "Tenant organizing", "es": "Organización de inquilinos"}}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["name"]["es"], "Vivienda digna");
    assert_eq!(body["public"], true);
    assert_eq!(
        send(
            "POST",
            "/api/v1/interests",
            json!({"slug": "housing", "name": {"en": "x", "es": "y"}})
        )
        .await
        .status(),
        409
    );
    let bad = send(
        "POST",
        "/api/v1/interests",
        json!({"slug": "No Spaces", "name": {"en": "x"}}),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let problem: Value = bad.json().await.unwrap();
    assert!(
        problem["errors"]["slug"].is_array() && problem["errors"]["name.es"].is_array(),
        "{problem}"
    );

    // A public form can use it now.
    assert_eq!(
        app.subscribe(json!({"email": "s@example.org", "interests": ["housing"]}))
            .await
            .status(),
        202
    );
    // Made private, it is refused on public forms.
    let res = send(
        "PATCH",
        "/api/v1/interests/housing",
        json!({"public": false, "name": {"es": "Vivienda"}}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (
            body["public"].clone(),
            body["name"]["es"].clone(),
            body["name"]["en"].clone()
        ),
        (json!(false), json!("Vivienda"), json!("Housing justice"))
    );
    assert_eq!(
        app.subscribe(json!({"email": "t@example.org", "interests": ["housing"]}))
            .await
            .status(),
        422
    );

    let list: Value = send("GET", "/api/v1/interests", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // In use: refused unless the caller says what happens to the memberships.
    let res = send("DELETE", "/api/v1/interests/housing", json!({})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(app.count("subscriber_interests"), 1);
    let res = app
        .client
        .delete(app.url("/api/v1/interests/housing?force=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["memberships_removed"], 1);
    assert_eq!(app.count("subscriber_interests"), 0);
    assert_eq!(
        send("GET", "/api/v1/interests/housing", json!({}))
            .await
            .status(),
        404
    );
}
