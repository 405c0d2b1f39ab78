//! Proof for skeptics: after readers click a newsletter's counted links, nothing Enlace keeps ties
//! a click to a person. Every row of every table is read before and after the clicks: the only
//! change is counts in `newsletter_clicks` (newsletter, link, hour, clicks, scanner clicks), and
//! no byte of the readers' browsers or network addresses is anywhere in the database or the data
//! folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::Text;
use enlace::auth::Role;
use enlace::db::AnyConnection;

use crate::clicks::{counted_links, sent_with_clicks};
use crate::helpers::TestApp;
use crate::newsletters::POSTAL;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    row: String,
}

/// Every table's columns, in order.
fn tables(conn: &mut AnyConnection) -> BTreeMap<String, Vec<String>> {
    let names: Vec<Name> = match conn {
        AnyConnection::Sqlite(_) => diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .load(conn),
        AnyConnection::Postgresql(_) => diesel::sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .load(conn),
    }
    .unwrap();
    names
        .into_iter()
        .map(|t| {
            let columns: Vec<Name> = match conn {
                AnyConnection::Sqlite(_) => diesel::sql_query(format!(
                    "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                    t.name
                ))
                .load(conn),
                AnyConnection::Postgresql(_) => diesel::sql_query(format!(
                    "SELECT column_name::text AS name FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = '{}' ORDER BY ordinal_position",
                    t.name
                ))
                .load(conn),
            }
            .unwrap();
            (t.name, columns.into_iter().map(|c| c.name).collect())
        })
        .collect()
}

/// Every row of every table, each written out whole, by table.
fn every_row(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let mut conn = app.conn();
    let conn: &mut AnyConnection = &mut conn;
    let tables = tables(conn);
    assert!(tables.len() > 20, "every table is read: {tables:?}");
    tables
        .into_iter()
        .map(|(table, columns)| {
            let query = match conn {
                AnyConnection::Sqlite(_) => format!(
                    "SELECT {} AS row FROM \"{table}\"",
                    columns
                        .iter()
                        .map(|c| format!("quote(\"{c}\")"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ")
                ),
                AnyConnection::Postgresql(_) => format!("SELECT t::text AS row FROM \"{table}\" t"),
            };
            let mut rows: Vec<String> = diesel::sql_query(query)
                .load::<Row>(conn)
                .unwrap()
                .into_iter()
                .map(|r| r.row)
                .collect();
            rows.sort();
            (table, rows)
        })
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn nothing_kept_ties_a_click_to_the_person_who_clicked() {
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            s.results_min_count = 1;
            // Requests come through a proxy that names each reader's address.
            s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        })
        .spawn()
        .await;
    let token = app.staff_token(Role::Editor).await;
    let (id, mails) = sent_with_clicks(&app, &token).await;
    let before = every_row(&app);

    // Each reader clicks every counted link of their own copy, from their own browser and
    // network address; one reader's mail gateway opens them all first.
    let marks: Vec<(String, String)> = (0..mails.len())
        .map(|i| {
            (
                format!(
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 ProofReader{}",
                    uuid::Uuid::new_v4().simple()
                ),
                format!("203.0.113.{}", 11 + i),
            )
        })
        .collect();
    let gateway = (
        "Mozilla/5.0 GatewayProof7f3a".to_owned(),
        "198.51.100.77".to_owned(),
    );
    let click = |link: String, agent: String, address: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(app.url(&link))
                .header("User-Agent", agent)
                .header("X-Forwarded-For", address)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 302);
        }
    };
    for mail in [&mails[0], &mails[3]] {
        for link in counted_links(&app, mail) {
            click(link, gateway.0.clone(), gateway.1.clone()).await;
        }
    }
    let mut clicked = 0;
    for (mail, (agent, address)) in mails.iter().zip(&marks) {
        for link in counted_links(&app, mail) {
            click(link, agent.clone(), address.clone()).await;
            clicked += 1;
        }
    }
    assert_eq!(clicked, 10);
    app.flush_clicks().await;
    let after = every_row(&app);

    // The only change: counts in newsletter_clicks, whose columns name no one.
    let changed: BTreeSet<&String> = after
        .iter()
        .filter(|(table, rows)| before.get(*table) != Some(*rows))
        .map(|(table, _)| table)
        .collect();
    assert_eq!(changed, BTreeSet::from([&"newsletter_clicks".to_owned()]));
    let columns = &tables(&mut app.conn())["newsletter_clicks"];
    assert_eq!(
        columns,
        &["newsletter_id", "link", "hour", "clicks", "scanner_clicks"]
    );
    let rows = &after["newsletter_clicks"];
    assert_eq!(rows.len(), 3, "one row per link and hour: {rows:?}");
    assert!(rows.iter().all(|r| r.contains(&id)), "{rows:?}");

    // No reader's browser or address, in any row or any byte of the data folder (the SQLite
    // database, its journal, the key, the outbox).
    let mut traces: Vec<&str> = vec![&gateway.0, &gateway.1];
    for (agent, address) in &marks {
        traces.push(agent);
        traces.push(address);
    }
    for (table, rows) in &after {
        for row in rows {
            for trace in &traces {
                assert!(!row.contains(trace), "{table} holds {trace}: {row}");
            }
        }
    }
    let mut found = Vec::new();
    files(app.data_dir(), &mut found);
    if app.database_url.starts_with("sqlite://") {
        assert!(found.iter().any(|f| f.ends_with("enlace.db")), "{found:?}");
    }
    for file in found {
        let bytes = std::fs::read(&file).unwrap();
        for trace in &traces {
            assert!(
                !bytes.windows(trace.len()).any(|w| w == trace.as_bytes()),
                "{} holds {trace}",
                file.display()
            );
        }
    }

    // And the counts are there: every reader's clicks, the gateway's apart.
    let r: serde_json::Value = app
        .get_as(&token, &format!("/api/v1/newsletters/{id}/results"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["clicks"]["clicks"], 10, "{r}");
    assert_eq!(r["clicks"]["scanner_clicks"], 4, "{r}");
}
