//! API keys act for the staff member who created them: never beyond that member's current role,
//! not at all once the member is disabled or gone, and the key list and the audit log say who.

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn create_key(app: &TestApp, admin: &str, scopes: &[&str]) -> (String, String) {
    let res = app
        .send_as(
            admin,
            "POST",
            "/api/v1/api-keys",
            json!({"name": "script", "scopes": scopes}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

async fn patch_staff(app: &TestApp, admin: &str, id: &str, body: Value) {
    let res = app
        .send_as(admin, "PATCH", &format!("/api/v1/staff/{id}"), body)
        .await;
    assert_eq!(res.status(), 200);
}

async fn listed_key(app: &TestApp, admin: &str, id: &str) -> Value {
    let list = app.get_json_as(admin, "/api/v1/api-keys").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .expect("the key is listed")
}

/// What the key gets from one endpoint of each policy, as (label, status).
async fn reach(app: &TestApp, key: &str) -> Vec<(&'static str, u16)> {
    let mut out = Vec::new();
    for (label, method, path, body) in [
        ("read contacts", "GET", "/api/v1/subscribers", json!(null)),
        (
            "read newsletters",
            "GET",
            "/api/v1/newsletters",
            json!(null),
        ),
        (
            "export",
            "GET",
            "/api/v1/exports/subscribers?format=ndjson",
            json!(null),
        ),
        (
            "write contacts",
            "POST",
            "/api/v1/fields",
            json!({"key": "k", "type": "text"}),
        ),
        ("manage webhooks", "GET", "/api/v1/webhooks", json!(null)),
        (
            "record events",
            "POST",
            "/api/v1/events",
            json!({"events": []}),
        ),
    ] {
        let res = if method == "GET" {
            app.get_as(key, path).await
        } else {
            app.send_as(key, method, path, body).await
        };
        out.push((label, res.status().as_u16()));
        // The field may already exist from a previous round; only the verdict matters.
        if label == "write contacts" {
            app.sql("DELETE FROM custom_fields WHERE key = 'k'");
        }
    }
    out
}

fn passed(reach: &[(&'static str, u16)]) -> Vec<&'static str> {
    reach
        .iter()
        .filter(|(_, status)| !matches!(status, 401 | 403))
        .map(|(label, _)| *label)
        .collect()
}

#[tokio::test]
async fn disabling_a_staff_member_revokes_their_keys_for_good() {
    let app = spawn_app().await;
    let ana_id = app.add_staff("ana@example.org", Role::Admin);
    let ana = app.sign_in("ana@example.org").await;
    let bea_id = app.add_staff("bea@example.org", Role::Admin);
    let bea = app.sign_in("bea@example.org").await;
    let (key_id, key) = create_key(&app, &ana, &all_scopes()).await;
    let (other_id, other) = create_key(&app, &bea, &["subscribers:read"]).await;
    assert_eq!(app.get_as(&key, "/api/v1/subscribers").await.status(), 200);

    let listed = listed_key(&app, &bea, &key_id).await;
    assert_eq!(listed["status"], "active");
    assert_eq!(listed["created_by"]["id"], ana_id.as_str());
    assert_eq!(listed["created_by"]["email"], "ana@example.org");
    assert_eq!(listed["created_by"]["role"], "admin");

    patch_staff(&app, &bea, &ana_id, json!({"disabled": true})).await;
    // The very next request fails, for every endpoint.
    for (label, status) in reach(&app, &key).await {
        assert_eq!(status, 401, "{label} with a disabled admin's key");
    }
    let listed = listed_key(&app, &bea, &key_id).await;
    assert_eq!(listed["status"], "revoked");
    assert!(listed["revoked_at"].is_string());
    assert_eq!(listed["created_by"]["disabled"], true);
    // Another admin's key is untouched.
    assert_eq!(
        app.get_as(&other, "/api/v1/subscribers").await.status(),
        200
    );
    assert_eq!(listed_key(&app, &bea, &other_id).await["status"], "active");

    // Enabling the account again does not bring the key back.
    patch_staff(&app, &bea, &ana_id, json!({"disabled": false})).await;
    assert_eq!(app.get_as(&key, "/api/v1/subscribers").await.status(), 401);
    assert_eq!(listed_key(&app, &bea, &key_id).await["status"], "revoked");

    // The audit log says who revoked it, and when.
    let log = app.get_json_as(&bea, "/api/v1/audit-log").await;
    let revoked = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_key.revoke")
        .expect("the revocation is in the audit log");
    assert_eq!(revoked["object_id"], key_id.as_str());
    assert_eq!(revoked["actor_id"], bea_id.as_str());
}

#[tokio::test]
async fn a_key_never_does_more_than_its_creators_current_role() {
    let app = spawn_app().await;
    let ana_id = app.add_staff("ana@example.org", Role::Admin);
    let ana = app.sign_in("ana@example.org").await;
    let bea = app.staff_token(Role::Admin).await;
    let (key_id, key) = create_key(&app, &ana, &all_scopes()).await;
    let everything = [
        "read contacts",
        "read newsletters",
        "export",
        "write contacts",
        "manage webhooks",
        "record events",
    ];
    assert_eq!(passed(&reach(&app, &key).await), everything);

    patch_staff(&app, &bea, &ana_id, json!({"role": "editor"})).await;
    assert_eq!(
        passed(&reach(&app, &key).await),
        [
            "read contacts",
            "read newsletters",
            "export",
            "write contacts"
        ],
        "an editor's key manages no webhooks and records no events"
    );
    let listed = listed_key(&app, &bea, &key_id).await;
    assert_eq!(listed["created_by"]["role"], "editor");
    assert_eq!(listed["status"], "active");

    patch_staff(&app, &bea, &ana_id, json!({"role": "viewer"})).await;
    let viewer_reach = reach(&app, &key).await;
    assert_eq!(
        passed(&viewer_reach),
        ["read contacts", "read newsletters"],
        "a viewer's key only reads"
    );
    assert!(
        viewer_reach.iter().all(|(_, s)| *s != 401),
        "refused, not unknown"
    );
    // The narrower rules inside endpoints follow the role too: a write it may not make.
    let res = app
        .send_as(
            &key,
            "POST",
            "/api/v1/segments",
            json!({"name": "s", "filter": {"language": "es"}}),
        )
        .await;
    assert_eq!(res.status(), 403);

    // The ceiling is the role now, not the role at creation: promoted again, the key is whole.
    patch_staff(&app, &bea, &ana_id, json!({"role": "admin"})).await;
    assert_eq!(passed(&reach(&app, &key).await), everything);
}

#[tokio::test]
async fn a_key_whose_creator_is_disabled_or_gone_acts_for_nobody() {
    let app = spawn_app().await;
    let ana_id = app.add_staff("ana@example.org", Role::Admin);
    let ana = app.sign_in("ana@example.org").await;
    let bea = app.staff_token(Role::Admin).await;
    let (key_id, key) = create_key(&app, &ana, &["subscribers:read"]).await;

    // Disabled by other means than the API (no revocation happened): the key is suspended.
    app.disable_staff(&ana_id);
    assert_eq!(app.get_as(&key, "/api/v1/subscribers").await.status(), 401);
    let listed = listed_key(&app, &bea, &key_id).await;
    assert_eq!(listed["status"], "suspended");
    assert!(listed["revoked_at"].is_null());

    // The account removed from the database: nobody answers for the key, so it fails.
    app.delete_staff(&ana_id);
    assert_eq!(app.get_as(&key, "/api/v1/subscribers").await.status(), 401);
    let listed = listed_key(&app, &bea, &key_id).await;
    assert_eq!(listed["status"], "suspended");
    assert!(listed["created_by"].is_null());
}

#[tokio::test]
async fn the_audit_log_names_the_staff_member_behind_each_key() {
    let app = spawn_app().await;
    let ana_id = app.add_staff("ana@example.org", Role::Admin);
    let ana = app.sign_in("ana@example.org").await;
    let (key_id, key) = create_key(&app, &ana, &["subscribers:write"]).await;
    let res = app
        .send_as(
            &key,
            "POST",
            "/api/v1/fields",
            json!({"key": "city", "type": "text"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let log = app.get_json_as(&ana, "/api/v1/audit-log").await;
    let entries = log["data"].as_array().unwrap();
    let by_key = entries
        .iter()
        .find(|e| e["action"] == "field.create")
        .unwrap();
    assert_eq!(by_key["actor_type"], "api_key");
    assert_eq!(by_key["actor_id"], key_id.as_str());
    assert_eq!(
        by_key["api_key_created_by"],
        json!({"id": ana_id, "email": "ana@example.org"})
    );
    let created = entries
        .iter()
        .find(|e| e["action"] == "api_key.create")
        .unwrap();
    assert_eq!(created["actor_id"], ana_id.as_str());
    assert_eq!(created["object_id"], key_id.as_str());
    assert!(
        created["api_key_created_by"].is_null(),
        "staff act for themselves"
    );
}

fn all_scopes() -> Vec<&'static str> {
    enlace::auth::Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect()
}
