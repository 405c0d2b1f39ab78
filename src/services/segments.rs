//! Use cases of segments, the saved filters over confirmed subscribers: create, change, delete,
//! read one or all, and preview whom a filter reaches. A filter is checked against the fields and
//! interests declared now (`check_filter`, which a newsletter's own filter goes through too).
//! A count is data about people (a filter narrow enough counts one person), so it is given only
//! to principals who may read contacts.

use serde_json::Value;

use crate::auth::Principal;
use crate::db::ids::SegmentId;
use crate::db::segments::{self as store, Segment, SegmentChanges};
use crate::db::subscribers::Subscriber;
use crate::db::{self, read_snapshot, AnyConnection, Db, DbError};
use crate::domain::{FieldErrors, SegmentFilter};

const MAX_NAME_CHARS: usize = 200;

/// Subscribers shown by a preview.
const SAMPLE_SIZE: i64 = 10;

/// A segment as staff write it; for a change, a missing field stays as it is.
#[derive(Debug, Default)]
pub struct SegmentInput {
    pub name: Option<String>,
    pub filter: Option<Value>,
}

/// A segment and, for principals who may read contacts, how many it reaches now.
#[derive(Debug)]
pub struct Counted {
    pub segment: Segment,
    pub count: Option<i64>,
}

/// How many confirmed subscribers a filter reaches, and a few of them (newest first).
#[derive(Debug)]
pub struct Preview {
    pub count: i64,
    pub sample: Vec<Subscriber>,
}

/// Implements the two conversions `Db::transaction` and `Db::run` need for an error enum with
/// a `Db(DbError)` variant.
macro_rules! from_diesel {
    ($($error:ty),*) => {$(
        impl From<diesel::result::Error> for $error {
            fn from(e: diesel::result::Error) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}

#[derive(Debug, thiserror::Error)]
pub enum CreateSegmentError {
    #[error("the segment has invalid fields")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateSegmentError {
    #[error("the segment has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such segment")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum GetSegmentError {
    #[error("no such segment")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteSegmentError {
    #[error("no such segment")]
    NotFound,
    #[error("{0} newsletter(s) that have not finished sending use this segment")]
    InUse(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewSegmentError {
    #[error("the filter is invalid")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Db(#[from] DbError),
}

from_diesel!(
    CreateSegmentError,
    UpdateSegmentError,
    GetSegmentError,
    DeleteSegmentError,
    PreviewSegmentError
);

fn check_name(errors: &mut FieldErrors, name: Option<String>, required: bool) -> Option<String> {
    let name = name.map(|n| n.trim().to_owned());
    let message = match name.as_deref() {
        None if required => Some("is required"),
        None => None,
        Some("") => Some("must not be empty"),
        Some(n) if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
            Some("must be at most 200 characters of text on one line")
        }
        Some(_) => None,
    };
    if let Some(message) = message {
        errors.add("name", message);
    }
    name
}

/// Parses the filter (`None` when it does not parse; the reasons go to `errors`).
fn parse_filter(errors: &mut FieldErrors, raw: Option<&Value>) -> Option<SegmentFilter> {
    let Some(raw) = raw else {
        errors.add("filter", "is required");
        return None;
    };
    SegmentFilter::parse(raw).map_err(|e| errors.extend(e)).ok()
}

/// Checks a filter against the fields and interests declared now.
pub fn check_filter(
    conn: &mut AnyConnection,
    filter: &SegmentFilter,
) -> Result<Result<(), FieldErrors>, DbError> {
    let fields = db::interests::list_field_declarations(conn)?;
    let interests: Vec<String> = db::interests::list_interests(conn)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    Ok(filter.check(&fields, &interests))
}

/// Checks a parsed filter (when there is one) and fails with every problem found, `errors`
/// included; counts whom the filter reaches when `count`. The check is a read of its own, before
/// any write: counting scans the subscribers, and no write turn should wait on that.
async fn validate(
    db: &Db,
    mut errors: FieldErrors,
    filter: Option<SegmentFilter>,
    count: bool,
) -> Result<Result<Option<i64>, FieldErrors>, DbError> {
    let mut counted = None;
    if let Some(filter) = filter {
        let backend = db.backend();
        let checked = db
            .run(move |conn| -> Result<_, DbError> {
                read_snapshot(conn, |conn| {
                    if let Err(errors) = check_filter(conn, &filter)? {
                        return Ok(Err(errors));
                    }
                    if !count {
                        return Ok(Ok(None));
                    }
                    Ok(Ok(Some(store::count_recipients(conn, &filter, backend)?)))
                })
            })
            .await?;
        match checked {
            Ok(n) => counted = n,
            Err(e) => errors.extend(e),
        }
    }
    Ok(errors.into_result().map(|()| counted))
}

/// Every segment, without counts (each would scan the subscribers).
pub async fn list(db: &Db) -> Result<Vec<Segment>, DbError> {
    db.run(|conn| store::list_segments(conn).map_err(DbError::from))
        .await
}

/// One segment, with its count when `actor` may read contacts.
pub async fn get(db: &Db, actor: &Principal, id: SegmentId) -> Result<Counted, GetSegmentError> {
    let count = actor.may_read_contacts();
    let backend = db.backend();
    db.run(move |conn| {
        read_snapshot(conn, |conn| -> Result<_, GetSegmentError> {
            let segment = store::find_segment(conn, &id)?.ok_or(GetSegmentError::NotFound)?;
            let count = if count {
                let filter = segment.parsed_filter()?;
                Some(store::count_recipients(conn, &filter, backend)?)
            } else {
                None
            };
            Ok(Counted { segment, count })
        })
    })
    .await
}

pub async fn create(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    input: SegmentInput,
) -> Result<Counted, CreateSegmentError> {
    let mut errors = FieldErrors::new();
    let name = check_name(&mut errors, input.name, true);
    let filter = parse_filter(&mut errors, input.filter.as_ref());
    let count = validate(db, errors, filter.clone(), actor.may_read_contacts())
        .await?
        .map_err(CreateSegmentError::Invalid)?;
    // Both are there once the checks passed: a missing one is an error reported above.
    let (Some(name), Some(filter)) = (name, filter) else {
        return Err(CreateSegmentError::Invalid(FieldErrors::one(
            "filter",
            "is required",
        )));
    };
    let now = db::now();
    let segment = Segment {
        id: SegmentId::new(),
        name,
        filter: filter.to_json().to_string(),
        created_at: now,
        updated_at: now,
    };
    let stored = segment.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, CreateSegmentError> {
        store::insert_segment(conn, &stored)?;
        actor.audit(
            conn,
            ip.as_deref(),
            "segment.create",
            "segment",
            Some(&stored.id),
        )?;
        Ok(())
    })
    .await?;
    Ok(Counted { segment, count })
}

pub async fn update(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: SegmentId,
    input: SegmentInput,
) -> Result<Counted, UpdateSegmentError> {
    let mut errors = FieldErrors::new();
    let name = check_name(&mut errors, input.name, false);
    let filter = match &input.filter {
        Some(raw) => parse_filter(&mut errors, Some(raw)),
        None => None,
    };
    validate(db, errors, filter.clone(), false)
        .await?
        .map_err(UpdateSegmentError::Invalid)?;
    let changes = SegmentChanges {
        name,
        filter: filter.map(|f| f.to_json().to_string()),
        updated_at: db::now(),
    };
    let target = id.clone();
    let (who, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, UpdateSegmentError> {
        if !store::update_segment(conn, &target, &changes)? {
            return Err(UpdateSegmentError::NotFound);
        }
        who.audit(
            conn,
            ip.as_deref(),
            "segment.update",
            "segment",
            Some(&target),
        )?;
        Ok(())
    })
    .await?;
    get(db, actor, id).await.map_err(|e| match e {
        GetSegmentError::NotFound => UpdateSegmentError::NotFound,
        GetSegmentError::Db(e) => UpdateSegmentError::Db(e),
        GetSegmentError::Internal(e) => UpdateSegmentError::Internal(e),
    })
}

/// Refused while a newsletter that may still send uses the segment; finished newsletters forget
/// it, in the same transaction.
pub async fn delete(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: SegmentId,
) -> Result<(), DeleteSegmentError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, DeleteSegmentError> {
        if store::lock_segment(conn, &id)?.is_none() {
            return Err(DeleteSegmentError::NotFound);
        }
        let users = store::count_newsletters_using(conn, &id)?;
        if users > 0 {
            return Err(DeleteSegmentError::InUse(users));
        }
        store::detach_finished_newsletters(conn, &id)?;
        store::delete_segment(conn, &id)?;
        actor.audit(conn, ip.as_deref(), "segment.delete", "segment", Some(&id))?;
        Ok(())
    })
    .await
}

/// A filter given to preview or count, parsed (a missing one is refused).
fn required_filter(filter: Option<Value>) -> Result<SegmentFilter, PreviewSegmentError> {
    let mut errors = FieldErrors::new();
    let filter = parse_filter(&mut errors, filter.as_ref());
    errors.into_result().map_err(PreviewSegmentError::Invalid)?;
    filter.ok_or_else(|| PreviewSegmentError::Invalid(FieldErrors::one("filter", "is required")))
}

/// How many people a filter reaches now: what a segment builder asks at every change, so it
/// is the count alone (one pass over the subscribers; a preview's sample is a second).
pub async fn count(db: &Db, filter: Option<Value>) -> Result<i64, PreviewSegmentError> {
    let filter = required_filter(filter)?;
    let backend = db.backend();
    db.run(move |conn| {
        read_snapshot(conn, |conn| -> Result<_, PreviewSegmentError> {
            check_filter(conn, &filter)?.map_err(PreviewSegmentError::Invalid)?;
            Ok(store::count_recipients(conn, &filter, backend)?)
        })
    })
    .await
}

/// Whom a filter reaches: the count and a sample, read from one snapshot.
pub async fn preview(db: &Db, filter: Option<Value>) -> Result<Preview, PreviewSegmentError> {
    let filter = required_filter(filter)?;
    let backend = db.backend();
    db.run(move |conn| {
        read_snapshot(conn, |conn| -> Result<_, PreviewSegmentError> {
            check_filter(conn, &filter)?.map_err(PreviewSegmentError::Invalid)?;
            Ok(Preview {
                count: store::count_recipients(conn, &filter, backend)?,
                sample: store::sample_recipients(conn, &filter, backend, SAMPLE_SIZE)?,
            })
        })
    })
    .await
}
