//! Crypto adapter: RS256 access tokens written by hand on the `rsa` crate
//! (no JWT library), the JWKS document, and password hashing.
//!
//! - [`keys`]: RSA key pairs from/to PEM, with their RFC 7638 key ids.
//! - [`key_ring`]: the signing-key set of a process, followed in the shared store.
//! - [`key_seal`]: private signing keys sealed for the store.
//! - [`jwks`]: the public keys as a JSON Web Key Set.
//! - [`jwt`]: the [`AccessTokenSigner`](application::ports::AccessTokenSigner) and
//!   [`AccessTokenVerifier`](application::ports::AccessTokenVerifier).
//! - [`password`]: the [`PasswordHasher`](application::ports::PasswordHasher)
//!   (argon2id; bcrypt and PBKDF2 accepted for imported users).

pub mod jwks;
pub mod jwt;
pub mod key_ring;
pub mod key_seal;
pub mod keys;
pub mod password;

mod base64url;
mod os_rng;
