//! The operations, one `#[OpenApi]` impl per area, and the bodies they share.

pub mod account;
pub mod auth;
pub mod email;
pub mod login_mfa;
pub mod meta;
pub mod mfa;
pub mod passkeys;
pub mod protected;
pub mod register;
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
    /// The caller's account: what it is, password change and deletion.
    Account,
    /// Two-factor login (TOTP): enrolment, confirmation, turning it off.
    TwoFactor,
    /// Passkeys (WebAuthn): registering, listing and deleting them.
    Passkeys,
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

#[cfg(test)]
mod tests {
    use domain::Username;
    use domain::password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

    /// Every "N to M characters" in a description of the OpenAPI document.
    fn stated_bounds(value: &serde_json::Value, out: &mut Vec<(usize, usize)>) {
        match value {
            serde_json::Value::String(text) => {
                let words: Vec<&str> = text.split_whitespace().collect();
                for w in words.windows(4) {
                    if w[1] == "to"
                        && w[3].starts_with("characters")
                        && let (Ok(lo), Ok(hi)) = (w[0].parse(), w[2].parse())
                    {
                        out.push((lo, hi));
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| stated_bounds(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| stated_bounds(v, out)),
            _ => {}
        }
    }

    /// The bounds are `domain`'s constants; the texts that state them
    /// (doc comments, which poem-openapi reads only as literals) must say
    /// the same numbers, so a changed bound fails here until they do.
    #[test]
    fn the_document_states_the_domain_bounds() {
        let doc: serde_json::Value = serde_json::from_str(&crate::http::openapi_json()).unwrap();
        let mut stated = Vec::new();
        stated_bounds(&doc, &mut stated);
        let username = (Username::MIN_LEN, Username::MAX_LEN);
        let password = (MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS);
        assert!(stated.contains(&username), "{stated:?}");
        assert!(stated.contains(&password), "{stated:?}");
        for pair in &stated {
            assert!(
                *pair == username || *pair == password,
                "{pair:?} in {stated:?}"
            );
        }
        assert!(
            Username::PATTERN.ends_with(&format!("{{{},{}}}$", username.0, username.1)),
            "{}",
            Username::PATTERN
        );
    }
}
