//! An in-process OTLP/HTTP (protobuf) receiver for the telemetry tests: it
//! listens on a free loopback port, decodes and keeps what arrives on
//! `/v1/traces` and `/v1/metrics`, answers 200 with an empty protobuf
//! response, and 400 to a body that does not decode.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{Endpoint, Request, Response, Route, Server};
use prost::Message;
use tokio::sync::oneshot;

/// What the receiver got so far.
#[derive(Debug, Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    raw_traces: Vec<Vec<u8>>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

type Shared = Arc<Mutex<Received>>;

/// A running receiver; point an exporter at `http://{addr}`. The server stops
/// when the receiver is dropped (or [`OtlpReceiver::stop`]ped).
#[derive(Debug)]
pub struct OtlpReceiver {
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    received: Shared,
    stop: Option<oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Binds a free port on 127.0.0.1 and serves in a background task.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        let received = Shared::default();
        let traces = export_endpoint(received.clone(), |r, export, body| {
            r.traces.push(export);
            r.raw_traces.push(body);
            ExportTraceServiceResponse::default()
        });
        let metrics = export_endpoint(received.clone(), |r, export, _body| {
            r.metrics.push(export);
            ExportMetricsServiceResponse::default()
        });
        let app = Route::new()
            .at("/v1/traces", poem::post(traces))
            .at("/v1/metrics", poem::post(metrics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async {
                        let _ = stopped.await;
                    },
                    Some(Duration::from_secs(1)),
                )
                .await;
        });
        Ok(Self {
            addr,
            received,
            stop: Some(stop),
        })
    }

    /// Serves TLS with `cert_pem` and `key_pem` on a free loopback port and
    /// passes the decrypted bytes on to the receiver: point an exporter at
    /// `https://{that address}`. Serves until the runtime ends.
    ///
    /// # Errors
    /// The certificate or key does not parse, or no port can be bound.
    pub async fn tls_front(&self, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<SocketAddr> {
        use tokio_rustls::rustls::ServerConfig;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backend = self.addr;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(addr)
    }

    /// Every trace export received so far, in arrival order.
    #[must_use]
    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.lock().traces.clone()
    }

    /// The raw protobuf bodies of the trace exports, in arrival order.
    #[must_use]
    pub fn raw_traces(&self) -> Vec<Vec<u8>> {
        self.lock().raw_traces.clone()
    }

    /// Every metrics export received so far, in arrival order.
    #[must_use]
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.lock().metrics.clone()
    }

    /// Stops the server (what dropping the receiver does too).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A POST endpoint decoding a body as `Req`, handing it (and the raw bytes)
/// to `keep`, and answering its protobuf response; 400 if it does not decode.
fn export_endpoint<Req, Resp>(
    store: Shared,
    keep: fn(&mut Received, Req, Vec<u8>) -> Resp,
) -> impl Endpoint<Output = Response>
where
    Req: Message + Default + 'static,
    Resp: Message + 'static,
{
    poem::endpoint::make(move |req: Request| {
        let store = store.clone();
        async move {
            let body = req.into_body().into_vec().await.unwrap_or_default();
            match Req::decode(body.as_slice()) {
                Ok(export) => {
                    let mut r = store.lock().unwrap_or_else(PoisonError::into_inner);
                    let answer = keep(&mut r, export, body);
                    Response::builder()
                        .content_type("application/x-protobuf")
                        .body(answer.encode_to_vec())
                }
                Err(_) => Response::builder().status(StatusCode::BAD_REQUEST).finish(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(receiver: &OtlpReceiver, path: &str, body: Vec<u8>) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("http://{}{path}", receiver.addr))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn keeps_both_kinds_and_refuses_garbage() {
        let receiver = OtlpReceiver::start().await.unwrap();
        let trace = ExportTraceServiceRequest::default().encode_to_vec();
        let answer = post(&receiver, "/v1/traces", trace.clone()).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["content-type"], "application/x-protobuf");
        assert!(answer.bytes().await.unwrap().is_empty());
        let metrics = ExportMetricsServiceRequest::default().encode_to_vec();
        assert_eq!(post(&receiver, "/v1/metrics", metrics).await.status(), 200);
        // A truncated length-delimited field does not decode.
        for path in ["/v1/traces", "/v1/metrics"] {
            assert_eq!(post(&receiver, path, vec![0x0a, 0x05]).await.status(), 400);
        }
        assert_eq!(receiver.traces().len(), 1);
        assert_eq!(receiver.raw_traces(), vec![trace]);
        assert_eq!(receiver.metrics().len(), 1);
        receiver.stop();
    }
}
