//! Support for the integration tests in `tests/tests/`: a throwaway
//! PostgreSQL, the in-process application, real `authd` processes,
//! WebSocket clients, an OTLP/HTTP receiver.

pub mod app;
pub mod clock;
pub mod fault_proxy;
pub mod keys;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod storage;
pub mod ws_client;
