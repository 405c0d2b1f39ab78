//! Bytes → JSON → segment filter: parsing never panics; a parsed filter round-trips through its
//! canonical JSON; a checked one compiles to SQL that runs, and `not` reaches exactly the rest.

#![no_main]

mod common;

use std::sync::{Mutex, OnceLock};

use enlace::db::segments::count_recipients;
use enlace::db::{AnyConnection, Backend};
use enlace::domain::SegmentFilter;
use libfuzzer_sys::fuzz_target;

static DB: OnceLock<Mutex<AnyConnection>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let filter = match SegmentFilter::parse(&value) {
        Ok(filter) => filter,
        Err(errors) => {
            assert!(!errors.is_empty());
            return;
        }
    };
    let canonical = filter.to_json();
    assert_eq!(SegmentFilter::parse(&canonical).as_ref(), Ok(&filter));
    let interests: Vec<String> = common::INTERESTS.iter().map(|s| s.to_string()).collect();
    if filter.check(&common::declarations(), &interests).is_err() {
        return;
    }
    let mut conn = DB
        .get_or_init(|| Mutex::new(common::database()))
        .lock()
        .unwrap();
    let reached = count_recipients(&mut conn, &filter, Backend::Sqlite)
        .unwrap_or_else(|e| panic!("{canonical} does not run: {e}"));
    let negated = SegmentFilter::Not(Box::new(filter));
    let rest = count_recipients(&mut conn, &negated, Backend::Sqlite)
        .unwrap_or_else(|e| panic!("not {canonical} does not run: {e}"));
    assert_eq!(reached + rest, common::CONFIRMED, "{canonical}");
});
