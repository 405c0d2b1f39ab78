//! The `webhook_endpoints`, `webhook_messages` and `webhook_attempts` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::WebhookEndpointId;
use super::jobs::JobState;
use super::schema::{jobs, webhook_attempts, webhook_endpoints, webhook_messages};
use super::AnyConnection;

/// The job kind that delivers one message; its payload is the message id.
pub const DELIVER_KIND: &str = "webhook.deliver";

crate::text_enum! {
    /// Where one message to one endpoint stands: `pending` until a 2xx answer, a refusal for
    /// good, the last attempt, or its endpoint or subscriber going away settles it.
    pub enum WebhookMessageState {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
        Dropped = "dropped",
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    pub id: WebhookEndpointId,
    pub url: String,
    pub description: String,
    /// JSON array of event type names.
    pub event_types: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Endpoint {
    pub fn events(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    /// The secrets that sign a message sent at `now`: the current one, and during a rotation
    /// the previous one too.
    pub fn signing_secrets(&self, now: NaiveDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if now < until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<String>,
    pub enabled: Option<bool>,
    pub disabled_reason: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Replaces an endpoint's secret; the old one keeps signing until `until`.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    id: &WebhookEndpointId,
    secret: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::previous_secret.eq(webhook_endpoints::secret.nullable()),
            webhook_endpoints::previous_secret_until.eq(Some(until)),
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Whether any message of the endpoint was delivered at or after `since`.
pub fn delivered_since(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    since: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_messages::table
            .filter(webhook_messages::endpoint_id.eq(endpoint_id))
            .filter(webhook_messages::delivered_at.ge(since)),
    ))
    .get_result(conn)
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = webhook_messages)]
pub struct Message {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub subscriber_id: Option<String>,
    pub payload: String,
    pub state: WebhookMessageState,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = webhook_attempts)]
pub struct Attempt {
    pub id: String,
    pub message_id: String,
    pub attempt: i32,
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response: Option<String>,
    pub duration_ms: i32,
}

pub fn insert_endpoint(conn: &mut AnyConnection, endpoint: &Endpoint) -> QueryResult<()> {
    diesel::insert_into(webhook_endpoints::table)
        .values(endpoint)
        .execute(conn)
        .map(drop)
}

pub fn find_endpoint(
    conn: &mut AnyConnection,
    id: &WebhookEndpointId,
) -> QueryResult<Option<Endpoint>> {
    webhook_endpoints::table
        .find(id)
        .select(Endpoint::as_select())
        .first(conn)
        .optional()
}

pub fn list_endpoints(conn: &mut AnyConnection) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .order(webhook_endpoints::created_at.asc())
        .select(Endpoint::as_select())
        .load(conn)
}

/// (id, event types) of every enabled endpoint: what emission needs, and nothing more.
pub fn list_enabled_subscriptions(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::enabled.eq(true))
        .select((webhook_endpoints::id, webhook_endpoints::event_types))
        .load(conn)
}

pub fn update_endpoint(
    conn: &mut AnyConnection,
    id: &WebhookEndpointId,
    changes: &EndpointChanges,
) -> QueryResult<bool> {
    diesel::update(webhook_endpoints::table.find(id))
        .set(changes)
        .execute(conn)
        .map(|n| n == 1)
}

pub fn delete_endpoint(conn: &mut AnyConnection, id: &WebhookEndpointId) -> QueryResult<bool> {
    diesel::delete(webhook_endpoints::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn insert_messages(conn: &mut AnyConnection, messages: &[Message]) -> QueryResult<()> {
    for chunk in messages.chunks(128) {
        crate::on_backend!(&mut *conn, |c| diesel::insert_into(webhook_messages::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn find_message(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Message>> {
    webhook_messages::table
        .find(id)
        .select(Message::as_select())
        .first(conn)
        .optional()
}

/// A page of an endpoint's messages, newest first (ids grow with time), after `before`.
pub fn list_messages(
    conn: &mut AnyConnection,
    endpoint_id: &WebhookEndpointId,
    state: Option<WebhookMessageState>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut query = webhook_messages::table
        .filter(webhook_messages::endpoint_id.eq(endpoint_id))
        .select(Message::as_select())
        .order(webhook_messages::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(webhook_messages::state.eq(state));
    }
    if let Some(before) = before {
        query = query.filter(webhook_messages::id.lt(before.to_owned()));
    }
    query.load(conn)
}

pub fn list_attempts(conn: &mut AnyConnection, message_ids: &[&str]) -> QueryResult<Vec<Attempt>> {
    webhook_attempts::table
        .filter(webhook_attempts::message_id.eq_any(message_ids))
        .order((webhook_attempts::message_id, webhook_attempts::attempt))
        .select(Attempt::as_select())
        .load(conn)
}

pub fn insert_attempt(conn: &mut AnyConnection, attempt: &Attempt) -> QueryResult<()> {
    diesel::insert_into(webhook_attempts::table)
        .values(attempt)
        .execute(conn)
        .map(drop)
}

/// Records how a delivery attempt ended on its message (only while the message is pending:
/// an erasure or deletion that happened meanwhile wins).
pub fn settle_message(
    conn: &mut AnyConnection,
    id: &str,
    state: WebhookMessageState,
    attempts: i32,
    status: Option<i32>,
    error: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        webhook_messages::table
            .find(id)
            .filter(webhook_messages::state.eq(WebhookMessageState::Pending)),
    )
    .set((
        webhook_messages::state.eq(state),
        webhook_messages::attempts.eq(attempts),
        webhook_messages::last_status.eq(status),
        webhook_messages::last_error.eq(error),
        webhook_messages::updated_at.eq(now),
        webhook_messages::delivered_at.eq((state == WebhookMessageState::Delivered).then_some(now)),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes the settled messages (and their attempts) of every endpoint whose id sorts before
/// `before`; ids start with their creation time, so this is a range on the primary key.
pub fn prune_settled(conn: &mut AnyConnection, before: &str) -> QueryResult<usize> {
    diesel::delete(
        webhook_messages::table
            .filter(webhook_messages::id.lt(before))
            .filter(webhook_messages::state.ne(WebhookMessageState::Pending)),
    )
    .execute(conn)
}

/// Drops every undelivered message of an endpoint, and the queued jobs that would deliver them.
pub fn drop_pending_for_endpoint(
    conn: &mut AnyConnection,
    endpoint_id: &WebhookEndpointId,
    why: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let pending = webhook_messages::table
        .filter(webhook_messages::endpoint_id.eq(endpoint_id))
        .filter(webhook_messages::state.eq(WebhookMessageState::Pending))
        .select(webhook_messages::id);
    let pending: Vec<String> = pending.load(conn)?;
    drop_jobs(conn, pending, why, now)?;
    diesel::update(
        webhook_messages::table
            .filter(webhook_messages::endpoint_id.eq(endpoint_id))
            .filter(webhook_messages::state.eq(WebhookMessageState::Pending)),
    )
    .set((
        webhook_messages::state.eq(WebhookMessageState::Dropped),
        webhook_messages::last_error.eq(Some(why)),
        webhook_messages::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Erasure: messages not delivered yet are dropped (with their jobs), and every message about
/// the person keeps only its type and id; what receivers answered about them goes too.
pub fn forget_subscriber(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let pending: Vec<String> = webhook_messages::table
        .filter(webhook_messages::subscriber_id.eq(subscriber_id))
        .filter(webhook_messages::state.eq(WebhookMessageState::Pending))
        .select(webhook_messages::id)
        .load(conn)?;
    drop_jobs(conn, pending, "subscriber erased", now)?;
    diesel::update(
        webhook_messages::table
            .filter(webhook_messages::subscriber_id.eq(subscriber_id))
            .filter(webhook_messages::state.eq(WebhookMessageState::Pending)),
    )
    .set((
        webhook_messages::state.eq(WebhookMessageState::Dropped),
        webhook_messages::last_error.eq(Some("subscriber erased")),
    ))
    .execute(conn)?;
    let all = webhook_messages::table
        .filter(webhook_messages::subscriber_id.eq(subscriber_id))
        .select(webhook_messages::id);
    diesel::update(webhook_attempts::table.filter(webhook_attempts::message_id.eq_any(all)))
        .set(webhook_attempts::response.eq(None::<String>))
        .execute(conn)?;
    diesel::update(
        webhook_messages::table.filter(webhook_messages::subscriber_id.eq(subscriber_id)),
    )
    .set((
        webhook_messages::payload
            .eq(serde_json::json!({"data": {"id": subscriber_id}}).to_string()),
        webhook_messages::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Drops the queued delivery jobs of these messages.
fn drop_jobs(
    conn: &mut AnyConnection,
    message_ids: Vec<String>,
    why: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    for chunk in message_ids.chunks(500) {
        diesel::update(
            jobs::table
                .filter(jobs::kind.eq(DELIVER_KIND))
                .filter(jobs::state.eq(JobState::Queued))
                .filter(jobs::payload.eq_any(chunk)),
        )
        .set((
            jobs::state.eq(JobState::Dropped),
            jobs::payload.eq("{}"),
            jobs::last_error.eq(Some(why)),
            jobs::finished_at.eq(Some(now)),
        ))
        .execute(conn)?;
    }
    Ok(())
}
