//! The soak run (issue 36): the production layout (three `authd api` and
//! three `authd ws` behind the project's Nginx, on one PostgreSQL, all on
//! loopback) under a steady mixed workload and scheduled faults, with the
//! guarantees checked all the time and reported with counts. Used by the
//! `soak` example (`tests/load/soak.sh`) and by the CI test
//! (`bin/tests/soak.rs`).

mod checks;
mod device;
mod faults;
mod jitter;
mod layout;
mod record;
mod report;
mod revocations;
mod run;
mod settings;
mod sockets;
mod tls;
mod user;

pub use report::Outcome;
pub use run::run;
pub use settings::Settings;

/// The programs a soak run needs besides PostgreSQL's server binaries.
pub const TOOLS: [&str; 4] = ["nginx", "openssl", "envsubst", "psql"];
