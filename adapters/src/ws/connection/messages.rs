//! What the client sends: frames read, messages answered, a `reauth` checked.

use domain::sockets::{Reauth, SOCKET_TOKEN_LEEWAY_SECS, decide_reauth};
use tokio::time::{Instant, Sleep};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

use super::{CLOSE_NO_STATUS, Connection, Ending, Held, Ws, bad_message, too_big};
use crate::ws::deflate::Failure;
use crate::ws::protocol::{self, BadMessage, ClientMessage, ErrorCode};
use crate::ws::registry::Rung;

impl Connection {
    pub(super) async fn on_frame(
        &mut self,
        ws: &mut Ws,
        frame: Option<Result<Message, WsError>>,
        sleep: std::pin::Pin<&mut Sleep>,
    ) -> Result<(), Ending> {
        let message = match frame {
            None => return Err(Ending::Gone),
            Some(Err(WsError::Capacity(_))) => return Err(too_big()),
            // RFC 6455 §8.1: a text message that is not UTF-8 fails with 1007.
            Some(Err(WsError::Utf8(_))) => {
                return Err(Ending::Abort(CloseCode::Invalid, "text is not UTF-8"));
            }
            // A frame that breaks RFC 6455 (reserved bits, an unmasked
            // frame, a control frame too long...): tungstenite refuses it
            // without a close frame; we send one (1002).
            Some(Err(WsError::Protocol(e)))
                if !matches!(e, ProtocolError::ResetWithoutClosingHandshake) =>
            {
                tracing::debug!(error = %e, "protocol violation");
                return Err(Ending::Abort(CloseCode::Protocol, "protocol violation"));
            }
            Some(Err(e)) => {
                return Err(match Failure::of(&e) {
                    Some(Failure::TooBig) => too_big(),
                    Some(Failure::Invalid) => {
                        Ending::Abort(CloseCode::Invalid, "invalid compressed data")
                    }
                    Some(Failure::Protocol) => {
                        Ending::Abort(CloseCode::Protocol, "invalid compressed frames")
                    }
                    None => {
                        tracing::debug!(error = %e, "websocket read failed");
                        Ending::Gone
                    }
                });
            }
            Some(Ok(message)) => message,
        };
        let reply = match message {
            Message::Text(text) => match ClientMessage::parse(text.as_str()) {
                Ok(message) => self.answer(message),
                Err(bad) => bad_message(bad),
            },
            Message::Binary(_) => bad_message(BadMessage::Binary),
            // A close is answered by tungstenite, and then the stream ends.
            Message::Close(frame) => {
                self.peer_close = Some(frame.map_or(CLOSE_NO_STATUS, |f| f.code.into()));
                return Ok(());
            }
            Message::Pong(payload) => {
                if self.answers_a_ping(&payload) {
                    self.last_seen = Instant::now();
                }
                return Ok(());
            }
            // Pings are answered by tungstenite.
            Message::Ping(_) | Message::Frame(_) => return Ok(()),
        };
        self.send(ws, reply, sleep).await
    }

    fn answer(&mut self, message: ClientMessage) -> String {
        match message {
            ClientMessage::Ping => protocol::pong(self.auth().now().unix_millis()),
            ClientMessage::Echo(payload) => protocol::echo(payload),
            ClientMessage::Reauth(token) => self.reauth(&token),
        }
    }

    /// A `reauth`, in a span of its own under the connection's (exported
    /// when it ends, not when the socket closes), counted by outcome.
    fn reauth(&mut self, token: &str) -> String {
        let span = tracing::info_span!("ws.reauth", outcome = tracing::field::Empty);
        let _entered = span.enter();
        let (accepted, reply) = self.check_reauth(token);
        self.shared.config.metrics.ws_reauth(accepted);
        span.record("outcome", if accepted { "success" } else { "failure" });
        reply
    }

    /// Checks a `reauth` token and adopts its claims: whether it was
    /// accepted, and the answer.
    fn check_reauth(&mut self, token: &str) -> (bool, String) {
        let claims = match self
            .auth()
            .verify_with_leeway(token, SOCKET_TOKEN_LEEWAY_SECS)
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::debug!(reason = %e, "reauth refused");
                let text =
                    protocol::error(ErrorCode::ReauthFailed, "the access token is not valid");
                return (false, text);
            }
        };
        match decide_reauth(self.claims.sub, self.claims.sid, claims.sub, claims.sid) {
            Reauth::OtherUser => {
                tracing::warn!(other_user = %claims.sub, "reauth with another user's token refused");
                return (
                    false,
                    protocol::error(
                        ErrorCode::ReauthFailed,
                        "the access token belongs to another user",
                    ),
                );
            }
            Reauth::MoveTo(session) => {
                tracing::debug!(new_session = %session, "reauth moved the connection to another session");
                self.shared
                    .registry
                    .move_to(self.claims.sid, session, self.id, self.bell.clone());
                if self.auth().is_session_revoked(&session) {
                    // Revoked between the check and the move: ring ourselves.
                    self.bell.ring(Rung::Revoked);
                }
            }
            Reauth::Renew => {}
        }
        let kid = self.shared.kids.name(self.auth().token_kid(token));
        self.claims = Held::of(&claims, kid);
        self.arm_expiry();
        tracing::debug!(expires_at = self.claims.exp, "reauth");
        (true, protocol::reauth_success(self.claims.exp))
    }
}
