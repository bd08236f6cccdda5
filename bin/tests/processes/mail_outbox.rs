//! The outbox across a crash, with real processes: `authd api` is killed
//! (SIGKILL) while a reset mail waits in its outbox because the SMTP server
//! (`tests/clients/smtp_sink.py`) is down; the server comes back and a new
//! `authd api` starts on the same database: the mail arrives, once, and its
//! link works. Neither process's log (`RUST_LOG=trace`) holds a token.
//! On a SQLite file and on PostgreSQL.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::client::{ApiClient, PASSWORD};
use integration_tests::process::{self, Proc};
use integration_tests::smtp::{ReceivedMail, SinkOptions, SmtpSink};
use serde_json::json;

const PUBLIC_URL: &str = "https://auth.example.test";
const NEW_PASSWORD: &str = "a password after the crash";

mod a_mail_queued_by_a_killed_process_is_sent_once_by_the_next {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        missing = "python-aiosmtpd",
        ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
    )]
    async fn sqlite() {
        let dir = integration_tests::process::temp_dir("authd-mail-outbox").unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("authd.db").display());
        super::killed_with_mail_queued(dir, &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
    #[cfg_attr(
        all(missing = "python-aiosmtpd", not(missing = "postgres")),
        ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
    )]
    async fn postgres() {
        let dir = integration_tests::process::temp_dir("authd-mail-outbox").unwrap();
        let url = integration_tests::postgres::fresh_postgres_url().await;
        super::killed_with_mail_queued(dir, &url).await;
    }
}

/// One `authd api` process.
struct Api {
    proc: Proc,
    client: ApiClient,
}

/// Starts `authd api` as `name` on `database_url`, its mail to `sink`.
fn start_api(dir: &std::path::Path, name: &str, database_url: &str, sink: &SmtpSink) -> Api {
    let port = process::free_ports(1)[0];
    let mut cmd = Command::new(crate::authd());
    cmd.arg("api")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .env("DATABASE_URL", database_url)
        .env("PRIVATE_KEY_PATH", dir.join("keys/private.pem"))
        .env("PUBLIC_KEY_PATH", dir.join("keys/public.pem"))
        .env("COOKIE_SECURE", "false")
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("SMTP_URL", sink.url("smtp"))
        .env("PUBLIC_URL", PUBLIC_URL);
    let mut proc = Proc::spawn(name, cmd, dir.join(format!("{name}.log"))).unwrap();
    process::wait_listening(&mut proc, port, Duration::from_secs(60)).unwrap();
    Api {
        proc,
        client: ApiClient::new(format!("http://127.0.0.1:{port}")),
    }
}

/// The token of a mail whose link is `PUBLIC_URL/?<param>=<token>`.
fn token(mail: &ReceivedMail, param: &str) -> String {
    let token = mail.token().expect("a Token: line").to_owned();
    let link = format!("{PUBLIC_URL}/?{param}={token}");
    assert!(
        mail.text.as_deref().is_some_and(|t| t.contains(&link)),
        "{link} in {:?}",
        mail.text
    );
    token
}

/// Waits until `proc`'s log has a line with `text`.
async fn logged(proc: &Proc, text: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !proc.log_text().contains(text) {
        assert!(
            Instant::now() < deadline,
            "{}: no {text:?} within {within:?}:\n{}",
            proc.name,
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn killed_with_mail_queued(dir: PathBuf, database_url: &str) {
    process::run(
        Command::new(crate::authd())
            .args(["keys", "generate", "--bits", "2048", "--out"])
            .arg(dir.join("keys")),
    )
    .expect("authd keys generate");
    let mut sink = tokio::task::block_in_place(|| SmtpSink::start(SinkOptions::plain()))
        .expect("the SMTP sink starts");
    let mut first = start_api(&dir, "api-1", database_url, &sink);

    let r = first
        .client
        .post("/api/register")
        .json(&json!({"username": "alice", "password": PASSWORD, "email": "alice@example.org"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let verification = sink.wait_for(1, Duration::from_secs(10)).await.unwrap()[0].clone();
    let verify_token = token(&verification, "verify");
    let r = first
        .client
        .post("/api/email/verify")
        .json(&json!({"token": verify_token}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    // The server goes down; the reset is asked, answered at once, and its
    // mail waits in the outbox after a failed attempt.
    tokio::task::block_in_place(|| sink.stop());
    let asked = Instant::now();
    let r = first
        .client
        .post("/api/password/forgot")
        .json(&json!({"email": "alice@example.org"}))
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    logged(
        &first.proc,
        "mail not delivered yet",
        Duration::from_secs(10),
    )
    .await;
    // Past the row's update after the failed attempt.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.proc.child.kill().expect("SIGKILL");
    first.proc.child.wait().expect("the killed process");

    tokio::task::block_in_place(|| sink.restart()).expect("the sink starts again");
    let second = start_api(&dir, "api-2", database_url, &sink);
    // Due 5 s after the failure (or, had the kill caught it mid-send, once
    // its 60 s lease is over), found by the new process's poll.
    sink.wait_for(2, Duration::from_secs(90)).await.unwrap();
    logged(&second.proc, "mail delivered", Duration::from_secs(5)).await;
    tokio::time::sleep(authd::outbox::OUTBOX_POLL * 2).await;
    let mails = sink.received();
    assert_eq!(
        mails.len(),
        2,
        "a verification and one reset: {:?}",
        mails
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    let reset_mail = &mails[1];
    assert_eq!(reset_mail.rcpt_tos, ["alice@example.org"]);
    assert_ne!(
        reset_mail.header("Message-ID"),
        verification.header("Message-ID")
    );
    let reset_token = token(reset_mail, "reset");
    let r = second
        .client
        .post("/api/password/reset")
        .json(&json!({"token": reset_token, "newPassword": NEW_PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(second.client.login("alice", NEW_PASSWORD).await.status, 200);

    for proc in [&first.proc, &second.proc] {
        let log = proc.log_text();
        for (what, secret) in [
            ("the verification token", &verify_token),
            ("the reset token", &reset_token),
        ] {
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(secret.as_str()))
                .collect();
            assert!(
                lines.is_empty(),
                "{what} in {}'s log: {lines:#?}",
                proc.name
            );
        }
        assert!(
            !log.contains(PASSWORD) && !log.contains(NEW_PASSWORD),
            "a password in {}'s log",
            proc.name
        );
    }
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
