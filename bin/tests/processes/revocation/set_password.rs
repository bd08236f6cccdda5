//! `authd user set-password`: an operator sets a user's password, as a
//! reset by mail does. Every process hears that the user's sessions ended
//! (no process is told: the command only writes the database), the old
//! password stops working and the new one works.

use std::io::Write as _;
use std::process::Stdio;

use integration_tests::client::PASSWORD;

use super::*;

/// The contract's bound for revocations, plus what a loaded CI machine adds.
const HEARD: Duration = Duration::from_secs(3);

async fn login_status(api: &Node, username: &str, password: &str) -> u16 {
    http()
        .post(format!("http://{}/api/login", api.addr))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

fn set_password(name: &str, url: &str, keys: &Keys, password: &str) -> std::process::Output {
    let mut child = authd(&format!("user set-password {name}"), url, keys, &[])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("authd user set-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("the password on stdin");
    child.wait_with_output().expect("its output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_sets_a_password_and_every_process_ends_the_users_sessions() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}?mode=rwc", keys.dir.join("authd.db").display());
    let api_a = spawn("api-a", "api", &url, &keys, &[]).expect("api-a");
    let api_b = spawn("api-b", "api", &url, &keys, &[]).expect("api-b");
    let ws = spawn("ws", "ws", &url, &keys, &[]).expect("ws");

    let gina = sign_in(&api_a, "gina").await;
    let mut socket = open_socket(&ws, &gina.access).await;
    assert_eq!(protected_status(&api_b, &gina.access).await, 200);

    let out = set_password("gina", &url, &keys, "an operator's new password");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("password set for user gina") && stdout.contains("1 sessions ended"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("an operator's new password") && !stderr.contains("new password"),
        "the password is never echoed"
    );
    for api in [&api_a, &api_b] {
        refused(api, &gina.access, HEARD).await;
    }
    assert_eq!(closed(&mut socket, HEARD).await.0, Some(4003));
    assert_eq!(login_status(&api_b, "gina", PASSWORD).await, 401);
    assert_eq!(
        login_status(&api_a, "gina", "an operator's new password").await,
        200
    );

    // A weak password is refused and changes nothing; an unknown name says so.
    let weak = set_password("gina", &url, &keys, "short");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("cannot set the password"));
    assert_eq!(
        login_status(&api_a, "gina", "an operator's new password").await,
        200
    );
    let nobody = set_password("nobody", &url, &keys, "whatever it is");
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user is named"));
}
