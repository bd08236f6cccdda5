//! A real WebSocket client for the tests and the load tool: connect (with a
//! chosen source address, headers, query), send JSON, receive JSON or the
//! close code, each with a deadline. Over plain TCP by default, or over any
//! stream the caller opened ([`WsClient::handshake`]: TLS through Nginx).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{self, Message};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

/// A handshake the server refused: its HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// Response body, if any.
    pub body: String,
}

/// What arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON text frame.
    Json(Value),
    /// A text frame that is not JSON.
    Text(String),
    /// The server's close frame (its code), or the end of the stream (`None`).
    Closed(Option<u16>),
}

/// An open WebSocket, over TCP unless `S` says otherwise.
#[derive(Debug)]
pub struct WsClient<S = TcpStream> {
    ws: WebSocketStream<TokioAdapter<S>>,
    request_id: Option<String>,
    extensions: Option<String>,
}

/// Options of a connection attempt.
#[derive(Debug, Clone, Default)]
pub struct Connect<'a> {
    /// Path and query, e.g. `/ws?token=...`.
    pub path: &'a str,
    /// Extra request headers (`Origin`, `Authorization`).
    pub headers: Vec<(&'static str, String)>,
    /// Source address to bind (load tests spread over 127.0.0.x).
    pub source: Option<IpAddr>,
}

impl<'a> Connect<'a> {
    /// `GET /ws?token=<token>`.
    pub fn with_token(path_and_query: &'a str) -> Self {
        Self {
            path: path_and_query,
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Binds this source address first.
    pub fn from(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// Connects and performs the handshake; `Ok(Err(..))` is a refusal with an HTTP status.
    ///
    /// # Errors
    /// TCP or protocol failures other than an HTTP refusal.
    pub async fn open(self, server: SocketAddr) -> anyhow::Result<Result<WsClient, Refused>> {
        let stream = match self.source {
            Some(ip) => {
                let socket = if server.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket
                    .bind(SocketAddr::new(ip, 0))
                    .context("binding the source address")?;
                socket.connect(server).await.context("connecting")?
            }
            None => TcpStream::connect(server).await.context("connecting")?,
        };
        stream.set_nodelay(true)?;
        WsClient::handshake(stream, &format!("ws://{server}{}", self.path), self.headers).await
    }
}

impl WsClient {
    /// `GET /ws?token=<access>` on `server`, admitted, and its `connected`
    /// welcome read.
    ///
    /// # Panics
    /// The handshake was refused or failed, or no welcome came within 5 s.
    pub async fn connected(server: SocketAddr, access: &str) -> Self {
        let path = format!("/ws?token={access}");
        let mut client = Connect::with_token(&path)
            .open(server)
            .await
            .expect("connecting")
            .unwrap_or_else(|refused| panic!("the handshake was refused: {refused:?}"));
        let hello = client
            .recv_json(Duration::from_secs(5))
            .await
            .expect("the welcome");
        assert_eq!(hello["type"], "connected", "{hello}");
        client
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WsClient<S> {
    /// The WebSocket handshake for `url` over `stream`, which the caller
    /// connected (a TLS stream, say), with extra request headers.
    ///
    /// # Errors
    /// The handshake failed other than by an HTTP answer (which is `Refused`).
    pub async fn handshake(
        stream: S,
        url: &str,
        headers: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Result<Self, Refused>> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(&value)?);
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        match async_tungstenite::tokio::client_async_with_config(request, stream, Some(config))
            .await
        {
            Ok((ws, response)) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                Ok(Ok(Self {
                    ws,
                    request_id: header("x-request-id"),
                    extensions: header("sec-websocket-extensions"),
                }))
            }
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .into_owned();
                Ok(Err(Refused { status, body }))
            }
            Err(e) => Err(e).context("websocket handshake"),
        }
    }

    /// The `Sec-WebSocket-Extensions` of the handshake response. (This
    /// client cannot inflate: a server that compressed a message to it
    /// would fail it. Load tests offer compression only to hold sockets.)
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// The `X-Request-Id` of the handshake response.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Sends a JSON text frame.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send_json(&mut self, value: &Value) -> anyhow::Result<()> {
        self.send(Message::text(value.to_string())).await
    }

    /// Sends any frame.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send(&mut self, message: Message) -> anyhow::Result<()> {
        self.ws.send(message).await.context("sending")
    }

    /// The next text frame or close, skipping pings and pongs, within `within`.
    ///
    /// # Errors
    /// Nothing arrived in time, or the socket failed without a close frame.
    pub async fn recv(&mut self, within: Duration) -> anyhow::Result<Incoming> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("nothing arrived in time")?;
            match next {
                None => return Ok(Incoming::Closed(None)),
                Some(Ok(Message::Text(text))) => {
                    return Ok(match serde_json::from_str(text.as_str()) {
                        Ok(v) => Incoming::Json(v),
                        Err(_) => Incoming::Text(text.as_str().to_owned()),
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Incoming::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => {
                    return Ok(Incoming::Closed(None));
                }
                Some(Err(e)) => return Err(e).context("receiving"),
            }
        }
    }

    /// The next JSON message, within `within`.
    ///
    /// # Errors
    /// Anything else arrived, or nothing.
    pub async fn recv_json(&mut self, within: Duration) -> anyhow::Result<Value> {
        match self.recv(within).await? {
            Incoming::Json(v) => Ok(v),
            other => bail!("expected a JSON message, got {other:?}"),
        }
    }

    /// Waits for the close frame and returns its code, failing on any other message.
    ///
    /// # Errors
    /// A message arrived instead, or nothing in time.
    pub async fn expect_close(&mut self, within: Duration) -> anyhow::Result<Option<u16>> {
        match self.recv(within).await? {
            Incoming::Closed(code) => Ok(code),
            other => bail!("expected a close, got {other:?}"),
        }
    }

    /// Closes from our side (best effort).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
