//! Faults the newsletter engine must ride out without sending anything twice. (The scripts in
//! `faults/` run larger versions against `enlace serve`: kills, outages, restarts.)

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enlace::auth::Role;
use mailin_embedded::response::{Response, OK};
use mailin_embedded::{Handler, Server, SslConfig};

use crate::helpers::TestApp;
use crate::newsletters::{add_people, send_plain, POSTAL};

/// An SMTP relay that takes `delay` to accept each message (as one scanning content does) and
/// counts the messages it accepted.
#[derive(Clone)]
struct SlowRelay {
    delay: Duration,
    accepted: Arc<Mutex<usize>>,
}

impl Handler for SlowRelay {
    fn data_end(&mut self) -> Response {
        std::thread::sleep(self.delay);
        *self.accepted.lock().unwrap() += 1;
        OK
    }
}

fn start_slow_relay(delay: Duration) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let relay = SlowRelay {
        delay,
        accepted: Arc::new(Mutex::new(0)),
    };
    let accepted = relay.accepted.clone();
    let mut server = Server::new(relay);
    server
        .with_name("slow.test")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_num_threads(4)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, accepted)
}

#[tokio::test]
async fn a_message_in_flight_past_its_lease_is_not_taken_over_and_sent_again() {
    // The relay answers after 8 s; the lease is 5 s. While the first process waits for the
    // relay, it must keep its claim: a second process looking at 6 s finds nothing to take.
    let (port, accepted) = start_slow_relay(Duration::from_secs(8));
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.send_lease_seconds = 5;
        })
        .real_mail()
        .spawn()
        .await;
    let other = TestApp::builder().sharing(&app).spawn().await;
    let token = app.staff_token(Role::Editor).await;
    add_people(&app, 1);
    send_plain(&app, &token).await;

    let engine = app.engine.clone();
    let first = tokio::spawn(async move { engine.run_pending(enlace::db::now()).await });
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        other.run_sends().await,
        0,
        "the second process took over a delivery whose message was still in flight"
    );
    first.await.unwrap().unwrap();

    assert_eq!(
        *accepted.lock().unwrap(),
        1,
        "the relay got the message once"
    );
    assert!(
        other.sent.lock().unwrap().is_empty(),
        "and nobody else sent it"
    );
    assert_eq!(app.count("deliveries WHERE state = 'sent'"), 1);
}

/// On PostgreSQL, renewing the leases never waits for a delivery whose outcome is being written
/// (the outcome writer locks rows claim by claim, in its own order; waiting could deadlock with
/// it): that row is skipped, the others are renewed, and its claim still counts as held.
#[tokio::test]
async fn renewing_leases_skips_a_row_being_finished_instead_of_waiting_for_it() {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    use enlace::db::schema::deliveries as d;
    use enlace::db::{deliveries, write_transaction, AnyConnection, Backend};

    let app = TestApp::builder()
        .settings(|s| s.postal_address = Some(POSTAL.into()))
        .real_mail()
        .spawn()
        .await;
    if app.db.backend() != Backend::Postgres {
        return; // SQLite has one writer at a time: nothing to deadlock with.
    }
    let token = app.staff_token(Role::Editor).await;
    add_people(&app, 2);
    let id = send_plain(&app, &token).await;
    let now = enlace::db::now();
    app.engine.schedule(now).await.unwrap();
    let mut conn = app.db.get().unwrap();
    let lease = now + chrono::Duration::minutes(5);
    let claimed = write_transaction(&mut conn, |c| {
        deliveries::claim_deliveries(c, &id, "c1", now, lease, 10, false)
    })
    .unwrap();
    assert_eq!(claimed.len(), 2);
    let (busy, free) = (
        claimed[0].subscriber_id.clone(),
        claimed[1].subscriber_id.clone(),
    );
    let until = now + chrono::Duration::minutes(30);

    let AnyConnection::Postgresql(pg) = &mut *conn else {
        unreachable!()
    };
    pg.transaction(|pg| {
        // This connection holds one row, as the outcome writer does mid-statement.
        diesel::sql_query("SELECT 1 FROM deliveries WHERE subscriber_id = $1 FOR UPDATE")
            .bind::<Text, _>(&busy)
            .execute(pg)?;
        let renewing = {
            let (db, id) = (app.db.clone(), id.clone());
            std::thread::spawn(move || {
                let mut conn = db.get().unwrap();
                write_transaction(&mut conn, |c| {
                    deliveries::renew_claims(c, &[id], &["c1".to_owned()], until)
                })
            })
        };
        let started = std::time::Instant::now();
        while !renewing.is_finished() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            renewing.is_finished(),
            "the renewal waited for a row being finished"
        );
        assert_eq!(renewing.join().unwrap().unwrap(), vec!["c1".to_owned()]);
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
    let lease_of = |pg: &mut diesel::PgConnection, who: &str| {
        d::table
            .filter(d::subscriber_id.eq(who))
            .select(d::locked_until)
            .first::<Option<chrono::NaiveDateTime>>(pg)
            .unwrap()
    };
    assert_eq!(lease_of(pg, &free), Some(until), "the free row is renewed");
    assert_eq!(
        lease_of(pg, &busy),
        Some(lease),
        "the busy row is left as it was"
    );
}
