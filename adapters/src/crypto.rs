//! Crypto adapter: access tokens written by hand (no JWT library) on the
//! RustCrypto crates, in RS256, PS256, ES256 or EdDSA, the signing-key set,
//! and password hashing.
//!
//! - [`keys`]: RSA key pairs from/to PEM (the key files of `authd keys generate`).
//! - [`jws_keys`]: the keys of each algorithm, their JWK members and RFC 7638 key ids.
//! - [`key_ring`]: the signing-key set of a process, followed in the shared store.
//! - [`key_seal`]: private signing keys sealed for the store.
//! - [`jwt`]: the [`AccessTokenSigner`](application::ports::AccessTokenSigner) and
//!   [`AccessTokenVerifier`](application::ports::AccessTokenVerifier).
//! - [`mail_seal`]: mails sealed for the outbox.
//! - [`totp`]: TOTP codes (RFC 6238), base32 secrets and `otpauth://` URIs.
//! - [`password`]: the [`PasswordHasher`](application::ports::PasswordHasher)
//!   (argon2id; bcrypt and PBKDF2 accepted for imported users).

pub mod dpop;
pub mod dpop_verifier;
pub mod jws_keys;
pub mod jwt;
pub mod key_ring;
pub mod key_seal;
pub mod keys;
pub mod mail_seal;
pub mod password;
pub mod totp;

mod base64url;
mod os_rng;
