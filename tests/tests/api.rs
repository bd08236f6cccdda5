//! Integration tests of the REST API: the real wiring in-process (see
//! `integration_tests::app`), every row of the contract's REST table, on
//! SQLite and on PostgreSQL (each test body runs once per backend).

/// Runs each named `async fn(Backend)` as two tests: `<name>::sqlite` and `<name>::postgres`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(integration_tests::app::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(integration_tests::app::Backend::Postgres).await;
                }
            }
        )*
    };
}

#[path = "api/audit.rs"]
mod audit;
#[path = "api/auth.rs"]
mod auth;
#[path = "api/connections.rs"]
mod connections;
#[path = "api/edge.rs"]
mod edge;
#[path = "api/forged.rs"]
mod forged;
#[path = "api/meta.rs"]
mod meta;
#[path = "api/overload.rs"]
mod overload;
#[path = "api/seals.rs"]
mod seals;
#[path = "api/sessions.rs"]
mod sessions;
#[path = "api/throttle.rs"]
mod throttle;
