//! What keeps one newsletter's content from taking the engine down with it. Each batch is marked
//! as being rendered in the transaction that claims it, and unmarked once rendered: a process
//! that dies while rendering leaves its mark. Processes are killed for many reasons, so that
//! batch is only a suspect: once its lease runs out it is rendered again alone, before any other
//! message of the newsletter. If a process dies on it again, the same messages killed two
//! processes, and the newsletter is paused instead of being claimed by a third (no crash loop).
//! Messages that fail to render fail alone; past `MAX_RENDER_FAILURES` the newsletter is paused.
//! Either way staff read why in `pause_reason`.

use std::sync::Mutex;

use chrono::NaiveDateTime;

use crate::db::deliveries::{self, ClaimedDelivery};
use crate::db::newsletters::{self, Newsletter};
use crate::db::{self, AnyConnection, Db};

/// Messages of one newsletter that may fail to render (since it started or was last resumed)
/// before it is paused: one person's unusual data fails one message, a template that fails for
/// many stops the send.
pub const MAX_RENDER_FAILURES: i32 = 5;

/// How long a mark made before this process started may still be a live process's (one batch
/// renders in milliseconds): past it, the mark's process died. Until then, the newsletter waits.
pub const MARK_GRACE_SECONDS: i64 = 10;

/// Why a newsletter is paused when a process died rendering the same messages again.
pub const DIED_RENDERING: &str = "a process stopped twice while rendering the same messages of this newsletter (its content may crash Enlace); check the content, then resume or cancel the send";

/// Outcomes of messages that could not be rendered start with this.
pub const RENDER_FAILURE: &str = "rendering: ";

/// This process's view of the marks.
pub struct RenderGuard {
    /// Marks made before this moment belong to a process that may have died rendering: their
    /// newsletters wait until the mark is removed (its process lives) or `MARK_GRACE_SECONDS`
    /// have passed (it died). A mark whose lease ran out unrenewed is a dead process's too.
    started_at: NaiveDateTime,
    /// Marks of rendered batches that could not be removed (the database was unreachable):
    /// removed with the next claim, so they never pause a newsletter that rendered fine.
    stale: Mutex<Vec<String>>,
}

impl Default for RenderGuard {
    fn default() -> Self {
        Self {
            started_at: db::now(),
            stale: Mutex::new(Vec::new()),
        }
    }
}

/// What claiming a batch of one newsletter came to.
pub enum Claimed {
    /// Deliveries to render, marked as being rendered (none when nothing is due).
    Batch(Vec<ClaimedDelivery>),
    /// A mark left from before this process started may still be live, or a suspect batch is
    /// still within its lease: nothing claimed for now.
    Wait,
    /// A process died rendering a suspect batch again: paused.
    Paused,
}

/// One claim, as `deliveries::claim_deliveries` takes it.
pub struct ClaimRequest<'a> {
    pub newsletter_id: &'a str,
    pub claim: &'a str,
    pub now: NaiveDateTime,
    pub until: NaiveDateTime,
    pub limit: i64,
    pub take_expired: bool,
}

impl RenderGuard {
    /// Claims a batch (in the caller's write transaction): the suspect batch of a process that
    /// died rendering, alone, when there is one; otherwise due deliveries. A process that died
    /// rendering a suspect pauses the newsletter instead.
    pub fn claim(
        &self,
        conn: &mut AnyConnection,
        req: &ClaimRequest,
    ) -> diesel::QueryResult<Claimed> {
        let stale = std::mem::take(&mut *self.stale.lock().unwrap_or_else(|p| p.into_inner()));
        newsletters::clear_render_marks(conn, &stale)?;
        let marks = newsletters::render_marks_of(conn, req.newsletter_id)?;
        let grace = req.now - chrono::Duration::seconds(MARK_GRACE_SECONDS);
        let inherited = |started_at: NaiveDateTime| started_at < self.started_at;
        let mut suspect = None;
        let mut live_inherited = false;
        for mark in marks {
            if mark.kind == newsletters::MARK_SUSPECT {
                suspect = Some(mark.claim);
                continue;
            }
            let dead = mark.locked_until < req.now
                || (inherited(mark.started_at) && mark.started_at < grace);
            if !dead {
                live_inherited |= inherited(mark.started_at);
                continue;
            }
            // Of two processes that find the same dead mark at once (PostgreSQL), only the one
            // that removes it acts on it.
            let claims = [mark.claim];
            if newsletters::clear_render_marks(conn, &claims)? == 0 {
                continue;
            }
            let [claim] = claims;
            if mark.kind == newsletters::MARK_PROBE {
                newsletters::pause_with_reason(conn, req.newsletter_id, DIED_RENDERING, req.now)?;
                newsletters::clear_render_marks_of(conn, req.newsletter_id)?;
                return Ok(Claimed::Paused);
            }
            tracing::warn!(
                newsletter_id = req.newsletter_id,
                "a process stopped while rendering a batch of this newsletter; the batch is rendered again alone once its lease runs out"
            );
            if suspect.is_none() {
                newsletters::mark_rendering(
                    conn,
                    req.newsletter_id,
                    &claim,
                    newsletters::MARK_SUSPECT,
                    req.now,
                    mark.locked_until,
                )?;
                suspect = Some(claim);
            }
        }
        if live_inherited {
            return Ok(Claimed::Wait);
        }
        if let Some(held) = suspect {
            match deliveries::claim_held_deliveries(
                conn,
                req.newsletter_id,
                &held,
                req.claim,
                req.now,
                req.until,
            )? {
                deliveries::Held::Leased => return Ok(Claimed::Wait),
                deliveries::Held::Gone => {
                    newsletters::clear_render_marks(conn, &[held])?;
                }
                deliveries::Held::Claimed(batch) => {
                    newsletters::clear_render_marks(conn, &[held])?;
                    newsletters::mark_rendering(
                        conn,
                        req.newsletter_id,
                        req.claim,
                        newsletters::MARK_PROBE,
                        req.now,
                        req.until,
                    )?;
                    return Ok(Claimed::Batch(batch));
                }
            }
        }
        let batch = deliveries::claim_deliveries(
            conn,
            req.newsletter_id,
            req.claim,
            req.now,
            req.until,
            req.limit,
            req.take_expired,
        )?;
        if !batch.is_empty() {
            newsletters::mark_rendering(
                conn,
                req.newsletter_id,
                req.claim,
                newsletters::MARK_BATCH,
                req.now,
                req.until,
            )?;
        }
        Ok(Claimed::Batch(batch))
    }

    /// Unmarks a rendered batch and counts the messages that could not be rendered (`last` is
    /// the reason of one of them); returns whether the newsletter was paused for them.
    pub async fn rendered(
        &self,
        db: &Db,
        newsletter_id: &str,
        claim: &str,
        failures: i32,
        last: Option<String>,
    ) -> bool {
        let (id, claim_id) = (newsletter_id.to_owned(), claim.to_owned());
        let written = db
            .transaction(move |c| -> Result<Option<i32>, db::DbError> {
                newsletters::clear_render_marks(c, std::slice::from_ref(&claim_id))?;
                if failures == 0 {
                    return Ok(None);
                }
                let total = newsletters::add_render_failures(c, &id, failures)?;
                if total < MAX_RENDER_FAILURES {
                    return Ok(None);
                }
                let reason = format!(
                    "{total} messages could not be rendered (the last: {}); check the content, then resume or cancel the send",
                    last.as_deref()
                        .unwrap_or("unknown")
                        .trim_start_matches(RENDER_FAILURE)
                );
                Ok(newsletters::pause_with_reason(c, &id, &reason, db::now())?.then_some(total))
            })
            .await;
        match written {
            Ok(Some(total)) => {
                tracing::error!(
                    newsletter_id,
                    failures = total,
                    "newsletter paused: too many of its messages could not be rendered"
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(
                    newsletter_id,
                    error = format!("{e:#}"),
                    "could not record a rendered batch; its mark is removed with the next claim"
                );
                self.forget(claim);
                false
            }
        }
    }

    /// The batch `claim` is no longer being rendered, though its mark could not be removed
    /// now: it is removed with the next claim.
    pub fn forget(&self, claim: &str) {
        self.stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(claim.to_owned());
    }
}

/// Runs `report_refused` on a blocking thread, so a start with many drafts is not delayed.
pub fn spawn_report(db: Db, org: String, postal_address: Option<String>) {
    tokio::task::spawn_blocking(move || {
        let reported = db.get().map_err(anyhow::Error::from).and_then(|mut conn| {
            let declared: Vec<String> = db::interests::list_field_declarations(&mut conn)?
                .into_iter()
                .map(|f| f.key)
                .collect();
            report_refused(&mut conn, &declared, &org, postal_address.as_deref())
        });
        if let Err(e) = reported {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not check the stored newsletters against the template rules"
            );
        }
    });
}

/// Logs one warning naming every newsletter that may still be sent and whose content the
/// current rules refuse: they are reported, not changed. Sending, scheduling, previewing or
/// testing one answers `422` with the reasons; one already scheduled or sending is paused with
/// them when its turn comes.
pub fn report_refused(
    conn: &mut AnyConnection,
    declared: &[String],
    org: &str,
    postal_address: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let refused: Vec<Newsletter> = newsletters::unfinished_newsletters(conn)?
        .into_iter()
        .filter(|n| {
            super::prepare::content_of(n).is_ok_and(|content| {
                crate::email::newsletter::CompiledNewsletter::compile(
                    &content,
                    declared,
                    org,
                    postal_address,
                )
                .is_err()
            })
        })
        .collect();
    if !refused.is_empty() {
        let ids: Vec<String> = refused
            .iter()
            .map(|n| format!("{} ({})", n.id, n.status))
            .collect();
        tracing::warn!(
            count = refused.len(),
            newsletters = ids.join(", "),
            "stored newsletters whose content the template rules refuse: a draft must be corrected before it is sent (sending it answers 422 with the reasons); one scheduled or sending is paused with them"
        );
    }
    Ok(refused.into_iter().map(|n| n.id.into_string()).collect())
}
