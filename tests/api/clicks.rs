//! Click counting, switched on per newsletter: its links lead through Enlace's redirect, the same
//! link for every recipient, and clicks are counted per link and hour — people's apart from link
//! scanners' — and never tied to anyone. Redirects go only where the newsletter pointed.

use std::collections::BTreeSet;

use enlace::auth::Role;
use serde_json::{json, Value};

use crate::console_client::signed_in;
use crate::helpers::{Mail, TestApp};
use crate::newsletters::{create, post, POSTAL};
use crate::results::results;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

pub const HTML: &str = r#"<p>Hi {{ name or 'friend' }}, <a href="https://example.org/rally?day=sat&amp;time=10">come to the rally</a>.</p>
<p><a href="https://example.org/donate">Donate</a> · <a href="https://example.org/people/{{ attributes.city }}">your city</a>
· <a href="mailto:hola@example.org">write to us</a> · <a href="{{ preferences_url }}">preferences</a></p>"#;
pub const HTML_ES: &str = r#"<p>Hola {{ name or 'amiga' }}: <a href="https://example.org/rally?day=sat&amp;time=10">ven a la marcha</a>.</p>
<p><a href="https://example.org/es/dona">Dona</a></p>"#;

/// A newsletter counting clicks, sent to three English and two Spanish speakers; its id and
/// the mail each got.
pub async fn sent_with_clicks(app: &TestApp, token: &str) -> (String, Vec<Mail>) {
    app.add_field("city", "text", &[], false);
    let mut people = Vec::new();
    for i in 0..5 {
        let email = format!("reader{i}@example.org");
        let language = if i < 3 { "en" } else { "es" };
        app.add_subscriber(
            &email,
            "confirmed",
            language,
            Some(&format!("Reader {i}")),
            json!({"city": format!("Town{i}")}),
        );
        people.push(email);
    }
    let n = create(
        app,
        token,
        json!({"subject": "Rally", "html": HTML, "count_clicks": true,
               "variants": {"es": {"subject": "Marcha", "html": HTML_ES}},
               "filter": {"any": [{"language": "en"}, {"language": "es"}]}}),
    )
    .await;
    assert_eq!(n["count_clicks"], true, "{n}");
    let id = n["id"].as_str().unwrap().to_owned();
    let (status, _) = post(app, token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    let mails = people
        .iter()
        .map(|p| app.mails_to(p).pop().expect("a newsletter"))
        .collect();
    (id, mails)
}

/// The redirect links of a message's HTML, in order.
pub fn counted_links(app: &TestApp, mail: &Mail) -> Vec<String> {
    let prefix = format!("{}/l/", app.address);
    mail.html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with(&prefix))
        .map(|href| href.trim_start_matches(&app.address).to_owned())
        .collect()
}

/// Follows a link as a client with `agent` would; the status and where it leads.
pub async fn follow(
    app: &TestApp,
    method: &str,
    path: &str,
    agent: Option<&str>,
) -> (u16, Option<String>) {
    let mut req = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(agent) = agent {
        req = req.header("User-Agent", agent);
    }
    let res = req.send().await.unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), location)
}

/// A newsletter's results as CSV.
async fn csv(app: &TestApp, token: &str, id: &str) -> String {
    app.get_as(
        token,
        &format!("/api/v1/newsletters/{id}/results?format=csv"),
    )
    .await
    .text()
    .await
    .unwrap()
}

#[tokio::test]
async fn clicks_are_counted_per_link_with_scanners_apart_and_every_recipient_gets_the_same_links() {
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            s.results_min_count = 1;
        })
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let (id, mails) = sent_with_clicks(&app, &token).await;

    // Everyone of a language got exactly the same links; personal and mail links are as written.
    let english: BTreeSet<Vec<String>> =
        mails[..3].iter().map(|m| counted_links(&app, m)).collect();
    let spanish: BTreeSet<Vec<String>> =
        mails[3..].iter().map(|m| counted_links(&app, m)).collect();
    assert_eq!(english.len(), 1, "{english:?}");
    assert_eq!(spanish.len(), 1, "{spanish:?}");
    let en = english.into_iter().next().unwrap();
    let es = spanish.into_iter().next().unwrap();
    assert_eq!(en.len(), 2, "the rally and donate links: {en:?}");
    assert_eq!(es.len(), 2, "{es:?}");
    assert_eq!(
        en[0], es[0],
        "the same address is the same counted link in both languages"
    );
    for (i, mail) in mails.iter().enumerate() {
        assert!(
            i >= 3
                || mail
                    .html
                    .contains(&format!("https://example.org/people/Town{i}")),
            "{}",
            mail.html
        );
        assert!(!counted_links(&app, mail)
            .iter()
            .any(|l| l.contains(&format!("reader{i}"))));
        // The text part shows where each link really goes.
        assert!(
            mail.text
                .contains("https://example.org/rally?day=sat&time=10"),
            "{}",
            mail.text
        );
        assert!(!mail.text.contains("/l/"), "{}", mail.text);
    }
    assert!(mails[0].html.contains("mailto:hola@example.org"));
    assert!(
        mails[0].html.contains("&#x2f;preferences&#x2f;"),
        "{}",
        mails[0].html
    );

    // Each reader clicks the rally link in their own browser; two read it twice.
    for (i, link) in [&en[0], &en[0], &en[0], &es[0], &es[0]].iter().enumerate() {
        let agent = format!("{BROWSER} reader{i}");
        let (status, to) = follow(&app, "GET", link, Some(&agent)).await;
        assert_eq!(status, 302);
        assert_eq!(
            to.as_deref(),
            Some("https://example.org/rally?day=sat&time=10")
        );
        if i < 2 {
            follow(&app, "GET", link, Some(&agent)).await;
        }
    }
    follow(&app, "GET", &en[1], Some(&format!("{BROWSER} reader1"))).await;
    // Scanners: a HEAD request, an HTTP library, no user agent at all, and a mail gateway
    // opening every link of the message at once (with a browser's user agent).
    assert_eq!(follow(&app, "HEAD", &en[1], Some(BROWSER)).await.0, 302);
    follow(&app, "GET", &en[1], Some("python-requests/2.32")).await;
    follow(&app, "GET", &en[1], None).await;
    let gateway = format!("{BROWSER} gateway");
    for link in [&en[0], &en[1], &es[1]] {
        let (status, _) = follow(&app, "GET", link, Some(&gateway)).await;
        assert_eq!(status, 302);
    }

    // Nothing is written per click: the counts reach the database in a batch.
    let before = results(&app, &token, &id).await;
    assert_eq!(before["clicks"]["clicks"], 0, "{before}");
    app.flush_clicks().await;
    let r = results(&app, &token, &id).await;
    let clicks = &r["clicks"];
    assert_eq!(clicks["clicks"], 8, "{r}");
    assert_eq!(clicks["scanner_clicks"], 6, "{r}");
    let links = clicks["links"].as_array().unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(links[0]["url"], "https://example.org/rally?day=sat&time=10");
    assert_eq!(links[0]["clicks"], 7);
    assert_eq!(links[0]["scanner_clicks"], 1);
    assert_eq!(links[1]["url"], "https://example.org/donate");
    assert_eq!(links[1]["clicks"], 1);
    assert_eq!(links[1]["scanner_clicks"], 4);
    assert_eq!(links[2]["url"], "https://example.org/es/dona");
    assert_eq!(links[2]["clicks"], 0);
    assert_eq!(links[2]["scanner_clicks"], 1);
    assert_eq!(clicks["hours"].as_array().unwrap().len(), 1);
    assert_eq!(clicks["hours"][0]["clicks"], 8);

    // The CSV and the console page give the same counts.
    let csv = csv(&app, &token, &id).await;
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",clicks,scanner_clicks"), "{csv}");
    assert!(
        csv.contains("\nlink,https://example.org/rally?day=sat&time=10,"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("link,https://example.org/donate,") && l.ends_with(",1,4")),
        "{csv}"
    );
    assert!(csv.lines().nth(1).unwrap().ends_with(",8,6"), "{csv}");
    let mut console = signed_in(&app, Role::Viewer).await;
    let page = console
        .get(&format!("/newsletters/{id}/results"))
        .await
        .body;
    assert!(page.contains("Clicks per link"), "{page}");
    assert!(page.contains("example.org&#x2f;donate"), "{page}");
}

#[tokio::test]
async fn small_click_counts_are_shown_only_as_fewer_than_the_threshold() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let (id, mails) = sent_with_clicks(&app, &token).await;
    let links = counted_links(&app, &mails[0]);
    for i in 0..5 {
        follow(&app, "GET", &links[0], Some(&format!("{BROWSER} {i}"))).await;
    }
    follow(&app, "GET", &links[1], Some(BROWSER)).await;
    app.flush_clicks().await;
    let r = results(&app, &token, &id).await;
    assert_eq!(r["threshold"], 5);
    assert_eq!(r["clicks"]["clicks"], 6, "{r}");
    assert_eq!(r["clicks"]["links"][0]["clicks"], 5);
    assert_eq!(
        r["clicks"]["links"][1]["clicks"],
        Value::Null,
        "one click is fewer than 5"
    );
    assert_eq!(r["clicks"]["scanner_clicks"], Value::Null);
    let csv = csv(&app, &token, &id).await;
    assert!(
        csv.lines()
            .any(|l| l == "link,https://example.org/donate,,,,,,,,,,,,fewer than 5,fewer than 5"),
        "{csv}"
    );
    let mut console = signed_in(&app, Role::Viewer).await;
    let page = console
        .get(&format!("/newsletters/{id}/results"))
        .await
        .body;
    assert!(page.contains("fewer than 5"), "{page}");
}

#[tokio::test]
async fn a_link_leads_only_where_its_newsletter_pointed() {
    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let (id, mails) = sent_with_clicks(&app, &token).await;
    let link = counted_links(&app, &mails[0]).remove(0);
    let (place, tag) = link.rsplit('/').next().unwrap().split_once('.').unwrap();
    assert_eq!(place, "0");
    let other = create(
        &app,
        &token,
        json!({"subject": "Other", "html": "<p>x</p>"}),
    )
    .await;
    let other = other["id"].as_str().unwrap();
    let mut flipped = tag.to_owned().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for forged in [
        format!("/l/{id}/1.{tag}"),
        format!("/l/{id}/0.{flipped}"),
        format!("/l/{other}/0.{tag}"),
        format!("/l/{id}/0"),
        format!("/l/{id}/0.{tag}x"),
        format!("/l/not-a-newsletter/0.{tag}"),
        format!("/l/{}/0.{tag}", uuid::Uuid::new_v4()),
        format!("/l/{id}/99999.{tag}"),
        format!("/l/{id}/-1.{tag}"),
    ] {
        let res = app
            .client
            .get(app.url(&forged))
            .header("User-Agent", BROWSER)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{forged}");
        assert!(res.headers().get("location").is_none(), "{forged}");
        let body = res.text().await.unwrap();
        assert!(body.contains("<html"), "a page for people: {body}");
    }
    let (status, to) = follow(&app, "GET", &link, Some(BROWSER)).await;
    assert_eq!(
        (status, to.as_deref()),
        (302, Some("https://example.org/rally?day=sat&time=10"))
    );
    // Deleting the newsletter ends its links (and drops counts not yet written).
    let res = app
        .send_as(
            &app.staff_token(Role::Admin).await,
            "DELETE",
            &format!("/api/v1/newsletters/{id}"),
            json!({}),
        )
        .await;
    if res.status() == 204 {
        app.flush_clicks().await;
        let (status, _) = follow(&app, "GET", &link, Some(BROWSER)).await;
        // Kept in memory for a started newsletter: it still leads where it pointed, or is gone.
        assert!(status == 302 || status == 404, "{status}");
    }
}

#[tokio::test]
async fn without_click_counting_links_are_sent_as_written_and_a_test_copy_counts_nothing() {
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            s.results_min_count = 1;
        })
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    app.add_field("city", "text", &[], false);
    app.add_subscriber("plain@example.org", "confirmed", "en", None, json!({}));
    let plain = create(
        &app,
        &token,
        json!({"subject": "Plain", "html": HTML, "filter": {"language": "en"}}),
    )
    .await;
    assert_eq!(plain["count_clicks"], false);
    let plain_id = plain["id"].as_str().unwrap();
    post(
        &app,
        &token,
        &format!("/api/v1/newsletters/{plain_id}/send"),
    )
    .await;
    app.run_sends().await;
    let mail = app.mails_to("plain@example.org").pop().unwrap();
    assert!(counted_links(&app, &mail).is_empty(), "{}", mail.html);
    assert!(mail.html.contains("href=\"https://example.org/donate\""));
    let r = results(&app, &token, plain_id).await;
    assert_eq!(r["clicks"], Value::Null, "{r}");

    // A draft counting clicks: its test copy has the links the send will have; they lead where
    // they should and count nothing.
    let draft = create(
        &app,
        &token,
        json!({"subject": "Draft", "html": HTML, "count_clicks": true}),
    )
    .await;
    let draft_id = draft["id"].as_str().unwrap();
    let res = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{draft_id}/test"),
            json!({"to": ["proof@example.org"]}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    app.run_jobs().await;
    let proof = app
        .mails_to("proof@example.org")
        .pop()
        .expect("a test copy");
    let links = counted_links(&app, &proof);
    assert_eq!(links.len(), 2, "{}", proof.html);
    let (status, to) = follow(&app, "GET", &links[1], Some(BROWSER)).await;
    assert_eq!(
        (status, to.as_deref()),
        (302, Some("https://example.org/donate"))
    );
    app.flush_clicks().await;
    let r = results(&app, &token, draft_id).await;
    assert_eq!(r["clicks"]["clicks"], 0, "{r}");
    assert_eq!(r["clicks"]["scanner_clicks"], 0, "{r}");
    // A draft changed after its test copy went out: the copy's links no longer lead anywhere
    // (the address at that place changed), rather than somewhere the copy did not point.
    let res = app
        .send_as(
            &token,
            "PATCH",
            &format!("/api/v1/newsletters/{draft_id}"),
            json!({"html": "<p><a href=\"https://example.org/rally?day=sat&amp;time=10\">R</a> <a href=\"https://example.org/elsewhere\">E</a></p>"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(follow(&app, "GET", &links[1], Some(BROWSER)).await.0, 404);
    assert_eq!(follow(&app, "GET", &links[0], Some(BROWSER)).await.0, 302);
}

#[tokio::test]
async fn editors_switch_click_counting_on_and_off_in_the_console() {
    let app = TestApp::builder().spawn().await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let form = editor.get("/newsletters/new").await.body;
    assert!(
        form.contains(r#"name="count_clicks" value="on" aria-describedby="h-count_clicks">"#),
        "unticked unless chosen: {form}"
    );
    let draft = [
        ("subject", "Rally"),
        (
            "html",
            "<p><a href=\"https://example.org/rally\">Rally</a></p>",
        ),
        ("audience", "everyone"),
        ("count_clicks", "on"),
    ];
    let created = editor
        .post("/newsletters/new", "/newsletters", &draft)
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = created
        .location()
        .trim_start_matches("/admin/newsletters/")
        .split(['?', '/'])
        .next()
        .unwrap()
        .to_owned();
    let token = app.staff_token(Role::Viewer).await;
    let path = format!("/api/v1/newsletters/{id}");
    assert_eq!(app.get_json_as(&token, &path).await["count_clicks"], true);
    let form = editor.get(&format!("/newsletters/{id}/edit")).await.body;
    assert!(
        form.contains(r#"name="count_clicks" value="on" checked"#),
        "{form}"
    );
    // Saved without the box ticked: off again.
    let version = crate::console_client::field_value(&form, "version").unwrap();
    let changed = editor
        .post(
            &format!("/newsletters/{id}/edit"),
            &format!("/newsletters/{id}/edit"),
            &[
                ("subject", "Rally"),
                (
                    "html",
                    "<p><a href=\"https://example.org/rally\">Rally</a></p>",
                ),
                ("audience", "everyone"),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(app.get_json_as(&token, &path).await["count_clicks"], false);
}
