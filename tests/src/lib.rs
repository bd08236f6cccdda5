//! Support for the integration tests in `tests/tests/`: a throwaway
//! PostgreSQL, the in-process application, real `authd` processes,
//! WebSocket clients, an OTLP/HTTP receiver, a software WebAuthn
//! authenticator, an SMTP server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed setup is a failed test"
)]

pub mod app;
pub mod authenticator;
pub mod client;
pub mod clock;
pub mod document;
pub mod dpop;
pub mod fault_proxy;
pub mod keys;
pub mod load;
pub mod netns;
pub mod nginx;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod smtp;
pub mod soak;
pub mod storage;
pub mod totp;
pub mod ws_client;
pub mod ws_raw;

/// Runs each named suite function on both databases, as the tests
/// `<name>::sqlite` and `<name>::postgres` (the latter ignored outside CI
/// when PostgreSQL is not installed). `$arg` turns the
/// [`app::Backend`] into the suite's argument, asynchronously:
/// `std::future::ready` hands over the backend itself, a store helper a
/// fresh database of that kind.
///
/// `on_both!(needs "python-aiosmtpd" => "needs Python aiosmtpd"; $arg; ..)`
/// also ignores both tests outside CI when that tool is missing (see
/// `tests/missing_tools.rs`), with that reason.
#[macro_export]
macro_rules! on_both {
    (needs $tool:literal => $why:literal; $arg:path; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(missing = $tool, ignore = $why)]
            async fn sqlite() {
                super::$name($arg($crate::app::Backend::Sqlite).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
            #[cfg_attr(all(missing = $tool, not(missing = "postgres")), ignore = $why)]
            async fn postgres() {
                super::$name($arg($crate::app::Backend::Postgres).await).await;
            }
        }
    )*};
    ($arg:path; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($arg($crate::app::Backend::Sqlite).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
            async fn postgres() {
                super::$name($arg($crate::app::Backend::Postgres).await).await;
            }
        }
    )*};
}
