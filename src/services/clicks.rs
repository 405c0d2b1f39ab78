//! Following a counted link: where the link at a place of a newsletter leads, and whether its
//! clicks count. A newsletter's links are read from its own content once it has started sending
//! (it cannot change after that) and kept in memory, so a click reads nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::db::ids::NewsletterId;
use crate::db::newsletters;
use crate::db::{Db, DbError};
use crate::sending::prepare::content_of;

/// A newsletter's countable links.
pub struct Targets {
    pub newsletter_id: Arc<str>,
    /// By place (see `clicks::links`).
    pub links: Vec<String>,
    /// Whether its clicks count: it went out with click counting on. A draft's test copy
    /// leads where it should without counting.
    pub counting: bool,
}

/// Newsletters' links already read, by newsletter id.
#[derive(Default)]
pub struct ClickTargets(RwLock<HashMap<String, Arc<Targets>>>);

/// Newsletters whose links are kept in memory at once; past this the cache starts again.
const KEPT: usize = 1_024;

impl ClickTargets {
    /// The links of a newsletter; `None` when it does not exist.
    pub async fn get(&self, db: &Db, id: NewsletterId) -> Result<Option<Arc<Targets>>, DbError> {
        if let Some(found) = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id.as_str())
        {
            return Ok(Some(found.clone()));
        }
        let Some(n) = db
            .run(move |conn| newsletters::find_newsletter(conn, &id).map_err(DbError::from))
            .await?
        else {
            return Ok(None);
        };
        let links = content_of(&n)
            .map(|c| crate::clicks::links(&c))
            .unwrap_or_default();
        let started = n.started_at.is_some();
        let targets = Arc::new(Targets {
            newsletter_id: Arc::from(n.id.as_str()),
            links,
            counting: started && n.count_clicks,
        });
        // Once started, its content is fixed: keep it. A draft's may still change.
        if started {
            let mut kept = self.0.write().unwrap_or_else(|p| p.into_inner());
            if kept.len() >= KEPT {
                kept.clear();
            }
            kept.insert(n.id.to_string(), targets.clone());
        }
        Ok(Some(targets))
    }
}
