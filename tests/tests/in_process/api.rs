//! Integration tests of the REST API: the real wiring in-process (see
//! `integration_tests::app`), every row of the contract's REST table, on
//! SQLite and on PostgreSQL (each test body runs once per backend).

mod account;
mod algorithms;
mod audit;
mod auth;
mod connections;
mod cut_off;
mod dpop;
mod edge;
mod email;
mod forged;
mod fuzzed;
mod meta;
mod mfa;
mod overload;
mod passkeys;
mod seals;
mod sessions;
mod throttle;
