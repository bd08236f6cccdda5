//! A JSON string field that accepts only JSON strings (poem-openapi's `String`
//! also takes numbers and booleans; the contract calls those `400 bad_request`).

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// What the OpenAPI document states about a string field. Only the schema
/// says it: parsing stays with the use cases, which answer the contract's own
/// codes (`invalid_username`, `weak_password`, `invalid_credentials`).
pub trait StringRules: Send + Sync + 'static {
    /// `minLength`, in characters.
    const MIN_LENGTH: Option<usize> = None;
    /// `maxLength`, in characters.
    const MAX_LENGTH: Option<usize> = None;
    /// `pattern`.
    const PATTERN: Option<&'static str> = None;
}

/// No rules stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnyString;
impl StringRules for AnyString {}

/// The username policy (`domain::Username`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsernameRules;
impl StringRules for UsernameRules {
    const MIN_LENGTH: Option<usize> = Some(domain::Username::MIN_LEN);
    const MAX_LENGTH: Option<usize> = Some(domain::Username::MAX_LEN);
    const PATTERN: Option<&'static str> = Some(domain::Username::PATTERN);
}

/// The password policy (`domain::password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRules;
impl StringRules for PasswordRules {
    const MIN_LENGTH: Option<usize> = Some(domain::password::MIN_PASSWORD_CHARS);
    const MAX_LENGTH: Option<usize> = Some(domain::password::MAX_PASSWORD_CHARS);
}

/// A TOTP code: six digits (spaces around them are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpCodeRules;
impl StringRules for TotpCodeRules {
    const MAX_LENGTH: Option<usize> = Some(16);
}

/// A recovery code: 20 hex digits, dashes and spaces ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryCodeRules;
impl StringRules for RecoveryCodeRules {
    const MAX_LENGTH: Option<usize> = Some(64);
}

/// An `mfaToken`: 43 base64url characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaTokenRules;
impl StringRules for MfaTokenRules {
    const MIN_LENGTH: Option<usize> = Some(43);
    const MAX_LENGTH: Option<usize> = Some(43);
}

/// A `registrationId` or `loginId`: 43 base64url characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeremonyIdRules;
impl StringRules for CeremonyIdRules {
    const MIN_LENGTH: Option<usize> = Some(43);
    const MAX_LENGTH: Option<usize> = Some(43);
}

/// An email address as sent (checked further by `domain::email`).
#[derive(Debug, Clone, Copy)]
pub struct EmailRules;
impl StringRules for EmailRules {
    const MAX_LENGTH: Option<usize> = Some(1024);
}

/// A token from a mail (checked against the store).
#[derive(Debug, Clone, Copy)]
pub struct MailTokenRules;
impl StringRules for MailTokenRules {
    const MAX_LENGTH: Option<usize> = Some(256);
}

/// A passkey's name: at most 64 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasskeyNameRules;
impl StringRules for PasskeyNameRules {
    const MAX_LENGTH: Option<usize> = Some(domain::passkey::NAME_MAX_CHARS);
}

/// A string that was a JSON string on the wire; `R` is what its schema states.
#[derive(Clone, PartialEq, Eq)]
pub struct StrictString<R: StringRules = AnyString>(pub String, pub PhantomData<R>);

impl<R: StringRules> std::fmt::Debug for StrictString<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // It may be a password.
        f.write_str("StrictString(..)")
    }
}

impl<R: StringRules> Type for StrictString<R> {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.min_length = R::MIN_LENGTH;
        schema.max_length = R::MAX_LENGTH;
        schema.pattern = R::PATTERN.map(str::to_owned);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<R: StringRules> ParseFromJSON for StrictString<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Self(s, PhantomData)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::custom("the field is required")),
        }
    }
}

impl<R: StringRules> ToJSON for StrictString<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}
