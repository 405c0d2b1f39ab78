//! The public archive: a newsletter published by staff is public in both languages once sent,
//! as a copy that names nobody and carries nobody's token; its messages link to it; the feed is
//! valid Atom to an independent parser; withdrawing it is a 404 at once.

use serde_json::{json, Value};

use crate::helpers::{Mail, TestApp};
use crate::newsletters::{create, post, sender_app};

fn everyone() -> Value {
    json!({"not": {"email_domain": "nowhere.invalid"}})
}

/// The people the newsletter goes to: (address, language, name, city).
const PEOPLE: [(&str, &str, Option<&str>, &str); 3] = [
    (
        "ana.zenteno@example.org",
        "en",
        Some("Ana Zenteno"),
        "Tucsonville",
    ),
    (
        "beto.quispe@example.org",
        "es",
        Some("Beto Quispe"),
        "Nogalesita",
    ),
    ("carla.x@example.org", "es", None, "Yumaville"),
];

async fn app_with_people() -> (TestApp, String) {
    let (app, token) = sender_app().await;
    let res = app
        .send_as(
            &token,
            "POST",
            "/api/v1/fields",
            json!({"key": "city", "type": "text"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    for (email, language, name, city) in PEOPLE {
        app.add_subscriber(email, "confirmed", language, name, json!({ "city": city }));
    }
    (app, token)
}

fn draft(archived: bool, spanish: bool) -> Value {
    let mut body = json!({
        "subject": "News for {{ name or 'friend' }} in {{ attributes.city }}",
        "preheader": "Town hall on Saturday",
        "html": "<html><head><title>x</title></head><body><p>Hi {{ name or 'friend' }} ({{ email }}) \
                 from {{ attributes.city }}</p><p><a href=\"https://example.org/event\">The event</a> \
                 <a href=\"{{ unsubscribe_url }}\">leave</a> <a href=\"{{ preferences_url }}\">topics</a></p></body></html>",
        "archived": archived,
        "count_clicks": true,
        "filter": everyone(),
    });
    if spanish {
        body["variants"] = json!({"es": {
            "subject": "Noticias para {{ name or 'amiga' }}",
            "html": "<p>Hola {{ name or 'amiga' }} de {{ attributes.city }}</p><p><a href=\"https://example.org/evento\">El evento</a></p>",
        }});
    }
    body
}

/// Creates and sends a newsletter to everyone; returns its id.
async fn sent(app: &TestApp, token: &str, body: Value) -> String {
    let n = create(app, token, body).await;
    let id = n["id"].as_str().unwrap().to_owned();
    let (status, _) = post(app, token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    id
}

/// A page's status and HTML, with `/` unescaped (the templates write it `&#x2f;`, as browsers read it).
async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let res = app.get(path).await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap().replace("&#x2f;", "/"))
}

/// Every `href` of an HTML document, unescaped as a browser reads it.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&#x2f;", "/").replace("&amp;", "&"))
        .collect()
}

/// The personal manage token in a message's unsubscribe link.
fn manage_token(app: &TestApp, mail: &Mail) -> String {
    let link = app.link(mail, "/unsubscribe/");
    let token = link.trim_start_matches("/unsubscribe/");
    token.split('?').next().unwrap().to_owned()
}

fn assert_names_nobody(what: &str, html: &str, tokens: &[String]) {
    let unescaped = html.replace("&#x2f;", "/").replace("&#64;", "@");
    for (email, _, name, city) in PEOPLE {
        for value in [Some(email), name, Some(city)].into_iter().flatten() {
            assert!(!unescaped.contains(value), "{what} shows {value}:\n{html}");
        }
        let local = email.split('@').next().unwrap();
        assert!(!unescaped.contains(local), "{what} shows {local}");
    }
    for token in tokens {
        assert!(
            !unescaped.contains(token.as_str()),
            "{what} holds a manage token"
        );
    }
    assert!(
        !unescaped.contains("/unsubscribe/") && !unescaped.contains("/preferences/"),
        "{what} links to a personal page:\n{html}"
    );
}

#[tokio::test]
async fn an_archived_newsletter_is_public_in_both_languages_and_names_nobody() {
    let (app, token) = app_with_people().await;
    let id = sent(&app, &token, draft(true, true)).await;
    let base = &app.address;

    // Every message links to the archive page in its reader's language, the same for all of
    // them, at the top of both parts.
    let mut tokens = Vec::new();
    let mut mail_links = Vec::new();
    for (email, language, _, _) in PEOPLE {
        let mail = app.mails_to(email).pop().expect("a message");
        let url = format!("{base}/archive/{language}/{id}");
        let top: Vec<&str> = mail.text.lines().take(3).collect();
        assert!(top.contains(&url.as_str()), "{}", mail.text);
        let escaped = url.replace('/', "&#x2f;");
        let at = mail.html.find(&escaped).expect("the link in the HTML");
        let greeting = mail
            .html
            .find(if language == "en" { "Hi " } else { "Hola " });
        assert!(at < greeting.unwrap(), "before the content: {}", mail.html);
        if language == "en" {
            // The preheader stays first: it is what inboxes show after the subject.
            let preheader = mail.html.find("Town hall on Saturday").unwrap();
            assert!(preheader < at, "{}", mail.html);
        }
        tokens.push(manage_token(&app, &mail));
        mail_links.push(hrefs(&mail.html));
    }

    for (language, subject, greeting) in [
        ("en", "News for friend in", "Hi friend () from </p>"),
        ("es", "Noticias para amiga", "Hola amiga de </p>"),
    ] {
        let other = if language == "en" { "es" } else { "en" };
        // The list.
        let (status, list) = page(&app, &format!("/archive/{language}")).await;
        assert_eq!(status, 200, "{list}");
        assert!(list.contains(&format!("<html lang=\"{language}\">")));
        assert!(list.contains(subject), "{list}");
        assert!(
            list.contains(&format!("href=\"{base}/archive/{language}/{id}\"")),
            "{list}"
        );
        for l in ["en", "es"] {
            let alternate =
                format!("<link rel=\"alternate\" hreflang=\"{l}\" href=\"{base}/archive/{l}\">");
            assert!(list.contains(&alternate), "{alternate} in {list}");
        }
        assert!(list.contains(&format!(
            "<link rel=\"alternate\" hreflang=\"x-default\" href=\"{base}/archive/en\">"
        )));
        assert!(list.contains(&format!(
            "<link rel=\"alternate\" type=\"application/atom+xml\" href=\"{base}/archive/{language}/feed.atom\""
        )));
        assert_names_nobody("the list", &list, &tokens);

        // The newsletter's page: both versions exist, so each links to the other.
        let (status, html) = page(&app, &format!("/archive/{language}/{id}")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains(&format!("<h1>{subject}</h1>")), "{html}");
        for l in ["en", "es"] {
            let alternate = format!(
                "<link rel=\"alternate\" hreflang=\"{l}\" href=\"{base}/archive/{l}/{id}\">"
            );
            assert!(html.contains(&alternate), "{alternate} in {html}");
        }
        assert!(html.contains(&format!(
            "<link rel=\"canonical\" href=\"{base}/archive/{language}/{id}\">"
        )));
        assert!(html.contains(&format!(
            "href=\"{base}/archive/{other}/{id}\" hreflang=\"{other}\""
        )));
        assert!(html.contains(&format!("src=\"{base}/archive/{language}/{id}/content\"")));
        assert!(html.contains("sandbox=\""), "{html}");
        assert!(!html.contains("<script"), "no script on a public page");
        assert_names_nobody("the page", &html, &tokens);

        // The copy in its frame: neutral merge fields, the mail's own (counted) links.
        let (status, copy) = page(&app, &format!("/archive/{language}/{id}/content")).await;
        assert_eq!(status, 200);
        assert!(copy.contains(greeting), "{copy}");
        assert_names_nobody("the copy", &copy, &tokens);
        let counted: Vec<String> = hrefs(&copy)
            .into_iter()
            .filter(|h| h.contains("/l/"))
            .collect();
        assert!(!counted.is_empty(), "counted links in {copy}");
        let reader = PEOPLE.iter().position(|p| p.1 == language).unwrap();
        for link in &counted {
            assert!(
                mail_links[reader].contains(link),
                "{link} is a link of the message"
            );
        }
        // The personal links of the template lead to the note about readers' own links.
        if language == "en" {
            assert!(
                hrefs(&copy).contains(&format!("{base}/archive/en/{id}#links")),
                "{copy}"
            );
        }
    }
}

#[tokio::test]
async fn the_feeds_are_atom_that_an_independent_parser_reads() {
    let (app, token) = app_with_people().await;
    let id = sent(&app, &token, draft(true, true)).await;
    let base = &app.address;
    let mut ids = Vec::new();
    for (language, title) in [("en", "News for friend in"), ("es", "Noticias para amiga")] {
        let res = app.get(&format!("/archive/{language}/feed.atom")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"],
            "application/atom+xml; charset=utf-8"
        );
        let xml = res.text().await.unwrap();
        assert_names_nobody("the feed", &xml, &[]);
        let feed = feed_rs::parser::parse(xml.as_bytes()).expect("a valid feed");
        assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
        assert_eq!(feed.language.as_deref(), Some(language));
        assert_eq!(feed.entries.len(), 1);
        let entry = &feed.entries[0];
        assert_eq!(entry.title.as_ref().unwrap().content, title);
        assert!(entry.id.starts_with("urn:uuid:"), "{}", entry.id);
        assert_eq!(
            entry.links[0].href,
            format!("{base}/archive/{language}/{id}")
        );
        assert!(entry.updated.is_some() && entry.published.is_some());
        let summary = &entry.summary.as_ref().unwrap().content;
        if language == "en" {
            assert_eq!(summary, "Town hall on Saturday");
        } else {
            // No preheader: the start of the text, rendered for nobody.
            assert!(summary.starts_with("Hola amiga de "), "{summary}");
        }
        ids.push(entry.id.clone());
        // The same id at every request.
        let again = app.get(&format!("/archive/{language}/feed.atom")).await;
        let again = feed_rs::parser::parse(again.text().await.unwrap().as_bytes()).unwrap();
        assert_eq!(again.entries[0].id, entry.id);
    }
    assert_ne!(ids[0], ids[1], "one entry per language version");
}

#[tokio::test]
async fn readers_without_a_version_in_their_language_get_the_other_one_said_so() {
    let (app, token) = app_with_people().await;
    let id = sent(&app, &token, draft(true, false)).await;
    let base = &app.address;
    let (status, es) = page(&app, &format!("/archive/es/{id}")).await;
    assert_eq!(status, 200);
    assert!(es.contains("<html lang=\"es\">"));
    assert!(
        es.contains("<h1 lang=\"en\">News for friend in</h1>"),
        "{es}"
    );
    assert!(
        es.contains("class=\"notice warn\""),
        "the page says so: {es}"
    );
    assert!(es.contains("<iframe class=\"newsletter\" src=\"") && es.contains("lang=\"en\""));
    // Only the English version is an alternate; the Spanish page points to it as canonical.
    assert!(es.contains(&format!(
        "<link rel=\"canonical\" href=\"{base}/archive/en/{id}\">"
    )));
    assert!(es.contains(&format!("hreflang=\"en\" href=\"{base}/archive/en/{id}\"")));
    assert!(
        !es.contains(&format!("hreflang=\"es\" href=\"{base}/archive/es/{id}\"")),
        "{es}"
    );
    let res = app.get(&format!("/archive/es/{id}/content")).await;
    assert_eq!(res.headers()["content-language"], "en");
    let copy = res.text().await.unwrap();
    // Merge fields neutral, the footer in the page's language.
    assert!(copy.contains("Hi friend () from </p>"), "{copy}");
    assert!(
        copy.contains("id=\"links\" ") && copy.contains("lang=\"es\""),
        "{copy}"
    );
    let (_, list) = page(&app, "/archive/es").await;
    assert!(
        list.contains("lang=\"en\">News for friend in</a>"),
        "{list}"
    );
}

#[tokio::test]
async fn only_archived_newsletters_whose_send_started_are_public() {
    let (app, token) = app_with_people().await;
    let not_archived = sent(&app, &token, draft(false, true)).await;
    // Its messages have no link to an archive page.
    for (email, _, _, _) in PEOPLE {
        let mail = app.mails_to(email).pop().unwrap();
        assert!(!mail.text.contains("/archive/"), "{}", mail.text);
        assert!(!mail.html.contains("archive&#x2f;"), "{}", mail.html);
    }
    let draft_id = create(&app, &token, draft(true, true)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown = "01a24db3-1cb4-7731-aa5d-be93868ef9e3";
    let (_, reference) = page(&app, &format!("/archive/en/{unknown}")).await;
    for id in [not_archived.as_str(), draft_id.as_str(), unknown] {
        for path in [
            format!("/archive/en/{id}"),
            format!("/archive/es/{id}/content"),
        ] {
            let (status, body) = page(&app, &path).await;
            assert_eq!(status, 404, "{path}");
            assert!(!body.contains("<iframe"));
        }
        // Not archived, never sent, unknown: the same answer.
        assert_eq!(page(&app, &format!("/archive/en/{id}")).await.1, reference);
    }
    for path in [
        "/archive/en/not-an-id",
        "/archive/fr",
        "/archive/fr/feed.atom",
        "/archive/EN",
    ] {
        assert_eq!(page(&app, path).await.0, 404, "{path}");
    }
    for path in [
        "/archive/en?page=0",
        "/archive/en?page=x",
        "/archive/es?page=1001",
    ] {
        assert_eq!(page(&app, path).await.0, 400, "{path}");
    }
    let (status, list) = page(&app, "/archive/en?page=2").await;
    assert_eq!(status, 200);
    assert!(list.contains("class=\"notice\""), "an empty page: {list}");
    let (_, list) = page(&app, "/archive/en").await;
    assert!(
        !list.contains(&not_archived) && !list.contains(&draft_id),
        "{list}"
    );

    // Scheduled or overdue is not public yet; sending and paused are (the first messages
    // carry the link); cancelled is not.
    for (status, public) in [
        ("scheduled", false),
        ("overdue", false),
        ("sending", true),
        ("paused", true),
        ("cancelled", false),
    ] {
        app.set_newsletter_status(Some(&draft_id), status);
        app.sql(&format!(
            "UPDATE newsletters SET started_at = created_at WHERE id = '{draft_id}'"
        ));
        let got = page(&app, &format!("/archive/en/{draft_id}")).await.0;
        assert_eq!(got, if public { 200 } else { 404 }, "{status}");
    }
}

#[tokio::test]
async fn staff_publish_a_sent_newsletter_and_withdraw_it_at_once() {
    let (app, token) = app_with_people().await;
    let id = sent(&app, &token, draft(false, true)).await;
    let path = format!("/api/v1/newsletters/{id}/archived");
    let put = |archived: Value| app.send_as(&token, "PUT", &path, archived);

    assert_eq!(page(&app, &format!("/archive/en/{id}")).await.0, 404);
    let res = put(json!({"archived": true})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["archived"].clone(), body["status"].clone()),
        (json!(true), json!("sent"))
    );
    assert_eq!(page(&app, &format!("/archive/en/{id}")).await.0, 200);
    assert!(page(&app, "/archive/es").await.1.contains(&id));
    // Setting it again changes nothing and records nothing.
    assert_eq!(put(json!({"archived": true})).await.status(), 200);
    assert_eq!(
        app.count("audit_log WHERE action = 'newsletter.archive'"),
        1
    );

    let res = put(json!({"archived": false})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["archived"], false);
    for gone in [
        format!("/archive/en/{id}"),
        format!("/archive/es/{id}/content"),
    ] {
        let (status, body) = page(&app, &gone).await;
        assert_eq!(status, 404, "{gone}");
        assert!(
            body.contains(&format!("href=\"{}/archive/", app.address)),
            "a way to the list"
        );
    }
    assert!(!page(&app, "/archive/en").await.1.contains(&id));
    let feed = app.get("/archive/en/feed.atom").await.text().await.unwrap();
    assert!(feed_rs::parser::parse(feed.as_bytes())
        .unwrap()
        .entries
        .is_empty());
    assert_eq!(
        app.count("audit_log WHERE action = 'newsletter.withdraw'"),
        1
    );

    // Bad input is a problem document.
    let res = put(json!({"archived": "yes"})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app
        .client
        .put(app.url(&path))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let unknown = "/api/v1/newsletters/01a24db3-1cb4-7731-aa5d-be93868ef9e3/archived";
    let res = app
        .send_as(&token, "PUT", unknown, json!({"archived": true}))
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn archive_pages_keep_the_public_pages_security_headers() {
    let (app, token) = app_with_people().await;
    let id = sent(&app, &token, draft(true, true)).await;
    let reference = app.get("/unsubscribe/abc").await;
    let public_csp = reference.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for path in [
        "/archive/en".to_owned(),
        "/archive/es/feed.atom".to_owned(),
        format!("/archive/es/{id}"),
        format!("/archive/en/{}", "01a24db3-1cb4-7731-aa5d-be93868ef9e3"),
    ] {
        let res = app.get(&path).await;
        for name in [
            "x-content-type-options",
            "referrer-policy",
            "x-frame-options",
            "cache-control",
        ] {
            assert_eq!(
                res.headers().get(name),
                reference.headers().get(name),
                "{name} of {path}"
            );
        }
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        if path.ends_with(&id) {
            // The same policy, and a frame from Enlace itself for the copy.
            assert_eq!(csp, format!("{public_csp}; frame-src 'self'"), "{path}");
        } else {
            assert_eq!(csp, public_csp, "{path}");
        }
    }
    let copy = app.get(&format!("/archive/en/{id}/content")).await;
    let csp = copy.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox allow-popups"), "{csp}");
    assert!(!csp.contains("allow-scripts") && !csp.contains("allow-same-origin"));
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'self'"));
    assert_eq!(copy.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(copy.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn the_console_shows_where_a_newsletter_stands_and_publishes_or_withdraws_it() {
    use crate::console_client::signed_in;
    use enlace::auth::Role;
    let (app, token) = app_with_people().await;
    let id = sent(&app, &token, draft(false, true)).await;
    let show = format!("/newsletters/{id}");
    let form = format!("/newsletters/{id}/archived");

    let mut viewer = signed_in(&app, Role::Viewer).await;
    let seen = viewer.get(&show).await.body.replace("&#x2f;", "/");
    assert!(seen.contains("Not in the public archive."), "{seen}");
    assert!(!seen.contains(&form), "viewers get no button");
    let refused = viewer.post(&show, &form, &[("archived", "true")]).await;
    assert_eq!(refused.status, 403);

    let mut editor = signed_in(&app, Role::Editor).await;
    editor.language = "es";
    let before = editor.get(&show).await.body.replace("&#x2f;", "/");
    assert!(
        before.contains("Publicar en el archivo") && before.contains(&form),
        "{before}"
    );
    let published = editor.post(&show, &form, &[("archived", "true")]).await;
    assert_eq!(published.status, 303, "{}", published.body);
    assert!(published.location().ends_with("?notice=archived"));
    let after = editor
        .get(&format!("{show}?notice=archived"))
        .await
        .body
        .replace("&#x2f;", "/");
    assert!(
        after.contains("El boletín está en el archivo público."),
        "{after}"
    );
    for language in ["en", "es"] {
        let url = format!("{}/archive/{language}/{id}", app.address);
        assert!(after.contains(&format!("href=\"{url}\"")), "{after}");
    }
    assert!(after.contains("Retirar del archivo"));
    assert_eq!(page(&app, &format!("/archive/es/{id}")).await.0, 200);

    let withdrawn = editor.post(&show, &form, &[("archived", "false")]).await;
    assert!(withdrawn.location().ends_with("?notice=withdrawn"));
    assert_eq!(page(&app, &format!("/archive/es/{id}")).await.0, 404);
    assert_eq!(
        editor
            .post(&show, &form, &[("archived", "maybe")])
            .await
            .status,
        400
    );
    assert_eq!(
        app.count("audit_log WHERE action IN ('newsletter.archive', 'newsletter.withdraw')"),
        2
    );
}

#[tokio::test]
async fn under_a_sub_path_every_archive_link_carries_it() {
    let app = TestApp::builder()
        .settings(|s| {
            s.public_url.set_path("/lista/");
            s.postal_address = Some("1 Main St, Phoenix AZ".into());
        })
        .spawn()
        .await;
    let token = app.staff_token(enlace::auth::Role::Editor).await;
    app.add_subscriber("ana@example.org", "confirmed", "es", None, json!({}));
    let body =
        json!({"subject": "Hola", "html": "<p>Hola</p>", "archived": true, "filter": everyone()});
    let id = sent(&app, &token, body).await;
    let mail = app.mails_to("ana@example.org").pop().unwrap();
    let page_path = format!("/lista/archive/es/{id}");
    assert!(
        mail.text.contains(&format!("{}{page_path}", app.address)),
        "{}",
        mail.text
    );
    let (status, html) = page(&app, &page_path).await;
    assert_eq!(status, 200);
    let content = format!("{}{page_path}/content", app.address);
    assert!(html.contains(&format!("src=\"{content}\"")), "{html}");
    assert!(html.contains(&format!(
        "href=\"{}/lista/archive/es/feed.atom\"",
        app.address
    )));
    assert_eq!(page(&app, &format!("{page_path}/content")).await.0, 200);
    let (status, list) = page(&app, "/lista/archive/es").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(&format!("href=\"{}{page_path}\"", app.address)),
        "{list}"
    );
}

#[tokio::test]
async fn a_field_deleted_after_the_send_leaves_the_copy_public() {
    let (app, token) = app_with_people().await;
    let res = app
        .send_as(
            &token,
            "POST",
            "/api/v1/fields",
            json!({"key": "zone", "type": "text"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body = json!({"subject": "Zone {{ attributes.zone }}", "html": "<p>In {{ attributes.zone or 'your area' }}</p>",
                      "archived": true, "filter": everyone()});
    let id = sent(&app, &token, body).await;
    let res = app
        .send_as(&token, "DELETE", "/api/v1/fields/zone", json!(null))
        .await;
    assert_eq!(res.status(), 204);
    let (status, copy) = page(&app, &format!("/archive/en/{id}/content")).await;
    assert_eq!(status, 200, "{copy}");
    assert!(copy.contains("<p>In your area</p>"), "{copy}");
    assert!(page(&app, "/archive/en").await.1.contains(&id));
}
