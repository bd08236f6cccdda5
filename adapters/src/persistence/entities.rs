//! SeaORM entities of the schema in `migration/`. Private to the adapter:
//! the ports speak domain types, and the repositories convert at the edge.

pub mod audit_event;
pub mod dpop_jti;
pub mod email_address;
pub mod login_failure;
pub mod mail_outbox;
pub mod mail_token;
pub mod mfa_token;
pub mod passkey;
pub mod passkey_ceremony;
pub mod passkey_user;
pub mod recovery_code;
pub mod refresh_token;
pub mod revoked_session;
pub mod session;
pub mod signing_key;
pub mod totp_secret;
pub mod user;
