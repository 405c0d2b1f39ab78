//! Attacks a hostile sender, subscriber or client would try, each through real HTTP, with the
//! safe outcome a user would notice: header injection through names, subjects and addresses;
//! markup in merge fields; spreadsheet formulas; oversized and deeply nested JSON; forged
//! credentials.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use enlace::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const PROBLEM: &str = "application/problem+json";

fn everyone() -> Value {
    json!({"not": {"email_domain": "nowhere.invalid"}})
}

/// The header section of a raw message, one entry per header line (continuations excluded).
fn header_lines(raw: &str) -> Vec<&str> {
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .collect()
}

/// Asserts a raw message has exactly one To, no Bcc/Cc, and no header from a value.
fn assert_no_injected_headers(raw: &str) {
    let lines = header_lines(raw);
    let named = |name: &str| {
        lines
            .iter()
            .filter(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .count()
    };
    assert_eq!(named("to"), 1, "one To header:\n{raw}");
    for name in ["bcc", "cc", "x-injected"] {
        assert_eq!(named(name), 0, "an injected {name} header:\n{raw}");
    }
    // Headers are 7-bit (values with other characters are encoded), so no bare CR or LF either.
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        !head.replace("\r\n", "").contains(['\r', '\n']),
        "a bare line break in the headers:\n{raw}"
    );
}

async fn problem(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, PROBLEM, "status {status}");
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn header_breaks_in_names_subjects_and_addresses_never_reach_a_message() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some("1 Main St".into()))
        .spawn()
        .await;
    let editor = app.staff_token(Role::Editor).await;
    // Public signups and staff-added people: a name with a line break is refused.
    for name in [
        "Eve\r\nBcc: all@example.org",
        "Eve\nBcc: all@example.org",
        "Eve\rBcc: all@example.org",
        "Eve\u{85}Bcc: all@example.org",
        "Eve\0",
    ] {
        let res = app
            .subscribe(json!({"email": "eve@example.org", "name": name}))
            .await;
        assert_eq!(problem(res).await.0, 422, "{name:?}");
        let res = app
            .send_as(
                &editor,
                "POST",
                "/api/v1/subscribers",
                json!({"email": "eve@example.org", "name": name}),
            )
            .await;
        assert_eq!(problem(res).await.0, 422, "{name:?}");
    }
    assert_eq!(app.count("subscribers"), 0);
    // Other separators are not line breaks in mail: accepted, and encoded in the header.
    let res = app
        .subscribe(json!({"email": "sep@example.org", "name": "Sep\u{2028}Bcc: all@example.org"}))
        .await;
    assert_eq!(res.status(), 202);
    let mail = app.deliver_one("sep@example.org").await;
    assert_no_injected_headers(&mail.raw);

    // Newsletter subject, From and Reply-To with a line break: refused when saved.
    for (field, value) in [
        ("subject", "Hello\r\nBcc: all@example.org"),
        ("subject", "Hello\nBcc: all@example.org"),
        ("from", "News <news@example.org>\r\nBcc: all@example.org"),
        ("from", "News\r\nBcc: all@example.org <news@example.org>"),
        (
            "from",
            "\"News\r\nBcc: all@example.org\" <news@example.org>",
        ),
        ("reply_to", "hola@example.org\r\nBcc: all@example.org"),
        ("reply_to", "\"Hola\nX-Injected: 1\" <hola@example.org>"),
    ] {
        let mut body = json!({"subject": "Hello", "html": "<p>Hi</p>", "filter": everyone()});
        body[field] = json!(value);
        let res = app
            .send_as(&editor, "POST", "/api/v1/newsletters", body)
            .await;
        let (status, body) = problem(res).await;
        assert_eq!(status, 422, "{field} {value:?}");
        assert!(body["errors"].get(field).is_some(), "{field}: {body}");
    }

    // People stored before names were checked (or written by another tool): the subject made
    // from their merge fields is one line, and their name in To is encoded.
    app.add_field("city", "text", &[], false);
    app.add_subscriber(
        "legacy@example.org",
        "confirmed",
        "en",
        Some("Eve\r\nBcc: all@example.org"),
        json!({"city": "Phoenix\r\nX-Injected: 1"}),
    );
    let id = crate::newsletters::create(
        &app,
        &editor,
        json!({"subject": "Hi {{ name }} in {{ attributes.city }}",
                   "html": "<p>Hi {{ name }}</p>", "filter": everyone(),
                   "from": "Casa <news@example.org>", "reply_to": "hola@example.org"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .send_as(
            &editor,
            "POST",
            &format!("/api/v1/newsletters/{id}/send"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.run_sends().await;
    let mails = app.mails_to("legacy@example.org");
    assert_eq!(mails.len(), 1, "one message, to one person");
    assert_no_injected_headers(&mails[0].raw);
    assert_eq!(
        mails[0].subject,
        "Hi Eve Bcc: all@example.org in Phoenix X-Injected: 1"
    );
    assert!(app.mails_to("all@example.org").is_empty());
}

#[tokio::test]
async fn markup_in_merge_fields_is_escaped_in_mail_previews_and_pages() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some("1 Main St".into()))
        .spawn()
        .await;
    app.add_interest("news", true);
    app.add_field("city", "text", &[], true);
    let name = "<script>alert(\"n\")</script>";
    let city = "<img src=x onerror=alert(1)>";
    let res = app
        .subscribe(
            json!({"email": "mallory@example.org", "name": name, "interests": ["news"],
                          "attributes": {"city": city}}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let raw_markup = |s: &str| s.contains("<script>alert") || s.contains("<img src=x");
    let confirmation = app.deliver_one("mallory@example.org").await;
    assert!(!raw_markup(&confirmation.html), "{}", confirmation.html);
    let confirm = app.link(&confirmation, "/confirm/");
    let page = app.get(&confirm).await.text().await.unwrap();
    assert!(!raw_markup(&page), "{page}");
    let res = app.client.post(app.url(&confirm)).send().await.unwrap();
    assert!(res.status().is_success());
    let page = res.text().await.unwrap();
    assert!(!raw_markup(&page), "{page}");
    let welcome = app.deliver_one("mallory@example.org").await;
    assert!(!raw_markup(&welcome.html), "{}", welcome.html);
    let preferences = app.link(&welcome, "/preferences/");
    let page = app.get(&preferences).await.text().await.unwrap();
    assert!(!raw_markup(&page), "{page}");

    // Newsletters: the preview staff see and the message the person gets.
    let editor = app.staff_token(Role::Editor).await;
    let id = app.conn_subscriber_id("mallory@example.org");
    let res = app
        .send_as(
            &editor,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "Hi {{ name }}",
                   "html": "<p>{{ name }} {{ attributes.city }} {{ name|upper }} {{ attributes }}</p>",
                   "filter": everyone()}),
        )
        .await;
    let created: Value = res.json().await.unwrap();
    assert!(created["id"].is_string(), "{created}");
    let newsletter = created["id"].as_str().unwrap().to_owned();
    let res = app
        .send_as(
            &editor,
            "POST",
            &format!("/api/v1/newsletters/{newsletter}/preview"),
            json!({"subscriber_id": id}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let preview: Value = res.json().await.unwrap();
    let html = preview["html"].as_str().unwrap();
    assert!(!raw_markup(html) && !html.contains("<SCRIPT>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    let res = app
        .send_as(
            &editor,
            "POST",
            &format!("/api/v1/newsletters/{newsletter}/send"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.run_sends().await;
    let mail = app.mails_to("mallory@example.org").pop().unwrap();
    assert!(mail.subject.starts_with("Hi "), "{}", mail.subject);
    assert!(
        !raw_markup(&mail.html) && !mail.html.contains("<SCRIPT>"),
        "{}",
        mail.html
    );
}

#[tokio::test]
async fn a_template_that_writes_too_much_fails_instead_of_filling_memory() {
    let app = spawn_app().await;
    app.add_field("bio", "text", &[], false);
    let editor = app.staff_token(Role::Editor).await;
    // Prints a merge value many times: nothing on the sample data tried at save (no bio), about
    // 2.2 MB for someone with a 500-character bio, over the 2 MiB a message may render to.
    let long = app.add_subscriber(
        "long@example.org",
        "confirmed",
        "en",
        None,
        json!({"bio": "b".repeat(500)}),
    );
    let html = "{{ attributes.bio }}".repeat(4400);
    let id = crate::newsletters::create(
        &app,
        &editor,
        json!({"subject": "Big", "html": html, "text": "Big", "filter": everyone()}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .send_as(
            &editor,
            "POST",
            &format!("/api/v1/newsletters/{id}/preview"),
            json!({"subscriber_id": long}),
        )
        .await;
    let (status, body) = problem(res).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("larger than 2 MiB"), "{body}");
    // Loops that wrote a long text in few steps are not part of the language: refused at save.
    let chunk = "x".repeat(10 * 1024);
    let html =
        format!("{{% for a in email %}}{{% for b in email %}}{chunk}{{% endfor %}}{{% endfor %}}");
    let res = app
        .send_as(
            &editor,
            "POST",
            "/api/v1/newsletters",
            json!({"subject": "Big", "html": html, "filter": everyone()}),
        )
        .await;
    let (status, body) = problem(res).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"]["html"][0]
            .as_str()
            .unwrap()
            .contains("`for` loops"),
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
}

#[tokio::test]
async fn spreadsheet_formulas_are_neutralised_in_exports_and_imported_as_text() {
    let app = spawn_app().await;
    app.add_field("city", "text", &[], false);
    let editor = app.staff_token(Role::Editor).await;
    let formulas = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+cmd|' /C calc'!A0",
        "-1+1",
        "@SUM(A1:A2)",
        "=1+1",
    ];
    let mut csv = String::from("email,name,city\r\n");
    for (i, f) in formulas.iter().enumerate() {
        let quoted = format!("\"{}\"", f.replace('"', "\"\""));
        csv.push_str(&format!("f{i}@example.org,{quoted},{quoted}\r\n"));
    }
    let res = app
        .client
        .post(app.url("/api/v1/imports"))
        .query(&[
            ("mode", "consented"),
            ("source", "Formula sheet"),
            ("consent_note", "Signed the sheet"),
        ])
        .bearer_auth(&editor)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    app.run_tasks().await;
    // Stored as the text it is: the API gives back what was written.
    for (i, f) in formulas.iter().enumerate() {
        let list: Value = app
            .client
            .get(app.url("/api/v1/subscribers"))
            .query(&[("email_contains", format!("f{i}@example.org"))])
            .bearer_auth(&editor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["data"][0]["name"], *f, "{list}");
        assert_eq!(list["data"][0]["attributes"]["city"], *f);
    }
    // Plus cells a spreadsheet would also run: a leading tab or carriage return.
    app.add_subscriber(
        "tab@example.org",
        "confirmed",
        "en",
        Some("\t=1+1"),
        json!({"city": "\r=1+1"}),
    );
    let res = app
        .get_as(&editor, "/api/v1/exports/subscribers?format=csv")
        .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a live formula in the export: {cell:?}"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, formulas.len() + 1);
    for f in formulas {
        assert!(
            body.contains(&format!("'{}", f.replace('"', "\"\""))),
            "{f} kept as text"
        );
    }
}

#[tokio::test]
async fn oversized_and_deeply_nested_json_is_refused_with_a_problem() {
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    let raw = |path: &'static str, body: String, bearer: Option<String>| {
        let app = &app;
        async move {
            let mut req = app
                .client
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            req.send().await.unwrap()
        }
    };
    let big = format!(
        "{{\"email\":\"a@example.org\",\"name\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    // Drafts may be larger (4 MiB) than other requests (`ENLACE_MAX_BODY_BYTES`).
    let huge = format!(
        "{{\"subject\":\"S\",\"html\":\"{}\"}}",
        "x".repeat(5 * 1024 * 1024)
    );
    for (path, body, bearer) in [
        ("/api/v1/subscribe", &big, None),
        ("/api/v1/segments/preview", &big, Some(editor.clone())),
        ("/api/v1/newsletters", &huge, Some(editor.clone())),
    ] {
        let (status, _) = problem(raw(path, body.clone(), bearer).await).await;
        assert_eq!(status, 413, "{path}");
    }
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let filters = |depth: usize| {
        format!(
            "{{\"filter\":{}{{\"interest\":\"news\"}}{}}}",
            "{\"all\":[".repeat(depth),
            "]}".repeat(depth)
        )
    };
    let nots = |depth: usize| {
        format!(
            "{{\"filter\":{}{{\"interest\":\"news\"}}{}}}",
            "{\"not\":".repeat(depth),
            "}".repeat(depth)
        )
    };
    for (what, path, body) in [
        ("arrays", "/api/v1/subscribe", arrays.clone()),
        ("arrays", "/api/v1/segments/preview", arrays.clone()),
        ("all × 10,000", "/api/v1/segments/preview", filters(10_000)),
        ("all × 5,000", "/api/v1/segments/preview", filters(5_000)),
        ("not × 10,000", "/api/v1/segments/preview", nots(10_000)),
        ("not × 200", "/api/v1/segments/preview", nots(200)),
        ("not × 20", "/api/v1/segments/preview", nots(20)),
        ("all × 20", "/api/v1/segments", filters(20)),
        ("all × 20", "/api/v1/newsletters", filters(20)),
    ] {
        let (status, body) = problem(raw(path, body, Some(editor.clone())).await).await;
        assert!(
            (400..500).contains(&status),
            "{what} to {path}: {status} {body}"
        );
    }
    // Within what JSON parsing takes, the filter's own limit answers, by path.
    let (status, body) =
        problem(raw("/api/v1/segments/preview", nots(20), Some(editor.clone())).await).await;
    assert_eq!(status, 422);
    assert!(body["errors"].to_string().contains("levels deep"), "{body}");
    assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
}

/// Signs `claims` as the service would, with the key it derives from the test secret.
fn sign_as_service(kid: &str, alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    let secret = crate::helpers::test_settings().secret_key.unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"enlace/jwt/v1");
    let key = mac.finalize().into_bytes();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .unwrap()
}

fn part(token: &str, index: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(index).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn forged_and_misused_credentials_get_401_and_change_nothing() {
    let app = spawn_app().await;
    app.add_interest("news", true);
    let admin_id = app.add_staff("admin@example.org", Role::Admin);
    let admin = app.sign_in("admin@example.org").await;
    let editor_id = app.add_staff("editor@example.org", Role::Editor);
    let editor = app.sign_in("editor@example.org").await;
    let header = part(&editor, 0);
    let claims = part(&editor, 1);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    use jsonwebtoken::Algorithm::HS256;
    assert!(
        app.get_as(&sign_as_service(&kid, HS256, &claims), "/api/v1/interests")
            .await
            .status()
            .is_success(),
        "re-signing the genuine claims as the service does is accepted"
    );

    // An API key, and a manage token from a real welcome mail.
    let res = app
        .send_as(
            &admin,
            "POST",
            "/api/v1/api-keys",
            json!({"name": "sync", "scopes": ["subscribers:write", "subscribers:read"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.subscribe(json!({"email": "ana@example.org"})).await;
    let mail = app.deliver_one("ana@example.org").await;
    app.client
        .post(app.url(&app.link(&mail, "/confirm/")))
        .send()
        .await
        .unwrap();
    let welcome = app.deliver_one("ana@example.org").await;
    let preferences = app.link(&welcome, "/preferences/");
    let manage_token = preferences.trim_start_matches("/preferences/").to_owned();

    let segments = editor.split('.').collect::<Vec<_>>();
    let alg_none = format!(
        "{}.{}.",
        encode_part(&json!({"alg": "none", "typ": "JWT"})),
        segments[1]
    );
    let escalated = format!(
        "{}.{}.{}",
        segments[0],
        encode_part(&with(json!({"sub": admin_id}))),
        segments[2]
    );
    let wrong_secret = {
        let other = enlace::auth::jwt::JwtKeys::new(
            b"another-secret-that-is-long-enough-0123456789",
            claims["iss"].as_str().unwrap(),
        );
        other
            .issue(claims["sub"].as_str().unwrap(), 0, now)
            .unwrap()
    };
    // HS256 keyed with what a client can see (the key id), and a public-key algorithm.
    let kid_keyed = {
        let mut h = jsonwebtoken::Header::new(HS256);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(kid.as_bytes()),
        )
        .unwrap()
    };
    let rs256 = format!(
        "{}.{}.{}",
        encode_part(&json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
        segments[1],
        segments[2]
    );
    let flipped_key = {
        let mut chars: Vec<char> = key.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let forgeries = [
        ("alg none", alg_none),
        ("role escalation by a changed sub", escalated),
        ("wrong secret", wrong_secret),
        ("keyed with the key id", kid_keyed),
        ("RS256 header", rs256),
        (
            "expired",
            sign_as_service(
                &kid,
                HS256,
                &with(json!({"iat": now - 7200, "exp": now - 3600})),
            ),
        ),
        (
            "not yet valid",
            sign_as_service(&kid, HS256, &with(json!({"nbf": now + 3600}))),
        ),
        (
            "wrong issuer",
            sign_as_service(&kid, HS256, &with(json!({"iss": "http://evil.example"}))),
        ),
        (
            "wrong audience",
            sign_as_service(&kid, HS256, &with(json!({"aud": "somebody-else"}))),
        ),
        ("flipped API key", flipped_key),
        ("key prefix alone", "enl_".to_owned()),
        ("manage token", manage_token.clone()),
        ("huge", "a".repeat(8000)),
    ];
    let audit_before = app.count("audit_log");
    for (what, bearer) in &forgeries {
        let res = app
            .send_as(
                bearer,
                "POST",
                "/api/v1/interests",
                json!({"slug": "forged", "name": {"en": "F", "es": "F"}}),
            )
            .await;
        let (status, _) = problem(res).await;
        assert_eq!(status, 401, "{what}");
        let res = app.get_as(bearer, "/api/v1/subscribers").await;
        assert_eq!(problem(res).await.0, 401, "{what}");
    }
    // A disabled account's token stops working at once.
    app.disable_staff(&editor_id);
    let res = app.get_as(&editor, "/api/v1/interests").await;
    assert_eq!(problem(res).await.0, 401, "disabled account");
    assert_eq!(app.count("interests WHERE slug = 'forged'"), 0);
    assert_eq!(app.count("audit_log"), audit_before, "nothing recorded");

    // An access token or an API key where a manage token belongs: the invalid-link page, and
    // Ana stays subscribed.
    for bearer in [&admin, &key] {
        for path in ["unsubscribe", "preferences"] {
            let res = app
                .client
                .post(app.url(&format!("/{path}/{bearer}")))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("")
                .send()
                .await
                .unwrap();
            assert!(res.status().is_client_error(), "{path}: {}", res.status());
        }
    }
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("confirmed")
    );
    let page = app.get(&preferences).await;
    assert_eq!(page.status(), 200, "the genuine link still works");
}

#[tokio::test]
async fn a_sheet_saved_with_crlf_line_ends_is_reported_by_its_real_lines() {
    let app = spawn_app().await;
    let editor = app.staff_token(Role::Editor).await;
    let upload = |csv: &'static str| {
        let app = &app;
        let editor = editor.clone();
        async move {
            app.client
                .post(app.url("/api/v1/imports"))
                .query(&[
                    ("mode", "consented"),
                    ("source", "Windows sheet"),
                    ("consent_note", "Signed the sheet"),
                ])
                .bearer_auth(editor)
                .header("content-type", "text/csv")
                .body(csv)
                .send()
                .await
                .unwrap()
        }
    };
    let res = upload(
        "email,name\r\nana@example.org,Ana\r\nnot-an-email,Bad\r\n\r\nluis@example.org,\"Luis\r\nRamos\"\r\nana@example.org,Again\r\n",
    )
    .await;
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.run_tasks().await;
    let report = app
        .get_json_as(&editor, &format!("/api/v1/imports/{id}"))
        .await;
    let lines: Vec<(i64, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_i64().unwrap(),
                p["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (3, "failed".to_owned()),
            // A name cell with a line break in it: names are one line.
            (5, "failed".to_owned()),
            (7, "skipped".to_owned())
        ],
        "{report}"
    );
    let res = upload("email,name\r\na@example.org,A\r\nc@example.org\r\n").await;
    let (status, body) = problem(res).await;
    assert_eq!(status, 422);
    assert!(
        body["errors"]["file"][0]
            .as_str()
            .unwrap()
            .starts_with("line 3 has 1 field"),
        "{body}"
    );
}
