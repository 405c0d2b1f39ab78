//! Settings: every `ENLACE_*` environment variable (optionally from `enlace.toml`), parsed once.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use url::Url;

/// Everything the service reads from its environment. `enlace --help` prints this list.
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// Database: `sqlite://PATH` (embedded) or `postgres://user@host/db`.
    #[arg(
        long,
        global = true,
        env = "ENLACE_DATABASE_URL",
        default_value = "sqlite://data/enlace.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Address the HTTP server binds.
    #[arg(
        long,
        global = true,
        env = "ENLACE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,

    /// Base URL used in links inside e-mails and pages.
    #[arg(
        long,
        global = true,
        env = "ENLACE_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: Url,

    /// SMTP relay, `smtp://[user:pass@]host:port[?tls=required|opportunistic|none]` or `smtps://…`.
    /// Unset: messages are written as .eml files to DATA_DIR/outbox.
    #[arg(long, global = true, env = "ENLACE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Days a signup that was never confirmed is kept after its confirmation link expired; then
    /// the person, their consent records and tokens are removed.
    #[arg(
        long,
        global = true,
        env = "ENLACE_UNCONFIRMED_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub unconfirmed_retention_days: u32,

    /// Where the staff console is served, below the public URL's path (`/admin`).
    #[arg(
        long,
        global = true,
        env = "ENLACE_CONSOLE_PATH",
        default_value = "/admin"
    )]
    pub console_path: String,

    /// Minutes a console session may sit unused before it ends.
    #[arg(
        long,
        global = true,
        env = "ENLACE_CONSOLE_IDLE_MINUTES",
        default_value_t = 60
    )]
    pub console_idle_minutes: u32,

    /// Hours after signing in that a console session ends, however busy.
    #[arg(
        long,
        global = true,
        env = "ENLACE_CONSOLE_SESSION_HOURS",
        default_value_t = 12
    )]
    pub console_session_hours: u32,

    /// The time zone the console shows dates in for staff who have not chosen one (an IANA
    /// name such as `America/Phoenix`).
    #[arg(long, global = true, env = "ENLACE_TIME_ZONE", default_value = "UTC")]
    pub time_zone: String,

    /// A newsletter's results show any count below this as "fewer than N" (in the API, the
    /// console and the CSV), so results on a small audience cannot single anyone out. `1` shows
    /// every count exactly.
    #[arg(
        long,
        global = true,
        env = "ENLACE_RESULTS_MIN_COUNT",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub results_min_count: u32,

    /// Days a newsletter keeps one delivery row per recipient after it finished (sent or
    /// cancelled); then they are folded into its results, counts by state, language, reason and
    /// hour that name nobody. `0` keeps them.
    #[arg(
        long,
        global = true,
        env = "ENLACE_DELIVERY_RETENTION_DAYS",
        default_value_t = 90
    )]
    pub delivery_retention_days: u32,

    /// Folder for scheduled backups of the SQLite database (unset: none are made). PostgreSQL is
    /// backed up with pg_dump.
    #[arg(long, global = true, env = "ENLACE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Hours between scheduled backups.
    #[arg(
        long,
        global = true,
        env = "ENLACE_BACKUP_INTERVAL_HOURS",
        default_value_t = 24
    )]
    pub backup_interval_hours: u32,

    /// Scheduled backups kept (the oldest are removed).
    #[arg(long, global = true, env = "ENLACE_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,

    /// Key for signing tokens (at least 32 bytes). Unset: generated once into DATA_DIR/secret.key.
    #[arg(long, global = true, env = "ENLACE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Comma-separated keys used before ENLACE_SECRET_KEY (each at least 32 bytes): links and
    /// sessions they signed are still accepted, nothing new is signed with them. Remove a key
    /// once nothing signed with it should work any more.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SECRET_KEY_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secret_key_previous: Vec<String>,

    /// Default From of every message.
    #[arg(
        long,
        global = true,
        env = "ENLACE_FROM",
        default_value = "Enlace <no-reply@localhost>"
    )]
    pub from: String,

    /// Postal address printed in every newsletter footer.
    #[arg(long, global = true, env = "ENLACE_POSTAL_ADDRESS")]
    pub postal_address: Option<String>,

    /// Name of the organisation, shown on pages and in messages.
    #[arg(long, global = true, env = "ENLACE_ORG_NAME", default_value = "Enlace")]
    pub org_name: String,

    /// Bearer token that unlocks the detailed metrics (outcomes, subscribers by status).
    /// Without it, /metrics shows only totals that reveal nothing about any one address.
    #[arg(
        long,
        global = true,
        env = "ENLACE_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Comma-separated origins allowed to call the public endpoints from a browser.
    #[arg(
        long,
        global = true,
        env = "ENLACE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Comma-separated URL prefixes a form may redirect to after signing up.
    #[arg(
        long,
        global = true,
        env = "ENLACE_REDIRECT_ALLOWLIST",
        value_delimiter = ','
    )]
    pub redirect_allowlist: Vec<String>,

    /// Public POSTs allowed per minute per client address (0 = off).
    #[arg(
        long,
        global = true,
        env = "ENLACE_PUBLIC_RATE_LIMIT",
        default_value_t = 20
    )]
    pub public_rate_limit: u32,

    /// Every public signup is answered no sooner than this many milliseconds after it arrived,
    /// so the answer's timing cannot tell a new address from a known or suppressed one.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SIGNUP_ANSWER_MS",
        default_value_t = 50
    )]
    pub signup_answer_ms: u32,

    /// Requests one client (an address, or an IPv6 network of ENLACE_IPV6_PREFIX bits) may have
    /// in progress at once; more are answered 429 at once. Health checks and metrics are exempt.
    #[arg(
        long,
        global = true,
        env = "ENLACE_CLIENT_MAX_REQUESTS",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_requests: u32,

    /// A request body that pauses longer than this many seconds is cut off (408).
    #[arg(
        long,
        global = true,
        env = "ENLACE_BODY_IDLE_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub body_idle_seconds: u32,

    /// A request body not complete this many seconds after the request began is cut off (408).
    #[arg(
        long,
        global = true,
        env = "ENLACE_BODY_TOTAL_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub body_total_seconds: u32,

    /// IPv6 clients are counted per network of this prefix length (one host usually has a /64).
    #[arg(
        long,
        global = true,
        env = "ENLACE_IPV6_PREFIX",
        default_value_t = 64,
        value_parser = clap::value_parser!(u8).range(32..=128)
    )]
    pub ipv6_prefix: u8,

    /// Comma-separated proxy addresses whose X-Forwarded-For is believed.
    #[arg(
        long,
        global = true,
        env = "ENLACE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Folder for the generated secret key and the .eml outbox.
    #[arg(long, global = true, env = "ENLACE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Hours a confirmation link stays valid.
    #[arg(
        long,
        global = true,
        env = "ENLACE_CONFIRM_TTL_HOURS",
        default_value_t = 168
    )]
    pub confirm_ttl_hours: u32,

    /// Largest request body accepted, in bytes.
    #[arg(long, global = true, env = "ENLACE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Largest CSV file accepted by `POST /api/v1/imports`, in bytes.
    #[arg(long, global = true, env = "ENLACE_IMPORT_MAX_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub import_max_bytes: usize,

    /// Messages delivered at once by the mail worker.
    #[arg(
        long,
        global = true,
        env = "ENLACE_MAIL_CONCURRENCY",
        default_value_t = 8
    )]
    pub mail_concurrency: usize,

    /// Seconds a claimed mail stays reserved for the process sending it: one that died holding
    /// it is tried again after this. At least 90 (an SMTP exchange may take 60).
    #[arg(
        long,
        global = true,
        env = "ENLACE_MAIL_LEASE_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u32).range(90..)
    )]
    pub mail_lease_seconds: u32,

    /// Newsletter messages being sent at once per process; also the most messages a crash can
    /// send twice (a message counts until its outcome is recorded).
    #[arg(
        long,
        global = true,
        env = "ENLACE_SEND_CONCURRENCY",
        default_value_t = 16
    )]
    pub send_concurrency: usize,

    /// Newsletter messages per second per process, all senders together (0 = no limit).
    #[arg(long, global = true, env = "ENLACE_SEND_RATE", default_value_t = 0)]
    pub send_rate: u32,

    /// Newsletter messages per second per From address, per process (0 = no limit).
    #[arg(
        long,
        global = true,
        env = "ENLACE_SEND_RATE_PER_SENDER",
        default_value_t = 0
    )]
    pub send_rate_per_sender: u32,

    /// Attempts at a newsletter message before its delivery is recorded as failed.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SEND_MAX_ATTEMPTS",
        default_value_t = 10
    )]
    pub send_max_attempts: i32,

    /// A scheduled newsletter found more than this many minutes past its time (after downtime or
    /// a restored backup) is held as `overdue` until staff send or cancel it.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SEND_OVERDUE_MINUTES",
        default_value_t = 60
    )]
    pub send_overdue_minutes: u32,

    /// Seconds a worker holds the deliveries it claimed; a crashed process's claims are taken
    /// over after this.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SEND_LEASE_SECONDS",
        default_value_t = 300
    )]
    pub send_lease_seconds: u32,

    /// The List-Id header of newsletters (RFC 2919); default `<newsletter.HOST>` from the public URL.
    #[arg(long, global = true, env = "ENLACE_LIST_ID")]
    pub list_id: Option<String>,

    /// DKIM selector; with ENLACE_DKIM_KEY_FILE, every message is signed.
    #[arg(long, global = true, env = "ENLACE_DKIM_SELECTOR")]
    pub dkim_selector: Option<String>,

    /// DKIM signing domain (default: the domain of ENLACE_FROM).
    #[arg(long, global = true, env = "ENLACE_DKIM_DOMAIN")]
    pub dkim_domain: Option<String>,

    /// DKIM private key: an RSA key in PKCS#1 PEM, or an Ed25519 key as base64 of its 32 bytes.
    #[arg(long, global = true, env = "ENLACE_DKIM_KEY_FILE")]
    pub dkim_key_file: Option<PathBuf>,

    /// Soft bounces within ENLACE_SOFT_BOUNCE_WINDOW_HOURS after which an address is treated as
    /// bounced (marked bounced and suppressed).
    #[arg(
        long,
        global = true,
        env = "ENLACE_SOFT_BOUNCE_LIMIT",
        default_value_t = 3
    )]
    pub soft_bounce_limit: u32,

    /// The window, in hours, in which soft bounces are counted.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SOFT_BOUNCE_WINDOW_HOURS",
        default_value_t = 72
    )]
    pub soft_bounce_window_hours: u32,

    /// SNS topic ARNs whose Amazon SES notifications /api/v1/events/ses accepts (comma-separated).
    /// Unset: that endpoint is off.
    #[arg(
        long,
        global = true,
        env = "ENLACE_SES_TOPIC_ARNS",
        value_delimiter = ','
    )]
    pub ses_topic_arns: Vec<String>,

    /// The password of the HTTP Basic credentials set on Postmark's bounce and spam-complaint
    /// webhooks. Unset: /api/v1/events/postmark is off.
    #[arg(
        long,
        global = true,
        env = "ENLACE_POSTMARK_WEBHOOK_TOKEN",
        hide_env_values = true
    )]
    pub postmark_webhook_token: Option<String>,

    /// SendGrid's Event Webhook verification key (base64, as SendGrid shows it). Unset:
    /// /api/v1/events/sendgrid is off.
    #[arg(long, global = true, env = "ENLACE_SENDGRID_WEBHOOK_PUBLIC_KEY")]
    pub sendgrid_webhook_public_key: Option<String>,

    /// Mailgun's HTTP webhook signing key. Unset: /api/v1/events/mailgun is off.
    #[arg(
        long,
        global = true,
        env = "ENLACE_MAILGUN_SIGNING_KEY",
        hide_env_values = true
    )]
    pub mailgun_signing_key: Option<String>,

    /// Let webhooks reach private, loopback and link-local addresses and plain http URLs (a
    /// receiver on the same host or network). Off: only public https targets are allowed.
    #[arg(
        long,
        global = true,
        env = "ENLACE_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_allow_private: bool,

    /// Seconds a webhook receiver has to answer one delivery attempt.
    #[arg(
        long,
        global = true,
        env = "ENLACE_WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = 15
    )]
    pub webhook_timeout_seconds: u32,

    /// Database connections kept in the pool.
    #[arg(long, global = true, env = "ENLACE_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,

    /// Streamed exports running at once; each holds a database connection while it runs.
    /// Further export requests are answered 429 with Retry-After.
    #[arg(
        long,
        global = true,
        env = "ENLACE_EXPORT_CONCURRENCY",
        default_value_t = 2
    )]
    pub export_concurrency: usize,

    /// Log filter, e.g. `info` or `warn,enlace=debug`.
    #[arg(long, global = true, env = "ENLACE_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text` or `json`.
    #[arg(long, global = true, env = "ENLACE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Settings {
    /// Checks what clap cannot: URL schemes and the redirect allow-list.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.backup_dir.is_some() {
            if self.backup_interval_hours == 0 {
                bail!("ENLACE_BACKUP_INTERVAL_HOURS must be at least 1");
            }
            if self.backup_keep == 0 {
                bail!("ENLACE_BACKUP_KEEP must be at least 1");
            }
            if !self.database_url.starts_with("sqlite://") {
                bail!("ENLACE_BACKUP_DIR backs up the SQLite database; back PostgreSQL up with pg_dump");
            }
        }
        if !self.console_path.starts_with('/')
            || self.console_path.len() < 2
            || self.console_path.ends_with('/')
            || !self.console_path[1..].split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        {
            bail!("ENLACE_CONSOLE_PATH must be a path such as /admin (letters, digits, - and _)");
        }
        if [
            "/api",
            "/confirm",
            "/unsubscribe",
            "/preferences",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.yaml",
        ]
        .iter()
        .any(|taken| {
            self.console_path == *taken || self.console_path.starts_with(&format!("{taken}/"))
        }) {
            bail!("ENLACE_CONSOLE_PATH must not be a path the service already answers");
        }
        if self.console_idle_minutes == 0 || self.console_session_hours == 0 {
            bail!(
                "ENLACE_CONSOLE_IDLE_MINUTES and ENLACE_CONSOLE_SESSION_HOURS must be at least 1"
            );
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            bail!("ENLACE_TIME_ZONE must be an IANA time zone name such as America/Phoenix or UTC");
        }
        if !matches!(self.public_url.scheme(), "http" | "https") {
            bail!("ENLACE_PUBLIC_URL must be an http(s) URL");
        }
        for prefix in &self.redirect_allowlist {
            let url = Url::parse(prefix)
                .with_context(|| "ENLACE_REDIRECT_ALLOWLIST holds an invalid URL")?;
            if !matches!(url.scheme(), "http" | "https") {
                bail!("ENLACE_REDIRECT_ALLOWLIST entries must be http(s) URLs");
            }
        }
        if !(self.database_url.starts_with("sqlite://")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            bail!("ENLACE_DATABASE_URL must start with sqlite:// or postgres://");
        }
        if self.export_concurrency == 0
            || self.export_concurrency as u64 >= u64::from(self.db_pool_size)
        {
            bail!("ENLACE_EXPORT_CONCURRENCY must be at least 1 and below ENLACE_DB_POOL_SIZE (each export holds a connection)");
        }
        if self.mail_concurrency == 0 || self.db_pool_size == 0 || self.send_concurrency == 0 {
            bail!("ENLACE_MAIL_CONCURRENCY, ENLACE_SEND_CONCURRENCY and ENLACE_DB_POOL_SIZE must be at least 1");
        }
        if let Some(id) = &self.list_id {
            let ok = id.is_ascii()
                && !id.chars().any(|c| c.is_ascii_control())
                && id.ends_with('>')
                && id.contains('<');
            if !ok {
                bail!("ENLACE_LIST_ID must look like `Name <list.example.org>` (ASCII)");
            }
        }
        if !(1..=300).contains(&self.webhook_timeout_seconds) {
            bail!("ENLACE_WEBHOOK_TIMEOUT_SECONDS must be between 1 and 300");
        }
        if self.send_lease_seconds < 5 {
            bail!("ENLACE_SEND_LEASE_SECONDS must be at least 5");
        }
        if self.send_max_attempts < 1 {
            bail!("ENLACE_SEND_MAX_ATTEMPTS must be at least 1");
        }
        if self.soft_bounce_limit < 1 || self.soft_bounce_window_hours < 1 {
            bail!(
                "ENLACE_SOFT_BOUNCE_LIMIT and ENLACE_SOFT_BOUNCE_WINDOW_HOURS must be at least 1"
            );
        }
        if self.dkim_selector.is_some() != self.dkim_key_file.is_some() {
            bail!("ENLACE_DKIM_SELECTOR and ENLACE_DKIM_KEY_FILE go together");
        }
        Ok(())
    }

    /// The List-Id of newsletters: the setting, or `<newsletter.HOST>` of the public URL.
    pub fn list_id(&self) -> String {
        match &self.list_id {
            Some(id) => id.clone(),
            None => format!(
                "<newsletter.{}>",
                self.public_url.host_str().unwrap_or("localhost")
            ),
        }
    }

    /// The domain messages are DKIM-signed for, when signing is configured.
    pub fn dkim_signing_domain(&self) -> Option<String> {
        self.dkim_selector.as_ref()?;
        match &self.dkim_domain {
            Some(domain) => Some(domain.to_ascii_lowercase()),
            None => self
                .from
                .rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('>').trim().to_ascii_lowercase()),
        }
    }

    /// The public URL without a trailing slash, for joining paths.
    pub fn base_url(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// The keys of a rotation still accepted for checking (never for signing).
    pub fn previous_secret_keys(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        self.secret_key_previous
            .iter()
            .map(|key| key.trim())
            .filter(|key| !key.is_empty())
            .map(|key| {
                if key.len() < 32 {
                    bail!("every key in ENLACE_SECRET_KEY_PREVIOUS must be at least 32 bytes long");
                }
                Ok(key.as_bytes().to_vec())
            })
            .collect()
    }

    /// The signing key: configured, or generated once and kept in `DATA_DIR/secret.key`.
    pub fn load_secret_key(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(key) = &self.secret_key {
            if key.len() < 32 {
                bail!("ENLACE_SECRET_KEY must be at least 32 bytes long");
            }
            return Ok(key.as_bytes().to_vec());
        }
        let path = self.data_dir.join("secret.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let key = existing.trim();
            if key.len() >= 32 {
                crate::files::narrow(&path)
                    .with_context(|| format!("narrowing {}", path.display()))?;
                return Ok(key.as_bytes().to_vec());
            }
            bail!("{} is shorter than 32 bytes", path.display());
        }
        crate::files::create_private_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        let key = crate::tokens::random_token();
        write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(path = %path.display(), "ENLACE_SECRET_KEY is unset; generated a key and saved it");
        Ok(key.into_bytes())
    }
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(crate::files::FILE_MODE);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Copies the keys of an optional `enlace.toml` into `ENLACE_*` variables that are not set yet,
/// so the environment always wins. Call before any thread starts.
pub fn load_config_file(path: &std::path::Path) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    for (key, value) in table {
        let name = format!("ENLACE_{}", key.to_ascii_uppercase());
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        if std::env::var_os(&name).is_none() {
            std::env::set_var(name, value);
        }
    }
    Ok(())
}
