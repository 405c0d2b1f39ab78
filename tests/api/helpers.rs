//! `spawn_app()`: the production application on port 0 with a fresh database (SQLite, or
//! PostgreSQL when ENLACE_TEST_POSTGRES_URL is set), mail kept in memory, and a worker the test
//! drives step by step.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use enlace::cli::Cli;
use enlace::config::Settings;
use enlace::db::{self, AnyConnection, Db};
use enlace::email::{SentMessage, Transport};
use enlace::jobs::{TaskWorker, Worker};
use enlace::sending::Engine;
use enlace::startup::{Application, Options};

pub const STAFF_PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub worker: Arc<Worker>,
    pub tasks: Arc<TaskWorker>,
    pub engine: Arc<Engine>,
    pub db: Db,
    /// Click counts not yet written (`flush_clicks` writes them).
    pub clicks: Arc<enlace::clicks::ClickCounter>,
    pub sent: Arc<Mutex<Vec<SentMessage>>>,
    pub database_url: String,
    dir: PathBuf,
    postgres: Option<(String, String)>,
    failed_jobs_expected: std::sync::atomic::AtomicBool,
}

/// A received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub list_unsubscribe: Option<String>,
    pub list_unsubscribe_post: Option<String>,
    pub content_language: Option<String>,
    pub raw: String,
}

pub fn parse_mail(raw: &[u8]) -> Mail {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let to = message.to().and_then(|a| a.first()).expect("a To address");
    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_owned());
    Mail {
        to: to.address().unwrap_or_default().to_owned(),
        to_name: to.name().map(str::to_owned),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        list_unsubscribe: header("List-Unsubscribe"),
        list_unsubscribe_post: header("List-Unsubscribe-Post"),
        content_language: header("Content-Language"),
        raw: String::from_utf8_lossy(raw).into_owned(),
    }
}

pub fn test_settings() -> Settings {
    let mut settings = Cli::parse_from(["enlace"]).settings;
    settings.listen = "127.0.0.1:0".into();
    settings.secret_key = Some("test-secret-key-that-is-long-enough-0123456789".into());
    settings.public_rate_limit = 0;
    // Tests that need the answer floor set it; the rest run without waiting for it.
    settings.signup_answer_ms = 0;
    // Every test client is 127.0.0.1; tests of the per-client limit set their own.
    settings.client_max_requests = 10_000;
    settings.log = "warn".into();
    settings
}

/// The default application: mail kept in memory, the workers driven by the test.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

/// How a test application starts: `TestApp::builder()`, then what differs from the default
/// (`spawn_app()`), then `spawn()`.
#[must_use]
pub struct TestAppBuilder<'a> {
    configure: Box<dyn FnOnce(&mut Settings) + 'a>,
    real_mail: bool,
    running_workers: bool,
    sharing: Option<&'a TestApp>,
    sns_certificates: Vec<(String, String)>,
}

impl TestApp {
    pub fn builder<'a>() -> TestAppBuilder<'a> {
        TestAppBuilder {
            configure: Box::new(|_| {}),
            real_mail: false,
            running_workers: false,
            sharing: None,
            sns_certificates: Vec::new(),
        }
    }
}

impl<'a> TestAppBuilder<'a> {
    /// Changes the settings (after the test defaults and the fresh database are set).
    pub fn settings(mut self, configure: impl FnOnce(&mut Settings) + 'a) -> Self {
        self.configure = Box::new(configure);
        self
    }

    /// Mail goes where the settings send it (`ENLACE_SMTP_URL`, or the outbox folder) instead of
    /// the in-memory store.
    pub fn real_mail(mut self) -> Self {
        self.real_mail = true;
        self
    }

    /// The workers run by themselves, as in production, instead of when the test drives them.
    pub fn running_workers(mut self) -> Self {
        self.running_workers = true;
        self
    }

    /// A second process on the same database as `other` (its own server, workers and mail).
    pub fn sharing(mut self, other: &'a TestApp) -> Self {
        self.sharing = Some(other);
        self
    }

    /// SNS signing certificates (URL, PEM) trusted without fetching them.
    pub fn trusting_sns(mut self, certificates: Vec<(String, String)>) -> Self {
        self.sns_certificates = certificates;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let options = Options {
            transport: (!self.real_mail).then(|| Transport::Memory(sent.clone())),
            manual_worker: !self.running_workers,
            sns_certificates: self.sns_certificates,
            ..Default::default()
        };
        let shared_url = self.sharing.map(|other| other.database_url.clone());
        let configure = self.configure;
        let mut app = spawn(
            move |s| {
                if let Some(url) = shared_url {
                    s.database_url = url;
                }
                configure(s);
            },
            options,
            sent,
        )
        .await;
        if self.sharing.is_some() {
            // The database belongs to the other app: drop the unused one made for this one.
            if let Some((admin, name)) = app.postgres.take() {
                if let Ok(mut conn) = PgConnection::establish(&admin) {
                    let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""));
                }
            }
        }
        app
    }
}

async fn spawn(
    configure: impl FnOnce(&mut Settings),
    options: Options,
    sent: Arc<Mutex<Vec<SentMessage>>>,
) -> TestApp {
    enlace::telemetry::init(
        &std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()),
        "text",
    );
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join("enlace-tests").join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut settings = test_settings();
    settings.data_dir = dir.clone();
    let postgres = match std::env::var("ENLACE_TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("enlace_test_{id}");
            let mut admin = PgConnection::establish(&admin_url)
                .expect("connecting to ENLACE_TEST_POSTGRES_URL");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
            settings.database_url = database_url_with_name(&admin_url, &name);
            Some((admin_url, name))
        }
        _ => {
            settings.database_url = format!("sqlite://{}", dir.join("enlace.db").display());
            None
        }
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    settings.public_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
        .parse()
        .unwrap();
    configure(&mut settings);
    let database_url = settings.database_url.clone();
    let options = Options {
        listener: Some(listener),
        ..options
    };
    let app = Application::build(settings, options).expect("building the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let worker = app.worker.clone();
    let engine = app.engine.clone();
    let tasks = app.tasks.clone();
    let db = app.db.clone();
    let clicks = app.clicks.clone();
    tokio::spawn(app.run_until_stopped());
    // Idle connections are dropped well before the server's 5 s keep-alive ends them, so a slow
    // step (seeding hundreds of people on a busy machine) never reuses a connection the server
    // is closing at that moment (reqwest's `IncompleteMessage`).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        worker,
        tasks,
        engine,
        db,
        clicks,
        sent,
        database_url,
        dir,
        postgres,
        failed_jobs_expected: Default::default(),
    }
}

/// Midnight of a day given as `"2026-01-01"`.
pub fn day(date: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .expect("a date like 2026-01-01")
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

/// A person as a test seeds them directly: `Person::new(email)` is confirmed, English, with no
/// name, interests or attributes, and signed up on 2026-01-01.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: Option<String>,
    pub email: String,
    pub name: Option<String>,
    pub language: &'static str,
    pub status: &'static str,
    pub source: Option<String>,
    pub attributes: serde_json::Value,
    pub interests: Vec<String>,
    pub created: chrono::NaiveDateTime,
    pub confirmed: Option<chrono::NaiveDateTime>,
}

impl Person {
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            id: None,
            email: email.into(),
            name: None,
            language: "en",
            status: "confirmed",
            source: None,
            attributes: serde_json::json!({}),
            interests: Vec::new(),
            created: day("2026-01-01"),
            confirmed: Some(day("2026-01-01")),
        }
    }
}

/// One subscriber row as `seed_people` writes it (every column given, so rows insert in batches
/// on both databases).
#[derive(diesel::Insertable)]
#[diesel(table_name = enlace::db::schema::subscribers, treat_none_as_default_value = false)]
struct SeedRow {
    id: String,
    email: String,
    name: Option<String>,
    language: &'static str,
    status: &'static str,
    source: Option<String>,
    attributes: String,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    confirmed_at: Option<chrono::NaiveDateTime>,
}

pub fn database_url_with_name(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a PostgreSQL URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Every test ends with a check that no job failed unless it said it expected that.
        let check = !std::thread::panicking()
            && !self
                .failed_jobs_expected
                .load(std::sync::atomic::Ordering::Relaxed);
        let failed = if check {
            self.failed_jobs()
        } else {
            Vec::new()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin_url, name)) = &self.postgres {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
        assert!(
            failed.is_empty(),
            "jobs ended failed that the test did not expect (kind, last error): {failed:?}"
        );
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn subscribe(&self, body: serde_json::Value) -> reqwest::Response {
        self.post_json("/api/v1/subscribe", &body).await
    }

    pub async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Erases a subscriber (`DELETE /api/v1/subscribers/{id}`) as `token`.
    pub async fn erase(&self, token: &str, id: &str) -> reqwest::Response {
        self.send_as(
            token,
            "DELETE",
            &format!("/api/v1/subscribers/{id}"),
            serde_json::Value::Null,
        )
        .await
    }

    /// A staff request: `method path` with a bearer token and a JSON body.
    pub async fn send_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A staff GET: `path` with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A staff GET whose answer is JSON.
    pub async fn get_json_as(&self, token: &str, path: &str) -> serde_json::Value {
        self.get_as(token, path).await.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Runs every job due now; returns how many ran.
    pub async fn run_jobs(&self) -> usize {
        self.worker.run_pending(db::now()).await.unwrap()
    }

    /// Runs every job due at `now + offset` (retries whose backoff has not passed yet, say).
    pub async fn run_jobs_after(&self, offset: chrono::Duration) -> usize {
        self.worker.run_pending(db::now() + offset).await.unwrap()
    }

    /// Runs every task (webhook deliveries, imports) due now; returns how many runs there were.
    pub async fn run_tasks(&self) -> usize {
        self.tasks.run_pending(db::now()).await.unwrap()
    }

    /// Runs every task due at `now + offset` (retries whose backoff has not passed yet, say).
    pub async fn run_tasks_after(&self, offset: chrono::Duration) -> usize {
        self.tasks.run_pending(db::now() + offset).await.unwrap()
    }

    /// Runs the newsletter engine until nothing is due now; returns how many deliveries it handled.
    pub async fn run_sends(&self) -> usize {
        self.engine.run_pending(db::now()).await.unwrap()
    }

    /// Runs the newsletter engine as if it were `offset` later (retries, schedules).
    /// Counts every click held or gathered in memory and writes them, as a stop does.
    pub async fn flush_clicks(&self) {
        self.clicks.flush_all(&self.db).await.unwrap();
    }

    pub async fn run_sends_after(&self, offset: chrono::Duration) -> usize {
        self.engine.run_pending(db::now() + offset).await.unwrap()
    }

    /// Adds a subscriber directly; returns the id.
    pub fn add_subscriber(
        &self,
        email: &str,
        status: &str,
        language: &str,
        name: Option<&str>,
        attributes: serde_json::Value,
    ) -> String {
        use diesel::prelude::*;
        use enlace::db::schema::subscribers::dsl as s;
        let id = db::new_id();
        let now = db::now();
        diesel::insert_into(s::subscribers)
            .values((
                s::id.eq(&id),
                s::email.eq(email),
                s::name.eq(name),
                s::language.eq(language),
                s::status.eq(status),
                s::attributes.eq(attributes.to_string()),
                s::created_at.eq(now),
                s::updated_at.eq(now),
                s::confirmed_at.eq((status == "confirmed").then_some(now)),
            ))
            .execute(&mut *self.conn())
            .unwrap();
        id
    }

    /// Adds people directly (not through the API), in one transaction; returns their ids in order.
    pub fn seed_people(&self, people: &[Person]) -> Vec<String> {
        use diesel::prelude::*;
        use enlace::db::schema::{subscriber_interests as si, subscribers as s};
        let mut conn = self.conn();
        let conn: &mut AnyConnection = &mut conn;
        conn.transaction(|conn| {
            let ids: Vec<String> = people
                .iter()
                .map(|p| p.id.clone().unwrap_or_else(db::new_id))
                .collect();
            // Chunks keep each statement under SQLite's limit on bound values.
            for (chunk, chunk_ids) in people.chunks(256).zip(ids.chunks(256)) {
                let rows: Vec<SeedRow> = chunk
                    .iter()
                    .zip(chunk_ids)
                    .map(|(p, id)| SeedRow {
                        id: id.clone(),
                        email: p.email.clone(),
                        name: p.name.clone(),
                        language: p.language,
                        status: p.status,
                        source: p.source.clone(),
                        attributes: p.attributes.to_string(),
                        created_at: p.created,
                        updated_at: p.created,
                        confirmed_at: p.confirmed,
                    })
                    .collect();
                enlace::on_backend!(&mut *conn, |c| diesel::insert_into(s::table)
                    .values(&rows)
                    .execute(c))?;
            }
            for (p, id) in people.iter().zip(&ids) {
                for slug in &p.interests {
                    diesel::insert_into(si::table)
                        .values((
                            si::subscriber_id.eq(id),
                            si::interest_slug.eq(slug),
                            si::created_at.eq(p.created),
                        ))
                        .execute(conn)?;
                }
            }
            diesel::QueryResult::Ok(ids)
        })
        .unwrap()
    }

    /// Gives a subscriber more interests, chosen on `at` (`"2026-01-01"`).
    pub fn add_interests_to(&self, subscriber_id: &str, slugs: &[&str], at: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::subscriber_interests as si;
        for slug in slugs {
            diesel::insert_into(si::table)
                .values((
                    si::subscriber_id.eq(subscriber_id),
                    si::interest_slug.eq(slug),
                    si::created_at.eq(day(at)),
                ))
                .execute(&mut *self.conn())
                .unwrap();
        }
    }

    /// Changes a subscriber's status directly (confirming sets `confirmed_at` when unset).
    pub fn set_status(&self, subscriber_id: &str, status: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::subscribers::dsl as s;
        let mut conn = self.conn();
        diesel::update(s::subscribers.find(subscriber_id))
            .set(s::status.eq(status))
            .execute(&mut *conn)
            .unwrap();
        if status == "confirmed" {
            diesel::update(
                s::subscribers
                    .find(subscriber_id)
                    .filter(s::confirmed_at.is_null()),
            )
            .set(s::confirmed_at.eq(s::created_at.nullable()))
            .execute(&mut *conn)
            .unwrap();
        }
    }

    /// Records where a subscriber signed up, directly.
    pub fn set_source(&self, subscriber_id: &str, source: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::subscribers::dsl as s;
        diesel::update(s::subscribers.find(subscriber_id))
            .set(s::source.eq(source))
            .execute(&mut *self.conn())
            .unwrap();
    }

    /// Makes every subscriber but `except` look last changed on `at` (`"2020-01-01"`).
    pub fn backdate_subscribers(&self, at: &str, except: Option<&str>) {
        use diesel::prelude::*;
        use enlace::db::schema::subscribers::dsl as s;
        diesel::update(s::subscribers.filter(s::id.ne(except.unwrap_or_default())))
            .set(s::updated_at.eq(day(at)))
            .execute(&mut *self.conn())
            .unwrap();
    }

    /// Puts an address on the suppression list, as if `reason` (`complaint`, `hard_bounce`,
    /// `manual`) had happened on `at` (`"2026-01-01"`).
    pub fn suppress(&self, email: &str, reason: &str, at: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::suppressions::dsl as x;
        diesel::insert_into(x::suppressions)
            .values((
                x::email_hash.eq(enlace::tokens::email_hash(email)),
                x::reason.eq(reason),
                x::created_at.eq(day(at)),
            ))
            .execute(&mut *self.conn())
            .unwrap();
    }

    /// Disables a staff account directly, as another admin would have.
    pub fn disable_staff(&self, staff_id: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::staff::dsl as st;
        diesel::update(st::staff.find(staff_id))
            .set(st::disabled.eq(true))
            .execute(&mut *self.conn())
            .unwrap();
    }

    /// Removes a staff account's row altogether (an account deleted outside Enlace).
    pub fn delete_staff(&self, staff_id: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::staff::dsl as st;
        diesel::delete(st::staff.find(staff_id))
            .execute(&mut *self.conn())
            .unwrap();
    }

    /// Puts a newsletter (every newsletter when `None`) in `status` directly.
    pub fn set_newsletter_status(&self, newsletter_id: Option<&str>, status: &str) {
        use diesel::prelude::*;
        use enlace::db::schema::newsletters::dsl as n;
        let mut conn = self.conn();
        match newsletter_id {
            Some(id) => diesel::update(n::newsletters.find(id))
                .set(n::status.eq(status))
                .execute(&mut *conn),
            None => diesel::update(n::newsletters)
                .set(n::status.eq(status))
                .execute(&mut *conn),
        }
        .unwrap();
    }

    /// Makes a newsletter look started and finished `days` ago, its deliveries last due (and,
    /// those sent, sent) then. A newsletter that has not finished gets a finish time too.
    pub fn backdate_newsletter(&self, newsletter_id: &str, days: i64) {
        use diesel::prelude::*;
        use enlace::db::schema::{deliveries as d, newsletters as n};
        let then = db::now() - chrono::Duration::days(days);
        let mut conn = self.conn();
        diesel::update(n::table.find(newsletter_id))
            .set((n::started_at.eq(Some(then)), n::finished_at.eq(Some(then))))
            .execute(&mut *conn)
            .unwrap();
        let of_newsletter = d::table.filter(d::newsletter_id.eq(newsletter_id));
        diesel::update(of_newsletter)
            .set(d::run_at.eq(then))
            .execute(&mut *conn)
            .unwrap();
        diesel::update(of_newsletter.filter(d::sent_at.is_not_null()))
            .set(d::sent_at.eq(Some(then)))
            .execute(&mut *conn)
            .unwrap();
    }

    /// Records directly that `subscriber_ids` were sent a newsletter (`state` `sent`) or not
    /// (`failed`, `skipped`, with `outcome`), as of now.
    pub fn seed_deliveries(
        &self,
        newsletter_id: &str,
        subscriber_ids: &[String],
        state: &str,
        outcome: Option<&str>,
    ) {
        use diesel::prelude::*;
        use enlace::db::schema::deliveries as d;
        let now = db::now();
        let sent_at = (state == "sent").then_some(now);
        let mut conn = self.conn();
        // Chunks keep each statement under SQLite's limit on bound values.
        for chunk in subscriber_ids.chunks(256) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|id| {
                    (
                        d::newsletter_id.eq(newsletter_id),
                        d::subscriber_id.eq(id),
                        d::state.eq(state),
                        d::attempts.eq(1),
                        d::run_at.eq(now),
                        d::outcome.eq(outcome),
                        d::sent_at.eq(sent_at),
                    )
                })
                .collect();
            enlace::on_backend!(&mut *conn, |c| diesel::insert_into(d::table)
                .values(&rows)
                .execute(c))
            .unwrap();
        }
    }

    /// Makes a subscriber's signup look `signed_up` days old with its confirmation links expired
    /// `expired` days ago.
    pub fn age_signup(&self, subscriber_id: &str, signed_up: i64, expired: i64) {
        use diesel::prelude::*;
        use enlace::db::schema::{confirmation_tokens as t, subscribers as s};
        let now = db::now();
        let mut conn = self.conn();
        diesel::update(s::table.find(subscriber_id))
            .set(s::created_at.eq(now - chrono::Duration::days(signed_up)))
            .execute(&mut *conn)
            .unwrap();
        diesel::update(t::table.filter(t::subscriber_id.eq(subscriber_id)))
            .set(t::expires_at.eq(now - chrono::Duration::days(expired)))
            .execute(&mut *conn)
            .unwrap();
    }

    /// The test expects some jobs to end failed (a relay that refuses, a webhook endpoint that
    /// is down): the check made when the app is dropped is skipped.
    pub fn expect_failed_jobs(&self) {
        self.failed_jobs_expected
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Jobs that ended failed, as (kind, last error).
    pub fn failed_jobs(&self) -> Vec<(String, Option<String>)> {
        use diesel::prelude::*;
        use enlace::db::schema::jobs::dsl as j;
        j::jobs
            .filter(j::state.eq("failed"))
            .select((j::kind, j::last_error))
            .load(&mut *self.conn())
            .unwrap()
    }

    /// Every message handed to the in-memory transport so far, decoded.
    pub fn mails(&self) -> Vec<Mail> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| parse_mail(&m.raw))
            .collect()
    }

    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to == address)
            .collect()
    }

    /// Runs the queue and returns the single new message to `address`.
    pub async fn deliver_one(&self, address: &str) -> Mail {
        let before = self.mails_to(address).len();
        self.run_jobs().await;
        let mails = self.mails_to(address);
        assert_eq!(
            mails.len(),
            before + 1,
            "expected exactly one new mail to {address}"
        );
        mails.last().unwrap().clone()
    }

    /// The link in a mail's text part that starts with `{address}{prefix}`, as a path.
    pub fn link(&self, mail: &Mail, prefix: &str) -> String {
        let start = format!("{}{}", self.address, prefix);
        let found = mail
            .text
            .split_whitespace()
            .find(|w| w.starts_with(&start))
            .unwrap_or_else(|| panic!("no {prefix} link in:\n{}", mail.text));
        assert!(
            mail.html.contains(&found.replace('/', "&#x2f;")) || mail.html.contains(found),
            "the HTML part links too"
        );
        found.trim_start_matches(&self.address).to_owned()
    }

    /// The data folder (the SQLite database and its journal, the secret key, the outbox).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn conn(&self) -> r2d2_conn::Conn {
        self.db.get().unwrap()
    }

    pub fn sql(&self, statement: &str) {
        self.conn().batch_execute(statement).unwrap();
    }

    pub fn count(&self, table_where: &str) -> i64 {
        use diesel::sql_types::BigInt;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = self.conn();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table_where}"))
            .get_result::<Count>(&mut *conn as &mut AnyConnection)
            .unwrap()
            .n
    }

    /// The text of column `v` of the first row a query returns (`SELECT x AS v FROM …`).
    pub fn query_one(&self, query: &str) -> String {
        use diesel::sql_types::{Nullable, Text};
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct One {
            #[diesel(sql_type = Nullable<Text>)]
            v: Option<String>,
        }
        let mut conn = self.conn();
        diesel::sql_query(query)
            .get_result::<One>(&mut *conn as &mut AnyConnection)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .v
            .unwrap_or_default()
    }

    pub fn conn_subscriber_id(&self, email: &str) -> String {
        let mut conn = self.conn();
        db::subscribers::find_subscriber_by_email(&mut conn, email)
            .unwrap()
            .expect("a subscriber")
            .id
            .into_string()
    }

    pub fn status_of(&self, email: &str) -> Option<String> {
        let mut conn = self.conn();
        db::subscribers::find_subscriber_by_email(&mut conn, email)
            .unwrap()
            .map(|s| s.status.as_str().to_owned())
    }

    /// Creates a staff account directly; returns its id.
    pub fn add_staff(&self, email: &str, role: enlace::auth::Role) -> String {
        let hash = enlace::auth::passwords::hash_password(STAFF_PASSWORD).unwrap();
        let email = enlace::domain::Email::parse(email).unwrap();
        enlace::auth::accounts::create_staff_member(&mut self.conn(), &email, role, hash)
            .unwrap()
            .id
            .into_string()
    }

    /// Signs in as `email` (created with `add_staff`) and returns the access token.
    pub async fn sign_in(&self, email: &str) -> String {
        let res = self
            .post_json(
                "/api/v1/auth/token",
                &serde_json::json!({"email": email, "password": STAFF_PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), 200, "signing in as {email}");
        res.json::<serde_json::Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A new staff member of `role`, signed in.
    pub async fn staff_token(&self, role: enlace::auth::Role) -> String {
        let email = format!("{}@staff.example.org", role.as_str());
        self.add_staff(&email, role);
        self.sign_in(&email).await
    }

    /// Declares an interest directly.
    pub fn add_interest(&self, slug: &str, public: bool) {
        let now = db::now();
        db::interests::insert_interest(
            &mut self.conn(),
            &db::interests::Interest {
                slug: slug.into(),
                name_en: format!("{slug} (en)"),
                name_es: format!("{slug} (es)"),
                description_en: format!("About {slug}"),
                description_es: format!("Sobre {slug}"),
                public,
                created_at: now,
                updated_at: now,
            },
        )
        .unwrap();
    }

    pub fn add_field(&self, key: &str, field_type: &str, allowed: &[&str], public: bool) {
        let now = db::now();
        db::interests::insert_custom_field(
            &mut self.conn(),
            &db::interests::CustomField {
                key: key.into(),
                field_type: field_type.into(),
                allowed_values: (!allowed.is_empty())
                    .then(|| serde_json::to_string(allowed).unwrap()),
                public,
                created_at: now,
                updated_at: now,
            },
        )
        .unwrap();
    }

    /// Moves every queued mail back in time by `minutes`, as if it had been sent that long ago.
    pub fn age_jobs(&self, minutes: i64) {
        use diesel::prelude::*;
        use enlace::db::schema::jobs::dsl as j;
        let mut conn = self.conn();
        let rows: Vec<(String, chrono::NaiveDateTime)> = j::jobs
            .select((j::id, j::created_at))
            .load(&mut *conn)
            .unwrap();
        for (id, at) in rows {
            diesel::update(j::jobs.find(id))
                .set(j::created_at.eq(at - chrono::Duration::minutes(minutes)))
                .execute(&mut *conn)
                .unwrap();
        }
    }

    /// Makes every confirmation token of the test already expired.
    pub fn expire_tokens(&self) {
        use diesel::prelude::*;
        use enlace::db::schema::confirmation_tokens::dsl as t;
        diesel::update(t::confirmation_tokens)
            .set(t::expires_at.eq(db::now() - chrono::Duration::minutes(1)))
            .execute(&mut *self.conn())
            .unwrap();
    }
}

pub mod r2d2_conn {
    pub type Conn = diesel::r2d2::PooledConnection<enlace::db::ConnManager>;
}
