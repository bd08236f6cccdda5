//! Adapters of the auth service: what the application's ports look like on
//! real infrastructure.
//!
//! - [`crypto`]: the hand-rolled RS256 signer/verifier, JWKS, password hashing.
//! - [`persistence`]: SeaORM repositories (PostgreSQL and SQLite), the revocation bus.
//! - [`http`]: the poem-openapi REST edge.
//! - [`ws`]: the async-tungstenite WebSocket edge.
//! - [`system`]: the clock and the CSPRNG.
//! - [`client_presence`]: whether a request's client is still connected.
//! - [`telemetry`]: security events, metrics, OTLP export.

pub mod client_presence;
pub mod crypto;
pub mod http;
pub mod persistence;
pub mod private_files;
pub mod system;
pub mod telemetry;
pub mod ws;
