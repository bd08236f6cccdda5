//! The operations, one `#[OpenApi]` impl per area, and the bodies they share.

pub mod account;
pub mod auth;
pub mod meta;
pub mod mfa;
pub mod protected;
pub mod sessions;
pub mod strict_string;

use domain::User;
use poem_openapi::{Object, Tags};

/// The areas of the API (tags in the document).
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Registration, login, token refresh and logout.
    Auth,
    /// The caller's sessions (token families).
    Sessions,
    /// An example of a protected resource.
    Protected,
    /// Health and the public keys.
    Meta,
    /// The caller's account: password change and deletion.
    Account,
    /// Two-factor login (TOTP): enrolment, confirmation, turning it off.
    TwoFactor,
}

/// A user as clients see it.
#[derive(Debug, Clone, Object)]
pub struct UserBody {
    /// The user's id (UUID).
    pub id: uuid::Uuid,
    /// The username as registered.
    pub username: String,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: *user.id.as_uuid(),
            username: user.username.as_str().to_owned(),
        }
    }
}
