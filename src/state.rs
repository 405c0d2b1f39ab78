//! What every HTTP handler can reach: the database, the settings, the templates and keys, the
//! limiters, and the wake-ups of the background workers. `startup` builds it; the routes read it.

use std::net::IpAddr;
use std::sync::Arc;

use governor::DefaultKeyedRateLimiter;
use tokio::sync::Notify;

use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::db::Db;
use crate::email::Templates;
use crate::metrics::Metrics;
use crate::sending::Engine;
use crate::signup::{SignupPolicy, SignupQueue};
use crate::tokens::ManageTokens;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub settings: Settings,
    pub templates: Arc<Templates>,
    pub manage_tokens: ManageTokens,
    pub jwt: JwtKeys,
    /// Login attempts per account and per client address.
    pub login_limiter: Arc<DefaultKeyedRateLimiter<String>>,
    /// Password hashes checked at once (each takes tens of ms and ~19 MiB).
    pub password_slots: tokio::sync::Semaphore,
    pub signups: SignupQueue,
    pub limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    pub metrics: Metrics,
    /// Woken whenever a request queued mail, so the worker sends it at once.
    pub mail_ready: Arc<Notify>,
    /// Newsletter test messages per staff member or key (30 at once, then 2 a minute).
    pub test_send_limiter: DefaultKeyedRateLimiter<String>,
    /// Woken when a newsletter send was requested or resumed.
    pub send_ready: Arc<Notify>,
    pub engine: Arc<Engine>,
    /// Woken when a request queued a task that should start at once (an import, a webhook
    /// test); other webhook deliveries wait for the task worker's next look (every 5 s).
    pub task_ready: Arc<Notify>,
    /// Bounce and complaint intake: which provider endpoints are on, and their secrets.
    pub intake: crate::bounces::Intake,
    /// Streamed exports running at once (`ENLACE_EXPORT_CONCURRENCY`).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// Staff-side template work (checking a draft, previews, test copies) done at once, each on a
    /// blocking thread of its own: one per core.
    pub render_slots: tokio::sync::Semaphore,
    /// Clicks on counted links, gathered in memory and written in batches.
    pub clicks: Arc<crate::clicks::ClickCounter>,
    /// Where each counted link leads, read once per newsletter.
    pub click_targets: crate::services::clicks::ClickTargets,
    /// The public copies of archived newsletters, rendered once each.
    pub archive: crate::services::archive::ArchiveCache,
}

impl AppState {
    pub fn signup_policy(&self) -> SignupPolicy {
        SignupPolicy {
            confirm_ttl: chrono::Duration::hours(i64::from(self.settings.confirm_ttl_hours)),
        }
    }
}
