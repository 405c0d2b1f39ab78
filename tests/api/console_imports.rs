//! The console's imports: uploading a CSV, choosing what its columns hold and what the people
//! agreed to, following the import and reading (or downloading) its report, in both languages;
//! refused uploads and forms change nothing.

use enlace::auth::Role;

use crate::console_client::{field_value, signed_in, Browser, Page, CONSOLE};
use crate::helpers::{spawn_app, TestApp};

const BOUNDARY: &str = "----enlaceTestBoundary7MA4YWxk";

/// Sends the upload form as a browser does (multipart), with the CSRF token `csrf`.
async fn upload_raw(app: &TestApp, browser: &Browser<'_>, csrf: Option<&str>, file: &[u8]) -> Page {
    let mut body = Vec::new();
    if let Some(csrf) = csrf {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"people.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let cookies = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let res = app
        .client
        .post(app.url(&format!("{CONSOLE}/imports/upload")))
        .header("cookie", cookies)
        .header("accept-language", browser.language)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Page {
        status,
        headers,
        body: res.text().await.unwrap(),
    }
}

/// Uploads `file` from the imports page; returns the answer.
async fn upload(app: &TestApp, browser: &mut Browser<'_>, file: &str) -> Page {
    let csrf = browser.get("/imports").await.csrf();
    upload_raw(app, browser, Some(&csrf), file.as_bytes()).await
}

/// The console path (`/imports/new/…`) an answer sends the browser to.
fn console_path(page: &Page) -> String {
    assert_eq!(page.status, 303, "{}", page.body);
    page.location()
        .strip_prefix(CONSOLE)
        .expect("a console path")
        .to_owned()
}

/// The option selected in the select named `name`.
fn selected(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).expect("the select");
    let end = at + html[at..].find("</select>").unwrap();
    let select = &html[at..end];
    let option = select.find(" selected>").expect("a selected option");
    let start = select[..option].rfind("value=\"").unwrap() + "value=\"".len();
    let stop = start + select[start..].find('"').unwrap();
    select[start..stop].to_owned()
}

const PEOPLE: &str = "Correo,Nombre,city,Notas\r\n\
    ana@example.org,Ana Ruiz,Tucson,met at the rally\r\n\
    beto@example.org,Beto,Phoenix,\r\n\
    ana@example.org,Ana again,Tucson,\r\n";

#[tokio::test]
async fn editors_upload_a_csv_map_its_columns_and_import_people_who_consented() {
    let app = spawn_app().await;
    app.add_field("city", "text", &[], false);
    let mut editor = signed_in(&app, Role::Editor).await;

    let list = editor.get("/imports").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("enctype=\"multipart/form-data\""));
    assert!(list.body.contains("<label for=\"f-file\">CSV file</label>"));
    assert!(list.body.contains("Nothing has been imported yet."));

    // The columns are detected, and named fields (in Spanish too) already chosen.
    let answer = upload(&app, &mut editor, PEOPLE).await;
    let mapping = console_path(&answer);
    assert!(mapping.starts_with("/imports/new/"), "{mapping}");
    let form = editor.get(&mapping).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("<h1>Check the columns</h1>"));
    assert_eq!(selected(&form.body, "column-0"), "email");
    assert_eq!(selected(&form.body, "column-1"), "name");
    assert_eq!(selected(&form.body, "column-2"), "attributes.city");
    assert_eq!(selected(&form.body, "column-3"), "ignore");
    assert!(form.body.contains("Not recognised"));
    assert_eq!(
        app.count("imports"),
        0,
        "nothing is imported before the start"
    );

    // Consent given elsewhere needs its evidence: refused, nothing created.
    let base = [
        ("column-0", "email"),
        ("column-1", "name"),
        ("column-2", "attributes.city"),
        ("column-3", "ignore"),
        ("language", "es"),
        ("mode", "consented"),
    ];
    let refused = editor.post(&mapping, &mapping, &base).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("is needed when they already agreed"));
    assert!(refused.body.contains("aria-invalid=\"true\""));
    assert_eq!(selected(&refused.body, "column-2"), "attributes.city");
    assert_eq!(app.count("imports"), 0);

    // Two columns for the same field are refused too.
    let mut twice = base.to_vec();
    twice[1] = ("column-1", "email");
    twice.extend([("source", "Rally"), ("consent_note", "Ticked the box")]);
    let refused = editor.post(&mapping, &mapping, &twice).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("both hold email"), "{}", refused.body);
    assert_eq!(app.count("imports"), 0);

    let mut good = base.to_vec();
    good.extend([
        ("source", "Tucson rally sign-up sheet"),
        ("consent_note", "Ticked \"send me news\""),
    ]);
    let started = editor.post(&mapping, &mapping, &good).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let show = started.location().strip_prefix(CONSOLE).unwrap().to_owned();
    let show = show.split('?').next().unwrap().to_owned();
    assert_eq!(app.count("imports"), 1);
    assert_eq!(app.count("audit_log WHERE action = 'import.create'"), 1);
    // The kept upload is gone once the import exists.
    assert_eq!(editor.get(&mapping).await.status, 404);

    let queued = editor.get(&format!("{show}?notice=started")).await;
    assert_eq!(queued.status, 200);
    assert!(queued.body.contains("The import has started."));
    assert!(queued.body.contains("data-refresh="));
    assert!(queued.body.contains("<progress"));

    app.run_tasks().await;
    let done = editor.get(&show).await;
    assert_eq!(done.status, 200);
    assert!(!done.body.contains("data-refresh="), "no refresh once done");
    assert!(done.body.contains("3 of 3 rows done"), "{}", done.body);
    assert!(done.body.contains("repeats the address on line 2"));
    assert_eq!(
        app.status_of("ana@example.org").as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        app.status_of("beto@example.org").as_deref(),
        Some("confirmed")
    );
    let city =
        app.query_one("SELECT attributes AS v FROM subscribers WHERE email = 'beto@example.org'");
    assert!(city.contains("Phoenix"), "{city}");

    let list = editor.get("/imports").await;
    let links = list.body.replace("&#x2f;", "/");
    assert!(
        links.contains(&format!("href=\"{CONSOLE}{show}\"")),
        "{links}"
    );
    assert!(list.body.contains(">Done<"));

    let report = editor.get(&format!("{show}/report.csv")).await;
    assert_eq!(report.status, 200);
    assert!(report.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(report.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert!(report.body.starts_with("line,column,outcome,problem\n"));
    assert!(report
        .body
        .contains("4,Correo,skipped,repeats the address on line 2"));

    // Viewers follow imports but may not start one.
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let seen = viewer.get(&show).await;
    assert_eq!(seen.status, 200);
    let list = viewer.get("/imports").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("multipart/form-data"));
    let csrf = list.csrf();
    let refused = upload_raw(&app, &viewer, Some(&csrf), PEOPLE.as_bytes()).await;
    assert_eq!(refused.status, 403);
    // Someone else's kept upload is not theirs to see.
    let other = upload(&app, &mut editor, PEOPLE).await;
    let other = console_path(&other);
    let mut admin = signed_in(&app, Role::Admin).await;
    assert_eq!(admin.get(&other).await.status, 404);
    assert_eq!(editor.get(&other).await.status, 200);
}

#[tokio::test]
async fn refused_uploads_say_why_in_both_languages_and_keep_nothing() {
    let app = TestApp::builder()
        .settings(|s| s.import_max_bytes = 200)
        .spawn()
        .await;
    let mut editor = signed_in(&app, Role::Editor).await;

    // No token (or a wrong one): refused before the file is looked at.
    let page = upload_raw(&app, &editor, None, PEOPLE.as_bytes()).await;
    assert_eq!(page.status, 403);
    let page = upload_raw(&app, &editor, Some("forged"), PEOPLE.as_bytes()).await;
    assert_eq!(page.status, 403);

    let page = upload(&app, &mut editor, "").await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("choose a CSV file to upload"));
    assert!(page.body.contains("aria-invalid=\"true\""));

    let big = format!("email\n{}", "someone@example.org\n".repeat(20));
    let page = upload(&app, &mut editor, &big).await;
    assert_eq!(page.status, 413);
    assert!(page.body.contains("is larger than the import limit"));

    let csrf = editor.get("/imports").await.csrf();
    let latin1 = b"email,nombre\nana@example.org,Jos\xe9\n";
    let page = upload_raw(&app, &editor, Some(&csrf), latin1).await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("is not UTF-8 text"), "{}", page.body);

    // A form without its file.
    let page = editor.post("/imports", "/imports/upload", &[]).await;
    assert_eq!(page.status, 415);

    editor.language = "es";
    let page = upload(&app, &mut editor, "").await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("elige un archivo CSV para subir"));
    assert!(page.body.contains("<h1>Importaciones</h1>"));
    let page = upload(&app, &mut editor, &big).await;
    assert_eq!(page.status, 413);
    assert!(page
        .body
        .contains("es más grande que el límite de importación"));

    assert_eq!(app.count("imports"), 0);
}

#[tokio::test]
async fn in_spanish_an_import_that_asks_each_person_to_confirm() {
    let app = spawn_app().await;
    app.add_interest("noticias", true);
    let mut editor = signed_in(&app, Role::Editor).await;
    editor.language = "es";

    let answer = upload(
        &app,
        &mut editor,
        "correo electrónico;idioma\ncarla@example.org;es\n",
    )
    .await;
    let mapping = console_path(&answer);
    let form = editor.get(&mapping).await;
    assert!(form.body.contains("<h1>Revisa las columnas</h1>"));
    assert!(form.body.contains("Pedir a cada persona que confirme"));
    assert_eq!(selected(&form.body, "column-0"), "email");
    assert_eq!(selected(&form.body, "column-1"), "language");
    assert_eq!(
        field_value(&form.body, "interests").as_deref(),
        Some("noticias")
    );

    // Without a choice of consent: refused, in Spanish.
    let refused = editor
        .post(
            &mapping,
            &mapping,
            &[("column-0", "email"), ("column-1", "language")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused
        .body
        .contains("elige si ya lo aceptaron o si cada persona debe confirmar"));
    assert_eq!(app.count("imports"), 0);

    let started = editor
        .post(
            &mapping,
            &mapping,
            &[
                ("column-0", "email"),
                ("column-1", "language"),
                ("mode", "confirm"),
                ("consent_note", "left over from the other choice"),
                ("language", "es"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let show = started.location().strip_prefix(CONSOLE).unwrap().to_owned();
    app.run_tasks().await;
    let done = editor.get(&show).await;
    assert!(done.body.contains("Terminada"), "{}", done.body);
    assert!(done.body.contains("1 de 1 filas procesadas"));
    assert!(done
        .body
        .contains("Hasta ahora no se ha omitido ni ha fallado ninguna fila."));
    assert_eq!(
        app.status_of("carla@example.org").as_deref(),
        Some("pending")
    );
    assert_eq!(
        app.query_one("SELECT mode AS v FROM imports"),
        "confirm".to_owned()
    );
}

#[tokio::test]
async fn editors_stop_an_import_that_has_not_finished() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let answer = upload(&app, &mut editor, "email\ndora@example.org\n").await;
    let mapping = console_path(&answer);
    let started = editor
        .post(
            &mapping,
            &mapping,
            &[
                ("column-0", "email"),
                ("mode", "confirm"),
                ("language", "en"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let show = started.location().strip_prefix(CONSOLE).unwrap().to_owned();
    let show = show.split('?').next().unwrap().to_owned();

    // Viewers see the progress but no way to stop it, and may not.
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let seen = viewer.get(&show).await;
    assert!(seen.body.contains("Waiting to start"));
    assert!(!seen.body.contains("Stop this import"));
    let refused = viewer.post(&show, &format!("{show}/cancel"), &[]).await;
    assert_eq!(refused.status, 403);
    // Without the form's token: refused too.
    let refused = editor.post_raw(&format!("{show}/cancel"), &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(app.query_one("SELECT status AS v FROM imports"), "queued");

    let page = editor.get(&show).await;
    assert!(page.body.contains("Stop this import"));
    let stopped = editor.post(&show, &format!("{show}/cancel"), &[]).await;
    assert_eq!(stopped.status, 303);
    assert!(stopped.location().ends_with("?notice=cancelled"));
    assert_eq!(
        app.query_one("SELECT status AS v FROM imports"),
        "cancelled"
    );
    assert_eq!(app.count("audit_log WHERE action = 'import.cancel'"), 1);
    editor.language = "es";
    let page = editor.get(&format!("{show}?notice=cancelled")).await;
    assert!(page.body.contains("La importación se detuvo."));
    assert!(page.body.contains("Detenida"));
    assert!(!page.body.contains("data-refresh="));

    app.run_tasks().await;
    assert_eq!(app.status_of("dora@example.org"), None);
}

#[tokio::test]
async fn a_long_report_is_shown_a_page_at_a_time_and_downloaded_whole() {
    let app = spawn_app().await;
    let mut editor = signed_in(&app, Role::Editor).await;
    let file = format!("email\nana@example.org\n{}", "ana@example.org\n".repeat(60));
    let answer = upload(&app, &mut editor, &file).await;
    let mapping = console_path(&answer);
    let form = [
        ("column-0", "email"),
        ("mode", "consented"),
        ("source", "Sign-up sheet"),
        ("consent_note", "Ticked the box"),
        ("language", "en"),
    ];
    let started = editor.post(&mapping, &mapping, &form).await;
    let show = started.location().strip_prefix(CONSOLE).unwrap().to_owned();
    let show = show.split('?').next().unwrap().to_owned();
    app.run_tasks().await;

    let first = editor.get(&show).await;
    assert!(first
        .body
        .contains("60 rows were skipped, failed, or have a note."));
    assert!(first.body.contains("Rows 1 to 50 of 60"), "{}", first.body);
    assert!(first.body.contains("?offset=50"));
    assert!(!first.body.contains("rel=\"prev\""));
    let second = editor.get(&format!("{show}?offset=50")).await;
    assert!(second.body.contains("Rows 51 to 60 of 60"));
    assert!(second.body.contains("?offset=0"));
    assert!(!second.body.contains("rel=\"next\""));

    let report = editor.get(&format!("{show}/report.csv")).await;
    assert_eq!(report.body.lines().count(), 61);
}

#[tokio::test]
async fn the_imports_page_lists_older_imports_a_page_at_a_time() {
    let app = spawn_app().await;
    let token = app.staff_token(Role::Editor).await;
    let query = [("mode", "confirm")];
    for i in 0..51 {
        let csv = format!("email\nperson{i}@example.org\n");
        let res = crate::imports::upload(&app, &token, &query, &csv).await;
        assert_eq!(res.status(), 202);
    }
    let mut viewer = signed_in(&app, Role::Viewer).await;
    let first = viewer.get("/imports").await;
    assert_eq!(first.body.matches("<th scope=\"row\">").count(), 50);
    let older = first
        .body
        .split("?before=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older imports")
        .to_owned();
    let second = viewer.get(&format!("/imports?before={older}")).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body.matches("<th scope=\"row\">").count(), 1);
    assert!(second.body.contains("Newest imports"));
    assert!(!second.body.contains("?before="));
}
