//! Custom fields declared over the staff API, and public signups checked against them.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn declared_fields_govern_what_public_forms_may_set() {
    let app = spawn_app().await;
    let token = app.staff_token(enlace::auth::Role::Editor).await;
    let send = |method: &'static str, path: &'static str, body: Value| {
        app.send_as(&token, method, path, body)
    };
    let res = send(
        "POST",
        "/api/v1/fields",
        json!({"key": "city", "type": "text", "public": true}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = send("POST", "/api/v1/fields", json!({"key": "shirt", "type": "one_of", "allowed_values": ["S", "M", "L"], "public": true})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        send(
            "POST",
            "/api/v1/fields",
            json!({"key": "city", "type": "text"})
        )
        .await
        .status(),
        409
    );
    for bad in [
        json!({"key": "Bad Key", "type": "text"}),
        json!({"key": "x", "type": "colour"}),
        json!({"key": "y", "type": "one_of"}),
        json!({"key": "z", "type": "number", "allowed_values": ["1"]}),
    ] {
        assert_eq!(
            send("POST", "/api/v1/fields", bad.clone()).await.status(),
            422,
            "{bad}"
        );
    }
    // Public forms are checked against the declarations.
    assert_eq!(
        app.subscribe(json!({"email": "a@example.org", "attributes": {"shirt": "XL"}}))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.subscribe(
            json!({"email": "a@example.org", "attributes": {"shirt": "M", "city": "Tucson"}})
        )
        .await
        .status(),
        202
    );
    // Made private, the field can no longer be set from a form.
    let res = send(
        "PATCH",
        "/api/v1/fields/shirt",
        json!({"public": false, "allowed_values": ["S", "M", "L", "XL"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["allowed_values"],
        json!(["S", "M", "L", "XL"])
    );
    assert_eq!(
        app.subscribe(json!({"email": "b@example.org", "attributes": {"shirt": "XL"}}))
            .await
            .status(),
        422
    );
    // In use: deleting is refused.
    assert_eq!(
        send("DELETE", "/api/v1/fields/city", json!({}))
            .await
            .status(),
        409
    );
    let list: Value = send("GET", "/api/v1/fields", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        send(
            "POST",
            "/api/v1/fields",
            json!({"key": "unused", "type": "date"})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        send("DELETE", "/api/v1/fields/unused", json!({}))
            .await
            .status(),
        204
    );
    assert_eq!(
        send("GET", "/api/v1/fields/unused", json!({}))
            .await
            .status(),
        404
    );
}
