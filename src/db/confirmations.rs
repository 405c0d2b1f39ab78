//! The `confirmation_tokens` table: hashes of double opt-in tokens, with expiry and use.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::interests::Interest;
use super::schema::confirmation_tokens;
use super::AnyConnection;
use crate::domain::Language;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = confirmation_tokens)]
pub struct ConfirmationToken {
    pub token_hash: String,
    pub subscriber_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub proposal: Option<String>,
}

pub fn insert_confirmation_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    subscriber_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
    proposal: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(confirmation_tokens::table)
        .values((
            confirmation_tokens::token_hash.eq(token_hash),
            confirmation_tokens::subscriber_id.eq(subscriber_id),
            confirmation_tokens::created_at.eq(now),
            confirmation_tokens::expires_at.eq(expires_at),
            confirmation_tokens::proposal.eq(proposal),
        ))
        .execute(conn)
        .map(drop)
}

pub fn find_confirmation_token(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> QueryResult<Option<ConfirmationToken>> {
    confirmation_tokens::table
        .find(token_hash)
        .select(ConfirmationToken::as_select())
        .first(conn)
        .optional()
}

/// Marks every open token of the subscriber used, so old links answer "already confirmed".
pub fn use_confirmation_tokens(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        confirmation_tokens::table
            .filter(confirmation_tokens::subscriber_id.eq(subscriber_id))
            .filter(confirmation_tokens::used_at.is_null()),
    )
    .set(confirmation_tokens::used_at.eq(Some(now)))
    .execute(conn)
    .map(drop)
}

/// The proposals (JSON) kept with these tokens, by token hash; tokens without one are absent.
pub fn find_proposals(
    conn: &mut AnyConnection,
    token_hashes: &[String],
) -> QueryResult<Vec<(String, String)>> {
    confirmation_tokens::table
        .filter(confirmation_tokens::token_hash.eq_any(token_hashes))
        .filter(confirmation_tokens::proposal.is_not_null())
        .select((
            confirmation_tokens::token_hash,
            confirmation_tokens::proposal.assume_not_null(),
        ))
        .load(conn)
}

/// What a public signup asks to change for someone already on the list, kept with the token of
/// the confirmation link sent to them (applied by `signup` when they confirm through it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    /// A new name, when the form gave one.
    pub name: Option<String>,
    pub language: Language,
    /// The interests chosen on the form: they replace the current ones.
    pub interests: Vec<String>,
    /// Field values given on the form: they are set over the current ones.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The form it came from, when it said.
    pub source: Option<String>,
}

impl Proposal {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The proposal kept with a token; `None` for tokens without one (or unreadable).
    pub fn from_json(raw: Option<&str>) -> Option<Self> {
        raw.and_then(|raw| serde_json::from_str(raw).ok())
    }

    /// The interests to show on the confirmation mail and page, from the list's catalogue.
    pub fn chosen_interests(&self, catalogue: Vec<Interest>) -> Vec<Interest> {
        catalogue
            .into_iter()
            .filter(|i| self.interests.contains(&i.slug))
            .collect()
    }
}
