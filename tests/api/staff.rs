//! Staff sign-in, accounts and API keys, and the rule every staff endpoint obeys.

use enlace::auth::jwt::{Claims, JwtKeys, AUDIENCE};
use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, test_settings, TestApp};

const PASSWORD: &str = crate::helpers::STAFF_PASSWORD;

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/token",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn token(app: &TestApp, email: &str) -> String {
    let res = login(app, email, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() <= 900);
    body["access_token"].as_str().unwrap().to_owned()
}

async fn call(app: &TestApp, method: &str, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .json(&json!({}));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn sign_in_gives_the_same_answer_for_every_kind_of_failure() {
    let app = spawn_app().await;
    let id = app.add_staff("ana@example.org", Role::Admin);
    token(&app, " Ana@Example.org ").await;
    let mut answers = Vec::new();
    for (email, password) in [
        ("ana@example.org", "wrong password!!"),
        ("nobody@example.org", PASSWORD),
    ] {
        let res = login(&app, email, password).await;
        answers.push((res.status().as_u16(), res.text().await.unwrap()));
    }
    app.disable_staff(&id);
    let res = login(&app, "ana@example.org", PASSWORD).await;
    answers.push((res.status().as_u16(), res.text().await.unwrap()));
    assert_eq!(answers[0].0, 401);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
}

#[tokio::test]
async fn repeated_sign_in_attempts_are_slowed() {
    let app = spawn_app().await;
    app.add_staff("b@example.org", Role::Viewer);
    let mut last = 0;
    for _ in 0..12 {
        last = login(&app, "b@example.org", "not the password")
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
}

/// Every staff endpoint refuses every bad credential: a new endpoint without a rule fails here.
#[tokio::test]
async fn every_staff_endpoint_refuses_bad_credentials() {
    let app = spawn_app().await;
    let admin = app.add_staff("admin@example.org", Role::Admin);
    app.add_staff("viewer@example.org", Role::Viewer);
    let viewer = token(&app, "viewer@example.org").await;
    let settings = test_settings();
    let secret = settings.secret_key.clone().unwrap();
    let keys = JwtKeys::new(secret.as_bytes(), &app.address);
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, iat: i64, exp: i64| Claims {
        sub: admin.clone(),
        iss: app.address.clone(),
        aud: aud.into(),
        iat,
        exp,
        generation: 0,
    };
    let good = keys.sign(&claims(AUDIENCE, now, now + 600)).unwrap();
    let forged = JwtKeys::new(b"some other secret of enough length!!", &app.address)
        .issue(&admin, 0, now)
        .unwrap();
    let expired = keys
        .sign(&claims(AUDIENCE, now - 7200, now - 3600))
        .unwrap();
    let wrong_audience = keys.sign(&claims("somebody-else", now, now + 600)).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let revoked = {
        let res = app
            .client
            .post(app.url("/api/v1/api-keys"))
            .bearer_auth(&good)
            .json(&json!({"name": "old script", "scopes": ["subscribers:read"]}))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        let key = body["key"].as_str().unwrap().to_owned();
        let id = body["id"].as_str().unwrap().to_owned();
        call(
            &app,
            "DELETE",
            &format!("/api/v1/api-keys/{id}"),
            Some(&good),
        )
        .await;
        key
    };
    let unscoped = {
        let res = app
            .client
            .post(app.url("/api/v1/api-keys"))
            .bearer_auth(&good)
            .json(&json!({"name": "webhooks only", "scopes": ["webhooks:write"]}))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let public = ["/api/v1/subscribe", "/api/v1/confirm", "/api/v1/auth/token"];
    let staff_routes: Vec<_> = enlace::routes::ROUTES
        .iter()
        .filter(|(_, path)| path.starts_with("/api/v1/") && !public.contains(path))
        // Mail providers' bounce reports: authenticated by each provider's signature instead.
        .filter(|(_, path)| !path.starts_with("/api/v1/events/"))
        .collect();
    assert!(staff_routes.len() >= 6);
    let admin_only = |path: &str| {
        path.starts_with("/api/v1/staff")
            || path.starts_with("/api/v1/api-keys")
            || path.starts_with("/api/v1/audit-log")
            || path.starts_with("/api/v1/webhooks")
            || path.ends_with("/data")
            || path.starts_with("/api/v1/exports")
    };
    for (method, path) in staff_routes {
        let method = method.to_uppercase();
        let path = path
            .replace("{id}", &admin)
            .replace("{slug}", "news")
            .replace("{key}", "city");
        for (what, bearer) in [
            ("no token", None),
            ("malformed", Some("not.a.jwt")),
            ("bad signature", Some(forged.as_str())),
            ("alg none", Some(alg_none.as_str())),
            ("expired", Some(expired.as_str())),
            ("wrong audience", Some(wrong_audience.as_str())),
            ("revoked key", Some(revoked.as_str())),
        ] {
            let res = call(&app, &method, &path, bearer).await;
            assert_eq!(res.status(), 401, "{method} {path} with {what}");
            assert_eq!(res.headers()["content-type"], "application/problem+json");
        }
        // A key without the scope an endpoint needs (only the webhook endpoints take
        // webhooks:write; tests/api/webhooks.rs covers them).
        if !path.starts_with("/api/v1/webhooks") {
            let with_key = call(&app, &method, &path, Some(&unscoped)).await.status();
            assert_eq!(with_key, 403, "{method} {path} with a key");
        }
        // Viewers read contacts and change their own password; nothing else.
        let viewer_may = path == "/api/v1/staff/me/password"
            || path == "/api/v1/segments/preview"
            || path == "/api/v1/segments/count"
            || (method == "GET" && !admin_only(&path));
        let status = call(&app, &method, &path, Some(&viewer)).await.status();
        if viewer_may {
            assert_ne!(status, 403, "{method} {path} as viewer");
        } else {
            assert_eq!(status, 403, "{method} {path} as viewer");
        }
    }
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_revoked_at_once() {
    let app = spawn_app().await;
    app.add_staff("admin@example.org", Role::Admin);
    let admin = token(&app, "admin@example.org").await;
    let res = app
        .client
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "CRM sync", "scopes": ["subscribers:read", "exports:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(
        key.starts_with("enl_") && key.len() >= 47,
        "256 random bits after the prefix"
    );
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(
        app.count(&format!("api_keys WHERE key_hash LIKE '%{}%'", &key[4..])),
        0,
        "only a hash is stored"
    );
    let list: Value = call(&app, "GET", "/api/v1/api-keys", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["name"], "CRM sync");
    assert!(list["data"][0].get("key").is_none(), "never shown again");
    assert!(list["data"][0]["last_used_at"].is_null());
    // Using the key records when.
    call(&app, "GET", "/api/v1/api-keys", Some(key)).await;
    assert_eq!(app.count("api_keys WHERE last_used_at IS NOT NULL"), 1);

    let bad = app
        .client
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "x", "scopes": ["everything"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/v1/api-keys/{id}"),
            Some(&admin)
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        call(&app, "GET", "/api/v1/api-keys", Some(key))
            .await
            .status(),
        401
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/v1/api-keys/{id}"),
            Some(&admin)
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn admins_manage_staff_and_disabling_stops_tokens_at_once() {
    let app = spawn_app().await;
    let admin_id = app.add_staff("admin@example.org", Role::Admin);
    let admin = token(&app, "admin@example.org").await;
    let res = app
        .client
        .post(app.url("/api/v1/staff"))
        .bearer_auth(&admin)
        .json(&json!({"email": "Ed@Example.org", "role": "editor", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let ed: Value = res.json().await.unwrap();
    assert_eq!(ed["email"], "ed@example.org");
    assert!(ed.get("password_hash").is_none());
    let again = app
        .client
        .post(app.url("/api/v1/staff"))
        .bearer_auth(&admin)
        .json(&json!({"email": "ed@example.org", "role": "editor", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let ed_token = token(&app, "ed@example.org").await;
    let ed_id = ed["id"].as_str().unwrap();
    // Promote, then disable: the token in hand stops working on the next request.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/staff/{ed_id}")))
        .bearer_auth(&admin)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        call(&app, "GET", "/api/v1/staff", Some(&ed_token))
            .await
            .status(),
        200
    );
    app.client
        .patch(app.url(&format!("/api/v1/staff/{ed_id}")))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        call(&app, "GET", "/api/v1/staff", Some(&ed_token))
            .await
            .status(),
        401
    );
    // An admin cannot lock themselves out.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/staff/{admin_id}")))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn staff_change_their_own_password() {
    let app = spawn_app().await;
    app.add_staff("v@example.org", Role::Viewer);
    let viewer = token(&app, "v@example.org").await;
    let change = |current: &'static str, new: &'static str| {
        let app = &app;
        let viewer = viewer.clone();
        async move {
            app.client
                .put(app.url("/api/v1/staff/me/password"))
                .bearer_auth(viewer)
                .json(&json!({"current_password": current, "new_password": new}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        change("wrong current pw", "a brand new password").await,
        422
    );
    assert_eq!(change(PASSWORD, "short").await, 422);
    assert_eq!(change(PASSWORD, "a brand new password").await, 204);
    // Tokens issued before the change are signed out.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        change("a brand new password", "another new password!").await,
        401
    );
    assert_eq!(login(&app, "v@example.org", PASSWORD).await.status(), 401);
    assert_eq!(
        login(&app, "v@example.org", "a brand new password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn every_staff_write_is_in_the_audit_log() {
    let app = spawn_app().await;
    let admin_id = app.add_staff("admin@example.org", Role::Admin);
    let admin = token(&app, "admin@example.org").await;
    let post = |path: &'static str, body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.client
                .post(app.url(path))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    post(
        "/api/v1/api-keys",
        json!({"name": "k", "scopes": ["subscribers:read"]}),
    )
    .await;
    post(
        "/api/v1/interests",
        json!({"slug": "news", "name": {"en": "News", "es": "Noticias"}}),
    )
    .await;
    post(
        "/api/v1/staff",
        json!({"email": "e@example.org", "role": "editor", "password": PASSWORD}),
    )
    .await;
    let page: Value = call(&app, "GET", "/api/v1/audit-log?limit=2", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["staff.create", "interest.create"], "newest first");
    assert_eq!(page["data"][0]["actor_id"], admin_id.as_str());
    assert_eq!(page["data"][0]["ip"], "127.0.0.1");
    let next = page["next"].as_str().unwrap();
    let rest: Value = call(
        &app,
        "GET",
        &format!("/api/v1/audit-log?limit=2&before={next}"),
        Some(&admin),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rest["data"][0]["action"], "api_key.create");
    assert_eq!(rest["next"], Value::Null);
    for bad in [
        "/api/v1/audit-log?limit=0",
        "/api/v1/audit-log?limit=501",
        "/api/v1/audit-log?before=forged",
        "/api/v1/audit-log?limit=x",
    ] {
        let res = call(&app, "GET", bad, Some(&admin)).await;
        assert!(
            res.status() == 422 || res.status() == 400,
            "{bad}: {}",
            res.status()
        );
    }
}
