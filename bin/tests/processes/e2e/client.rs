//! HTTPS and WSS clients that trust exactly the stack's test certificate
//! (pinned as the only root: no `danger_accept_invalid_certs`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// An HTTPS client for the stack: the test certificate is the only trust
/// anchor, redirects are not followed (the tests look at them).
pub fn https_client(cert_pem: &[u8]) -> Result<reqwest::Client> {
    let cert = reqwest::Certificate::from_pem(cert_pem)?;
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()?)
}

pub type Wss = WebSocketStream<TokioAdapter<TlsStream<TcpStream>>>;

/// Opens `wss://127.0.0.1:PORT/ws?token=...` through Nginx.
pub async fn connect_wss(cert_pem: &[u8], port: u16, token: &str) -> Result<Wss> {
    let der = pem_to_der(cert_pem)?;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(der))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("127.0.0.1")?.to_owned();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .context("TLS handshake with nginx")?;
    let request = format!("wss://127.0.0.1:{port}/ws?token={token}").into_client_request()?;
    let (ws, response) = async_tungstenite::tokio::client_async(request, tls)
        .await
        .context("WebSocket handshake through nginx")?;
    if response.status() != 101 {
        bail!("handshake answered {}", response.status());
    }
    Ok(ws)
}

/// What arrived on a socket.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Closed(Option<u16>),
}

/// Next JSON text frame or close, skipping pings/pongs, within `within`.
pub async fn next_event(ws: &mut Wss, within: Duration) -> Result<Received> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| anyhow!("no WebSocket message within {within:?}"))?;
        match msg {
            None => return Ok(Received::Closed(None)),
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            Some(Ok(Message::Text(text))) => {
                return Ok(Received::Json(serde_json::from_str(text.as_str())?));
            }
            Some(Ok(Message::Close(frame))) => {
                return Ok(Received::Closed(frame.map(|f| u16::from(f.code))));
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Next JSON message; a close instead is an error.
pub async fn next_json(ws: &mut Wss, within: Duration) -> Result<Value> {
    match next_event(ws, within).await? {
        Received::Json(v) => Ok(v),
        Received::Closed(code) => bail!("socket closed ({code:?}) while a message was expected"),
    }
}

pub async fn send_json(ws: &mut Wss, value: &Value) -> Result<()> {
    ws.send(Message::Text(value.to_string().into())).await?;
    Ok(())
}

fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(pem)?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}
