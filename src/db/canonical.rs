//! The data migration that re-spells stored addresses in their canonical form (see
//! `domain::Email`), merging the people whose addresses turn out to be one mailbox. It runs once,
//! in one transaction, after the schema migrations, and records what it did in `data_migrations`.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    consent_events, data_migrations, deliveries, staff, subscriber_interests, subscribers,
    suppressions, webhook_messages,
};
use super::{now, subscribers as rows, write_transaction, AnyConnection};
use crate::domain::{Email, SubscriberStatus};
use crate::tokens::email_hash;

const NAME: &str = "2026-12-06 canonical addresses";

/// What the migration changed; ids only, never an address.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Subscribers whose address was re-spelled (merged ones not counted).
    pub rewritten: usize,
    /// (id kept, ids merged into it).
    pub merged: Vec<(String, Vec<String>)>,
    /// Stored addresses that are no longer accepted (they are left as they are; the mailer
    /// refuses them as permanent failures).
    pub refused: usize,
    pub staff_rewritten: usize,
}

impl Report {
    fn summary(&self) -> String {
        let merges: Vec<String> = self
            .merged
            .iter()
            .map(|(kept, gone)| format!("{} <- {}", kept, gone.join(" ")))
            .collect();
        format!(
            "{} addresses re-spelled, {} people merged ({}), {} addresses no longer accepted, \
             {} staff addresses re-spelled",
            self.rewritten,
            self.merged
                .iter()
                .map(|(_, gone)| gone.len())
                .sum::<usize>(),
            merges.join("; "),
            self.refused,
            self.staff_rewritten
        )
    }
}

/// Runs the migration unless it already ran. Returns its report when it ran now.
pub fn canonicalise_addresses(conn: &mut AnyConnection) -> QueryResult<Option<Report>> {
    write_transaction(conn, |conn| {
        let done = data_migrations::table
            .find(NAME)
            .select(data_migrations::name)
            .first::<String>(conn)
            .optional()?;
        if done.is_some() {
            return Ok(None);
        }
        let now = now();
        let mut report = Report::default();
        canonicalise_subscribers(conn, now, &mut report)?;
        canonicalise_staff(conn, &mut report)?;
        diesel::insert_into(data_migrations::table)
            .values((
                data_migrations::name.eq(NAME),
                data_migrations::applied_at.eq(now),
                data_migrations::summary.eq(report.summary()),
            ))
            .execute(conn)?;
        Ok(Some(report))
    })
}

/// How strict a state is: a merged person keeps the strictest of their rows'.
fn strictness(status: &str) -> u8 {
    match SubscriberStatus::parse(status) {
        Some(SubscriberStatus::Bounced | SubscriberStatus::Complained) => 3,
        Some(SubscriberStatus::Unsubscribed) => 2,
        Some(SubscriberStatus::Confirmed) => 1,
        Some(SubscriberStatus::Pending) | None => 0,
    }
}

fn canonicalise_subscribers(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    report: &mut Report,
) -> QueryResult<()> {
    let stored: Vec<(String, String, String, NaiveDateTime)> = subscribers::table
        .select((
            subscribers::id,
            subscribers::email,
            subscribers::status,
            subscribers::created_at,
        ))
        .load(conn)?;
    let mut people: BTreeMap<String, Vec<(String, String, String, NaiveDateTime)>> =
        BTreeMap::new();
    for row in stored {
        match Email::parse(&row.1) {
            Ok(email) => people
                .entry(email.as_str().to_owned())
                .or_default()
                .push(row),
            Err(_) => report.refused += 1,
        }
    }
    for (canonical, mut spellings) in people {
        if spellings.len() == 1 && spellings[0].1 == canonical {
            continue;
        }
        // The strictest row is kept (the oldest among equals): its state and its timestamps
        // stay coherent, and the others' histories are moved onto it.
        spellings.sort_by(|a, b| strictness(&b.2).cmp(&strictness(&a.2)).then(a.3.cmp(&b.3)));
        let kept = spellings[0].0.clone();
        let canonical_hash = email_hash(&canonical);
        for (_, email, _, _) in &spellings {
            carry_suppression(conn, &email_hash(email), &canonical_hash, now)?;
        }
        let merged: Vec<String> = spellings[1..].iter().map(|s| s.0.clone()).collect();
        for gone in &merged {
            merge_into(conn, gone, &kept, now)?;
        }
        diesel::update(subscribers::table.find(&kept))
            .set((
                subscribers::email.eq(&canonical),
                subscribers::updated_at.eq(now),
            ))
            .execute(conn)?;
        if merged.is_empty() {
            report.rewritten += 1;
        } else {
            report.merged.push((kept, merged));
        }
    }
    Ok(())
}

/// The suppression of an old spelling also holds for the canonical one.
fn carry_suppression(
    conn: &mut AnyConnection,
    old_hash: &str,
    canonical_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    if old_hash == canonical_hash {
        return Ok(());
    }
    let reason = super::suppressions::find_suppression(conn, old_hash)?;
    let present = super::suppressions::find_suppression(conn, canonical_hash)?;
    if let (Some(reason), None) = (reason, present) {
        diesel::insert_into(suppressions::table)
            .values((
                suppressions::email_hash.eq(canonical_hash),
                suppressions::reason.eq(reason),
                suppressions::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Moves what belongs to `gone` onto `kept`, then removes `gone`, leaving a tombstone so that
/// tools syncing the change feed drop the id.
fn merge_into(
    conn: &mut AnyConnection,
    gone: &str,
    kept: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    // Both consent histories are kept, whole.
    diesel::update(consent_events::table.filter(consent_events::subscriber_id.eq(gone)))
        .set(consent_events::subscriber_id.eq(kept))
        .execute(conn)?;
    // Interests chosen under either spelling.
    let theirs: Vec<String> = subscriber_interests::table
        .filter(subscriber_interests::subscriber_id.eq(gone))
        .select(subscriber_interests::interest_slug)
        .load(conn)?;
    let ours: Vec<String> = subscriber_interests::table
        .filter(subscriber_interests::subscriber_id.eq(kept))
        .select(subscriber_interests::interest_slug)
        .load(conn)?;
    for slug in theirs.iter().filter(|s| !ours.contains(s)) {
        diesel::insert_into(subscriber_interests::table)
            .values((
                subscriber_interests::subscriber_id.eq(kept),
                subscriber_interests::interest_slug.eq(slug),
                subscriber_interests::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    // A newsletter's record for either spelling counts once: the kept one's wins.
    let sent_to_kept: Vec<String> = deliveries::table
        .filter(deliveries::subscriber_id.eq(kept))
        .select(deliveries::newsletter_id)
        .load(conn)?;
    diesel::delete(
        deliveries::table
            .filter(deliveries::subscriber_id.eq(gone))
            .filter(deliveries::newsletter_id.eq_any(sent_to_kept)),
    )
    .execute(conn)?;
    diesel::update(deliveries::table.filter(deliveries::subscriber_id.eq(gone)))
        .set(deliveries::subscriber_id.eq(kept))
        .execute(conn)?;
    diesel::update(webhook_messages::table.filter(webhook_messages::subscriber_id.eq(gone)))
        .set(webhook_messages::subscriber_id.eq(kept))
        .execute(conn)?;
    // Profile values the kept row lacks.
    let profiles: Vec<(String, Option<String>, String)> = subscribers::table
        .filter(subscribers::id.eq_any([gone, kept]))
        .select((subscribers::id, subscribers::name, subscribers::attributes))
        .load(conn)?;
    let (Some(theirs), Some(ours)) = (
        profiles.iter().find(|p| p.0 == gone),
        profiles.iter().find(|p| p.0 == kept),
    ) else {
        return Ok(());
    };
    let mut attributes: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&ours.2).unwrap_or_default();
    let their_attributes: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&theirs.2).unwrap_or_default();
    for (key, value) in their_attributes {
        attributes.entry(key).or_insert(value);
    }
    diesel::update(subscribers::table.find(kept))
        .set((
            subscribers::name.eq(ours.1.clone().or_else(|| theirs.1.clone())),
            subscribers::attributes.eq(serde_json::Value::Object(attributes).to_string()),
        ))
        .execute(conn)?;
    // Tokens, queued jobs and interests of the merged row go with it (ON DELETE CASCADE): a
    // confirmation link sent to the other spelling could otherwise undo a stricter state.
    rows::delete_subscriber(conn, gone)?;
    rows::insert_tombstone(conn, gone, now)
}

/// Staff sign in with the canonical form of what they type; a staff address that would collide
/// with another's is left as it is (and still signs in by its exact spelling).
fn canonicalise_staff(conn: &mut AnyConnection, report: &mut Report) -> QueryResult<()> {
    let stored: Vec<(String, String)> =
        staff::table.select((staff::id, staff::email)).load(conn)?;
    let mut taken: Vec<String> = stored.iter().map(|(_, e)| e.clone()).collect();
    for (id, email) in stored {
        let Ok(canonical) = Email::parse(&email) else {
            continue;
        };
        let canonical = canonical.as_str().to_owned();
        if canonical == email || taken.contains(&canonical) {
            continue;
        }
        diesel::update(staff::table.find(&id))
            .set(staff::email.eq(&canonical))
            .execute(conn)?;
        taken.push(canonical);
        report.staff_rewritten += 1;
    }
    Ok(())
}
