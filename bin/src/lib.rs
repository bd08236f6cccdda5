//! The auth service's configuration and wiring, shared by the `authd`
//! binary and the integration tests (which start the real wiring in-process).

pub mod config;
mod housekeeping;
pub mod key_files;
pub mod keys_cli;
pub mod lifecycle;
pub mod observability;
pub mod outbox;
pub mod wiring;

pub use config::{Config, ConfigError, LogFormat};
pub use key_files::KeyMaterial;
pub use lifecycle::{RunningApp, Services, ShutdownTrigger, start, start_with};
pub use wiring::Seams;
