//! The handshake of one accepted socket: the address's slot, the upgrade
//! request admitted (path, origin, token, the user's slot), the extension
//! negotiated; then the connection's own task (see `connection`).

use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::http::HeaderValue;

use super::admission::{Admitted, Refusal, admit, socket_url};
use super::connection::{Connection, Held, Shared};
use super::deflate::{self, Deflating};
use super::first_message;
use super::protocol;
use crate::net::{REQUEST_ID, request_id_of};

/// Runs one accepted socket to its end.
pub(crate) async fn run(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // The address's slot is held from now (a handshake in progress counts);
    // `None`: the address is at its bound, refused once the request is read.
    let address_slot = stream
        .peer_addr()
        .map_or(Some(None), |peer| shared.limits.take_address(peer.ip()));
    // `X-Forwarded-Proto` is believed from a trusted proxy only.
    let from_proxy = stream.peer_addr().is_ok_and(|peer| {
        let ip = peer.ip().to_canonical();
        shared
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(ip))
    });
    let mut url = String::new();
    let mut user_slot = None;
    let mut admitted: Option<Admitted> = None;
    let mut request_id = String::new();
    let mut caller = None;
    let mut compress = false;
    // The error type is tungstenite's HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        request_id = request_id_of(request.headers());
        // W3C `traceparent`/`tracestate`: the connection's span continues the
        // caller's trace (a no-op unless OTLP export installed a propagator).
        caller = Some(opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
        }));
        let https = from_proxy
            && request
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        url = socket_url(request, shared.config.public_url.as_deref(), https);
        let admitted_here = admit(
            request,
            &shared.auth,
            &shared.config.allowed_origins,
            shared.config.dpop.as_ref(),
            &url,
        )
        .and_then(|admitted| {
            if address_slot.is_none() {
                return Err(Refusal::TooManyFromAddress);
            }
            // A first-message socket takes the user's slot once its
            // token names the user.
            if let Admitted::Token(claims, _) = &admitted {
                user_slot = Some(
                    shared
                        .limits
                        .take_user(claims.sub)
                        .ok_or(Refusal::TooManyForUser)?,
                );
            }
            Ok(admitted)
        });
        match admitted_here {
            Ok(claims) => {
                admitted = Some(claims);
                if let Ok(id) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                if deflate::negotiate(request.headers()) {
                    compress = true;
                    response.headers_mut().insert(
                        "sec-websocket-extensions",
                        HeaderValue::from_static(deflate::ANSWER),
                    );
                }
                Ok(response)
            }
            Err(refusal) => {
                // The refusal names the failed check, never the token or the query.
                tracing::debug!(reason = %refusal, request_id, "websocket handshake refused");
                Err(refusal.response())
            }
        }
    };
    let handshake = async_tungstenite::tokio::accept_hdr_async_with_config(
        Deflating::new(stream),
        callback,
        Some(shared.ws_config),
    );
    let mut ws = match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::trace!(error = %e, "websocket handshake ended");
            return;
        }
        Err(_) => return,
    };
    let Some(admitted) = admitted else {
        return;
    };
    ws.get_mut()
        .get_mut()
        .after_handshake(compress.then_some(shared.config.max_message_size));
    let (claims, kid) = match admitted {
        Admitted::Token(claims, kid) => (claims, kid),
        Admitted::FirstMessage => {
            // A task of its own, as below: the handshake's state ends here.
            let address = address_slot.flatten().unwrap_or_default();
            tokio::spawn(first_message::authenticate(
                shared,
                Box::new(ws),
                address,
                request_id.into_boxed_str(),
                url.into_boxed_str(),
            ));
            return;
        }
    };
    let span = tracing::info_span!(
        "ws",
        user = %claims.sub,
        session = %claims.sid,
        request_id = %request_id,
        otel.kind = "server",
    );
    if let Some(caller) = caller {
        // Fails only when no OpenTelemetry layer is installed.
        let _ = span.set_parent(caller);
    }
    let slots = [
        user_slot.unwrap_or_default(),
        address_slot.flatten().unwrap_or_default(),
    ];
    // A task of its own: this one, with everything the handshake needed,
    // ends here, and the socket's long life costs only what serving needs.
    let hello = protocol::connected(
        &claims.sub.to_string(),
        &claims.username,
        &claims.sid.to_string(),
        claims.exp,
    );
    let kid = shared.kids.name(kid);
    tokio::spawn(
        Connection::new(shared, Held::of(&claims, kid).at(&claims, &url), slots)
            .serve(Box::new(ws), hello)
            .instrument(span),
    );
}
