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
                #[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
                async fn postgres() {
                    super::$name(integration_tests::app::Backend::Postgres).await;
                }
            }
        )*
    };
}

mod audit;
mod auth;
mod connections;
mod edge;
mod forged;
mod meta;
mod overload;
mod seals;
mod sessions;
mod throttle;
