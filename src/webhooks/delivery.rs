//! Delivering one webhook message: sign it, POST it, and record the attempt. A 2xx answer is
//! delivery; anything else, or no answer in time, is retried by the queue with the same
//! `webhook-id`; `410 Gone` means the receiver is gone for good and disables the endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::target::{self, GuardedResolver};
use crate::db::ids::WebhookEndpointId;
use crate::db::jobs::ClaimedJob;
use crate::db::webhooks::{self as store, Attempt, EndpointChanges};
use crate::db::{self, Db, DbError};
use crate::jobs::TaskOutcome;

/// How much of a receiver's answer the delivery log keeps.
const KEPT_RESPONSE_BYTES: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client for deliveries and the rules it follows.
pub struct Deliverer {
    client: reqwest::Client,
    allow_private: bool,
}

/// What one attempt came to.
struct Response {
    status: Option<u16>,
    error: Option<String>,
    body: Option<String>,
    elapsed: Duration,
}

impl Deliverer {
    /// `timeout` bounds a whole attempt (connecting, sending, and reading the answer).
    pub fn new(allow_private: bool, timeout: Duration) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("Enlace-Webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, out of reach of the guard below.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .pool_max_idle_per_host(2);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
        })
    }

    /// Runs one `webhook.deliver` job (its payload is the message id).
    pub async fn deliver(&self, db: &Db, job: &ClaimedJob) -> TaskOutcome {
        match self.try_deliver(db, job).await {
            Ok(outcome) => outcome,
            Err(e) => TaskOutcome::Retry(format!("{e:#}")),
        }
    }

    async fn try_deliver(&self, db: &Db, job: &ClaimedJob) -> Result<TaskOutcome, DbError> {
        let message_id = job.payload.clone();
        let found = db
            .run(move |conn| -> Result<_, DbError> {
                let Some(message) = store::find_message(conn, &message_id)? else {
                    return Ok(None);
                };
                let endpoint = match WebhookEndpointId::parse(&message.endpoint_id) {
                    Some(id) => store::find_endpoint(conn, &id)?,
                    None => None,
                };
                Ok(Some((message, endpoint)))
            })
            .await?;
        let Some((message, Some(endpoint))) = found else {
            return Ok(TaskOutcome::Dropped(
                "the message or its endpoint was deleted",
            ));
        };
        if message.state != store::WebhookMessageState::Pending {
            return Ok(TaskOutcome::Dropped("the message was settled meanwhile"));
        }
        if !endpoint.enabled {
            let id = message.id.clone();
            db.write(move |conn| {
                db::write_transaction(conn, |conn| {
                    store::settle_message(
                        conn,
                        &id,
                        store::WebhookMessageState::Dropped,
                        message.attempts,
                        None,
                        Some("the endpoint is disabled"),
                        db::now(),
                    )
                })
                .map_err(DbError::from)
            })
            .await?;
            return Ok(TaskOutcome::Dropped("the endpoint is disabled"));
        }
        let secrets: Vec<String> = endpoint
            .signing_secrets(db::now())
            .into_iter()
            .map(str::to_owned)
            .collect();
        let response = self
            .post(&endpoint.url, &secrets, &message.id, &message.payload)
            .await;
        let delivered = response.status.is_some_and(|s| (200..300).contains(&s));
        let gone = response.status == Some(410);
        // The queue records the job as failed after this attempt (tasks::record).
        let last_try = job.attempts >= job.max_attempts;
        let failure = response.error.clone().or_else(|| {
            response
                .status
                .filter(|_| !delivered)
                .map(|s| format!("the receiver answered {s}"))
        });
        let state = if delivered {
            store::WebhookMessageState::Delivered
        } else if gone || last_try {
            store::WebhookMessageState::Failed
        } else {
            store::WebhookMessageState::Pending
        };
        tracing::info!(
            message_id = %message.id,
            endpoint_id = %endpoint.id,
            attempt = job.attempts,
            status = response.status,
            state = state.as_str(),
            "webhook delivery attempt"
        );
        let attempt = Attempt {
            id: db::new_id(),
            message_id: message.id.clone(),
            attempt: job.attempts,
            attempted_at: db::now(),
            status_code: response.status.map(i32::from),
            error: response.error.clone(),
            response: response.body.clone(),
            duration_ms: i32::try_from(response.elapsed.as_millis()).unwrap_or(i32::MAX),
        };
        let recorded_failure = failure.clone();
        let endpoint_id = endpoint.id.clone();
        let exhausted = !delivered && !gone && last_try;
        let since = message.created_at;
        db.write(move |conn| {
            db::write_transaction(conn, |conn| -> diesel::QueryResult<()> {
                let now = db::now();
                store::insert_attempt(conn, &attempt)?;
                if state == store::WebhookMessageState::Delivered {
                    // The log keeps a month (trimmed here and hourly: `prune_log`).
                    super::prune_log(conn, now)?;
                }
                store::settle_message(
                    conn,
                    &attempt.message_id,
                    state,
                    attempt.attempt,
                    attempt.status_code,
                    recorded_failure.as_deref(),
                    now,
                )?;
                if gone {
                    let why = "the receiver answered 410 Gone";
                    store::update_endpoint(
                        conn,
                        &endpoint_id,
                        &EndpointChanges {
                            enabled: Some(false),
                            disabled_reason: Some(Some(why.into())),
                            updated_at: Some(now),
                            ..Default::default()
                        },
                    )?;
                    store::drop_pending_for_endpoint(conn, &endpoint_id, why, now)?;
                } else if exhausted && !store::delivered_since(conn, &endpoint_id, since)? {
                    // Nothing has got through since this message was queued, a day ago: the
                    // receiver is gone or broken. Staff turn it on again once it is fixed.
                    let why = "nothing was delivered for a day (every attempt at a message failed)";
                    store::update_endpoint(
                        conn,
                        &endpoint_id,
                        &EndpointChanges {
                            enabled: Some(false),
                            disabled_reason: Some(Some(why.into())),
                            updated_at: Some(now),
                            ..Default::default()
                        },
                    )?;
                    store::drop_pending_for_endpoint(conn, &endpoint_id, why, now)?;
                }
                Ok(())
            })
            .map_err(DbError::from)
        })
        .await?;
        if gone {
            tracing::warn!(endpoint_id = %endpoint.id, "webhook endpoint answered 410 Gone; disabled");
        }
        Ok(match (delivered, gone, failure) {
            (true, _, _) => TaskOutcome::Done,
            (false, true, _) => TaskOutcome::Failed("the receiver answered 410 Gone".into()),
            (false, false, failure) => {
                TaskOutcome::Retry(failure.unwrap_or_else(|| "not delivered".into()))
            }
        })
    }

    /// One signed POST. The timestamp is the attempt's own, so a retry is signed afresh.
    async fn post(&self, url: &str, secrets: &[String], id: &str, body: &str) -> Response {
        let started = Instant::now();
        let fail = |error: String| Response {
            status: None,
            error: Some(error),
            body: None,
            elapsed: started.elapsed(),
        };
        // Checked again at every attempt: the setting may have changed since the URL was saved,
        // and a literal address never reaches the resolver.
        let url = match target::parse_url(url, self.allow_private) {
            Ok(url) => url,
            Err(why) => return fail(format!("the endpoint URL {why}")),
        };
        if !self.allow_private && target::literal_ip(&url).is_some_and(target::is_forbidden) {
            return fail(format!("the endpoint URL {}", target::REFUSED));
        }
        let timestamp = Utc::now().timestamp();
        let signatures: Option<Vec<String>> = secrets
            .iter()
            .map(|secret| super::signing::sign(secret, id, timestamp, body.as_bytes()))
            .collect();
        let Some(signatures) = signatures else {
            return fail("the endpoint's secret is unreadable".into());
        };
        // During a rotation both secrets sign; receivers accept either (space-separated).
        let signature = signatures.join(" ");
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return fail(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        // Only the start of the answer is read; the rest is dropped with the connection.
        while kept.len() < KEPT_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        kept.truncate(KEPT_RESPONSE_BYTES);
        Response {
            status: Some(status),
            error: None,
            body: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
            elapsed: started.elapsed(),
        }
    }
}

/// A transport error in words, without the URL (it may carry a token in its query).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".into();
    }
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

impl crate::jobs::TaskHandler for Deliverer {
    fn kind(&self) -> &'static str {
        crate::db::webhooks::DELIVER_KIND
    }

    fn run<'a>(
        &'a self,
        db: &'a Db,
        job: &'a ClaimedJob,
    ) -> futures_util::future::BoxFuture<'a, TaskOutcome> {
        Box::pin(self.deliver(db, job))
    }
}
