//! A TCP proxy that the test controls, for faults between a process and its
//! database that the database never sees: every flow it carries can be frozen
//! without being closed (as after a NAT or firewall flush, or a failover behind
//! a virtual IP), and new flows can be held the same way for an outage.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy to one upstream address; stops (and drops every flow) on drop.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Shared {
    /// New flows are frozen from their first byte.
    outage: AtomicBool,
    /// One flag per flow ever accepted.
    flows: Mutex<Vec<Arc<AtomicBool>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        for task in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            task.abort();
        }
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let frozen = Arc::new(AtomicBool::new(accept.outage.load(Ordering::SeqCst)));
                accept
                    .flows
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(frozen.clone());
                let flow = tokio::spawn(carry(client, upstream, frozen));
                accept
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(flow);
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every flow open now stops forwarding, for good, without being closed:
    /// bytes sent into it vanish. New flows still work.
    pub fn freeze_flows(&self) {
        for flow in self
            .shared
            .flows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            flow.store(true, Ordering::SeqCst);
        }
    }

    /// An outage: every open flow freezes, and new flows are accepted but
    /// frozen too, until [`Self::heal`].
    pub fn start_outage(&self) {
        self.shared.outage.store(true, Ordering::SeqCst);
        self.freeze_flows();
    }

    /// Ends an outage: new flows work again (frozen ones stay frozen).
    pub fn heal(&self) {
        self.shared.outage.store(false, Ordering::SeqCst);
    }
}

async fn carry(client: TcpStream, upstream: SocketAddr, frozen: Arc<AtomicBool>) {
    if frozen.load(Ordering::SeqCst) {
        // Accepted but never answered, like a SYN into a black hole that a
        // stateful middlebox answered for.
        hold_forever(client).await;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, frozen.clone());
    let down = pump(server_read, client_write, frozen);
    let _ = tokio::join!(up, down);
}

/// Copies until EOF or an error; once frozen, swallows everything and never
/// ends, keeping both sockets open.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            hold_forever((from, to)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if frozen.load(Ordering::SeqCst) {
        // A frozen flow does not pass on a close either.
        hold_forever(to).await;
    }
    let _ = to.shutdown().await;
}

/// Keeps `sockets` open and never returns.
async fn hold_forever<T>(sockets: T) -> ! {
    let _sockets = sockets;
    match std::future::pending::<std::convert::Infallible>().await {}
}
