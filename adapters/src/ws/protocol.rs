//! The messages of the WebSocket protocol (contract: "WebSocket"): what a
//! client may send, and the JSON frames the server sends back.

use serde_json::{Value, json};

/// A client message that parsed.
#[derive(Clone, PartialEq)]
pub(crate) enum ClientMessage {
    /// `{"type":"ping"}`.
    Ping,
    /// `{"type":"echo","payload":<any>}` (a missing payload echoes `null`).
    Echo(Value),
    /// `{"type":"reauth","access":"<token>"}`, with `"dpop":"<proof>"` for a
    /// DPoP-bound token.
    Reauth(String, Option<String>),
    /// `{"type":"auth","access":"<token>"}` (and `"dpop"`): the first
    /// message of a socket opened without a token (contract v3).
    Auth(String, Option<String>),
}

// Redacted by hand: the token of a `reauth` must never reach a log line.
impl std::fmt::Debug for ClientMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ping => f.write_str("Ping"),
            Self::Echo(v) => f.debug_tuple("Echo").field(v).finish(),
            Self::Reauth(..) => f.write_str("Reauth([redacted])"),
            Self::Auth(..) => f.write_str("Auth([redacted])"),
        }
    }
}

/// Why a client message was refused (the `message` of `bad_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadMessage {
    /// Not a JSON object.
    #[error("messages are JSON objects with a \"type\"")]
    NotJson,
    /// A binary frame.
    #[error("binary frames are not part of the protocol")]
    Binary,
    /// No `type`, or one we do not know.
    #[error("unknown message type")]
    UnknownType,
    /// `reauth` (or `auth`) without a string `access`.
    #[error("reauth needs an \"access\" token")]
    MissingAccess,
    /// `auth` on a socket that is authenticated already.
    #[error("this connection is authenticated already: use reauth")]
    AlreadyAuthenticated,
}

impl ClientMessage {
    /// Parses a text frame.
    ///
    /// # Errors
    /// [`BadMessage`] for anything that is not a known, well-formed message.
    pub(crate) fn parse(text: &str) -> Result<Self, BadMessage> {
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(text) else {
            return Err(BadMessage::NotJson);
        };
        match object.get("type").and_then(Value::as_str) {
            Some("ping") => Ok(Self::Ping),
            Some("echo") => Ok(Self::Echo(object.remove("payload").unwrap_or(Value::Null))),
            Some("reauth") => match object.remove("access") {
                Some(Value::String(token)) => Ok(Self::Reauth(token, proof(&mut object))),
                _ => Err(BadMessage::MissingAccess),
            },
            Some("auth") => match object.remove("access") {
                Some(Value::String(token)) => Ok(Self::Auth(token, proof(&mut object))),
                _ => Err(BadMessage::MissingAccess),
            },
            _ => Err(BadMessage::UnknownType),
        }
    }
}

/// The `dpop` member of an `auth` or `reauth`, when it is a string.
fn proof(object: &mut serde_json::Map<String, Value>) -> Option<String> {
    match object.remove("dpop") {
        Some(Value::String(proof)) => Some(proof),
        _ => None,
    }
}

/// Error codes of server `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// Unparsable or unknown message.
    BadMessage,
    /// A refused `reauth`.
    ReauthFailed,
    /// The access token reached `exp`.
    TokenExpired,
    /// The session was revoked.
    SessionRevoked,
    /// A socket opened without a token did not authenticate with its first
    /// message (contract v3).
    AuthFailed,
    /// The user holds `WS_MAX_CONNECTIONS_PER_USER` sockets already (a
    /// socket that authenticated with its first message).
    TooManyConnections,
}

impl ErrorCode {
    const fn as_str(self) -> &'static str {
        match self {
            Self::BadMessage => "bad_message",
            Self::ReauthFailed => "reauth_failed",
            Self::TokenExpired => "token_expired",
            Self::SessionRevoked => "session_revoked",
            Self::AuthFailed => "auth_failed",
            Self::TooManyConnections => "too_many_connections",
        }
    }
}

/// `{"type":..,"payload":..}` as a string.
fn frame(kind: &str, payload: Value) -> String {
    json!({ "type": kind, "payload": payload }).to_string()
}

/// `connected`.
pub(crate) fn connected(
    user_id: &str,
    username: &str,
    session_id: &str,
    expires_at: i64,
) -> String {
    frame(
        "connected",
        json!({ "userId": user_id, "username": username, "sessionId": session_id, "expiresAt": expires_at }),
    )
}

/// `pong` with the server time in Unix milliseconds.
pub(crate) fn pong(ts_millis: i64) -> String {
    frame("pong", json!({ "ts": ts_millis }))
}

/// `echo` with the client's payload.
pub(crate) fn echo(payload: Value) -> String {
    frame("echo", payload)
}

/// `reauth_success`.
pub(crate) fn reauth_success(expires_at: i64) -> String {
    frame("reauth_success", json!({ "expiresAt": expires_at }))
}

/// `token_expiring`.
pub(crate) fn token_expiring(expires_at: i64, expires_in: i64) -> String {
    frame(
        "token_expiring",
        json!({ "expiresAt": expires_at, "expiresIn": expires_in }),
    )
}

/// `error` with a code and a human message.
pub(crate) fn error(code: ErrorCode, message: &str) -> String {
    frame(
        "error",
        json!({ "code": code.as_str(), "message": message }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_reauth_hides_its_token() {
        let message = ClientMessage::Reauth("eyJ.payload.SECRET".into(), Some("PROOF".into()));
        let printed = format!("{message:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert_eq!(printed, "Reauth([redacted])");
    }

    #[test]
    fn parses_the_known_messages() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"echo","payload":{"a":[1,2]}}"#),
            Ok(ClientMessage::Echo(json!({"a":[1,2]})))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"echo"}"#),
            Ok(ClientMessage::Echo(Value::Null))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"reauth","access":"t"}"#),
            Ok(ClientMessage::Reauth("t".into(), None))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"auth","access":"t","dpop":"p"}"#),
            Ok(ClientMessage::Auth("t".into(), Some("p".into())))
        );
    }

    #[test]
    fn refuses_junk() {
        assert_eq!(ClientMessage::parse("nope"), Err(BadMessage::NotJson));
        assert_eq!(ClientMessage::parse("[1]"), Err(BadMessage::NotJson));
        assert_eq!(
            ClientMessage::parse(r#"{"type":"dance"}"#),
            Err(BadMessage::UnknownType)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":7}"#),
            Err(BadMessage::UnknownType)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"reauth"}"#),
            Err(BadMessage::MissingAccess)
        );
    }

    #[test]
    fn server_frames_carry_type_and_payload() {
        let v: Value =
            serde_json::from_str(&error(ErrorCode::TokenExpired, "m")).unwrap_or_default();
        assert_eq!(
            v,
            json!({"type":"error","payload":{"code":"token_expired","message":"m"}})
        );
        let v: Value = serde_json::from_str(&token_expiring(100, 60)).unwrap_or_default();
        assert_eq!(
            v,
            json!({"type":"token_expiring","payload":{"expiresAt":100,"expiresIn":60}})
        );
    }
}
