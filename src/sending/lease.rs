//! The leases a running engine holds. Every claim it still has undecided deliveries in is renewed
//! every third of a lease, so a message in flight over a slow relay is never taken over by
//! another worker (or by this one) while its outcome is pending. Only a process that stops
//! renewing, because it was killed or lost the database, lets its claims run out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{Duration, NaiveDateTime};

use crate::db::{self, deliveries, Db};

/// When one claim's lease ends, as far as this process knows; shared by its deliveries.
#[derive(Clone)]
pub struct ClaimLease(Arc<Mutex<NaiveDateTime>>);

impl ClaimLease {
    pub fn until(&self) -> NaiveDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Claim {
    newsletter_id: String,
    lease: ClaimLease,
}

/// The claims of one `run_pending`, by claim id.
pub struct Leases {
    claims: Mutex<HashMap<String, Claim>>,
    length: Duration,
    renewed_at: Mutex<Option<NaiveDateTime>>,
}

impl Leases {
    pub fn new(length: Duration) -> Self {
        Self {
            claims: Mutex::new(HashMap::new()),
            length,
            renewed_at: Mutex::new(None),
        }
    }

    /// Records a claim that was just committed with a lease until `until`.
    pub fn hold(&self, newsletter_id: &str, claim: &str, until: NaiveDateTime) -> ClaimLease {
        let lease = ClaimLease(Arc::new(Mutex::new(until)));
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                claim.to_owned(),
                Claim {
                    newsletter_id: newsletter_id.to_owned(),
                    lease: lease.clone(),
                },
            );
        lease
    }

    /// Renews every held claim when a third of a lease has passed since the last renewal, and
    /// forgets the claims whose deliveries are all decided.
    pub async fn renew_if_due(&self, db: &Db, now: NaiveDateTime) -> anyhow::Result<()> {
        {
            let mut renewed_at = self.renewed_at.lock().unwrap_or_else(|p| p.into_inner());
            match *renewed_at {
                Some(at) if now - at < self.length / 3 => return Ok(()),
                _ => *renewed_at = Some(now),
            }
        }
        let (claims, newsletters): (Vec<String>, Vec<String>) = {
            let mut held = self.claims.lock().unwrap_or_else(|p| p.into_inner());
            // A claim whose lease ran out (renewals failed for a whole lease) may have been
            // taken over by another worker: it is never renewed, and its unsent messages are
            // released (see `deliver`).
            held.retain(|_, c| c.lease.until() > now);
            let mut newsletters: Vec<String> =
                held.values().map(|c| c.newsletter_id.clone()).collect();
            newsletters.sort();
            newsletters.dedup();
            (held.keys().cloned().collect(), newsletters)
        };
        if claims.is_empty() {
            return Ok(());
        }
        let until = now + self.length;
        let renewed = {
            let claims = claims.clone();
            db.transaction(move |c| -> Result<_, db::DbError> {
                // A batch still being rendered keeps its mark alive with its lease.
                db::newsletters::renew_render_marks(c, &claims, until)?;
                Ok(deliveries::renew_claims(c, &newsletters, &claims, until)?)
            })
            .await
        };
        let renewed = match renewed {
            Ok(renewed) => renewed,
            Err(e) => {
                // Try again at the next tick rather than a third of a lease later.
                *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Err(e.into());
            }
        };
        let mut held = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        for claim in claims {
            if renewed.contains(&claim) {
                if let Some(c) = held.get(&claim) {
                    *c.lease.0.lock().unwrap_or_else(|p| p.into_inner()) = until;
                }
            } else {
                held.remove(&claim);
            }
        }
        Ok(())
    }
}
