//! Rotating ENLACE_SECRET_KEY: links and staff sessions signed with a previous key keep working
//! while that key is listed in ENLACE_SECRET_KEY_PREVIOUS, new ones are signed with the new key,
//! and the old ones stop working once the previous key is removed.

use enlace::auth::Role;
use serde_json::json;

use crate::helpers::{test_settings, TestApp};

const OLD: &str = "old-secret-key-that-is-long-enough-0123456789";
const NEW: &str = "new-secret-key-that-is-long-enough-9876543210";

/// A process on `first`'s database and public URL with these keys.
async fn restarted(first: &TestApp, key: &str, previous: &[&str]) -> TestApp {
    let url = first.address.parse().unwrap();
    TestApp::builder()
        .sharing(first)
        .settings(|s| {
            s.public_url = url;
            s.secret_key = Some(key.into());
            s.secret_key_previous = previous.iter().map(|k| k.to_string()).collect();
        })
        .spawn()
        .await
}

#[tokio::test]
async fn links_and_sessions_signed_with_the_old_key_work_during_a_rotation_and_stop_after_it() {
    let before = TestApp::builder()
        .settings(|s| s.secret_key = Some(OLD.into()))
        .spawn()
        .await;
    before.add_interest("news", true);
    before
        .subscribe(json!({"email": "rota@example.org", "interests": ["news"]}))
        .await;
    let confirm = before.deliver_one("rota@example.org").await;
    let res = before
        .client
        .post(before.url(&before.link(&confirm, "/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let welcome = before.deliver_one("rota@example.org").await;
    let preferences = before.link(&welcome, "/preferences/");
    let unsubscribe = before.link(&welcome, "/unsubscribe/");
    let session = before.staff_token(Role::Viewer).await;
    let list = "/api/v1/subscribers";

    // During the rotation: the new key signs, the old one still checks.
    let during = restarted(&before, NEW, &[OLD]).await;
    assert_eq!(during.get_as(&session, list).await.status(), 200);
    assert_eq!(during.get(&preferences).await.status(), 200);
    let fresh = during.sign_in("viewer@staff.example.org").await;
    assert_eq!(during.get_as(&fresh, list).await.status(), 200);
    assert_eq!(
        before.get_as(&fresh, list).await.status(),
        401,
        "the new session is signed with the new key, which the old process does not know"
    );

    // After it: the old key is gone, so is what it signed; the new session keeps working.
    let after = restarted(&before, NEW, &[]).await;
    assert_eq!(after.get_as(&session, list).await.status(), 401);
    assert_eq!(after.get_as(&fresh, list).await.status(), 200);
    let page = after.get(&preferences).await;
    assert_ne!(
        page.status(),
        200,
        "an old link is refused once its key is removed"
    );
    assert_eq!(
        after.status_of("rota@example.org").as_deref(),
        Some("confirmed")
    );

    // The old one-click unsubscribe link still works while its key is listed.
    let res = during
        .post_form(&unsubscribe, "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        during.status_of("rota@example.org").as_deref(),
        Some("unsubscribed")
    );
}

#[test]
fn a_previous_key_shorter_than_32_bytes_is_refused_at_start() {
    let mut settings = test_settings();
    settings.secret_key_previous = vec![OLD.into(), "too short".into()];
    let error = settings.previous_secret_keys().unwrap_err().to_string();
    assert!(error.contains("ENLACE_SECRET_KEY_PREVIOUS"), "{error}");
    settings.secret_key_previous = vec![OLD.into(), NEW.into()];
    assert_eq!(settings.previous_secret_keys().unwrap().len(), 2);
}
