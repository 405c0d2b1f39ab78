//! The console's admin screens: staff accounts, API keys and the audit log.

use enlace::auth::Role;

use crate::console_client::{signed_in, Browser};
use crate::helpers::{spawn_app, TestApp};

const NEW_PASSWORD: &str = "a long enough password";

fn staff_id(app: &TestApp, email: &str) -> String {
    app.query_one(&format!(
        "SELECT id AS v FROM staff WHERE email = '{email}'"
    ))
}

fn role_of(app: &TestApp, email: &str) -> String {
    app.query_one(&format!(
        "SELECT role AS v FROM staff WHERE email = '{email}'"
    ))
}

fn audits(app: &TestApp, action: &str, object_id: &str) -> i64 {
    app.count(&format!(
        "audit_log WHERE action = '{action}' AND object_id = '{object_id}'"
    ))
}

/// The secret shown on the page after creating a key.
fn shown_secret(body: &str) -> String {
    let start = body
        .find("id=\"new-secret\"")
        .expect("the new key on the page");
    let open = start + body[start..].find('>').unwrap() + 1;
    let end = open + body[open..].find("</code>").unwrap();
    body[open..end]
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn an_admin_creates_a_staff_account_and_others_may_not() {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;

    let page = admin.get("/staff").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("admin@console.example.org"));
    assert!(page.body.contains("<h1>Staff accounts</h1>"));

    let form = [
        ("email", "nueva@example.org"),
        ("role", "editor"),
        ("password", NEW_PASSWORD),
    ];
    let done = admin.post("/staff", "/staff", &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().ends_with("/staff?notice=staff_created"));
    let page = admin.get("/staff?notice=staff_created").await;
    assert!(page.body.contains("The staff account is created."));
    assert!(page.body.contains("nueva@example.org"));
    assert_eq!(role_of(&app, "nueva@example.org"), "editor");
    let id = staff_id(&app, "nueva@example.org");
    assert_eq!(audits(&app, "staff.create", &id), 1);
    // The new member can sign in.
    Browser::new(&app).sign_in("nueva@example.org").await;

    // The same address again, and a bad form: refused with the field's error, in both languages.
    let again = admin.post("/staff", "/staff", &form).await;
    assert_eq!(again.status, 422);
    assert!(again.body.contains("already has a staff account"));
    assert!(again.body.contains("aria-invalid=\"true\""));
    admin.language = "es";
    let bad = [
        ("email", "not an address"),
        ("role", "boss"),
        ("password", "short"),
    ];
    let refused = admin.post("/staff", "/staff", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("no es un correo electrónico válido"),
        "{}",
        refused.body
    );
    assert!(refused
        .body
        .contains("debe ser administración, edición o consulta"));
    assert!(refused.body.contains("Cuentas del equipo"));
    assert_eq!(app.count("staff"), 2);

    // Editors and viewers may neither see nor change accounts.
    for role in [Role::Editor, Role::Viewer] {
        let mut other = signed_in(&app, role).await;
        assert_eq!(other.get("/staff").await.status, 403);
        let form = [
            ("email", "sneaky@example.org"),
            ("role", "admin"),
            ("password", NEW_PASSWORD),
        ];
        assert_eq!(other.post("/account", "/staff", &form).await.status, 403);
        let path = format!("/staff/{id}/role");
        assert_eq!(
            other
                .post("/account", &path, &[("role", "viewer"), ("confirm", "yes")])
                .await
                .status,
            403
        );
    }
    assert_eq!(app.count("staff WHERE email = 'sneaky@example.org'"), 0);
    assert_eq!(role_of(&app, "nueva@example.org"), "editor");
}

#[tokio::test]
async fn demoting_and_disabling_ask_first_and_an_admin_cannot_lock_themselves_out() {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;
    let editor_id = app.add_staff("ed@example.org", Role::Editor);
    let mut editor = Browser::new(&app);
    editor.sign_in("ed@example.org").await;

    // Promoting needs no confirmation.
    let path = format!("/staff/{editor_id}/role");
    let done = admin.post("/staff", &path, &[("role", "admin")]).await;
    assert_eq!(done.status, 303);
    assert_eq!(role_of(&app, "ed@example.org"), "admin");
    assert_eq!(audits(&app, "staff.update", &editor_id), 1);

    // Demoting shows a confirmation, and changes nothing until confirmed.
    let ask = admin.post("/staff", &path, &[("role", "viewer")]).await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Change the role of ed@example.org?"));
    assert!(ask.body.contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(role_of(&app, "ed@example.org"), "admin");
    let done = admin
        .post("/staff", &path, &[("role", "viewer"), ("confirm", "yes")])
        .await;
    assert_eq!(done.status, 303);
    assert!(done.location().ends_with("notice=role_changed"));
    assert_eq!(role_of(&app, "ed@example.org"), "viewer");
    assert_eq!(audits(&app, "staff.update", &editor_id), 2);
    // The demoted member was signed out of the console.
    assert_eq!(editor.get("/").await.status, 303);

    // Disabling: a confirmation, then the account is disabled and its sessions end.
    editor.sign_in("ed@example.org").await;
    let access = format!("/staff/{editor_id}/access");
    let ask = admin.post("/staff", &access, &[("disabled", "true")]).await;
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Disable ed@example.org?"));
    assert_eq!(
        app.count("staff WHERE email = 'ed@example.org' AND disabled = TRUE"),
        0
    );
    let done = admin
        .post(
            "/staff",
            &access,
            &[("disabled", "true"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        app.count("staff WHERE email = 'ed@example.org' AND disabled = TRUE"),
        1
    );
    assert_eq!(editor.get("/").await.status, 303);
    let page = admin.get("/staff?notice=disabled").await;
    assert!(page.body.contains("The account is disabled."));
    // And enabled again, without a confirmation.
    let done = admin
        .post("/staff", &access, &[("disabled", "false")])
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        app.count("staff WHERE email = 'ed@example.org' AND disabled = FALSE"),
        1
    );

    // An admin can neither demote nor disable themselves: a clear message, nothing changed.
    let me = staff_id(&app, "admin@console.example.org");
    let own_role = format!("/staff/{me}/role");
    let refused = admin
        .post(
            "/staff",
            &own_role,
            &[("role", "editor"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(refused
        .body
        .contains("disable your own account or take away your own admin role"));
    admin.language = "es";
    let own_access = format!("/staff/{me}/access");
    let refused = admin
        .post(
            "/staff",
            &own_access,
            &[("disabled", "true"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused
        .body
        .contains("No puedes desactivar tu propia cuenta"));
    assert_eq!(role_of(&app, "admin@console.example.org"), "admin");
    assert_eq!(audits(&app, "staff.update", &me), 0);
    assert_eq!(admin.get("/staff").await.status, 200);

    // An unknown member.
    let unknown = "/staff/00000000-0000-4000-8000-000000000000/role";
    let missing = admin.post("/staff", unknown, &[("role", "admin")]).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_and_can_be_revoked() {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;
    let page = admin.get("/api-keys").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("There are no API keys yet."));

    let form = [
        ("name", "Website form"),
        ("scopes", "subscribers:read"),
        ("scopes", "subscribers:write"),
    ];
    let created = admin.post("/api-keys", "/api-keys", &form).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = shown_secret(&created.body);
    assert!(secret.len() > 20);
    assert!(created.body.contains("data-copy=\"new-secret\""));
    assert!(created.body.contains("shown only this once"));
    let key_id = app.query_one("SELECT id AS v FROM api_keys WHERE name = 'Website form'");
    assert_eq!(audits(&app, "api_key.create", &key_id), 1);
    assert_eq!(
        app.count(&format!("api_keys WHERE key_hash = '{secret}'")),
        0
    );

    // The key works, and the list shows it (never its secret) with when it was last used.
    assert_eq!(
        app.get_as(&secret, "/api/v1/subscribers").await.status(),
        200
    );
    let list = admin.get("/api-keys").await;
    assert!(list.body.contains("Website form"));
    assert!(list.body.contains("subscribers:write"));
    assert!(!list.body.contains(&secret));
    assert!(!list.body.contains("<td>Never</td>"), "last used is shown");

    // Refused forms, in both languages; nothing created.
    let refused = admin
        .post("/api-keys", "/api-keys", &[("name", "No scopes")])
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("choose at least one scope"));
    admin.language = "es";
    let refused = admin
        .post(
            "/api-keys",
            "/api-keys",
            &[("name", ""), ("scopes", "events:write")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("debe tener de 1 a 100 caracteres"));
    assert_eq!(app.count("api_keys"), 1);

    // Others may not create keys.
    let mut editor = signed_in(&app, Role::Editor).await;
    assert_eq!(editor.get("/api-keys").await.status, 403);
    assert_eq!(
        editor.post("/account", "/api-keys", &form).await.status,
        403
    );
    let revoke = format!("/api-keys/{key_id}/revoke");
    assert_eq!(editor.post("/account", &revoke, &[]).await.status, 403);
    assert_eq!(app.count("api_keys"), 1);
    assert_eq!(app.count("api_keys WHERE revoked_at IS NULL"), 1);

    // Revoking asks first, saying what will happen; nothing changes until confirmed.
    let ask = admin.post("/api-keys", &revoke, &[]).await;
    assert_eq!(ask.status, 200);
    assert!(
        ask.body.contains("¿Revocar la clave de API"),
        "{}",
        ask.body
    );
    assert!(ask.body.contains("dejan de funcionar de inmediato"));
    assert!(ask.body.contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(
        app.get_as(&secret, "/api/v1/subscribers").await.status(),
        200
    );
    assert_eq!(audits(&app, "api_key.revoke", &key_id), 0);
    // Then the key stops working at once.
    let done = admin
        .post("/api-keys", &revoke, &[("confirm", "yes")])
        .await;
    assert_eq!(done.status, 303);
    assert!(done.location().ends_with("notice=key_revoked"));
    assert_eq!(
        app.get_as(&secret, "/api/v1/subscribers").await.status(),
        401
    );
    assert_eq!(audits(&app, "api_key.revoke", &key_id), 1);
    let list = admin.get("/api-keys?notice=key_revoked").await;
    assert!(list.body.contains("La clave de API está revocada."));
    assert!(list.body.contains("Revocada el"));
    assert_eq!(
        admin
            .post("/api-keys", &revoke, &[("confirm", "yes")])
            .await
            .status,
        404
    );
    assert_eq!(admin.post("/api-keys", &revoke, &[]).await.status, 404);
}

#[tokio::test]
async fn the_audit_log_names_who_acted_and_filters_by_action_actor_and_days() {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;
    let form = [
        ("email", "otra@example.org"),
        ("role", "viewer"),
        ("password", NEW_PASSWORD),
    ];
    assert_eq!(admin.post("/staff", "/staff", &form).await.status, 303);
    let form = [("name", "Sync script"), ("scopes", "events:write")];
    assert_eq!(
        admin.post("/api-keys", "/api-keys", &form).await.status,
        201
    );
    let key_id = app.query_one("SELECT id AS v FROM api_keys WHERE name = 'Sync script'");
    app.sql(&format!(
        "INSERT INTO audit_log (id, actor_type, actor_id, action, object_type, object_id, ip, created_at) \
         VALUES ('00000000-0000-7000-8000-000000000001', 'api_key', '{key_id}', 'event.record', 'event', NULL, NULL, '2026-01-15 12:00:00')"
    ));

    let page = admin.get("/audit-log").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<code>staff.create</code>"));
    assert!(page.body.contains("<code>api_key.create</code>"));
    assert!(page.body.contains("admin@console.example.org"));
    // A key's entry names the key and who created it.
    assert!(
        page.body.contains("(created by admin@console.example.org)"),
        "{}",
        page.body
    );

    let only = admin.get("/audit-log?action=staff.create").await;
    assert!(only.body.contains("<code>staff.create</code>"));
    assert!(!only.body.contains("<code>api_key.create</code>"));

    let by_key = admin.get(&format!("/audit-log?actor={key_id}")).await;
    assert!(by_key.body.contains("<code>event.record</code>"));
    assert!(!by_key.body.contains("<code>staff.create</code>"));

    let january = admin.get("/audit-log?from=2026-01-01&to=2026-01-31").await;
    assert!(january.body.contains("<code>event.record</code>"));
    assert!(!january.body.contains("<code>staff.create</code>"));
    let none = admin.get("/audit-log?from=2026-01-16&to=2026-01-20").await;
    assert!(none.body.contains("No entries match."));

    let bad = admin.get("/audit-log?from=yesterday").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("must be a date like 2026-12-31"));
    admin.language = "es";
    let bad = admin.get("/audit-log?from=2026-02-01&to=2026-01-01").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("no puede ser antes del primer día"));

    let mut viewer = signed_in(&app, Role::Viewer).await;
    assert_eq!(viewer.get("/audit-log").await.status, 403);
}

/// A receiver on this machine answering every request with `204 No Content`; its URL.
fn start_receiver() -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| App::new().default_service(web::to(HttpResponse::NoContent)))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/hooks")
}

#[tokio::test]
async fn an_admin_registers_tests_and_rotates_a_webhook_and_sees_its_deliveries() {
    let app = TestApp::builder()
        .settings(|s| {
            s.webhook_allow_private = true;
            s.webhook_timeout_seconds = 1;
        })
        .spawn()
        .await;
    let receiver = start_receiver();
    let mut admin = signed_in(&app, Role::Admin).await;
    let page = admin.get("/webhooks").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("There are no webhook endpoints yet."));

    // A refused form: the field's error, in both languages; nothing registered.
    let bad = [("url", receiver.as_str()), ("description", "CRM")];
    let refused = admin.post("/webhooks", "/webhooks", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("choose at least one event"));
    admin.language = "es";
    let refused = admin.post("/webhooks", "/webhooks", &bad).await;
    assert!(refused.body.contains("elige al menos un evento"));
    admin.language = "en";
    assert_eq!(app.count("webhook_endpoints"), 0);

    let form = [
        ("url", receiver.as_str()),
        ("description", "CRM"),
        ("events", "subscriber.created"),
    ];
    let created = admin.post("/webhooks", "/webhooks", &form).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = shown_secret(&created.body);
    let id = app.query_one("SELECT id AS v FROM webhook_endpoints");
    assert_eq!(
        app.query_one("SELECT secret AS v FROM webhook_endpoints"),
        secret
    );
    assert!(created.body.contains("data-copy=\"new-secret\""));
    assert_eq!(audits(&app, "webhook.create", &id), 1);
    let list = admin.get("/webhooks").await;
    assert!(list.body.contains("subscriber.created"));
    assert!(!list.body.contains(&secret), "the secret is shown once");

    // A test send: queued, then delivered, and the page shows it with its attempts.
    let path = format!("/webhooks/{id}");
    let done = admin.post(&path, &format!("{path}/test"), &[]).await;
    assert_eq!(done.status, 303);
    assert!(done.location().ends_with("notice=test_queued"));
    assert_eq!(audits(&app, "webhook.test", &id), 1);
    let waiting = admin.get(&path).await;
    assert!(waiting.body.contains("<code>webhook.test</code>"));
    app.run_tasks().await;
    let page = admin.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<td>Delivered</td>"), "{}", page.body);
    assert!(page.body.contains("HTTP 204"));
    assert!(page.body.contains("<td>1</td>"));

    // Rotating the secret shows the new one once; the old one keeps signing for a day.
    let ask = admin.post(&path, &format!("{path}/rotate"), &[]).await;
    assert_eq!(ask.status, 200);
    assert!(
        ask.body.contains("Make a new signing secret for"),
        "{}",
        ask.body
    );
    assert!(ask.body.contains("For the next 24 hours"));
    assert_eq!(
        app.query_one("SELECT secret AS v FROM webhook_endpoints"),
        secret,
        "nothing changes before the confirmation"
    );
    let rotated = admin
        .post(&path, &format!("{path}/rotate"), &[("confirm", "yes")])
        .await;
    assert_eq!(rotated.status, 200);
    let new_secret = shown_secret(&rotated.body);
    assert_ne!(new_secret, secret);
    assert_eq!(
        app.query_one("SELECT secret AS v FROM webhook_endpoints"),
        new_secret
    );
    assert!(rotated
        .body
        .contains("The previous secret keeps signing messages until"));
    assert_eq!(audits(&app, "webhook.rotate_secret", &id), 1);

    // A disabled endpoint can't be tested: said so, nothing queued.
    app.sql("UPDATE webhook_endpoints SET enabled = FALSE");
    admin.language = "es";
    let refused = admin.post(&path, &format!("{path}/test"), &[]).await;
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("Este destino está desactivado"));
    assert_eq!(audits(&app, "webhook.test", &id), 1);

    // Editors may not.
    let mut editor = signed_in(&app, Role::Editor).await;
    assert_eq!(editor.get("/webhooks").await.status, 403);
    assert_eq!(editor.get(&path).await.status, 403);
    let rotate = format!("{path}/rotate");
    assert_eq!(editor.post("/account", &rotate, &[]).await.status, 403);
    assert_eq!(
        app.query_one("SELECT secret AS v FROM webhook_endpoints"),
        new_secret
    );
    assert_eq!(admin.get("/webhooks/not-an-id").await.status, 404);
}

#[tokio::test]
async fn the_audit_log_pages_older_entries_keeping_its_filters() {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;
    for i in 0..60 {
        app.sql(&format!(
            "INSERT INTO audit_log (id, actor_type, actor_id, action, object_type, object_id, ip, created_at) \
             VALUES ('00000000-0000-7000-8000-{i:012}', 'cli', NULL, 'test.bulk', 'staff', 'n{i}', NULL, '2026-01-15 12:00:00')"
        ));
    }
    let first = admin.get("/audit-log?action=test.bulk").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body.matches("<code>test.bulk</code>").count(), 50);
    assert!(first.body.contains("Server command line"));
    let at = first
        .body
        .find("Older entries")
        .expect("a link to older entries");
    let href_start = first.body[..at].rfind("href=\"").unwrap() + "href=\"".len();
    let href_end = href_start + first.body[href_start..].find('"').unwrap();
    let href = first.body[href_start..href_end]
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    assert!(href.contains("action=test.bulk"), "{href}");
    let path = href.trim_start_matches("/admin");
    let second = admin.get(path).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body.matches("<code>test.bulk</code>").count(), 10);
    assert!(!second.body.contains("Older entries"));
}

/// The path (below the console) of the invitation link in the one new mail to `address`.
async fn invitation_link(app: &TestApp, address: &str) -> (crate::helpers::Mail, String) {
    let mail = app.deliver_one(address).await;
    let link = app.link(&mail, "/admin/invitation/");
    (mail, link.trim_start_matches("/admin").to_owned())
}

#[tokio::test]
async fn an_invited_person_chooses_a_password_and_is_signed_in_once() {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;
    let form = [
        ("invite_email", "Lucia@Example.org"),
        ("invite_role", "editor"),
        ("invite_language", "es"),
    ];
    let done = admin.post("/staff", "/staff/invitations", &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().ends_with("/staff?notice=invited"));
    let page = admin.get("/staff?notice=invited").await;
    assert!(page.body.contains("The invitation is on its way."));
    assert!(page.body.contains("lucia@example.org"));
    let id = app.query_one("SELECT id AS v FROM staff_invitations");
    assert_eq!(audits(&app, "staff.invite", &id), 1);

    // The mail is in Spanish, is not list mail, and carries a link whose token is stored only
    // as a hash.
    let (mail, link) = invitation_link(&app, "lucia@example.org").await;
    assert_eq!(mail.subject, "Te invitan al equipo de Enlace");
    let text = mail.text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("con permisos de edición"), "{text}");
    assert!(text.contains("durante 7 días y una sola vez"), "{text}");
    assert_eq!(mail.content_language.as_deref(), Some("es"));
    assert!(mail.list_unsubscribe.is_none());
    let token = link.trim_start_matches("/invitation/");
    assert_eq!(
        app.count(&format!(
            "staff_invitations WHERE token_hash = '{}'",
            enlace::tokens::hash_token(token)
        )),
        1
    );
    assert_eq!(
        app.count(&format!("staff_invitations WHERE token_hash = '{token}'")),
        0
    );

    // The invitee, in a browser of their own: the page speaks the invitation's language.
    let mut invitee = Browser::new(&app);
    let page = invitee.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Elige tu contraseña"));
    assert!(page.body.contains("lucia@example.org"));
    // Passwords follow the usual rules, the fields are tied to their errors, nothing is created.
    let short = invitee
        .post(
            &link,
            &link,
            &[("password", "short"), ("password_again", "short")],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(
        short.body.contains("href=\"#f-password\""),
        "{}",
        short.body
    );
    assert!(short.body.contains("aria-invalid=\"true\""));
    let differ = invitee
        .post(
            &link,
            &link,
            &[
                ("password", NEW_PASSWORD),
                ("password_again", "another long password"),
            ],
        )
        .await;
    assert_eq!(differ.status, 422);
    assert!(differ.body.contains("debe ser la misma contraseña"));
    // A form sent from elsewhere, without this browser's token, changes nothing.
    let forged = invitee
        .post_raw(
            &link,
            &[("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(app.count("staff WHERE email = 'lucia@example.org'"), 0);

    let accepted = invitee
        .post(
            &link,
            &link,
            &[("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(accepted.location(), "/admin/");
    let home = invitee.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("lucia@example.org"));
    assert!(
        home.body.contains("<html lang=\"es\""),
        "their language is kept"
    );
    assert_eq!(role_of(&app, "lucia@example.org"), "editor");
    let member = staff_id(&app, "lucia@example.org");
    assert_eq!(audits(&app, "staff.invitation_accept", &member), 1);
    assert_eq!(app.count("staff_invitations"), 0);

    // The link is spent; the password works for signing in.
    let again = Browser::new(&app).get(&link).await;
    assert_eq!(again.status, 404);
    let mut later = Browser::new(&app);
    let signed = later.try_sign_in("lucia@example.org", NEW_PASSWORD).await;
    assert_eq!(signed.status, 303);
}

#[tokio::test]
async fn inviting_is_refused_for_an_account_or_an_open_invitation_and_links_die_when_replaced_or_withdrawn(
) {
    let app = spawn_app().await;
    let mut admin = signed_in(&app, Role::Admin).await;
    let invite = |email: &'static str| {
        [
            ("invite_email", email),
            ("invite_role", "viewer"),
            ("invite_language", "en"),
        ]
    };
    assert_eq!(
        admin
            .post("/staff", "/staff/invitations", &invite("ana@example.org"))
            .await
            .status,
        303
    );
    let (mail, first) = invitation_link(&app, "ana@example.org").await;
    assert_eq!(mail.subject, "You're invited to the Enlace team");
    let text = mail.text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("with the viewer role"), "{text}");

    // Refusals, clear and tied to the field; nothing more is sent.
    let twice = admin
        .post("/staff", "/staff/invitations", &invite("ana@example.org"))
        .await;
    assert_eq!(twice.status, 409);
    assert!(
        twice.body.contains("already has an open invitation"),
        "{}",
        twice.body
    );
    assert!(twice.body.contains("href=\"#f-invite_email\""));
    let member = admin
        .post(
            "/staff",
            "/staff/invitations",
            &invite("admin@console.example.org"),
        )
        .await;
    assert_eq!(member.status, 409);
    assert!(member.body.contains("already has a staff account"));
    admin.language = "es";
    let bad = [
        ("invite_email", "nope"),
        ("invite_role", "boss"),
        ("invite_language", "de"),
    ];
    let refused = admin.post("/staff", "/staff/invitations", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Corrige esto primero"));
    assert!(refused.body.contains("no es un correo electrónico válido"));
    assert!(refused
        .body
        .contains("debe ser administración, edición o consulta"));
    admin.language = "en";
    assert_eq!(app.count("staff_invitations"), 1);
    app.run_jobs().await;
    assert_eq!(app.mails().len(), 1);

    // Sending again replaces the link.
    let id = app.query_one("SELECT id AS v FROM staff_invitations");
    let resent = admin
        .post("/staff", &format!("/staff/invitations/{id}/resend"), &[])
        .await;
    assert_eq!(resent.status, 303);
    assert!(resent.location().ends_with("notice=invitation_resent"));
    assert_eq!(audits(&app, "staff.invitation_resend", &id), 1);
    let (_, second) = invitation_link(&app, "ana@example.org").await;
    assert_ne!(first, second);
    let mut visitor = Browser::new(&app);
    let old = visitor.get(&first).await;
    assert_eq!(old.status, 404);
    assert_eq!(visitor.get(&second).await.status, 200);

    // Withdrawn: the link dies.
    let withdrawn = admin
        .post("/staff", &format!("/staff/invitations/{id}/withdraw"), &[])
        .await;
    assert_eq!(withdrawn.status, 303);
    assert_eq!(audits(&app, "staff.invitation_withdraw", &id), 1);
    let gone = visitor.get(&second).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        admin
            .post("/staff", &format!("/staff/invitations/{id}/withdraw"), &[])
            .await
            .status,
        404
    );

    // Expired: the same page as an unknown link, a replaced one and a withdrawn one.
    assert_eq!(
        admin
            .post("/staff", "/staff/invitations", &invite("ben@example.org"))
            .await
            .status,
        303
    );
    let (_, third) = invitation_link(&app, "ben@example.org").await;
    app.sql("UPDATE staff_invitations SET expires_at = '2020-01-01 00:00:00'");
    let expired = visitor.get(&third).await;
    let unknown = visitor
        .get(&format!("/invitation/{}", enlace::tokens::random_token()))
        .await;
    assert_eq!((expired.status, unknown.status), (404, 404));
    assert_eq!(expired.body, unknown.body);
    assert_eq!(old.body, unknown.body);
    assert_eq!(gone.body, unknown.body);
    assert!(unknown.body.contains("This invitation link isn"));
    let staff = admin.get("/staff").await;
    assert!(staff.body.contains("<strong>Expired</strong>"));
    // Nobody's mail or token appears in the audit log.
    assert_eq!(app.count("audit_log WHERE object_id LIKE '%@%'"), 0);

    // Editors may not invite.
    let mut editor = signed_in(&app, Role::Editor).await;
    let sneaky = editor
        .post("/account", "/staff/invitations", &invite("eve@example.org"))
        .await;
    assert_eq!(sneaky.status, 403);
    assert_eq!(
        app.count("staff_invitations WHERE email = 'eve@example.org'"),
        0
    );
}

#[tokio::test]
async fn guessing_invitation_links_is_limited_like_signing_in() {
    let app = spawn_app().await;
    let mut visitor = Browser::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let path = format!("/invitation/{}", enlace::tokens::random_token());
        statuses.push(visitor.get(&path).await.status);
    }
    assert_eq!(statuses[0], 404);
    assert!(statuses.contains(&429), "{statuses:?}");
    let page = visitor.get("/invitation/not-even-a-token").await;
    assert_eq!(page.status, 429);
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.body.contains("Too many attempts"));
}

#[tokio::test]
async fn admins_invite_list_resend_and_withdraw_through_the_api() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    let editor = app.staff_token(Role::Editor).await;
    let body = serde_json::json!({"email": "rosa@example.org", "role": "admin", "language": "en"});
    let send =
        |token: &str, method: reqwest::Method, path: &str, body: Option<&serde_json::Value>| {
            let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
            if let Some(body) = body {
                req = req.json(body);
            }
            req.send()
        };
    let post = reqwest::Method::POST;
    let res = send(
        &editor,
        post.clone(),
        "/api/v1/staff/invitations",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    let res = send(
        &admin,
        post.clone(),
        "/api/v1/staff/invitations",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    assert_eq!(created["email"], "rosa@example.org");
    assert_eq!(created["invited_by"], "admin@staff.example.org");
    assert_eq!(created["expired"], false);
    assert!(created.get("token").is_none() && created.get("token_hash").is_none());
    let id = created["id"].as_str().unwrap().to_owned();

    let res = send(
        &admin,
        post.clone(),
        "/api/v1/staff/invitations",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let bad = serde_json::json!({"email": "x@example.org", "role": "admin", "language": "fr"});
    let res = send(
        &admin,
        post.clone(),
        "/api/v1/staff/invitations",
        Some(&bad),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422);

    let list: serde_json::Value = app.get_json_as(&admin, "/api/v1/staff/invitations").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, first) = invitation_link(&app, "rosa@example.org").await;

    let path = format!("/api/v1/staff/invitations/{id}/resend");
    let res = send(&admin, post.clone(), &path, None).await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, second) = invitation_link(&app, "rosa@example.org").await;
    assert_ne!(first, second);

    let path = format!("/api/v1/staff/invitations/{id}");
    let res = send(&admin, reqwest::Method::DELETE, &path, None)
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = send(&admin, reqwest::Method::DELETE, &path, None)
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(Browser::new(&app).get(&second).await.status, 404);
    assert_eq!(audits(&app, "staff.invitation_withdraw", &id), 1);
}

#[tokio::test]
async fn an_admin_edits_switches_pages_through_and_deletes_a_webhook() {
    let app = TestApp::builder()
        .settings(|s| s.webhook_allow_private = true)
        .spawn()
        .await;
    let mut admin = signed_in(&app, Role::Admin).await;
    let form = [
        ("url", "http://127.0.0.1:9/hooks"),
        ("description", "CRM"),
        ("events", "subscriber.created"),
    ];
    assert_eq!(
        admin.post("/webhooks", "/webhooks", &form).await.status,
        201
    );
    let id = app.query_one("SELECT id AS v FROM webhook_endpoints");
    let path = format!("/webhooks/{id}");

    // Edit: URL, description, events, and off; through the service, audited.
    let edit = [
        ("url", "http://127.0.0.1:9/other"),
        ("description", "New CRM"),
        ("events", "subscriber.updated"),
        ("events", "subscriber.unsubscribed"),
    ];
    let done = admin.post(&path, &path, &edit).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().ends_with("notice=webhook_updated"));
    assert_eq!(
        app.query_one("SELECT url AS v FROM webhook_endpoints"),
        "http://127.0.0.1:9/other"
    );
    assert_eq!(
        app.count("webhook_endpoints WHERE enabled = FALSE AND description = 'New CRM'"),
        1,
        "an unticked box switches it off"
    );
    assert_eq!(audits(&app, "webhook.update", &id), 1);
    let page = admin.get(&format!("{path}?notice=webhook_updated")).await;
    assert!(page.body.contains("The endpoint is saved."));
    assert!(page.body.contains("Enable the endpoint"));

    // A refused edit: the errors, linked to their fields, in both languages; nothing changed.
    let bad = [("url", "ftp://example.org"), ("description", "x")];
    let refused = admin.post(&path, &path, &bad).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("href=\"#f-url\""), "{}", refused.body);
    assert!(refused.body.contains("href=\"#event-1\""));
    assert!(refused.body.contains("choose at least one event"));
    assert!(refused
        .body
        .contains("value=\"ftp:&#x2f;&#x2f;example.org\""));
    admin.language = "es";
    let refused = admin.post(&path, &path, &bad).await;
    assert!(refused.body.contains("Corrige esto primero"));
    assert!(refused.body.contains("elige al menos un evento"));
    admin.language = "en";
    assert_eq!(audits(&app, "webhook.update", &id), 1);

    // On and off with one button.
    let on = admin
        .post(&path, &format!("{path}/enabled"), &[("enabled", "true")])
        .await;
    assert_eq!(on.status, 303);
    assert!(on.location().ends_with("notice=webhook_enabled"));
    assert_eq!(app.count("webhook_endpoints WHERE enabled = TRUE"), 1);
    let off = admin
        .post(&path, &format!("{path}/enabled"), &[("enabled", "false")])
        .await;
    assert!(off.location().ends_with("notice=webhook_disabled"));
    assert_eq!(app.count("webhook_endpoints WHERE enabled = FALSE"), 1);

    // Deliveries, newest first, 50 to a page, following the cursor.
    for i in 0..55 {
        app.sql(&format!(
            "INSERT INTO webhook_messages (id, endpoint_id, event_type, payload, state, attempts, created_at, updated_at) \
             VALUES ('msg_{i:032x}', '{id}', 'subscriber.updated', '{{}}', 'delivered', 1, '2026-01-15 12:00:00', '2026-01-15 12:00:00')"
        ));
    }
    let first = admin.get(&path).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        first
            .body
            .matches("<code>subscriber.updated</code></th>")
            .count(),
        50
    );
    assert!(!first.body.contains("Newest deliveries"));
    let older = format!("{path}?before=msg_{:032x}", 5);
    assert!(first.body.contains(&format!("?before=msg_{:032x}", 5)));
    let second = admin.get(&older).await;
    assert_eq!(
        second
            .body
            .matches("<code>subscriber.updated</code></th>")
            .count(),
        5
    );
    assert!(second.body.contains("Newest deliveries"));
    assert!(!second.body.contains("Older deliveries"));
    assert_eq!(
        admin.get(&format!("{path}?before=nonsense")).await.status,
        404
    );

    // Deleting asks first, then removes the endpoint and its log.
    let ask = admin.post(&path, &format!("{path}/delete"), &[]).await;
    assert_eq!(ask.status, 200);
    assert!(
        ask.body
            .contains("Delete the endpoint http:&#x2f;&#x2f;127.0.0.1:9&#x2f;other?"),
        "{}",
        ask.body
    );
    assert_eq!(app.count("webhook_endpoints"), 1);
    let gone = admin
        .post(&path, &format!("{path}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(gone.status, 303);
    assert!(gone
        .location()
        .ends_with("/webhooks?notice=webhook_deleted"));
    assert_eq!(app.count("webhook_endpoints"), 0);
    assert_eq!(app.count("webhook_messages"), 0);
    assert_eq!(audits(&app, "webhook.delete", &id), 1);
    assert_eq!(admin.get(&path).await.status, 404);

    // Editors may not.
    let mut editor = signed_in(&app, Role::Editor).await;
    assert_eq!(editor.post("/account", &path, &edit).await.status, 403);
}
