//! Support for the integration tests in `tests/tests/`: a throwaway
//! PostgreSQL, the in-process application, real `authd` processes,
//! WebSocket clients.

pub mod app;
pub mod postgres;
pub mod process;
pub mod storage;
pub mod ws_client;
