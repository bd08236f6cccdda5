//! Email (contract v3, "Email") on both databases, through a real SMTP
//! server (`integration_tests::smtp`, Python's aiosmtpd) that the app's
//! outbox delivers to: what a mail holds, verification and a change of
//! address ([`verification`]), the reset ([`reset`]), `forgot` answering
//! alike for every address and its hourly cap ([`forgot`]), the outbox with
//! the server down, refusing, and two processes on one database
//! ([`outbox`]), and no token in any log line ([`logs`]).
//!
//! Every app here has `SMTP_URL` at its own sink and `PUBLIC_URL` at
//! [`PUBLIC_URL`], so every link must point there, whatever `Host` a
//! request names.

mod forgot;
mod logs;
mod outbox;
mod reset;
mod verification;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use adapters::persistence::{AuditFilter, SeaAuditLog};
use application::ports::{SecurityEvent, SecurityEventKind};
use authd::Config;
use authd::config::SmtpUrl;
use integration_tests::app::{ApiClient, Backend, TestApp, spawn_app};
use integration_tests::client::{PASSWORD, SignedIn, TestResponse};
use integration_tests::smtp::{ReceivedMail, SinkOptions, SmtpSink};
use reqwest::Method;
use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::{Value, json};

/// Where the links in mail point.
pub const PUBLIC_URL: &str = "https://auth.example.test";
/// How long a mail may take to arrive.
pub const WAIT: Duration = Duration::from_secs(10);
/// Longer than the outbox's poll: a mail that was to go has gone by then.
pub const QUIET: Duration = authd::outbox::OUTBOX_POLL.saturating_add(Duration::from_secs(1));
/// The password a reset sets.
pub const NEW_PASSWORD: &str = "a brand new passphrase";
/// The sender of every mail (`MAIL_FROM`'s default).
pub const FROM: &str = "authd <no-reply@localhost>";

/// An app whose mail goes to its own SMTP sink; it derefs to the app.
#[derive(Debug)]
pub struct MailApp {
    pub app: TestApp,
    pub sink: SmtpSink,
    /// Mails [`MailApp::next_mail`] handed out so far.
    seen: Mutex<usize>,
}

impl std::ops::Deref for MailApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// A plain SMTP sink, started off the async workers.
pub fn start_sink() -> SmtpSink {
    tokio::task::block_in_place(|| SmtpSink::start(SinkOptions::plain()))
        .expect("the SMTP sink starts")
}

/// [`mail_app_with`] the default configuration.
pub async fn mail_app(backend: Backend) -> MailApp {
    mail_app_with(backend, Config::default()).await
}

/// The app with `config`, its mail at a fresh sink and its links at
/// [`PUBLIC_URL`].
pub async fn mail_app_with(backend: Backend, config: Config) -> MailApp {
    let sink = start_sink();
    let config = Config {
        smtp_url: Some(SmtpUrl(sink.url("smtp"))),
        public_url: Some(PUBLIC_URL.into()),
        ..config
    };
    MailApp {
        app: spawn_app(backend, config).await,
        sink,
        seen: Mutex::new(0),
    }
}

impl MailApp {
    /// The next mail to arrive after those handed out before.
    ///
    /// # Panics
    /// None arrived within [`WAIT`].
    pub async fn next_mail(&self) -> ReceivedMail {
        let n = *self.seen.lock().unwrap() + 1;
        let mails = self.sink.wait_for(n, WAIT).await.unwrap();
        *self.seen.lock().unwrap() = n;
        mails[n - 1].clone()
    }

    /// Asserts that no mail arrives (beyond those handed out) within
    /// [`QUIET`].
    pub async fn no_more_mail(&self, why: &str) {
        tokio::time::sleep(QUIET).await;
        let seen = *self.seen.lock().unwrap();
        let received = self.sink.received();
        assert_eq!(
            received.len(),
            seen,
            "{why}: unexpected mail to {:?}",
            received[seen.min(received.len())..]
                .iter()
                .map(|m| &m.rcpt_tos)
                .collect::<Vec<_>>()
        );
    }

    /// Registers `name` with `email`, verifies the address with the link
    /// that came, and logs in.
    pub async fn verified_user(&self, name: &str, email: &str) -> SignedIn {
        let r = register(self, name, Some(email)).await;
        assert_eq!(r.status, 201, "register {name}: {}", r.text);
        let user_id = r.json()["id"].as_str().unwrap().to_owned();
        let mail = self.next_mail().await;
        assert_eq!(mail.rcpt_tos, [email]);
        let token = link_token(&mail, "verify");
        let r = verify(self, &token).await;
        assert_eq!(r.status, 204, "verify {name}: {}", r.text);
        let r = self.login(name, PASSWORD).await;
        assert_eq!(r.status, 200, "login {name}: {}", r.text);
        SignedIn {
            access: r.access_token(),
            refresh: r.refresh_cookie().unwrap(),
            user_id,
        }
    }
}

/// `POST /api/register`, with an address when one is given.
pub async fn register(api: &ApiClient, name: &str, email: Option<&str>) -> TestResponse {
    let mut body = json!({"username": name, "password": PASSWORD});
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    api.post("/api/register").json(&body).send().await
}

/// `PUT /api/account/email` with `body` as `access`.
pub async fn put_email(api: &ApiClient, access: &str, body: &Value) -> TestResponse {
    api.request(Method::PUT, "/api/account/email")
        .bearer(access)
        .json(body)
        .send()
        .await
}

/// `POST /api/email/verify`.
pub async fn verify(api: &ApiClient, token: &str) -> TestResponse {
    api.post("/api/email/verify")
        .json(&json!({"token": token}))
        .send()
        .await
}

/// `POST /api/password/forgot`.
pub async fn forgot(api: &ApiClient, email: &str) -> TestResponse {
    api.post("/api/password/forgot")
        .json(&json!({"email": email}))
        .send()
        .await
}

/// `POST /api/password/reset`.
pub async fn reset(api: &ApiClient, token: &str, new_password: &str) -> TestResponse {
    api.post("/api/password/reset")
        .json(&json!({"token": token, "newPassword": new_password}))
        .send()
        .await
}

/// `GET /api/account` as `access`.
pub async fn account(api: &ApiClient, access: &str) -> Value {
    let r = api.get("/api/account").bearer(access).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// The account's `email` and `emailVerified`.
pub async fn address_of(api: &ApiClient, access: &str) -> (Value, Value) {
    let body = account(api, access).await;
    (body["email"].clone(), body["emailVerified"].clone())
}

/// The token of a mail, checked against the contract's form: 256 random
/// bits in base64url on the `Token: ` line of the text part, and the link
/// [`PUBLIC_URL`]`/?<param>=<token>` on a line of its own there and as the
/// HTML part's `href`, which also shows the token.
pub fn link_token(mail: &ReceivedMail, param: &str) -> String {
    let token = mail
        .token()
        .unwrap_or_else(|| panic!("no Token: line in {:?}", mail.text))
        .to_owned();
    assert_eq!(token.len(), 43, "256 bits as base64url: {token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    let link = format!("{PUBLIC_URL}/?{param}={token}");
    let text = mail.text.as_deref().expect("a text/plain part");
    assert!(text.lines().any(|l| l.trim() == link), "{link} in {text}");
    let html = mail.html.as_deref().expect("a text/html part");
    assert!(
        html.contains(&format!("href=\"{link}\"")),
        "{link} in {html}"
    );
    assert!(html.contains(&format!("Token: {token}")), "{html}");
    token
}

/// Every audit event of the app (newest first).
pub async fn audit(app: &TestApp) -> Vec<SecurityEvent> {
    SeaAuditLog::new(app.running.database.clone())
        .recent(&AuditFilter {
            limit: 10_000,
            ..AuditFilter::default()
        })
        .await
        .expect("reading audit_events")
        .into_iter()
        .map(|r| r.event)
        .collect()
}

/// The audit events of `kind` about `user_id`.
pub async fn audited(app: &TestApp, kind: SecurityEventKind, user_id: &str) -> Vec<SecurityEvent> {
    audit(app)
        .await
        .into_iter()
        .filter(|e| e.kind == kind && e.user.is_some_and(|u| u.to_string() == user_id))
        .collect()
}

/// A row of `mail_outbox`.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub attempts: i64,
    /// Unix ms.
    pub next_attempt_at: i64,
    pub given_up: bool,
    pub sealed_len: usize,
    pub last_error: Option<String>,
}

/// What `mail_outbox` holds.
pub async fn outbox(app: &TestApp) -> Vec<OutboxRow> {
    let conn = app.running.database.connection();
    conn.query_all_raw(Statement::from_string(
        conn.get_database_backend(),
        "SELECT attempts, next_attempt_at, given_up_at, sealed, last_error FROM mail_outbox",
    ))
    .await
    .expect("reading mail_outbox")
    .into_iter()
    .map(|r| OutboxRow {
        attempts: i64::from(r.try_get_by_index::<i32>(0).unwrap()),
        next_attempt_at: r.try_get_by_index(1).unwrap(),
        given_up: r.try_get_by_index::<Option<i64>>(2).unwrap().is_some(),
        sealed_len: r.try_get_by_index::<Vec<u8>>(3).unwrap().len(),
        last_error: r.try_get_by_index(4).unwrap(),
    })
    .collect()
}

/// Waits (up to [`WAIT`]) until `outbox` holds rows that `done` accepts;
/// returns them.
pub async fn outbox_until(
    app: &TestApp,
    what: &str,
    done: impl Fn(&[OutboxRow]) -> bool,
) -> Vec<OutboxRow> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = outbox(app).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the outbox holds {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
