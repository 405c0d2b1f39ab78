//! The staff console's frame: signing in and out, sessions and how they end, CSRF, security
//! headers, roles on every route, language and time zone.

use enlace::auth::Role;
use enlace::routes::console::{Access, ROUTES};

use crate::console_client::{signed_in, Browser, CONSOLE};
use crate::helpers::{spawn_app, TestApp, STAFF_PASSWORD};

fn assert_console_headers(page: &crate::console_client::Page, what: &str) {
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline"),
        "{what}: no inline script or style"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}");
    assert_eq!(page.headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(page.headers["cache-control"], "no-store", "{what}");
    // Nothing inline that the policy would block (so nothing breaks, and nothing needs it).
    assert!(
        !page.body.contains(" style=\""),
        "{what}: no style attributes"
    );
    for (i, _) in page.body.match_indices("<script") {
        let tag = &page.body[i..i + page.body[i..].find('>').unwrap()];
        assert!(tag.contains(" src=\""), "{what}: only scripts from files");
    }
}

#[tokio::test]
async fn staff_sign_in_with_a_strict_cookie_and_sign_out_ends_the_session() {
    let app = spawn_app().await;
    app.add_staff("ana@example.org", Role::Editor);
    let mut browser = Browser::new(&app);

    let away = browser.get("/account?tab=x").await;
    assert_eq!(away.status, 303);
    assert_eq!(
        away.location(),
        format!("{CONSOLE}/sign-in?next=%2Faccount%3Ftab%3Dx")
    );
    let form = browser.get("/sign-in").await;
    assert_eq!(form.status, 200);
    assert_console_headers(&form, "sign-in page");
    assert!(form.body.contains("<html lang=\"en\""));

    // One refusal for every reason, worded alike.
    let wrong = browser
        .try_sign_in("ana@example.org", "not the password at all")
        .await;
    let unknown = browser
        .try_sign_in("nobody@example.org", STAFF_PASSWORD)
        .await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let refusal = |page: &crate::console_client::Page| {
        let at = page.body.find("role=\"alert\"").unwrap();
        page.body[at..at + 120].to_owned()
    };
    assert_eq!(refusal(&wrong), refusal(&unknown));
    assert!(wrong.set_cookie("enlace_console").is_none());

    let signed = browser.sign_in("ana@example.org").await;
    assert_eq!(signed.location(), format!("{CONSOLE}/"));
    let cookie = signed.set_cookie("enlace_console").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie} has {part}");
    }
    assert!(!cookie.contains("Secure"), "plain http in tests");
    assert!(
        !cookie.contains(&app.query_one("SELECT id AS v FROM console_sessions")),
        "only a hash of the secret is stored"
    );
    // Signing in again replaces the session instead of adding one.
    browser.sign_in("ana@example.org").await;
    assert_eq!(app.count("console_sessions"), 1);
    let home = browser.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Dashboard"));
    assert!(home.body.contains("ana@example.org"));
    assert_console_headers(&home, "dashboard");
    let kept = browser.cookies.clone();

    // Signing out needs the form's token.
    let forged = browser.post_raw("/sign-out", &[]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(browser.get("/").await.status, 200, "still signed in");
    let out = browser.post("/", "/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(browser.get("/").await.status, 303);
    // The old cookie, replayed, names nothing.
    browser.cookies = kept;
    assert_eq!(browser.get("/").await.status, 303);
    assert_eq!(app.count("console_sessions"), 0);
}

#[tokio::test]
async fn the_sign_in_form_is_refused_without_its_own_token_and_attempts_are_limited() {
    let app = spawn_app().await;
    app.add_staff("ana@example.org", Role::Admin);
    let mut browser = Browser::new(&app);
    let page = browser
        .post_raw(
            "/sign-in",
            &[("email", "ana@example.org"), ("password", STAFF_PASSWORD)],
        )
        .await;
    assert_eq!(
        page.status, 403,
        "a form posted from elsewhere signs nobody in"
    );
    assert!(page.set_cookie("enlace_console").is_none());

    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            browser
                .try_sign_in("ana@example.org", "wrong password!!")
                .await
                .status,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // The API shares the limit: it is one account being guessed.
    let res = app
        .post_json(
            "/api/v1/auth/token",
            &serde_json::json!({"email": "ana@example.org", "password": STAFF_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn sessions_end_when_idle_too_long_at_their_absolute_end_and_never_follow_elsewhere() {
    let app = spawn_app().await;
    let mut browser = signed_in(&app, Role::Admin).await;
    assert_eq!(browser.get("/").await.status, 200);
    app.sql("UPDATE console_sessions SET last_seen_at = '2020-01-01 00:00:00'");
    assert_eq!(browser.get("/").await.status, 303, "idle for too long");
    assert_eq!(app.count("console_sessions"), 0);

    browser.sign_in("admin@console.example.org").await;
    app.sql("UPDATE console_sessions SET expires_at = '2020-01-01 00:00:00'");
    assert_eq!(browser.get("/").await.status, 303, "past its absolute end");

    // A made-up cookie, and a valid-looking one, sign nobody in.
    browser
        .cookies
        .insert("enlace_console".into(), "x".repeat(43));
    assert_eq!(browser.get("/").await.status, 303);
    browser
        .cookies
        .insert("enlace_console".into(), "<script>".into());
    assert_eq!(browser.get("/").await.status, 303);
}

#[tokio::test]
async fn a_password_change_a_disable_or_a_demotion_ends_console_sessions_a_promotion_does_not() {
    let app = spawn_app().await;
    let admin = app.staff_token(Role::Admin).await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let editor_id =
        app.query_one("SELECT id AS v FROM staff WHERE email = 'editor@console.example.org'");
    let patch = |body: serde_json::Value| {
        let (app, admin, id) = (&app, admin.clone(), editor_id.clone());
        async move {
            let res = app
                .client
                .patch(app.url(&format!("/api/v1/staff/{id}")))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    patch(serde_json::json!({"role": "admin"})).await;
    assert_eq!(
        editor.get("/").await.status,
        200,
        "a promotion keeps the session"
    );
    patch(serde_json::json!({"role": "viewer"})).await;
    assert_eq!(editor.get("/").await.status, 303, "a demotion ends it");

    editor.sign_in("editor@console.example.org").await;
    patch(serde_json::json!({"disabled": true})).await;
    assert_eq!(editor.get("/").await.status, 303, "a disable ends it");
    patch(serde_json::json!({"disabled": false})).await;

    editor.sign_in("editor@console.example.org").await;
    let token = app.sign_in("editor@console.example.org").await;
    let res = app
        .client
        .put(app.url("/api/v1/staff/me/password"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"current_password": STAFF_PASSWORD, "new_password": "a brand new long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        editor.get("/").await.status,
        303,
        "a password change ends it"
    );
}

#[tokio::test]
async fn changing_the_password_in_the_console_signs_out_everyone_else_but_this_browser() {
    let app = spawn_app().await;
    let mut here = signed_in(&app, Role::Viewer).await;
    let mut there = Browser::new(&app);
    there.sign_in("viewer@console.example.org").await;
    let token = app.sign_in("viewer@console.example.org").await;

    let wrong = here
        .post(
            "/account",
            "/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", "a brand new long password"),
                ("repeat_password", "a brand new long password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("is not your current password"));
    assert!(wrong.body.contains("aria-invalid=\"true\""));
    let short = here
        .post(
            "/account",
            "/account/password",
            &[
                ("current_password", STAFF_PASSWORD),
                ("new_password", "short"),
                ("repeat_password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(short.body.contains("at least 12 characters"));

    let done = here
        .post(
            "/account",
            "/account/password",
            &[
                ("current_password", STAFF_PASSWORD),
                ("new_password", "a brand new long password"),
                ("repeat_password", "a brand new long password"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.set_cookie("enlace_console").is_some(), "a new session");
    let account = here.get("/account?notice=password_changed").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("Your password is changed"));
    assert_eq!(there.get("/").await.status, 303);
    let res = app
        .client
        .get(app.url("/api/v1/segments"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "API tokens from before are signed out");
    assert_eq!(
        app.count("audit_log WHERE action = 'staff.password_change'"),
        1
    );
}

#[tokio::test]
async fn the_console_speaks_the_members_language_and_shows_times_in_their_zone() {
    let app = spawn_app().await;
    app.add_staff("luz@example.org", Role::Admin);
    let mut browser = Browser::new(&app);
    browser.language = "es-MX,es;q=0.9,en;q=0.5";
    let form = browser.get("/sign-in").await;
    assert!(form.body.contains("<html lang=\"es\""));
    assert!(form.body.contains("Iniciar sesión"));
    let english = browser.get("/sign-in?lang=en").await;
    assert!(english.body.contains("<html lang=\"en\""));
    browser.sign_in("luz@example.org").await;
    let home = browser.get("/").await;
    assert!(home.body.contains("Panel"));
    assert!(home.body.contains("Cerrar sesión"));

    // Her choice beats the browser's; her zone shows in every date.
    let saved = browser
        .post(
            "/account",
            "/account/preferences",
            &[("language", "en"), ("time_zone", "America/Phoenix")],
        )
        .await;
    assert_eq!(saved.status, 303);
    let home = browser.get("/").await;
    assert!(home.body.contains("<html lang=\"en\""));
    assert!(home
        .body
        .replace("&#x2f;", "/")
        .contains("Times are shown in America/Phoenix."));
    let stamp = app.query_one(
        "SELECT CAST(created_at AS TEXT) AS v FROM audit_log WHERE action = 'staff.preferences'",
    );
    let utc = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let phoenix = utc - chrono::Duration::hours(7);
    assert!(
        home.body.contains(&phoenix.format("%H:%M").to_string()),
        "the activity list shows Phoenix time"
    );

    let bad = browser
        .post(
            "/account",
            "/account/preferences",
            &[("language", "fr"), ("time_zone", "Mars/Olympus")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("is not a time zone Enlace knows"));
    assert_eq!(
        app.query_one("SELECT time_zone AS v FROM staff WHERE email = 'luz@example.org'"),
        "America/Phoenix",
        "nothing changed"
    );
}

/// Requests a console route as a browser would: a page, or a form with or without the token.
async fn send(
    browser: &mut Browser<'_>,
    post: bool,
    path: &str,
    with_token: bool,
) -> crate::console_client::Page {
    if !post {
        return browser.get(path).await;
    }
    let token = if with_token {
        let home = browser.get("/").await;
        if home.status == 200 {
            home.csrf()
        } else {
            String::new()
        }
    } else {
        String::new()
    };
    if token.is_empty() {
        browser.post_raw(path, &[]).await
    } else {
        browser.post_raw(path, &[("csrf", &token)]).await
    }
}

/// Every console route, as the route table declares it: without a session, with a forged or an
/// ended one, without the form's token, and as each role.
#[tokio::test]
async fn every_console_route_checks_the_session_the_form_token_and_the_role() {
    let app = spawn_app().await;
    let mut anonymous = Browser::new(&app);
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let mut admin = signed_in(&app, Role::Admin).await;
    // The same admin in another browser, whose session then ran out.
    let mut ended = Browser::new(&app);
    ended.sign_in("admin@console.example.org").await;
    app.sql("UPDATE console_sessions SET expires_at = '2020-01-01 00:00:00' WHERE created_at = (SELECT MAX(created_at) FROM console_sessions)");
    let mut forged = Browser::new(&app);
    forged
        .cookies
        .insert("enlace_console".into(), enlace::tokens::random_token());

    assert!(ROUTES.len() >= 6);
    for (method, path, access) in ROUTES {
        let path = path.replace("{file}", "console.css");
        let post = *method == "post";
        if *access == Access::Public {
            continue;
        }
        for (what, browser) in [
            ("no session", &mut anonymous),
            ("a forged cookie", &mut forged),
            ("an ended session", &mut ended),
        ] {
            let page = send(browser, post, &path, true).await;
            assert_eq!(page.status, 303, "{method} {path} with {what}");
            assert!(
                page.location().starts_with(&format!("{CONSOLE}/sign-in")),
                "{method} {path} with {what}"
            );
        }
        for (role, browser) in [
            (Role::Viewer, &mut viewer),
            (Role::Editor, &mut editor),
            (Role::Admin, &mut admin),
        ] {
            if post {
                let page = send(browser, post, &path, false).await;
                assert_eq!(page.status, 403, "{method} {path} without the form token");
            }
            let page = send(browser, post, &path, true).await;
            if access.allows(role) {
                assert_ne!(page.status, 403, "{method} {path} as {role:?}");
            } else {
                assert_eq!(page.status, 403, "{method} {path} as {role:?}");
            }
            // The sign-out route ends the session it is tested with: sign in again.
            if path == "/sign-out" && page.status == 303 {
                browser
                    .sign_in(&format!("{}@console.example.org", role.as_str()))
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn the_stylesheet_and_script_are_served_by_enlace_and_kept_by_browsers() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for (file, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
    ] {
        let page = browser.get(&format!("/static/{file}")).await;
        assert_eq!(page.status, 200);
        assert!(page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(page.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
    }
    assert_eq!(browser.get("/static/other.js").await.status, 404);
}

#[tokio::test]
async fn an_address_under_the_console_that_names_no_page_shows_the_consoles_not_found_page() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for (language, title) in [("en", "Not found"), ("es", "No encontrado")] {
        browser.language = language;
        let page = browser.get("/no-such-page").await;
        assert_eq!(page.status, 404);
        assert!(page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_console_headers(&page, "not found");
        assert!(page.body.contains(&format!("<html lang=\"{language}\"")));
        assert!(
            page.body.contains(&format!("<h1>{title}</h1>")),
            "{}",
            page.body
        );
    }
    // Its "other language" link (?lang=) is followed whatever the browser asks for.
    browser.language = "en";
    let page = browser.get("/no-such-page?lang=es").await;
    assert!(page.body.contains("<html lang=\"es\""));
}

#[tokio::test]
async fn the_console_moves_with_its_setting_and_the_public_urls_path() {
    let app = TestApp::builder()
        .settings(|s| {
            s.console_path = "/equipo".into();
            s.public_url = "http://127.0.0.1/lista/".parse().unwrap();
        })
        .spawn()
        .await;
    let res = app.get("/lista/equipo/sign-in").await;
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(cookie.contains("Path=/lista/equipo"), "{cookie}");
    let body = res.text().await.unwrap().replace("&#x2f;", "/");
    assert!(body.contains("action=\"/lista/equipo/sign-in\""), "{body}");
    assert!(body.contains("href=\"/lista/equipo/static/console.css?v="));
    assert_eq!(app.get("/admin/sign-in").await.status(), 404);
}

#[tokio::test]
async fn console_cookies_are_secure_when_the_public_url_is_https() {
    let app = TestApp::builder()
        .settings(|s| s.public_url = "https://lists.example.org/".parse().unwrap())
        .spawn()
        .await;
    let res = app.get("/admin/sign-in").await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie} has {part}");
    }
}
