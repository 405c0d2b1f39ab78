//! Building and running the application: shared state, middleware, routes, the signup writer
//! and the mail worker.

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders, ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::{web, App, HttpServer, ResponseError};
use anyhow::Context;
use governor::{Quota, RateLimiter};
use tokio::sync::{watch, Notify};

use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::db::Db;
use crate::email::{Mailer, SmtpConfig, SmtpPool, Templates, Transport};
use crate::error::ApiError;
use crate::jobs::{MailRenderer, TaskWorker, Worker};
use crate::metrics::Metrics;
use crate::routes;
use crate::sending::Engine;
use crate::signup::{SignupPolicy, SignupQueue};
use crate::tokens::ManageTokens;

pub use crate::state::AppState;

/// Connections the system may queue for the server before it accepts them.
const LISTEN_BACKLOG: i32 = 4096;

/// Knobs tests turn; production uses the defaults.
#[derive(Default)]
pub struct Options {
    /// Use this transport instead of the one the settings name.
    pub transport: Option<Transport>,
    /// Leave the queue to the caller (`Worker::run_pending`) instead of a background loop.
    pub manual_worker: bool,
    /// Serve on this already-bound socket instead of binding `ENLACE_LISTEN`.
    pub listener: Option<TcpListener>,
    /// SNS signing certificates to trust without fetching them: (URL, PEM).
    pub sns_certificates: Vec<(String, String)>,
}

pub struct Application {
    port: u16,
    server: Server,
    pub worker: Arc<Worker>,
    pub tasks: Arc<TaskWorker>,
    pub engine: Arc<Engine>,
    pub db: Db,
    /// Click counts not yet written (written every few seconds, and at a stop).
    pub clicks: Arc<crate::clicks::ClickCounter>,
    worker_task: Option<(Arc<Notify>, watch::Sender<bool>)>,
    /// Held while serving, so `enlace restore` refuses to replace the database under us.
    _serving_lock: Option<crate::backup::ServingLock>,
}

impl Application {
    pub fn build(settings: Settings, options: Options) -> anyhow::Result<Self> {
        settings.validate()?;
        if let Some(open_files) = crate::http_limits::raise_open_file_limit() {
            tracing::info!(open_files, "open file limit");
        }
        let secret = settings.load_secret_key()?;
        crate::files::warn_if_open(&settings.data_dir);
        let loopback = matches!(
            settings.public_url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        );
        if settings.public_url.scheme() != "https" && !loopback {
            tracing::warn!("ENLACE_PUBLIC_URL is not https: mailbox providers honour one-click unsubscribe (RFC 8058) only over https");
        }
        let serving_lock = crate::backup::hold_serving_lock(&settings.database_url)?;
        let unconfirmed_days = settings.unconfirmed_retention_days;
        let delivery_days = settings.delivery_retention_days;
        let backup_schedule = settings
            .backup_dir
            .clone()
            .zip(crate::backup::sqlite_path(&settings.database_url).ok())
            .map(|(dir, database)| {
                let every = std::time::Duration::from_secs(
                    u64::from(settings.backup_interval_hours) * 3600,
                );
                (database, dir, every, settings.backup_keep)
            });
        let db = Db::connect(&settings.database_url, settings.db_pool_size)?;
        db.migrate()?;
        let base_path = routes::base_path::BasePath::of(&settings.public_url);
        let templates = Arc::new(
            Templates::new(&settings.org_name, settings.postal_address.as_deref())?
                .with_base_path(&base_path.0),
        );
        let base_path = web::Data::new(base_path);
        let transport = match options.transport {
            Some(t) => t,
            None => match &settings.smtp_url {
                Some(url) => Transport::Smtp(SmtpPool::new(
                    SmtpConfig::from_url(url)?,
                    // Kept open between messages: one per concurrent mail and newsletter send.
                    settings.mail_concurrency + settings.send_concurrency,
                )),
                None => {
                    let dir = settings.data_dir.join("outbox");
                    tracing::warn!(folder = %dir.display(), "ENLACE_SMTP_URL is unset; messages are written as .eml files");
                    Transport::Files(dir)
                }
            },
        };
        let mut mailer = Mailer::new(transport, &settings.from)?;
        if let (Some(selector), Some(path)) = (&settings.dkim_selector, &settings.dkim_key_file) {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("reading the DKIM key {}", path.display()))?;
            mailer = mailer.with_dkim(selector, settings.dkim_domain.as_deref(), &key)?;
        }
        let mailer = Arc::new(mailer);
        let metrics = Metrics::new();
        let previous = settings.previous_secret_keys()?;
        let manage_tokens = ManageTokens::new(&secret).with_previous(&previous);
        let jwt = JwtKeys::new(&secret, &settings.base_url()).with_previous(&previous);
        // Ten sign-in attempts a minute per account and per client address.
        let login_limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(
            NonZeroU32::MIN.saturating_add(9),
        )));
        let mail_ready = Arc::new(Notify::new());
        let worker = Arc::new(Worker {
            db: db.clone(),
            mailer: mailer.clone(),
            renderer: MailRenderer {
                templates: templates.clone(),
                tokens: manage_tokens.clone(),
                base_url: settings.base_url(),
                confirm_ttl_days: i64::from(settings.confirm_ttl_hours.div_ceil(24)),
            },
            concurrency: settings.mail_concurrency,
            lease: chrono::Duration::seconds(i64::from(settings.mail_lease_seconds)),
            metrics: metrics.clone(),
        });
        let engine = Arc::new(Engine {
            db: db.clone(),
            mailer,
            templates: templates.clone(),
            tokens: manage_tokens.clone(),
            base_url: settings.base_url(),
            links: crate::clicks::LinkSigner::new(&secret, &previous, &settings.base_url()),
            list_id: settings.list_id(),
            results_min_count: settings.results_min_count,
            concurrency: settings.send_concurrency,
            max_attempts: settings.send_max_attempts,
            overdue_after: chrono::Duration::minutes(i64::from(settings.send_overdue_minutes)),
            rate: NonZeroU32::new(settings.send_rate)
                .map(|n| RateLimiter::direct(Quota::per_second(n))),
            pace: [settings.send_rate, settings.send_rate_per_sender]
                .into_iter()
                .filter(|r| *r > 0)
                .min(),
            sender_rate: NonZeroU32::new(settings.send_rate_per_sender)
                .map(|n| RateLimiter::keyed(Quota::per_second(n))),
            metrics: metrics.clone(),
            cache: Default::default(),
            lease: chrono::Duration::seconds(i64::from(settings.send_lease_seconds)),
            stopping: Default::default(),
            render_guard: Default::default(),
        });
        crate::sending::guard::spawn_report(
            db.clone(),
            settings.org_name.clone(),
            settings.postal_address.clone(),
        );
        let send_ready = Arc::new(Notify::new());
        let task_ready = Arc::new(Notify::new());
        let tasks = Arc::new(TaskWorker {
            db: db.clone(),
            concurrency: 4,
            metrics: metrics.clone(),
            handlers: vec![
                Box::new(crate::imports::ImportRunner {
                    db: db.clone(),
                    templates: templates.clone(),
                    policy: SignupPolicy {
                        confirm_ttl: chrono::Duration::hours(i64::from(settings.confirm_ttl_hours)),
                    },
                    mail_ready: mail_ready.clone(),
                }),
                Box::new(crate::webhooks::Deliverer::new(
                    settings.webhook_allow_private,
                    std::time::Duration::from_secs(u64::from(settings.webhook_timeout_seconds)),
                )?),
            ],
        });
        let limiter = NonZeroU32::new(settings.public_rate_limit)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        let policy = SignupPolicy {
            confirm_ttl: chrono::Duration::hours(i64::from(settings.confirm_ttl_hours)),
        };
        let signups = SignupQueue::start(
            db.clone(),
            templates.clone(),
            policy,
            metrics.clone(),
            mail_ready.clone(),
            std::time::Duration::from_millis(u64::from(settings.signup_answer_ms)),
        );

        let listener = match options.listener {
            Some(listener) => listener,
            None => TcpListener::bind(&settings.listen)
                .with_context(|| format!("binding {}", settings.listen))?,
        };
        // The standard library listens with a queue of 128 connections not yet accepted; a
        // burst of connections (a flood from one client) would fill it, and everyone else's
        // connection attempts would be dropped and retried a second later. The system caps
        // this at its own limit (net.core.somaxconn).
        socket2::SockRef::from(&listener)
            .listen(LISTEN_BACKLOG)
            .context("setting the listen queue")?;
        let port = listener.local_addr()?.port();
        let max_body = settings.max_body_bytes;
        let intake = crate::bounces::Intake::from_settings(&settings)?;
        if let Some(sns) = &intake.sns {
            for (url, pem) in &options.sns_certificates {
                sns.add_certificate(url, pem)?;
            }
        }
        let export_concurrency = settings.export_concurrency;
        let cors_origins = settings.cors_origins.clone();
        // Requests in progress per client, and how slowly a body may arrive; and what checks a
        // request's credentials. Each is registered on its own, so neither depends on AppState.
        let client_limits = web::Data::new(crate::http_limits::ClientLimits::new(
            settings.client_max_requests as usize,
            std::time::Duration::from_secs(u64::from(settings.body_idle_seconds)),
            std::time::Duration::from_secs(u64::from(settings.body_total_seconds)),
            settings.trusted_proxies.clone(),
            settings.ipv6_prefix,
        ));
        let authenticator = web::Data::new(crate::auth::Authenticator::new(
            db.clone(),
            jwt.clone(),
            settings.trusted_proxies.clone(),
        ));
        let clicks = Arc::new(crate::clicks::ClickCounter::new());
        clicks.clone().spawn(db.clone());
        let state = web::Data::new(AppState {
            db: db.clone(),
            settings,
            templates,
            manage_tokens,
            jwt,
            login_limiter: login_limiter.clone(),
            password_slots: tokio::sync::Semaphore::new(2),
            signups,
            limiter: limiter.clone(),
            metrics,
            mail_ready: mail_ready.clone(),
            send_ready: send_ready.clone(),
            test_send_limiter: RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::MIN.saturating_add(1))
                    .allow_burst(NonZeroU32::MIN.saturating_add(29)),
            ),
            engine: engine.clone(),
            task_ready: task_ready.clone(),
            intake,
            exports: Arc::new(tokio::sync::Semaphore::new(export_concurrency)),
            render_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            clicks: clicks.clone(),
            click_targets: Default::default(),
            archive: Default::default(),
        });
        let console_path = state.settings.console_path.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(client_limits.clone())
                .app_data(authenticator.clone())
                .app_data(base_path.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(json_error),
                )
                .app_data(
                    web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()),
                )
                .wrap(ErrorHandlers::new().default_handler(problem_for_bare_errors))
                .wrap(cors(&cors_origins))
                .wrap(security_headers())
                .wrap(from_fn(crate::http_limits::limit_clients))
                .wrap(from_fn(observe))
                .wrap(from_fn(routes::base_path::strip_base_path))
                .service(routes::console::scope(&console_path))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();

        let worker_task = if options.manual_worker {
            None
        } else {
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(
                worker
                    .clone()
                    .run_forever(mail_ready.clone(), stopped.clone()),
            );
            tokio::spawn(tasks.clone().run_forever(task_ready, stopped.clone()));
            if let Some((database, dir, every, keep)) = backup_schedule {
                tokio::spawn(crate::backup::run_scheduled(
                    database,
                    dir,
                    every,
                    keep,
                    stopped.clone(),
                ));
            }
            tokio::spawn(engine.clone().run_forever(send_ready.clone(), stopped));
            // The limiters remember every client address and account they saw: forget the idle
            // ones. Hourly, the webhook delivery log is trimmed to its month, signups never
            // confirmed are removed once past their retention, and finished newsletters'
            // deliveries past theirs are folded into the newsletters' results.
            let log_db = db.clone();
            let retention_mailer = worker.mailer.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                let mut minutes = 0u64;
                loop {
                    tick.tick().await;
                    if minutes % 60 == 0 {
                        let trimmed = log_db
                            .write(|conn| {
                                crate::webhooks::prune_log(conn, crate::db::now())
                                    .map_err(crate::db::DbError::from)
                            })
                            .await;
                        if let Err(e) = trimmed {
                            tracing::warn!(error = %e, "could not trim the webhook delivery log");
                        }
                        let purged = crate::services::retention::purge_unconfirmed(
                            &log_db,
                            &retention_mailer,
                            crate::db::now(),
                            unconfirmed_days,
                        )
                        .await;
                        if let Err(e) = purged {
                            tracing::warn!(error = %e, "could not remove unconfirmed signups past their retention");
                        }
                        let folded = crate::services::retention::fold_deliveries(
                            &log_db,
                            crate::db::now(),
                            delivery_days,
                        )
                        .await;
                        if let Err(e) = folded {
                            tracing::warn!(error = %e, "could not fold newsletter deliveries past their retention into the results");
                        }
                    }
                    minutes += 1;
                    if let Some(limiter) = &limiter {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                    login_limiter.retain_recent();
                    login_limiter.shrink_to_fit();
                }
            });
            Some((mail_ready, stop))
        };
        Ok(Self {
            port,
            server,
            worker,
            tasks,
            engine,
            db,
            clicks,
            worker_task,
            _serving_lock: serving_lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (requests in flight finish), then stops the worker.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // The clicks counted in memory are written before the process ends.
        if let Err(e) = self.clicks.flush_all(&self.db).await {
            tracing::warn!(error = %e, "could not write the last click counts");
        }
        if let Some((wake, stop)) = self.worker_task {
            let _ = stop.send(true);
            wake.notify_one();
        }
        tracing::info!("stopped");
        result
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::ACCEPT_LANGUAGE,
        ])
        .max_age(3600)
        // A request from another origin is still served (forms post cross-site anyway); the
        // browser just does not let that page read the answer.
        .block_on_origin_mismatch(false);
    for origin in origins.iter().filter(|o| !o.is_empty()) {
        cors = cors.allowed_origin(origin);
    }
    cors
}

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            crate::routes::pages::CONTENT_SECURITY_POLICY,
        ))
}

/// Request log and metrics, by route pattern (`/confirm/{token}`): a path may hold a token.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    if let Some(state) = state {
        state
            .metrics
            .request(&method, &route, status, elapsed.as_secs_f64());
    }
    tracing::info!(
        method,
        route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    Ok(res)
}

fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::ContentType => ApiError::UnsupportedMediaType("send application/json".into()),
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(limit)
        }
        E::Deserialize(e) if e.is_data() => ApiError::field("body", e.to_string()),
        E::Deserialize(e) => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
        E::Payload(e) if crate::http_limits::is_body_timeout(&e) => ApiError::RequestTimeout,
        other => ApiError::BadRequest(other.to_string()),
    }
    .into()
}

/// Errors raised by actix itself (an oversized body, a broken payload) get a problem+json body too.
fn problem_for_bare_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem_or_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/problem+json") || ct.starts_with("text/html")
        });
    if is_problem_or_page || res.status().as_u16() < 400 {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = res
        .response()
        .error()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let timed_out = res
        .response()
        .error()
        .and_then(|e| e.as_error::<actix_web::error::PayloadError>())
        .is_some_and(crate::http_limits::is_body_timeout);
    let problem = match status.as_u16() {
        _ if timed_out => ApiError::RequestTimeout,
        413 => ApiError::PayloadTooLarge(
            res.request()
                .app_data::<web::Data<AppState>>()
                .map(|s| s.settings.max_body_bytes)
                .unwrap_or_default(),
        ),
        404 => ApiError::NotFound,
        405 => ApiError::MethodNotAllowed,
        415 => ApiError::UnsupportedMediaType(detail),
        s if s < 500 => ApiError::BadRequest(if detail.is_empty() {
            "bad request".into()
        } else {
            detail
        }),
        _ => ApiError::Internal(anyhow::anyhow!(detail)),
    };
    let (req, _) = res.into_parts();
    let response = problem.error_response().map_into_right_body();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
        req, response,
    )))
}
