//! Both migration sets describe the same tables, and schema.rs matches what they create.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::Text;
use enlace::db::{run_migrations, schema, AnyConnection, Db};

use crate::helpers::spawn_app;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

fn columns(conn: &mut AnyConnection) -> BTreeSet<(String, String)> {
    let query = match conn {
        AnyConnection::Sqlite(_) => {
            "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'"
        }
        AnyConnection::Postgresql(_) => {
            "SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '__diesel%'"
        }
    };
    diesel::sql_query(query)
        .load::<Column>(conn)
        .unwrap()
        .into_iter()
        .map(|c| (c.table_name, c.column_name))
        .collect()
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_create_the_same_columns() {
    let dir = std::env::temp_dir().join(format!("enlace-schema-{}", uuid::Uuid::new_v4()));
    let lite = Db::connect(&format!("sqlite://{}/s.db", dir.display()), 1).unwrap();
    lite.migrate().unwrap();
    let sqlite_columns = columns(&mut lite.get().unwrap());
    assert!(sqlite_columns.contains(&("subscribers".into(), "email".into())));
    // Against PostgreSQL when the suite runs there.
    let app = spawn_app().await;
    let mut conn = app.db.get().unwrap();
    run_migrations(&mut conn).unwrap();
    let app_columns = columns(&mut conn);
    assert_eq!(sqlite_columns, app_columns);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn every_column_in_schema_rs_exists_on_this_backend() {
    let app = spawn_app().await;
    let mut conn = app.db.get().unwrap();
    let conn: &mut AnyConnection = &mut conn;
    macro_rules! select_all {
        ($($table:ident),*) => {$(
            schema::$table::table.select(schema::$table::all_columns).limit(1).execute(conn).unwrap();
        )*};
    }
    select_all!(
        api_keys,
        audit_log,
        change_counter,
        staff,
        confirmation_tokens,
        consent_events,
        custom_fields,
        import_parts,
        import_problems,
        imports,
        interests,
        jobs,
        subscriber_interests,
        subscribers,
        suppressions,
        tombstones,
        segments,
        newsletters,
        deliveries,
        delivery_results,
        newsletter_actions,
        console_sessions,
        staff_invitations,
        mail_events,
        provider_tokens,
        render_marks,
        webhook_endpoints,
        webhook_messages,
        webhook_attempts
    );
}
