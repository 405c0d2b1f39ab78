//! A newsletter's results for staff (see `sending::results`): read in one snapshot.

use crate::db::ids::NewsletterId;
use crate::db::newsletters as store;
use crate::db::{self, read_snapshot, Db, DbError};
pub use crate::sending::results::{Clicks, Counts, LinkClicks, Results, Shown};

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("no such newsletter")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ResultsError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// The results of a newsletter, read from one snapshot.
pub async fn results(db: &Db, id: NewsletterId) -> Result<Results, ResultsError> {
    let now = db::now();
    db.run(move |conn| {
        read_snapshot(conn, |conn| -> Result<_, ResultsError> {
            let newsletter = store::find_newsletter(conn, &id)?.ok_or(ResultsError::NotFound)?;
            Ok(crate::sending::results::summarize(conn, newsletter, now)?)
        })
    })
    .await
}
