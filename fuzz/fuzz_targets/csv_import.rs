//! Bytes → an uploaded CSV file, checked and cut into parts, then every row read as the import
//! runs read it: never a panic; the rows of an accepted file are all read, on rising lines; no
//! report text repeats an address.

#![no_main]

mod common;

use std::sync::OnceLock;

use enlace::domain::{Email, FieldDeclaration, InterestSlug, Language};
use enlace::imports::plan::{prepare, Catalog, Options};
use enlace::imports::run::read_prepared;
use enlace::signup::PublicCatalog;
use libfuzzer_sys::fuzz_target;

static CATALOG: OnceLock<(PublicCatalog, Vec<FieldDeclaration>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options the request would give.
    let Some((&choice, file)) = data.split_first() else {
        return;
    };
    let (catalog, fields) = CATALOG.get_or_init(|| {
        let mut conn = common::database();
        (
            PublicCatalog::load_for_staff(&mut conn).unwrap(),
            common::declarations(),
        )
    });
    let options = Options {
        language: if choice & 1 == 0 { Language::En } else { Language::Es },
        interests: if choice & 2 == 0 {
            vec![]
        } else {
            vec![InterestSlug::parse("news").unwrap()]
        },
        map: if choice & 4 == 0 {
            vec![]
        } else {
            vec![("who".into(), "email".into()), ("ciudad".into(), "attributes.city".into())]
        },
        delimiter: [None, None, Some(b';'), Some(b'\t')][usize::from(choice >> 6)],
    };
    let upload = Catalog {
        interests: common::INTERESTS.iter().map(|s| s.to_string()).collect(),
        fields: fields.clone(),
    };
    let Ok(prepared) = prepare(file, &options, &upload) else {
        return;
    };
    let rows = read_prepared(&prepared, catalog, fields).expect("stored parts read back");
    assert_eq!(rows.len() as i64, prepared.rows);
    let mut last = 1;
    for (line, outcome) in rows {
        assert!(line > last, "line {line} after {last}");
        last = line;
        match outcome {
            Ok(email) => assert!(Email::parse(&email).is_ok()),
            Err(problems) => {
                assert!(!problems.is_empty());
                assert!(problems.iter().all(|p| !p.contains('@')), "{problems:?}");
            }
        }
    }
});
