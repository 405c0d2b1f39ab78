//! Clicks counted in memory and added to the database in batches: a click is never a write of
//! its own, so a newsletter shared widely costs one small transaction every `FLUSH_EVERY`.
//!
//! A click that does not name itself a scanner is held for `WINDOW` under its client (a salted
//! hash of the client's address and user agent, kept in memory only): a client that opens
//! `BURST_LINKS` or more different links of one newsletter within that time is a scanner or a
//! prefetcher (mail security gateways open every link of a message as it arrives), and all its
//! clicks of that window are counted as a scanner's. Held and gathered counts live only in
//! memory, so a crash loses at most `WINDOW + FLUSH_EVERY` of them (a few seconds); a stop
//! writes them first.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::db::newsletter_clicks::{self, ClickCount};
use crate::db::{Db, DbError};

/// How long a client's clicks are held to see whether it opens many links at once.
pub const WINDOW: Duration = Duration::from_secs(2);
/// How often gathered counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Different links of one newsletter opened by one client within `WINDOW` that make it a
/// scanner.
pub const BURST_LINKS: usize = 3;
/// Clients held at once; past this, a click is counted at once without the burst check (a flood
/// of distinct clients cannot make the counter grow without bound).
const MAX_HELD_CLIENTS: usize = 200_000;
/// Clicks held per client; past this, the client is a scanner anyway.
const MAX_HELD_PER_CLIENT: usize = 64;
const SHARDS: usize = 16;

/// Who a counted click came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Person,
    Scanner,
}

/// (newsletter, link place, hour).
type Key = (Arc<str>, u32, NaiveDateTime);

struct Held {
    since: Instant,
    burst: bool,
    clicks: Vec<Key>,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    clicks: i64,
    scanner: i64,
}

/// The counts of this process not yet written.
pub struct ClickCounter {
    salt: RandomState,
    held: Vec<Mutex<HashMap<u64, Held>>>,
    held_clients: std::sync::atomic::AtomicUsize,
    ready: Mutex<HashMap<Key, Tally>>,
}

impl Default for ClickCounter {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClickCounter {
    pub fn new() -> Self {
        Self {
            salt: RandomState::new(),
            held: (0..SHARDS).map(|_| Mutex::default()).collect(),
            held_clients: Default::default(),
            ready: Mutex::default(),
        }
    }

    /// A client's key for the burst check: a hash salted per process, never written anywhere.
    pub fn client(&self, address: Option<std::net::IpAddr>, user_agent: Option<&str>) -> u64 {
        let mut h = self.salt.build_hasher();
        address.hash(&mut h);
        user_agent.hash(&mut h);
        h.finish()
    }

    /// Counts a click on a newsletter's link in the hour `hour`: a scanner's at once, anyone
    /// else's once its client's window has passed.
    pub fn record(
        &self,
        newsletter: Arc<str>,
        place: u32,
        hour: NaiveDateTime,
        client: u64,
        scanner: bool,
        now: Instant,
    ) {
        let key = (newsletter, place, hour);
        if scanner {
            self.add(key, Kind::Scanner);
            return;
        }
        let mut shard = lock(&self.held[(client % SHARDS as u64) as usize]);
        match shard.get_mut(&client) {
            Some(held) => {
                if !held.burst {
                    held.burst = held.clicks.len() >= MAX_HELD_PER_CLIENT || {
                        let mut places: Vec<u32> = held
                            .clicks
                            .iter()
                            .filter(|k| k.0 == key.0)
                            .map(|k| k.1)
                            .chain(std::iter::once(key.1))
                            .collect();
                        places.sort_unstable();
                        places.dedup();
                        places.len() >= BURST_LINKS
                    };
                }
                if !held.burst {
                    held.clicks.push(key);
                    return;
                }
                // Its clicks so far are counted as a scanner's when released; this one now.
                drop(shard);
                self.add(key, Kind::Scanner);
            }
            None => {
                let clients = &self.held_clients;
                if clients.load(std::sync::atomic::Ordering::Relaxed) >= MAX_HELD_CLIENTS {
                    drop(shard);
                    self.add(key, Kind::Person);
                    return;
                }
                clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                shard.insert(
                    client,
                    Held {
                        since: now,
                        burst: false,
                        clicks: vec![key],
                    },
                );
            }
        }
    }

    fn add(&self, key: Key, kind: Kind) {
        let mut ready = lock(&self.ready);
        let tally = ready.entry(key).or_default();
        match kind {
            Kind::Person => tally.clicks += 1,
            Kind::Scanner => tally.scanner += 1,
        }
    }

    /// Counts the held clicks of every client whose window has passed by `now` (all of them
    /// when `all`).
    pub fn release(&self, now: Instant, all: bool) {
        let mut released = Vec::new();
        for shard in &self.held {
            let mut shard = lock(shard);
            shard.retain(|_, held| {
                let due = all || now.duration_since(held.since) >= WINDOW;
                if due {
                    let kind = if held.burst {
                        Kind::Scanner
                    } else {
                        Kind::Person
                    };
                    released.extend(held.clicks.drain(..).map(|k| (k, kind)));
                }
                !due
            });
        }
        if released.is_empty() {
            return;
        }
        let mut ready = lock(&self.ready);
        for (key, kind) in released.iter().cloned() {
            let tally = ready.entry(key).or_default();
            match kind {
                Kind::Person => tally.clicks += 1,
                Kind::Scanner => tally.scanner += 1,
            }
        }
        drop(ready);
        let clients: usize = self.held.iter().map(|s| lock(s).len()).sum();
        self.held_clients
            .store(clients, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes the counts gathered so far in one transaction; on failure they are kept for the
    /// next try. Returns the rows written.
    pub async fn flush(&self, db: &Db) -> Result<usize, DbError> {
        let batch: Vec<ClickCount> = std::mem::take(&mut *lock(&self.ready))
            .into_iter()
            .map(|((newsletter, link, hour), t)| ClickCount {
                newsletter_id: newsletter.to_string(),
                link: link as i32,
                hour,
                clicks: t.clicks,
                scanner_clicks: t.scanner,
            })
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let kept = batch.clone();
        let written = db
            .transaction(move |conn| newsletter_clicks::add(conn, &batch).map_err(DbError::from))
            .await;
        if written.is_err() {
            let mut ready = lock(&self.ready);
            for c in kept {
                let tally = ready
                    .entry((Arc::from(c.newsletter_id), c.link as u32, c.hour))
                    .or_default();
                tally.clicks += c.clicks;
                tally.scanner += c.scanner_clicks;
            }
        }
        written
    }

    /// Releases and writes everything held and gathered (at a stop, and in tests).
    pub async fn flush_all(&self, db: &Db) -> Result<usize, DbError> {
        self.release(Instant::now(), true);
        self.flush(db).await
    }

    /// Releases held clicks as their windows pass and writes the counts every `FLUSH_EVERY`,
    /// until the process ends.
    pub fn spawn(self: Arc<Self>, db: Db) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_flush = Instant::now();
            loop {
                tick.tick().await;
                let now = Instant::now();
                self.release(now, false);
                if now.duration_since(last_flush) >= FLUSH_EVERY {
                    last_flush = now;
                    if let Err(e) = self.flush(&db).await {
                        tracing::warn!(error = %e, "could not write click counts; kept for the next try");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_796_000_400, 0)
            .unwrap()
            .naive_utc()
    }

    fn counts(c: &ClickCounter) -> HashMap<u32, (i64, i64)> {
        lock(&c.ready)
            .iter()
            .map(|(k, t)| (k.1, (t.clicks, t.scanner)))
            .collect()
    }

    #[test]
    fn clicks_are_held_then_counted_and_a_burst_is_a_scanner() {
        let c = ClickCounter::new();
        let n: Arc<str> = Arc::from("n1");
        let start = Instant::now();
        let person = c.client(Some([192, 0, 2, 1].into()), Some("Firefox"));
        let gateway = c.client(Some([192, 0, 2, 9].into()), Some("Firefox"));
        assert_ne!(person, gateway);
        // A person opens two links; a gateway opens three at once.
        c.record(n.clone(), 0, hour(), person, false, start);
        c.record(n.clone(), 1, hour(), person, false, start);
        for place in 0..3 {
            c.record(n.clone(), place, hour(), gateway, false, start);
        }
        // A HEAD request or a scanner's agent is counted at once.
        c.record(n.clone(), 2, hour(), person, true, start);
        assert_eq!(counts(&c), HashMap::from([(2, (0, 2))]));
        // Nothing else before the window passes.
        c.release(start + WINDOW / 2, false);
        assert_eq!(counts(&c), HashMap::from([(2, (0, 2))]));
        c.release(start + WINDOW, false);
        assert_eq!(
            counts(&c),
            HashMap::from([(0, (1, 1)), (1, (1, 1)), (2, (0, 2))])
        );
        // The same link opened again and again by one client is a person clicking.
        let again = c.client(Some([192, 0, 2, 2].into()), Some("Safari"));
        for _ in 0..5 {
            c.record(n.clone(), 1, hour(), again, false, start + WINDOW);
        }
        c.release(start + WINDOW * 2, false);
        assert_eq!(counts(&c)[&1], (6, 1));
    }
}
