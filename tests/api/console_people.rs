//! The console's People area: searching and paging the list, a person's page, editing,
//! unsubscribing, adding with consent, erasing and the access export, through HTTP as staff
//! use them, in English and Spanish, with each role.

use enlace::auth::Role;

use crate::console_client::{signed_in, Page};
use crate::helpers::{spawn_app, Person, TestApp};

fn people_linked(page: &Page) -> usize {
    page.body.matches("<th scope=\"row\"><a href=").count()
}

/// The `href` of the next-page link, below the console's path.
fn next_link(page: &Page) -> Option<String> {
    let at = page.body.find("rel=\"next\"")?;
    let start = page.body[..at].rfind("href=\"")? + "href=\"".len();
    let end = start + page.body[start..].find('"')?;
    Some(
        page.body[start..end]
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
            .trim_start_matches("/admin")
            .to_owned(),
    )
}

fn seed(app: &TestApp) -> Vec<String> {
    app.add_interest("garden", true);
    app.add_interest("housing", true);
    let mut people: Vec<Person> = (0..120)
        .map(|i| {
            let mut p = Person::new(format!("person{i:03}@example.org"));
            p.name = Some(format!("Person {i:03}"));
            p.language = if i % 2 == 0 { "en" } else { "es" };
            p.interests = if i % 3 == 0 {
                vec!["garden".into()]
            } else {
                vec![]
            };
            p
        })
        .collect();
    let mut rosa = Person::new("rosa.mendez@example.net");
    rosa.name = Some("Rosa Méndez".into());
    rosa.status = "unsubscribed";
    rosa.language = "es";
    rosa.interests = vec!["housing".into()];
    rosa.attributes = serde_json::json!({"city": "Tucson", "age": 41});
    people.push(rosa);
    let mut angela = Person::new("angela@example.net");
    angela.name = Some("Ángela Núñez".into());
    angela.created = crate::helpers::day("2025-06-01");
    people.push(angela);
    app.seed_people(&people)
}

#[tokio::test]
async fn staff_search_the_list_and_page_through_it() {
    let app = spawn_app().await;
    let ids = seed(&app);
    let mut viewer = signed_in(&app, Role::Viewer).await;

    // Everyone, newest first, fifty at a time, each person exactly once.
    let first = viewer.get("/people").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("aria-current=\"page\">People</a>"));
    assert_eq!(people_linked(&first), 50);
    assert!(!first.body.contains("Add a person"), "viewers don't add");
    let mut seen = std::collections::HashSet::new();
    let mut page = first;
    let mut pages = 1;
    loop {
        for id in &ids {
            if page.body.contains(id.as_str()) {
                assert!(seen.insert(id.clone()), "{id} shown twice");
            }
        }
        let Some(next) = next_link(&page) else { break };
        page = viewer.get(&next).await;
        assert_eq!(page.status, 200);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), ids.len());

    // By part of the address, by name (any case), status, interest, language and a field.
    let found = viewer.get("/people?email=ROSA.MEN").await;
    assert_eq!(people_linked(&found), 1);
    assert!(found.body.contains("rosa.mendez@example.net"));
    let found = viewer.get("/people?name=rosa%20m%C3%A9").await;
    assert_eq!(people_linked(&found), 1, "{}", found.body);
    let found = viewer.get("/people?name=%C3%A1ngela").await;
    assert_eq!(people_linked(&found), 1, "{}", found.body);
    let found = viewer.get("/people?name=N%C3%9A%C3%91EZ").await;
    assert_eq!(people_linked(&found), 1, "{}", found.body);
    let found = viewer.get("/people?status=unsubscribed").await;
    assert_eq!(people_linked(&found), 1);
    let found = viewer.get("/people?interest=housing").await;
    assert_eq!(people_linked(&found), 1);
    let found = viewer.get("/people?field=city&value=Tucson").await;
    assert_eq!(people_linked(&found), 1);
    let found = viewer.get("/people?field=age&value=41").await;
    assert_eq!(people_linked(&found), 1);
    let found = viewer.get("/people?field=city&value=Phoenix").await;
    assert_eq!(people_linked(&found), 0);
    assert!(found.body.contains("Nobody matches this search."));
    // Filters combine, and the next page keeps them.
    let garden = viewer.get("/people?interest=garden&language=en").await;
    assert_eq!(people_linked(&garden), 20);
    assert!(next_link(&garden).is_none());
    let garden = viewer.get("/people?interest=garden").await;
    assert_eq!(people_linked(&garden), 40);
    let everyone = viewer.get("/people?language=es").await;
    assert_eq!(people_linked(&everyone), 50);
    let rest = viewer.get(&next_link(&everyone).unwrap()).await;
    assert_eq!(people_linked(&rest), 11);
    assert!(
        rest.body.contains("language=es"),
        "the next page keeps the filter"
    );

    // A search that can't be run says why, in the member's language.
    let bad = viewer.get("/people?status=gone&field=city").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("must be one of the statuses in the list"));
    assert!(bad
        .body
        .contains("give both a field and the value to look for"));
    assert!(bad.body.contains("aria-invalid=\"true\""));
    viewer.language = "es";
    let mut es = signed_in(&app, Role::Editor).await;
    es.language = "es";
    let bad = es.get("/people?status=gone").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("debe ser uno de los estados de la lista"));
    let list = es.get("/people").await;
    assert!(list.body.contains("Agregar a una persona"));
}

#[tokio::test]
async fn a_persons_page_shows_profile_consent_messages_and_audit_trail() {
    let app = spawn_app().await;
    app.add_interest("garden", true);
    app.add_field("age", "number", &[], false);
    let mut editor = signed_in(&app, Role::Editor).await;
    // The form to add someone asks for their interests and fields, as the form to change them
    // does (which also says that a blank field removes its value).
    let form = editor.get("/people/new").await;
    assert!(form.body.contains("name=\"interests\" value=\"garden\""));
    assert!(form.body.contains("name=\"field.age\""));
    let added = editor
        .post(
            "/people/new",
            "/people/new",
            &[
                ("email", "lucia@example.org"),
                ("name", "Lucía Ortega"),
                ("language", "es"),
                ("interests", "garden"),
                ("field.age", "33"),
                ("mode", "recorded"),
                ("consent_source", "Sign-up sheet, March 3 meeting"),
                ("consent_note", "Yes, send me the garden newsletter"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let id = app.conn_subscriber_id("lucia@example.org");
    assert_eq!(added.location(), format!("/admin/people/{id}?notice=added"));
    let edit = editor.get(&format!("/people/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(edit
        .body
        .contains("name=\"interests\" value=\"garden\" checked"));
    assert!(edit.body.contains("value=\"33\""));
    assert_eq!(
        app.status_of("lucia@example.org").as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        app.count(&format!(
            "audit_log WHERE action = 'subscriber.create' AND object_id = '{id}'"
        )),
        1
    );

    let mut viewer = signed_in(&app, Role::Viewer).await;
    let page = viewer.get(&format!("/people/{id}?notice=added")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "lucia@example.org",
        "Lucía Ortega",
        "garden",
        "Consent recorded by staff",
        "Sign-up sheet, March 3 meeting",
        "Yes, send me the garden newsletter",
        "subscriber.create",
        "editor@console.example.org",
        "with the consent you recorded",
    ] {
        assert!(page.body.contains(shown), "{shown}");
    }
    assert!(!page.body.contains(">Edit</a>"), "viewers don't edit");
    assert!(
        !page.body.contains("Download everything"),
        "viewers don't export"
    );
    // Looking is not a change: nothing more in the audit log.
    assert_eq!(app.count("audit_log WHERE action LIKE 'subscriber.%'"), 1);
    let missing = viewer
        .get("/people/0190a0a0-0000-7000-8000-000000000000")
        .await;
    assert_eq!(missing.status, 404);
    let junk = viewer.get("/people/not-an-id").await;
    assert_eq!(junk.status, 404);

    viewer.language = "es";
    let mut es = signed_in(&app, Role::Admin).await;
    es.language = "es";
    let page = es.get(&format!("/people/{id}")).await;
    assert!(page.body.contains("Historial de consentimiento"));
    assert!(page
        .body
        .contains("Consentimiento registrado por el equipo"));
}

#[tokio::test]
async fn adding_needs_the_evidence_or_sends_a_confirmation() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;

    let refused = editor
        .post(
            "/people/new",
            "/people/new",
            &[
                ("email", "sam@example.org"),
                ("mode", "recorded"),
                ("consent_source", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("say where they agreed"));
    assert!(refused.body.contains("describe what they agreed to"));
    assert!(
        refused.body.contains("value=\"sam@example.org\""),
        "what was typed stays"
    );
    assert_eq!(app.count("subscribers"), 0);
    editor.language = "es";
    let refused = editor
        .post(
            "/people/new",
            "/people/new",
            &[("email", "nope"), ("mode", "recorded")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("no es un correo electrónico válido"));
    assert!(refused.body.contains("di dónde aceptó"));
    assert_eq!(app.count("subscribers"), 0);

    let sent = editor
        .post(
            "/people/new",
            "/people/new",
            &[
                ("email", "sam@example.org"),
                ("mode", "confirmation"),
                ("language", "es"),
            ],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(sent.location().ends_with("?notice=confirmation_sent"));
    assert_eq!(app.status_of("sam@example.org").as_deref(), Some("pending"));
    assert_eq!(app.count("jobs"), 1);

    // A blocked address can't be added; the page says why, in the member's language.
    app.suppress("blocked@example.org", "manual", "2026-01-01");
    let blocked = [
        ("email", "blocked@example.org"),
        ("mode", "recorded"),
        ("consent_source", "Phone call"),
        ("consent_note", "Yes, add me"),
    ];
    let refused = editor.post("/people/new", "/people/new", &blocked).await;
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("Este correo está bloqueado"));
    editor.language = "en";
    let refused = editor.post("/people/new", "/people/new", &blocked).await;
    assert!(refused.body.contains("This address is blocked"));
    assert_eq!(app.count("subscribers"), 1);

    let mut viewer = signed_in(&app, Role::Viewer).await;
    assert_eq!(viewer.get("/people/new").await.status, 403);
    let forbidden = viewer
        .post(
            "/people",
            "/people/new",
            &[("email", "viewer@example.org"), ("mode", "confirmation")],
        )
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(app.count("subscribers"), 1);
}

#[tokio::test]
async fn editors_edit_and_unsubscribe_and_viewers_may_not() {
    let app = spawn_app().await;
    app.add_interest("garden", true);
    app.add_field("city", "text", &[], true);
    let id = app.add_subscriber(
        "marta@example.org",
        "confirmed",
        "en",
        Some("Marta"),
        serde_json::json!({"city": "Tucson"}),
    );
    let mut editor = signed_in(&app, Role::Editor).await;
    let form = editor.get(&format!("/people/{id}/edit")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("value=\"Tucson\""));

    let edit = format!("/people/{id}/edit");
    let saved = editor
        .post(
            &edit,
            &edit,
            &[
                ("name", "Marta Ruiz"),
                ("language", "es"),
                ("interests", "garden"),
                ("field.city", "Phoenix"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        app.query_one(&format!(
            "SELECT name AS v FROM subscribers WHERE id = '{id}'"
        )),
        "Marta Ruiz"
    );
    assert_eq!(
        app.query_one(&format!(
            "SELECT language AS v FROM subscribers WHERE id = '{id}'"
        )),
        "es"
    );
    assert!(app
        .query_one(&format!(
            "SELECT attributes AS v FROM subscribers WHERE id = '{id}'"
        ))
        .contains("Phoenix"));
    assert_eq!(app.count("subscriber_interests"), 1);
    assert_eq!(
        app.count(&format!(
            "audit_log WHERE action = 'subscriber.update' AND object_id = '{id}'"
        )),
        1
    );

    let long = "x".repeat(101);
    let refused = editor
        .post(&edit, &edit, &[("name", &long), ("language", "en")])
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("is longer than 100 characters"));
    editor.language = "es";
    let refused = editor
        .post(&edit, &edit, &[("name", &long), ("language", "en")])
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("tiene más de 100 caracteres"));
    assert_eq!(
        app.query_one(&format!(
            "SELECT name AS v FROM subscribers WHERE id = '{id}'"
        )),
        "Marta Ruiz",
        "nothing changed"
    );

    let mut viewer = signed_in(&app, Role::Viewer).await;
    let person = format!("/people/{id}");
    assert_eq!(viewer.get(&edit).await.status, 403);
    let unsubscribe = format!("/people/{id}/unsubscribe");
    assert_eq!(viewer.post(&person, &unsubscribe, &[]).await.status, 403);
    assert_eq!(
        app.status_of("marta@example.org").as_deref(),
        Some("confirmed")
    );

    let done = editor.post(&person, &unsubscribe, &[]).await;
    assert_eq!(done.status, 303);
    assert!(done.location().ends_with("?notice=unsubscribed"));
    assert_eq!(
        app.status_of("marta@example.org").as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        app.count(&format!(
            "consent_events WHERE action = 'unsubscribe' AND subscriber_id = '{id}'"
        )),
        1
    );
    assert_eq!(
        app.count(&format!(
            "audit_log WHERE action = 'subscriber.unsubscribe' AND object_id = '{id}'"
        )),
        1
    );
    let page = editor
        .get(&format!("/people/{id}?notice=unsubscribed"))
        .await;
    assert!(page.body.contains("ya no está suscrita"), "{}", page.body);
    assert!(
        !page.body.contains("Cancelar su suscripción a todo"),
        "no button once unsubscribed"
    );
}

#[tokio::test]
async fn erasing_takes_the_typed_address_and_the_access_export_downloads() {
    let app = spawn_app().await;
    let id = app.add_subscriber(
        "borrar@example.org",
        "confirmed",
        "es",
        None,
        serde_json::json!({}),
    );
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let data = format!("/people/{id}/data");
    assert_eq!(viewer.get(&data).await.status, 403);
    let erase = format!("/people/{id}/erase");
    assert_eq!(viewer.get(&erase).await.status, 403);

    let mut editor = signed_in(&app, Role::Editor).await;
    let download = editor.get(&data).await;
    assert_eq!(download.status, 200);
    assert!(download.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let json: serde_json::Value = serde_json::from_str(&download.body).unwrap();
    assert_eq!(json["subscriber"]["email"], "borrar@example.org");
    assert_eq!(
        app.count(&format!(
            "audit_log WHERE action = 'subscriber.data_access' AND object_id = '{id}'"
        )),
        1
    );

    let page = editor.get(&erase).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("A one-way hash of their address"));
    let wrong = editor
        .post(&erase, &erase, &[("confirm", "other@example.org")])
        .await;
    assert_eq!(wrong.status, 422);
    assert!(
        wrong
            .body
            .contains("type the person&#x27;s address exactly")
            || wrong.body.contains("type the person's address exactly")
    );
    editor.language = "es";
    let wrong = editor.post(&erase, &erase, &[("confirm", "")]).await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("no coincide"));
    assert_eq!(app.count("subscribers"), 1, "nothing erased");

    let gone = editor
        .post(&erase, &erase, &[("confirm", "Borrar@Example.org")])
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    assert_eq!(gone.location(), "/admin/people?notice=erased");
    assert_eq!(app.count("subscribers"), 0);
    assert_eq!(app.count("suppressions WHERE reason = 'erased'"), 1);
    assert_eq!(
        app.count(&format!(
            "audit_log WHERE action = 'subscriber.erase' AND object_id = '{id}'"
        )),
        1
    );
    let list = editor.get("/people?notice=erased").await;
    assert!(list.body.contains("Solo queda un hash"));
    assert_eq!(editor.get(&format!("/people/{id}")).await.status, 404);
}

/// Every address a search lists, following its next-page links to the end.
async fn every_page(browser: &mut crate::console_client::Browser<'_>, first: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut page = browser.get(first).await;
    loop {
        assert_eq!(page.status, 200, "{}", page.body);
        let mut rest = page.body.as_str();
        while let Some(at) = rest.find("<th scope=\"row\"><a href=") {
            rest = &rest[at..];
            let start = rest.find('>').unwrap() + 1;
            let start = start + rest[start..].find('>').unwrap() + 1;
            let end = start + rest[start..].find('<').unwrap();
            found.push(rest[start..end].to_owned());
            rest = &rest[end..];
        }
        let Some(next) = next_link(&page) else { break };
        page = browser.get(&next).await;
    }
    found
}

#[tokio::test]
async fn an_address_is_found_by_its_start_in_full_or_by_its_domain() {
    let app = spawn_app().await;
    seed(&app);
    let mut viewer = signed_in(&app, Role::Viewer).await;

    let found = every_page(&mut viewer, "/people?email=Rosa.Men").await;
    assert_eq!(found, ["rosa.mendez@example.net"]);
    let found = every_page(&mut viewer, "/people?email=rosa.mendez%40example.net").await;
    assert_eq!(found, ["rosa.mendez@example.net"]);
    let found = every_page(&mut viewer, "/people?email=person00").await;
    assert_eq!(found.len(), 10, "person000 to person009: {found:?}");
    assert!(found.iter().all(|e| e.starts_with("person00")));
    // Everyone at a domain, newest first.
    let mut found = every_page(&mut viewer, "/people?email=%40EXAMPLE.NET").await;
    found.sort();
    assert_eq!(found, ["angela@example.net", "rosa.mendez@example.net"]);
    // The middle of an address is not looked in (the search help says so), and LIKE's
    // wildcards are only characters.
    let none = viewer.get("/people?email=mendez").await;
    assert_eq!(people_linked(&none), 0);
    assert!(none
        .body
        .contains("The start of the address, or all of it."));
    assert_eq!(
        people_linked(&viewer.get("/people?email=person_0").await),
        0
    );
    assert_eq!(people_linked(&viewer.get("/people?email=%25").await), 0);
}

#[tokio::test]
async fn searches_over_a_long_list_find_rare_and_common_matches_exactly_newest_first() {
    let app = spawn_app().await;
    app.add_interest("garden", true);
    app.add_interest("housing", true);
    // More people than a search first looks through, and more holders of `garden` than make an
    // interest common; three named Xóchitl far apart on the list (oldest, middle, newest).
    let rare = [3, 2600, 5190];
    let people: Vec<Person> = (0..5200)
        .map(|i| {
            let mut p = Person::new(format!("person{i:04}@example.org"));
            // Ids in the order of i, so the newest is the last.
            p.id = Some(format!("01900000-0000-7000-8000-{i:012x}"));
            p.name = Some(if rare.contains(&i) {
                format!("Xóchitl Cuauhtémoc {i}")
            } else {
                format!("Person {i}")
            });
            p.language = if i % 2 == 1 { "es" } else { "en" };
            p.status = if i % 45 == 7 {
                "unsubscribed"
            } else {
                "confirmed"
            };
            p.interests = vec![if i % 100 == 0 { "housing" } else { "garden" }.into()];
            if rare.contains(&i) {
                p.attributes = serde_json::json!({"city": "Ajo"});
            }
            p
        })
        .collect();
    app.seed_people(&people);
    let newest_first = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..5200)
            .rev()
            .filter(|&i| keep(i))
            .map(|i| format!("person{i:04}@example.org"))
            .collect()
    };
    let mut viewer = signed_in(&app, Role::Viewer).await;

    let rare_ones = newest_first(&|i| rare.contains(&i));
    assert_eq!(
        every_page(&mut viewer, "/people?name=x%C3%B3chitl").await,
        rare_ones
    );
    assert_eq!(
        every_page(&mut viewer, "/people?field=city&value=Ajo").await,
        rare_ones
    );
    // A field's value is matched exactly, capitals included, on both databases.
    assert!(every_page(&mut viewer, "/people?field=city&value=ajo")
        .await
        .is_empty());
    assert_eq!(
        every_page(&mut viewer, "/people?status=unsubscribed").await,
        newest_first(&|i| i % 45 == 7)
    );
    assert_eq!(
        every_page(&mut viewer, "/people?interest=housing").await,
        newest_first(&|i| i % 100 == 0)
    );
    assert_eq!(
        every_page(
            &mut viewer,
            "/people?interest=garden&language=es&email=person51"
        )
        .await,
        newest_first(&|i| i >= 5100 && i % 2 == 1 && i % 100 != 0)
    );
    let garden_es = every_page(&mut viewer, "/people?interest=garden&language=es").await;
    assert_eq!(garden_es, newest_first(&|i| i % 2 == 1 && i % 100 != 0));
}

#[tokio::test]
async fn the_dashboard_counts_people_by_status_exactly_as_the_list_changes() {
    let app = spawn_app().await;
    seed(&app);
    let shown = |body: &str, label: &str| -> i64 {
        let at = body
            .find(&format!("<dt>{label}</dt><dd>"))
            .unwrap_or_else(|| panic!("{label} on the dashboard"));
        let rest = &body[at + label.len() + "<dt></dt><dd>".len()..];
        rest[..rest.find('<').unwrap()].parse().unwrap()
    };
    let check = |body: &str| {
        for (status, label) in [
            ("pending", "Waiting for confirmation"),
            ("confirmed", "Subscribed"),
            ("unsubscribed", "Unsubscribed"),
            ("bounced", "Bounced"),
            ("complained", "Complained"),
        ] {
            assert_eq!(
                shown(body, label),
                app.count(&format!("subscribers WHERE status = '{status}'")),
                "{status}"
            );
        }
        assert_eq!(shown(body, "Everyone"), app.count("subscribers"));
    };
    let mut editor = signed_in(&app, Role::Editor).await;
    let before = editor.get("/").await;
    assert_eq!(before.status, 200);
    check(&before.body);
    assert_eq!(shown(&before.body, "Everyone"), 122);
    assert_eq!(shown(&before.body, "Unsubscribed"), 1);

    // Someone unsubscribed, someone erased: the dashboard follows at once.
    let list = editor.get("/people?email=person000").await;
    let row = "<th scope=\"row\"><a href=\"";
    let at = list.body.find(row).expect("person000 on the list") + row.len();
    let href = &list.body[at..at + list.body[at..].find('"').unwrap()];
    let id = href[href.len() - 36..].to_owned();
    let person = format!("/people/{id}");
    let done = editor
        .post(&person, &format!("/people/{id}/unsubscribe"), &[])
        .await;
    assert_eq!(done.status, 303);
    let erase = format!(
        "/people/{}/erase",
        &app.seed_people(&[Person::new("gone@example.org")])[0]
    );
    let erased = editor
        .post(&erase, &erase, &[("confirm", "gone@example.org")])
        .await;
    assert_eq!(erased.status, 303, "{}", erased.body);
    let after = editor.get("/").await;
    check(&after.body);
    assert_eq!(shown(&after.body, "Everyone"), 122);
    assert_eq!(shown(&after.body, "Unsubscribed"), 2);
}
