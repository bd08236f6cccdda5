//! HTTPS and WSS clients that trust exactly the stack's test certificate
//! (pinned as the only root: no `danger_accept_invalid_certs`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use integration_tests::ws_client::WsClient;
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

/// A WebSocket through Nginx: the shared test client over TLS.
pub type Wss = WsClient<TlsStream<TcpStream>>;

/// Opens `wss://127.0.0.1:PORT/ws?token=...` through Nginx; a refused
/// handshake is an error naming its status.
pub async fn connect_wss(cert_pem: &[u8], port: u16, token: &str) -> Result<Wss> {
    let der = integration_tests::nginx::pem_to_der(cert_pem)?;
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
    let url = format!("wss://127.0.0.1:{port}/ws?token={token}");
    match WsClient::handshake(tls, &url, Vec::new())
        .await
        .context("WebSocket handshake through nginx")?
    {
        Ok(ws) => Ok(ws),
        Err(refused) => bail!("handshake answered {}", refused.status),
    }
}
