//! Clients of Nginx as the outside world reaches it: HTTPS and WSS that
//! trust exactly the run's certificate (pinned as the only root), each from
//! a source address of its own, so that Nginx's per-address limits see
//! many clients as in production.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::ws_client::{Refused, WsClient};

/// A WebSocket through Nginx.
pub type Wss = WsClient<TlsStream<TcpStream>>;

/// The way in: Nginx's HTTPS port and the certificate it serves.
#[derive(Clone)]
pub struct Front {
    /// Nginx's HTTPS port on 127.0.0.1.
    pub port: u16,
    cert: reqwest::Certificate,
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("port", &self.port).finish()
    }
}

impl Front {
    /// Nginx on `127.0.0.1:port` with the PEM certificate `cert_pem`.
    ///
    /// # Errors
    /// The certificate does not parse.
    pub fn new(port: u16, cert_pem: &[u8]) -> Result<Self> {
        let cert = reqwest::Certificate::from_pem(cert_pem)?;
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(crate::nginx::pem_to_der(cert_pem)?))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            port,
            cert,
            tls: Arc::new(tls),
        })
    }

    /// `https://127.0.0.1:PORT`: the one origin clients use (and the
    /// services' `PUBLIC_URL`, which DPoP proofs name).
    pub fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The origin passkey ceremonies name (`WEBAUTHN_ORIGINS`): Nginx's
    /// port under `localhost`, the relying party id, which an IP address
    /// cannot be. Requests still go to [`Self::origin`].
    pub fn passkey_origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// An HTTPS client from `source`: kept-alive HTTP/1.1 connections,
    /// 15 s per request (past the services' 10-s request timeout, so that
    /// a slow answer is theirs, not ours).
    ///
    /// # Errors
    /// The TLS backend cannot start.
    pub fn https_client(&self, source: IpAddr) -> Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.cert.clone())
            .local_address(source)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(20))
            .build()?)
    }

    /// Opens `wss://127.0.0.1:PORT{path_and_query}` from `source`;
    /// `Ok(Err(..))` is a refused handshake.
    ///
    /// # Errors
    /// TCP, TLS or WebSocket failures other than a refusal, or 10 s passed.
    pub async fn wss(&self, source: IpAddr, path_and_query: &str) -> Result<Result<Wss, Refused>> {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.wss_now(source, path_and_query),
        )
        .await
        .context("the WebSocket did not open within 10 s")?
    }

    async fn wss_now(&self, source: IpAddr, path_and_query: &str) -> Result<Result<Wss, Refused>> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(source, 0))
            .context("binding the source address")?;
        let tcp = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .context("connecting to Nginx")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("127.0.0.1")?.to_owned();
        let tls = TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .context("TLS handshake with Nginx")?;
        let url = format!("wss://127.0.0.1:{}{path_and_query}", self.port);
        WsClient::handshake(tls, &url, Vec::new()).await
    }
}

/// The source address of device `device` (0 or 1) of user `user`:
/// 127.<1 + device>.<user / 250>.<2 + user % 250>, one loopback address
/// each (all of 127/8 is loopback on Linux).
pub fn source_address(user: usize, device: u8) -> IpAddr {
    let third = u8::try_from(user / 250).unwrap_or(u8::MAX);
    let fourth = u8::try_from(2 + user % 250).unwrap_or(u8::MAX);
    IpAddr::from([127, 1 + device, third, fourth])
}
