//! The newsletter engine. A scheduler starts due sends (fixing their recipients), holds overdue
//! ones for staff and marks finished ones sent; a pipeline claims deliveries under a lease,
//! renders them, sends them over at most `concurrency` SMTP connections and records each outcome.
//!
//! A message counts as in flight from the moment its content starts going to the SMTP server
//! until its outcome is committed; at most `concurrency` are. (Before the content, the server
//! has only accepted MAIL, RCPT and DATA, and a transaction cut off before its final dot is
//! discarded: nothing is delivered.) A process killed mid-send therefore leaves at most that
//! many messages sent but not recorded: those are the only ones sent twice when the lease runs
//! out and another worker takes them over. Each connection opens its next transaction while
//! the outcome of its last message is being committed, so the commits cost no SMTP time.
//!
//! Tuned hot path: this code is measured by `bench/blast.sh` (messages a second and CPU per
//! message against a bare SMTP client in the same run, docs/benchmarks.md). It stays outside
//! the service layer and the shared job runner on purpose; measure before and after any change.

pub mod guard;
mod lease;
pub mod prepare;
mod recheck;
mod recorder;
pub mod results;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDateTime};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter};
use tokio::sync::{mpsc, Notify, Semaphore};

pub use prepare::{NewsletterCache, PreparedNewsletter};
pub use recorder::outcome_class;

use crate::db::{self, deliveries, newsletters, Db};
use crate::email::{Handed, Mailer, SendError, Templates};
use crate::metrics::Metrics;
use crate::tokens::ManageTokens;
use lease::{ClaimLease, Leases};
use recheck::{Recheck, Standing};
use recorder::{Outcome, Recorder, Verdict};

/// How often a running pipeline re-reads which newsletters are sending (pause, cancel, and
/// other processes' starts show within this).
const REFRESH: StdDuration = StdDuration::from_millis(250);
/// How often an idle engine looks for due work without being woken.
const IDLE_POLL: StdDuration = StdDuration::from_secs(1);
/// How often a running pipeline looks for deliveries whose lease ran out (a crashed process's),
/// in seconds; and always once more before it stops for lack of work.
const EXPIRED_CHECK_SECS: i64 = 1;

/// Everything the engine needs; built once by `Application::build`.
pub struct Engine {
    pub db: Db,
    pub mailer: Arc<Mailer>,
    pub templates: Arc<Templates>,
    pub tokens: ManageTokens,
    pub base_url: String,
    /// Signs the links of newsletters that count clicks.
    pub links: crate::clicks::LinkSigner,
    pub list_id: String,
    /// Counts below this are not given exactly in results (`ENLACE_RESULTS_MIN_COUNT`).
    pub results_min_count: u32,
    pub concurrency: usize,
    pub max_attempts: i32,
    /// A scheduled send found later than this past its time is held for staff.
    pub overdue_after: Duration,
    pub rate: Option<DefaultDirectRateLimiter>,
    /// The slowest of the two rate limits, in messages per second, if any is set.
    pub pace: Option<u32>,
    pub sender_rate: Option<DefaultKeyedRateLimiter<String>>,
    pub metrics: Metrics,
    pub cache: NewsletterCache,
    /// How long claimed deliveries stay reserved; a crashed process's claims return after this.
    pub lease: Duration,
    /// Set at shutdown: nothing more is claimed, and what is claimed but unsent is put back.
    pub stopping: AtomicBool,
    /// The marks of batches being rendered, and what a failed render does to a send.
    pub render_guard: guard::RenderGuard,
}

/// One delivery ready to go (or already decided).
pub(crate) struct Ready {
    newsletter_id: String,
    claim: String,
    subscriber_id: String,
    attempts: i32,
    mail: Result<crate::email::PreparedMail, Verdict>,
    /// For a hard bounce: the address's suppression hash.
    email_hash: Option<String>,
    sender: String,
    /// The claim's lease, renewed while this process holds it.
    lease: ClaimLease,
}

/// One sending newsletter's producer: claims its rounds, renders them and hands them to the
/// senders, until nothing of it is due.
struct Round {
    engine: Arc<Engine>,
    newsletter_id: String,
    active: Arc<RwLock<Vec<String>>>,
    leases: Arc<Leases>,
    ready: mpsc::Sender<Ready>,
    failed: Arc<AtomicBool>,
}

impl Round {
    fn still_active(&self) -> bool {
        self.active
            .read()
            .expect("active set")
            .iter()
            .any(|a| a == &self.newsletter_id)
    }

    fn deactivate(&self) {
        self.active
            .write()
            .expect("active set")
            .retain(|a| a != &self.newsletter_id);
    }

    async fn produce(self, clock: impl Fn() -> NaiveDateTime) -> anyhow::Result<()> {
        let engine = &self.engine;
        let limit = engine.round_size() as i64;
        let lease = engine.lease;
        let mut expired_checked_at: Option<NaiveDateTime> = None;
        let mut last_pass = false;
        loop {
            if engine.stopping.load(Ordering::Relaxed)
                || self.failed.load(Ordering::Relaxed)
                || !self.still_active()
            {
                return Ok(());
            }
            let take_expired = last_pass
                || expired_checked_at
                    .is_none_or(|at| clock() - at >= Duration::seconds(EXPIRED_CHECK_SECS));
            if take_expired {
                expired_checked_at = Some(clock());
            }
            let now = clock();
            let claim = db::new_id();
            let claimed = {
                let engine = engine.clone();
                let (id, claim) = (self.newsletter_id.clone(), claim.clone());
                engine
                    .db
                    .clone()
                    .transaction(move |c| -> Result<_, db::DbError> {
                        let request = guard::ClaimRequest {
                            newsletter_id: &id,
                            claim: &claim,
                            now,
                            until: now + lease,
                            limit,
                            take_expired,
                        };
                        Ok(engine.render_guard.claim(c, &request)?)
                    })
                    .await?
            };
            let batch = match claimed {
                guard::Claimed::Batch(batch) if !batch.is_empty() => batch,
                guard::Claimed::Batch(_) | guard::Claimed::Wait => {
                    if take_expired {
                        return Ok(());
                    }
                    // Nothing due: one more look that also takes expired leases, then stop.
                    last_pass = true;
                    continue;
                }
                guard::Claimed::Paused => {
                    tracing::error!(newsletter_id = %self.newsletter_id, "newsletter paused: a process stopped twice while rendering the same messages");
                    self.deactivate();
                    return Ok(());
                }
            };
            last_pass = false;
            let held = self.leases.hold(&self.newsletter_id, &claim, now + lease);
            let prepared = prepare::prepare(engine, &self.newsletter_id, &claim, held, batch).await;
            let items = match prepared {
                Ok(items) => items,
                Err(e) => {
                    engine.render_guard.forget(&claim);
                    return Err(e);
                }
            };
            let mut failures = 0;
            let mut last = None;
            for item in &items {
                if let Err(Verdict::Failed(why)) = &item.mail {
                    if why.starts_with(guard::RENDER_FAILURE) {
                        failures += 1;
                        last = Some(why.clone());
                    }
                }
            }
            let paused = engine
                .render_guard
                .rendered(&engine.db, &self.newsletter_id, &claim, failures, last)
                .await;
            if paused {
                // Its rendered messages are put back unsent (see `deliver`).
                self.deactivate();
            }
            for item in items {
                if self.ready.send(item).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Delay before attempt `n + 1` of a newsletter message: 1 min doubling, at most 1 hour.
fn backoff(attempts: i32) -> Duration {
    Duration::seconds(
        60i64
            .saturating_mul(1i64 << attempts.clamp(1, 7).saturating_sub(1))
            .min(3600),
    )
}

impl Engine {
    /// Starts, holds and finishes sends as their time comes. Returns whether anything started.
    pub async fn schedule(&self, now: NaiveDateTime) -> anyhow::Result<bool> {
        let cutoff = now - self.overdue_after;
        let held = self
            .db
            .transaction(move |c| -> Result<_, db::DbError> {
                Ok(newsletters::hold_overdue(c, cutoff, now)?)
            })
            .await?;
        for id in held {
            tracing::warn!(newsletter_id = %id, "scheduled newsletter is overdue; held until staff send or cancel it");
        }
        let due = self
            .db
            .run(move |conn| newsletters::due_newsletters(conn, now).map_err(db::DbError::from))
            .await?;
        let mut started = false;
        for newsletter in due {
            let id = newsletter.id.clone();
            match prepare::start(&self.db, newsletter, now).await {
                Ok(Some(count)) => {
                    started = true;
                    tracing::info!(newsletter_id = %id, recipients = count, "newsletter send started");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(newsletter_id = %id, error = format!("{e:#}"), "could not start a newsletter send")
                }
            }
        }
        let threshold = self.results_min_count;
        let finished = self
            .db
            .transaction(move |c| -> Result<_, db::DbError> {
                deliveries::skip_cancelled(c)?;
                let finished = newsletters::finish_completed(c, now)?;
                crate::webhooks::emit_newsletters(
                    c,
                    crate::webhooks::EventType::NewsletterFinished,
                    &finished,
                    now,
                    Some(
                        &move |c: &mut db::AnyConnection, n: &newsletters::Newsletter| {
                            results::summarize(c, n.clone(), now)
                                .map(|r| results::summary_json(&r, threshold))
                        },
                    ),
                )?;
                Ok(finished)
            })
            .await?;
        for id in finished {
            tracing::info!(newsletter_id = %id, "newsletter sent");
        }
        Ok(started)
    }

    /// Runs the scheduler and sends everything due at `now` (and whatever becomes due while it
    /// runs); returns how many deliveries were handled. Tests drive the engine with this.
    pub async fn run_pending(self: &Arc<Self>, now: NaiveDateTime) -> anyhow::Result<usize> {
        let started = db::now();
        let clock = move || now + (db::now() - started);
        self.schedule(clock()).await?;
        let active = Arc::new(RwLock::new(self.sending_ids().await?));
        if active.read().expect("active set").is_empty() {
            return Ok(0);
        }
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>(self.round_size() * 2);
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let (recorder, outcomes) = Recorder::start(
            self.db.clone(),
            recorder::Slots {
                semaphore: permits.clone(),
                total: self.concurrency,
            },
        );
        let leases = Arc::new(Leases::new(self.lease));
        let recheck = Recheck::start(self.db.clone());

        // Keeps the set of sending newsletters fresh, and the claims renewed, while the pipeline
        // runs (until every outcome is recorded).
        let stop_refresh = Arc::new(Notify::new());
        let refresher = {
            let engine = self.clone();
            let active = active.clone();
            let stop = stop_refresh.clone();
            let leases = leases.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.notified() => return,
                        _ = tokio::time::sleep(REFRESH) => {}
                    }
                    if let Err(e) = leases.renew_if_due(&engine.db, clock()).await {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "could not renew the newsletter deliveries' leases"
                        );
                    }
                    if let Err(e) = engine.schedule(clock()).await {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "newsletter scheduler could not reach the database"
                        );
                        continue;
                    }
                    if let Ok(ids) = engine.sending_ids().await {
                        *active.write().expect("active set") = ids;
                    }
                }
            })
        };

        let producer = {
            let engine = self.clone();
            let active = active.clone();
            let leases = leases.clone();
            tokio::spawn(async move { engine.produce(active, leases, ready_tx, clock).await })
        };
        let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // One sender task per connection, each taking the next prepared message as soon as it
        // is done with its last (as a bare SMTP client would): the tasks spread over every
        // worker thread, and no task is spawned, nor joined, per message.
        let ready_rx = Arc::new(tokio::sync::Mutex::new(ready_rx));
        let senders: Vec<_> = (0..self.concurrency)
            .map(|_| {
                let engine = self.clone();
                let active = active.clone();
                let permits = permits.clone();
                let outcomes = outcomes.clone();
                let handled = handled.clone();
                let ready_rx = ready_rx.clone();
                let recheck = recheck.clone();
                tokio::spawn(async move {
                    loop {
                        let Some(ready) = ready_rx.lock().await.recv().await else {
                            return;
                        };
                        handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let outcome = engine
                            .deliver(ready, &active, &permits, &recheck, clock)
                            .await;
                        let _ = outcomes.send(outcome);
                    }
                })
            })
            .collect();
        drop(recheck);
        for sender in senders {
            if let Err(e) = sender.await {
                tracing::error!(error = %e, "a newsletter sender task failed");
            }
        }
        let produced = producer.await;
        drop(outcomes);
        let recorded = recorder.finish().await;
        stop_refresh.notify_one();
        let _ = refresher.await;
        produced??;
        recorded?;
        self.schedule(clock()).await?;
        Ok(handled.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Deliveries claimed at once. Up to three rounds are claimed ahead of the senders (one
    /// being prepared, two waiting), and under a rate limit they must all go out within half
    /// a lease, or they would be released unsent and claimed again.
    fn round_size(&self) -> usize {
        let by_concurrency = self.concurrency * 8;
        match self.pace {
            Some(per_second) => {
                let budget = (self.lease.num_seconds().max(1) as usize / 2) * per_second as usize;
                by_concurrency
                    .min(budget.saturating_sub(self.concurrency) / 3)
                    .max(1)
            }
            None => by_concurrency,
        }
    }

    async fn sending_ids(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .db
            .run(|conn| newsletters::sending_ids(conn).map_err(db::DbError::from))
            .await?)
    }

    /// Claims and renders the rounds of every sending newsletter, each newsletter in a task of
    /// its own, so that one whose messages are slow to render (or to claim) holds back only
    /// itself: the rounds of all of them meet in one queue to the senders, which takes them in
    /// the order they are offered when it is full. A newsletter's task ends when it finds nothing
    /// due; while the newsletter is still sending (retries not yet due, or another newsletter
    /// still going) it is looked at again a second later. Ends once no task is running.
    async fn produce(
        self: Arc<Self>,
        active: Arc<RwLock<Vec<String>>>,
        leases: Arc<Leases>,
        ready: mpsc::Sender<Ready>,
        clock: impl Fn() -> NaiveDateTime + Copy + Send + Sync + 'static,
    ) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut running: HashSet<String> = HashSet::new();
        let mut drained_at: HashMap<String, NaiveDateTime> = HashMap::new();
        // Set once a task fails: the others stop claiming, and the error is returned when they
        // have handed over what they claimed.
        let failed = Arc::new(AtomicBool::new(false));
        let mut first_error: Option<anyhow::Error> = None;
        loop {
            if first_error.is_none() && !self.stopping.load(Ordering::Relaxed) {
                let ids = active.read().expect("active set").clone();
                for id in ids {
                    let recently = drained_at
                        .get(&id)
                        .is_some_and(|at| clock() - *at < Duration::seconds(EXPIRED_CHECK_SECS));
                    if recently || !running.insert(id.clone()) {
                        continue;
                    }
                    let round = Round {
                        engine: self.clone(),
                        newsletter_id: id.clone(),
                        active: active.clone(),
                        leases: leases.clone(),
                        ready: ready.clone(),
                        failed: failed.clone(),
                    };
                    tasks.spawn(async move { (id, round.produce(clock).await) });
                }
            }
            if tasks.is_empty() {
                break;
            }
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(Ok((id, result))) => {
                        running.remove(&id);
                        drained_at.insert(id, clock());
                        if let Err(e) = result {
                            failed.store(true, Ordering::Relaxed);
                            first_error.get_or_insert(e);
                        }
                    }
                    Some(Err(e)) => {
                        // A task that panicked: its newsletter stays in `running` (not taken up
                        // again by this pass); its claims return when their lease runs out.
                        failed.store(true, Ordering::Relaxed);
                        first_error.get_or_insert(anyhow::anyhow!("a newsletter producer failed: {e}"));
                    }
                    None => {}
                },
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends one delivery (unless its newsletter stopped meanwhile) and says what became of it.
    async fn deliver(
        &self,
        ready: Ready,
        active: &RwLock<Vec<String>>,
        permits: &Arc<Semaphore>,
        recheck: &Recheck,
        clock: impl Fn() -> NaiveDateTime,
    ) -> Outcome {
        // Paused, cancelled, shutting down, or the lease nearly over because it could not be
        // renewed (another worker may take the delivery then): not sent now, put back as it was.
        let lease = ready.lease.clone();
        let still_sending = |id: &str| {
            !self.stopping.load(Ordering::Relaxed)
                && clock() + Duration::seconds(1) < lease.until()
                && active.read().expect("active set").iter().any(|a| a == id)
        };
        let mut outcome = Outcome {
            newsletter_id: ready.newsletter_id,
            claim: ready.claim,
            subscriber_id: ready.subscriber_id,
            attempts: ready.attempts,
            verdict: Verdict::Release,
            bounced_hash: None,
            permit: None,
            at: clock(),
        };
        // Rendered, built, encoded and signed before it got here. A connection covers the SMTP
        // exchange; an in-flight slot only the message's content and the commit of its outcome.
        let mail = match ready.mail {
            Ok(mail) => mail,
            Err(verdict) => {
                outcome.verdict = verdict;
                return outcome;
            }
        };
        if !still_sending(&outcome.newsletter_id) {
            return outcome;
        }
        if let Some(limiter) = &self.sender_rate {
            limiter.until_key_ready(&ready.sender).await;
        }
        if let Some(limiter) = &self.rate {
            limiter.until_ready().await;
        }
        // Paused or cancelled while waiting for the rate limit: not sent.
        if !still_sending(&outcome.newsletter_id) {
            return outcome;
        }
        // The transaction is opened (MAIL, RCPT, DATA) while the slots are all taken, typically
        // by outcomes being committed; the content waits for a free one, and for a database
        // read started as the exchange began that finds the recipient still confirmed and not
        // suppressed (an unsubscribe committed before the exchange began, by any process, stops
        // the message). The read runs while the transaction opens.
        let standing = std::sync::Mutex::new(Standing::Unknown);
        let gate = || {
            let answer = recheck.ask(&outcome.subscriber_id, ready.email_hash.as_deref());
            let (permits, standing) = (permits.clone(), &standing);
            let (still_sending, newsletter_id) = (&still_sending, &outcome.newsletter_id);
            async move {
                let (permit, now) = tokio::join!(permits.acquire_owned(), answer);
                let permit = permit.expect("permits never close");
                *standing.lock().expect("standing") = now;
                // Paused or cancelled meanwhile, or no longer to be mailed: withheld.
                (now == Standing::Eligible && still_sending(newsletter_id)).then_some(permit)
            }
        };
        let handed = self.mailer.send_prepared_gated(mail, gate).await;
        let standing = standing.into_inner().expect("standing");
        let sent = match handed {
            Handed::Withheld => {
                if let Standing::Ineligible(why) = standing {
                    outcome.verdict = Verdict::Skipped(why);
                }
                return outcome;
            }
            Handed::NotSent(e) => Err(e),
            Handed::Sent(result, permit) => {
                outcome.permit = Some(permit);
                result
            }
        };
        outcome.verdict = match sent {
            Ok(()) => {
                self.metrics.mail_sent("newsletter");
                Verdict::Sent
            }
            Err(SendError::Permanent(e)) => {
                self.metrics.mail_failed("newsletter");
                if recorder::is_hard_bounce(&e) {
                    outcome.bounced_hash = ready.email_hash;
                }
                tracing::warn!(newsletter_id = %outcome.newsletter_id, subscriber_id = %outcome.subscriber_id, error = %e, "newsletter message refused");
                Verdict::Failed(e)
            }
            Err(SendError::Transient(e)) => {
                tracing::warn!(newsletter_id = %outcome.newsletter_id, subscriber_id = %outcome.subscriber_id, attempt = outcome.attempts, error = %e, "newsletter message not sent; will retry");
                if outcome.attempts >= self.max_attempts {
                    self.metrics.mail_failed("newsletter");
                    Verdict::Failed(e)
                } else {
                    Verdict::Retry(e, clock() + backoff(outcome.attempts))
                }
            }
        };
        outcome.at = clock();
        outcome
    }

    /// The loop `enlace serve` runs: sends while there is work, otherwise waits to be woken
    /// (a send was requested) or polls every second (schedules, other processes, retries).
    pub async fn run_forever(
        self: Arc<Self>,
        wake: Arc<Notify>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        {
            let engine = self.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                while !*shutdown.borrow() {
                    if shutdown.changed().await.is_err() {
                        break;
                    }
                }
                engine.stopping.store(true, Ordering::Relaxed);
            });
        }
        // The same loop as the queue workers': a round, then a wake-up, the idle poll or shutdown.
        crate::jobs::serve("newsletter", wake, shutdown, || async {
            self.run_pending(db::now()).await?;
            Ok(IDLE_POLL)
        })
        .await
    }
}
