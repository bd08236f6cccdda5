//! `WS_REUSE_PORT`: several `authd ws` processes on one port, each serving
//! some of the sockets and each closing its own on a revocation.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_processes_share_one_port_with_ws_reuse_port() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}", keys.dir.join("authd.db").display());
    let api = spawn("api", "api", &url, &keys, &[]).expect("api");
    let port = process::free_ports(1)[0];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ws_addr = addr.to_string();
    let shared = [("WS_ADDR", ws_addr.as_str()), ("WS_REUSE_PORT", "true")];
    let mut nodes = Vec::new();
    for name in ["ws-a", "ws-b"] {
        let (mut proc, _) = spawn_unchecked(name, "ws", &url, &keys, &shared).expect(name);
        process::wait_listening(&mut proc, port, Duration::from_secs(60)).expect(name);
        nodes.push(Node {
            name: name.to_owned(),
            proc,
            addr,
        });
    }

    // Without the setting the port stays taken.
    let (mut alone, _) =
        spawn_unchecked("ws-c", "ws", &url, &keys, &[("WS_ADDR", &ws_addr)]).expect("ws-c");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alone.exited().is_none() {
        assert!(
            Instant::now() < deadline,
            "ws-c kept running: {}",
            alone.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        alone.log_text().contains("binding WS_ADDR"),
        "{}",
        alone.log_tail()
    );

    // 24 sockets: the kernel spreads them by their source port (all on one
    // process has odds of 2^-23).
    let login = sign_in(&api, "shared-port").await;
    let mut sockets = Vec::new();
    for _ in 0..24 {
        sockets.push(open_socket(&nodes[0], &login.access).await);
    }
    // ws-a stops: its sockets close 1001, ws-b's stay open.
    let mut ws_a = nodes.remove(0);
    ws_a.proc.stop();
    let mut alive = Vec::new();
    let mut closed_by_a = 0;
    for mut socket in sockets {
        match socket.recv(Duration::from_millis(300)).await {
            Ok(Incoming::Closed(code)) => {
                assert_eq!(code, Some(1001), "a stopping process says 1001");
                closed_by_a += 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            // Nothing to read: the socket is on ws-b.
            Err(_) => alive.push(socket),
        }
    }
    assert!(
        closed_by_a > 0 && !alive.is_empty(),
        "{closed_by_a} on ws-a, {} on ws-b",
        alive.len()
    );

    // ws-b still takes new sockets on the port, and closes its own on a logout.
    alive.push(open_socket(&nodes[0], &login.access).await);
    let mark = Instant::now();
    logout(&api, &login).await;
    for mut socket in alive {
        let (code, at) = closed(&mut socket, Duration::from_secs(3)).await;
        assert_eq!(code, Some(4003));
        assert!(at.saturating_duration_since(mark) <= Duration::from_secs(1));
    }
}
