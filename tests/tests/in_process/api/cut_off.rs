//! Queries the database cuts off mid-flight (`pg_ctl restart -m fast`,
//! `pg_terminate_backend`: SQLSTATE 57P01) are an outage, answered
//! `503 database_unavailable`, never `500`. Found by the soak
//! (`tests/load/soak.sh`): a PostgreSQL restart during refreshes gave 500s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authd::Config;
use integration_tests::app::{Backend, spawn_app};
use sea_orm::ConnectionTrait as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn queries_the_database_cuts_off_are_503_never_500() {
    let app = Arc::new(spawn_app(Backend::Postgres, Config::default()).await);
    let admin = sea_orm::Database::connect(&app.config.database_url)
        .await
        .expect("an admin connection");
    let mut users = Vec::new();
    for n in 0..8 {
        users.push(app.signed_in(&format!("cut{n}")).await);
    }
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let stop = Instant::now() + Duration::from_secs(6);
    let loops: Vec<_> = users
        .into_iter()
        .map(|user| {
            let (app, statuses) = (app.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut cookie = user.refresh;
                while Instant::now() < stop {
                    // Unchecked: this test judges the 5xx itself.
                    let r = app
                        .post("/api/refresh")
                        .refresh_cookie(&cookie)
                        .send_unchecked()
                        .await;
                    if let Some(next) = r.refresh_cookie() {
                        cookie = next;
                    }
                    let code = r.json()["code"].as_str().unwrap_or_default().to_owned();
                    statuses.lock().unwrap().push((r.status.as_u16(), code));
                }
            })
        })
        .collect();
    let mut cuts = 0;
    while Instant::now() < stop {
        admin
            .execute_unprepared(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .expect("terminating the service's connections");
        cuts += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for l in loops {
        l.await.unwrap();
    }
    let statuses = statuses.lock().unwrap();
    let count = |f: &dyn Fn(&(u16, String)) -> bool| statuses.iter().filter(|s| f(s)).count();
    let ok = count(&|s| s.0 == 200);
    let unavailable = count(&|s| s.0 == 503 && s.1 == "database_unavailable");
    let others: Vec<_> = statuses
        .iter()
        .filter(|s| s.0 != 200 && !(s.0 == 503 && s.1 == "database_unavailable"))
        .collect();
    eprintln!(
        "{cuts} cuts: {ok} x 200, {unavailable} x 503, {} others",
        others.len()
    );
    assert!(ok > 0, "refreshes went through between the cuts");
    assert!(
        others.is_empty(),
        "only 200 and 503 database_unavailable; {} others, the first {:?}",
        others.len(),
        others.first()
    );
}
