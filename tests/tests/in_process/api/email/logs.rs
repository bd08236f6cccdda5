//! No token from a mail, and no password, in any log line (contract v3,
//! "Email"): every line the app writes at `TRACE`, on every thread of its
//! runtime, over verification, a change of address, a reset with a weak
//! password first, a token used twice and a mail deferred by a `451`.
//!
//! Not through `on_both!`: the capture is a subscriber on each thread of a
//! runtime of the test's own.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authd::Config;
use integration_tests::app::Backend;
use integration_tests::client::PASSWORD;
use serde_json::json;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::{
    NEW_PASSWORD, OutboxRow, forgot, link_token, mail_app_with, outbox_until, put_email, register,
    reset, verify,
};

mod no_token_or_password_reaches_a_log_line {
    #[test]
    #[cfg_attr(
        missing = "python-aiosmtpd",
        ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
    )]
    fn sqlite() {
        super::captured(integration_tests::app::Backend::Sqlite);
    }

    #[test]
    #[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
    #[cfg_attr(
        all(missing = "python-aiosmtpd", not(missing = "postgres")),
        ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
    )]
    fn postgres() {
        super::captured(integration_tests::app::Backend::Postgres);
    }
}

thread_local! {
    /// The capture's guard on a thread of the runtime, for the thread's life.
    static CAPTURING: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Bytes written by every thread's subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured(backend: Backend) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = Arc::new(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let on_start = Arc::clone(&subscriber);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        // Workers and blocking threads alike (argon2, the file writes).
        .on_thread_start(move || {
            let guard = Arc::clone(&on_start).set_default();
            CAPTURING.with(|c| *c.borrow_mut() = Some(Box::new(guard)));
        })
        .build()
        .unwrap();
    let secrets = {
        let _this_thread = Arc::clone(&subscriber).set_default();
        runtime.block_on(scenario(backend))
    };
    drop(runtime);

    let log = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("mail delivered") && log.contains("mail not delivered yet"),
        "the capture missed the mailer's lines:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    for (what, secret) in &secrets {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{what} in the log: {lines:#?}");
    }
}

/// Runs the mail flows; returns every secret they handled.
async fn scenario(backend: Backend) -> Vec<(&'static str, String)> {
    let app = mail_app_with(backend, Config::default()).await;
    let mut secrets = vec![
        ("the password", PASSWORD.to_owned()),
        ("the new password", NEW_PASSWORD.to_owned()),
        ("the weak password", "W!k7x".to_owned()),
    ];

    let r = register(&app, "alice", Some("alice@example.org")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = link_token(&app.next_mail().await, "verify");
    assert_eq!(verify(&app, &token).await.status, 204);
    verify(&app, &token)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    secrets.push(("a verification token", token));

    let access = app.login("alice", PASSWORD).await.access_token();
    let r = put_email(
        &app,
        &access,
        &json!({"email": "alice@example.net", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let token = link_token(&app.next_mail().await, "verify");
    assert_eq!(verify(&app, &token).await.status, 204);
    secrets.push(("a change's verification token", token));

    assert_eq!(forgot(&app, "alice@example.net").await.status, 202);
    let token = link_token(&app.next_mail().await, "reset");
    reset(&app, &token, "W!k7x")
        .await
        .assert_problem(400, "weak_password");
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status, 204);
    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    secrets.push(("a reset token", token));

    // A mail that fails first.
    app.sink.answer_with(Some(451));
    assert_eq!(forgot(&app, "alice@example.net").await.status, 202);
    outbox_until(&app, "a deferred mail", |rows| {
        rows.iter()
            .any(|r| r.attempts == 1 && r.last_error.is_some())
    })
    .await;
    app.sink.answer_with(None);
    app.clock.advance(Duration::from_secs(5));
    let token = link_token(&app.next_mail().await, "reset");
    outbox_until(&app, "the sent mail gone", <[OutboxRow]>::is_empty).await;
    secrets.push(("a deferred mail's token", token));
    secrets
}
