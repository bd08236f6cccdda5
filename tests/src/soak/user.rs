//! A virtual user: registers (and enrols TOTP, two in ten, or adds a
//! passkey, one in ten), then lives session after session until the run
//! ends: logs in (a password, a password and a TOTP code, a passkey, or
//! with a DPoP proof that binds the session),
//! opens sockets through Nginx, calls, refreshes (one in `race_one_in` as
//! two racing tabs) and reauths, and ends each session by one of six kinds
//! of revocation, in turn, which the tracker then follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::device::{Cred, Device, RETRY_EVERY, RETRY_FOR, Reply, Tokens};
use super::jitter::Jitter;
use super::record::Op;
use super::revocations::{Revoked, Tracker};
use super::run::Ctx;
use super::sockets::Socket;
use super::tls::source_address;
use crate::authenticator::{Algorithm, SoftAuthenticator};
use crate::dpop::DpopKey;

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `POST /api/logout?scope=session`.
    Logout,
    /// `POST /api/logout`: every session of the user.
    LogoutAll,
    /// `DELETE /api/sessions/{id}` of the user's second session, then a logout.
    DeleteOther,
    /// `POST /api/password`, which ends the second session; then a logout.
    PasswordChange,
    /// A rotated refresh token replayed after the grace: reuse detected.
    Reuse,
    /// `DELETE /api/account`; the user registers again under a new name.
    DeleteAccount,
}

const ENDINGS: [Ending; 6] = [
    Ending::Logout,
    Ending::DeleteOther,
    Ending::Reuse,
    Ending::PasswordChange,
    Ending::LogoutAll,
    Ending::DeleteAccount,
];

/// `REFRESH_REUSE_GRACE` (its default), and a margin past it.
const GRACE_AND_MARGIN: Duration = Duration::from_millis(11_500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Password,
    Totp,
    Dpop,
    /// Logs in with a passkey (an ES256 one of a software authenticator).
    Passkey,
}

#[derive(Debug)]
struct Session {
    tokens: Tokens,
    sockets: Vec<Socket>,
    device: usize,
}

#[derive(Debug)]
struct User {
    ctx: Arc<Ctx>,
    index: usize,
    kind: Kind,
    generation: u32,
    password: String,
    devices: [Device; 2],
    /// The TOTP secret and the last step used.
    totp: Option<(String, i64)>,
    /// A passkey user's authenticator, holding its one credential.
    authenticator: Option<SoftAuthenticator>,
    /// Deleted and not registered again: it lives no more.
    gone: bool,
    jitter: Jitter,
}

/// Lives user `index` until the run stops.
pub async fn live(ctx: Arc<Ctx>, index: usize) {
    let kind = match index % 10 {
        3 | 7 => Kind::Totp,
        5 => Kind::Dpop,
        9 => Kind::Passkey,
        _ => Kind::Password,
    };
    let devices = [0, 1].map(|d| Device::new(&ctx, source_address(index, d)));
    let [Ok(first), Ok(second)] = devices else {
        ctx.broken("a device's HTTPS client did not start".into());
        return;
    };
    let mut user = User {
        jitter: Jitter::seeded(ctx.seed, index as u64),
        ctx,
        index,
        kind,
        generation: 0,
        password: format!("soak password {index}"),
        devices: [first, second],
        totp: None,
        authenticator: None,
        gone: false,
    };
    user.lives().await;
}

impl User {
    fn stopping(&self) -> bool {
        *self.ctx.stop.borrow()
    }

    fn name(&self) -> String {
        format!("soak{}g{}", self.index, self.generation)
    }

    async fn lives(&mut self) {
        // Ramp up: one new user per 60 ms.
        tokio::time::sleep(Duration::from_millis(60) * u32::try_from(self.index).unwrap_or(0))
            .await;
        if !self.register().await {
            return;
        }
        let mut cycle = self.index;
        while !self.stopping() && !self.gone {
            let ending = ENDINGS[cycle % ENDINGS.len()];
            cycle += 1;
            self.session(ending).await;
            let pause = self.jitter.around(Duration::from_secs(2), 0.5);
            tokio::time::sleep(pause).await;
        }
    }

    /// Registers the current name (and enrols TOTP for a TOTP user);
    /// `false` when that failed.
    async fn register(&mut self) -> bool {
        let body = json!({"username": self.name(), "password": self.password});
        let (r, lost) = self.devices[0]
            .call_retrying(
                &self.ctx,
                Op::Register,
                Method::POST,
                "/api/register",
                Some(&body),
                Cred::None,
            )
            .await;
        let taken_by_us = lost && r.code.as_deref() == Some("username_taken");
        if r.status != 201 && !taken_by_us {
            self.unexpected(Op::Register, &r);
            return false;
        }
        self.totp = None;
        self.authenticator = None;
        match self.kind {
            Kind::Totp => self.enrol_totp().await,
            Kind::Passkey => self.add_passkey().await,
            Kind::Password | Kind::Dpop => true,
        }
    }

    /// Adds an ES256 passkey in a session of its own, logged out after.
    async fn add_passkey(&mut self) -> bool {
        let Some(session) = self.login(0).await else {
            return false;
        };
        let body = json!({"password": self.password});
        let (r, _) = self
            .call(
                &session,
                Op::PasskeyAdd,
                Method::POST,
                "/api/passkeys/registration/options",
                Some(&body),
            )
            .await;
        if r.status != 200 {
            self.unexpected(Op::PasskeyAdd, &r);
            return false;
        }
        let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
        let credential = authenticator.create(&r.body["publicKey"], &self.ctx.passkey_origin);
        let body = json!({"registrationId": r.body["registrationId"], "credential": credential});
        let (r, lost) = self
            .call(
                &session,
                Op::PasskeyAdd,
                Method::POST,
                "/api/passkeys/registration",
                Some(&body),
            )
            .await;
        // After a lost answer, a 404 or 409 says the first attempt added it.
        let taken_by_us = lost && matches!(r.code.as_deref(), Some("not_found" | "passkey_exists"));
        if r.status != 201 && !taken_by_us {
            self.unexpected(Op::PasskeyAdd, &r);
            return false;
        }
        self.authenticator = Some(authenticator);
        self.logout(session, "logout", "/api/logout?scope=session")
            .await;
        true
    }

    /// Enrols TOTP in a session of its own, logged out after.
    async fn enrol_totp(&mut self) -> bool {
        let Some(session) = self.login(0).await else {
            return false;
        };
        let (r, _) = self.devices[0]
            .call_retrying(
                &self.ctx,
                Op::TotpEnrol,
                Method::POST,
                "/api/mfa/totp",
                Some(&json!({"password": self.password})),
                Cred::Access(&session.tokens),
            )
            .await;
        let Some(secret) = r.body["secret"].as_str().map(str::to_owned) else {
            self.unexpected(Op::TotpEnrol, &r);
            return false;
        };
        self.totp = Some((secret, 0));
        let Some(code) = self.code().await else {
            return false;
        };
        let (r, _) = self.devices[0]
            .call_retrying(
                &self.ctx,
                Op::TotpEnrol,
                Method::POST,
                "/api/mfa/totp/confirm",
                Some(&json!({"code": code})),
                Cred::Access(&session.tokens),
            )
            .await;
        if r.status != 200 {
            self.unexpected(Op::TotpEnrol, &r);
            self.totp = None;
            return false;
        }
        self.logout(session, "logout", "/api/logout?scope=session")
            .await;
        true
    }

    /// The next TOTP code: of the current step, or the next one (the
    /// contract allows a step of drift), never a step used before.
    async fn code(&mut self) -> Option<String> {
        loop {
            let (secret, last) = self.totp.as_mut()?;
            let step = crate::clock::unix_now() / domain::totp::STEP_SECONDS;
            if let Some(s) = [step, step + 1].into_iter().find(|s| *s > *last) {
                *last = s;
                return Some(crate::totp::code_at(secret, s * domain::totp::STEP_SECONDS));
            }
            if self.stopping() {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn login(&mut self, device: usize) -> Option<Session> {
        if self.authenticator.is_some() {
            return self.passkey_login(device).await;
        }
        let body = json!({"username": self.name(), "password": self.password});
        let key = (self.kind == Kind::Dpop).then(|| Arc::new(DpopKey::new()));
        let (op, cred) = match &key {
            Some(key) => (Op::LoginDpop, Cred::Proof(key)),
            None => (Op::Login, Cred::None),
        };
        let (mut r, _) = self.devices[device]
            .call_retrying(&self.ctx, op, Method::POST, "/api/login", Some(&body), cred)
            .await;
        if r.status == 403 && r.code.as_deref() == Some("mfa_required") {
            let token = r.body["mfaToken"].as_str().unwrap_or_default().to_owned();
            let code = self.code().await?;
            let body = json!({"mfaToken": token, "code": code});
            (r, _) = self.devices[device]
                .call_retrying(
                    &self.ctx,
                    Op::LoginMfa,
                    Method::POST,
                    "/api/login/mfa",
                    Some(&body),
                    Cred::None,
                )
                .await;
        }
        let tokens = (r.status == 200).then(|| Tokens::issued(&r, key)).flatten();
        if tokens.is_none() {
            self.unexpected(op, &r);
        }
        Some(Session {
            tokens: tokens?,
            sockets: Vec::new(),
            device,
        })
    }

    /// A passkey login: options, the authenticator's assertion, the login.
    /// A login id is used once, so while the service cannot answer the
    /// whole ceremony starts again (for up to [`RETRY_FOR`]).
    async fn passkey_login(&mut self, device: usize) -> Option<Session> {
        let started = Instant::now();
        let r = loop {
            let (options, _) = self.devices[device]
                .call_retrying(
                    &self.ctx,
                    Op::PasskeyOptions,
                    Method::POST,
                    "/api/login/passkey/options",
                    Some(&json!({})),
                    Cred::None,
                )
                .await;
            if options.status != 200 {
                self.unexpected(Op::PasskeyOptions, &options);
                return None;
            }
            let credential = self
                .authenticator
                .as_mut()?
                .get(&options.body["publicKey"], &self.ctx.passkey_origin);
            let body = json!({"loginId": options.body["loginId"], "credential": credential});
            let r = self.devices[device]
                .call(
                    &self.ctx,
                    Op::LoginPasskey,
                    Method::POST,
                    "/api/login/passkey",
                    Some(&body),
                    Cred::None,
                )
                .await;
            if !r.unanswered() || started.elapsed() > RETRY_FOR || self.stopping() {
                break r;
            }
            tokio::time::sleep(RETRY_EVERY).await;
        };
        let tokens = (r.status == 200)
            .then(|| Tokens::issued(&r, None))
            .flatten();
        if tokens.is_none() {
            self.unexpected(Op::LoginPasskey, &r);
        }
        Some(Session {
            tokens: tokens?,
            sockets: Vec::new(),
            device,
        })
    }

    async fn open_sockets(&mut self, session: &mut Session, count: usize) {
        let source = self.devices[session.device].source;
        while session.sockets.len() < count && !self.stopping() {
            let first_message = session.sockets.len() % 2 == 1;
            match Socket::open(&self.ctx, source, &session.tokens, first_message).await {
                Some(socket) => session.sockets.push(socket),
                None => return,
            }
        }
    }

    /// One session, from login to its revocation.
    async fn session(&mut self, ending: Ending) {
        let Some(mut a) = self.login(0).await else {
            return;
        };
        self.open_sockets(&mut a, self.ctx.settings.sockets_per_session)
            .await;
        let mut b = None;
        if matches!(ending, Ending::DeleteOther | Ending::PasswordChange) {
            let Some(mut second) = self.login(1).await else {
                return;
            };
            self.open_sockets(&mut second, self.ctx.settings.sockets_second_session)
                .await;
            b = Some(second);
        }
        let life = self.jitter.around(self.ctx.settings.session_life, 0.25);
        if self.use_session(&mut a, Instant::now() + life).await && !self.stopping() {
            self.end(ending, a, b).await;
        }
    }

    /// Calls, refreshes and reauths until `until`; `false` when the
    /// session broke (it is then abandoned).
    async fn use_session(&mut self, a: &mut Session, until: Instant) -> bool {
        let s = self.ctx.settings.clone();
        let mut next_call = Instant::now() + self.jitter.around(s.protected_every, 0.5);
        let mut next_refresh = Instant::now() + self.jitter.around(s.refresh_every, 0.5);
        let mut next_reauth = Instant::now() + self.jitter.around(s.reauth_every, 0.5);
        let mut stop = self.ctx.stop.clone();
        loop {
            let next = next_call.min(next_refresh).min(next_reauth);
            if next >= until {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                _ = stop.wait_for(|stopped| *stopped) => return false,
            }
            let now = Instant::now();
            if now >= next_call {
                next_call = now + self.jitter.around(s.protected_every, 0.2);
                if !self.protected(a).await {
                    return false;
                }
            }
            if now >= next_refresh {
                next_refresh = now + self.jitter.around(s.refresh_every, 0.2);
                let race = self.jitter.below(s.race_one_in) == 0;
                if !(if race {
                    self.race(a).await
                } else {
                    self.refresh(a).await
                }) {
                    return false;
                }
            }
            if now >= next_reauth {
                next_reauth = now + self.jitter.around(s.reauth_every, 0.2);
                // A socket the server closed for a good reason (its key
                // retired) or that dropped with its process opens again.
                a.sockets.retain(|socket| !socket.closed());
                for socket in &a.sockets {
                    socket.reauth(&a.tokens);
                }
                self.open_sockets(a, s.sockets_per_session).await;
            }
        }
    }

    async fn protected(&mut self, a: &mut Session) -> bool {
        let op = if a.tokens.key.is_some() {
            Op::ProtectedDpop
        } else {
            Op::Protected
        };
        let r = self.devices[a.device]
            .call(
                &self.ctx,
                op,
                Method::GET,
                "/api/protected",
                None,
                Cred::Access(&a.tokens),
            )
            .await;
        if r.status == 401 {
            // Refused on purpose once its key is retired: refresh.
            if !self.ctx.faults.retired(&a.tokens.kid) {
                self.unexpected(op, &r);
            }
            return self.refresh(a).await;
        }
        true
    }

    async fn refresh(&mut self, a: &mut Session) -> bool {
        let op = if a.tokens.key.is_some() {
            Op::RefreshDpop
        } else {
            Op::Refresh
        };
        let (r, _) = self.devices[a.device]
            .call_retrying(
                &self.ctx,
                op,
                Method::POST,
                "/api/refresh",
                None,
                Cred::Cookie(&a.tokens),
            )
            .await;
        if r.status == 200 && a.tokens.refreshed(&r) {
            return true;
        }
        if !r.unanswered() {
            self.unexpected(op, &r);
        }
        false
    }

    /// Two tabs refresh with the same token at once: both must succeed,
    /// with the same new refresh token.
    async fn race(&mut self, a: &mut Session) -> bool {
        let device = &self.devices[a.device];
        let tab = || {
            device.call_retrying(
                &self.ctx,
                Op::RefreshRace,
                Method::POST,
                "/api/refresh",
                None,
                Cred::Cookie(&a.tokens),
            )
        };
        let ((first, _), (second, _)) = futures_util::future::join(tab(), tab()).await;
        let counters = &self.ctx.counters;
        counters.add(&counters.races, 1);
        let both = first.status == 200 && second.status == 200;
        if both && first.cookie.is_some() && first.cookie == second.cookie {
            counters.add(&counters.races_won, 1);
        } else {
            counters.add(&counters.races_lost, 1);
            let what = format!("racing tabs: {} and {}", first.show(), second.show());
            if first.unanswered() || second.unanswered() {
                eprintln!("soak: {what} (unanswered, inside a fault's window?)");
            } else {
                self.ctx.rec.unexpected(Op::RefreshRace, what);
            }
        }
        [first, second]
            .iter()
            .any(|r| r.status == 200 && a.tokens.refreshed(r))
    }

    async fn end(&mut self, ending: Ending, mut a: Session, b: Option<Session>) {
        match (ending, b) {
            (Ending::Logout, _) => self.logout(a, "logout", "/api/logout?scope=session").await,
            (Ending::LogoutAll, _) => self.logout(a, "logout_all", "/api/logout").await,
            (Ending::DeleteOther, Some(b)) => {
                let (r, _) = self
                    .call(&a, Op::Sessions, Method::GET, "/api/sessions", None)
                    .await;
                let listed = r
                    .body
                    .as_array()
                    .is_some_and(|rows| rows.iter().any(|row| row["id"] == b.tokens.sid.as_str()));
                if !listed {
                    self.unexpected(Op::Sessions, &r);
                    return;
                }
                let path = format!("/api/sessions/{}", b.tokens.sid);
                let (r, lost) = self
                    .call(&a, Op::SessionDelete, Method::DELETE, &path, None)
                    .await;
                // After a lost answer, a 404 says the first attempt did it.
                if r.status == 204 || (lost && r.code.as_deref() == Some("not_found")) {
                    self.track("session_delete", b, &r);
                    self.logout(a, "logout", "/api/logout?scope=session").await;
                } else {
                    self.unexpected(Op::SessionDelete, &r);
                }
            }
            (Ending::PasswordChange, Some(b)) => {
                let new = format!("soak password {} {}", self.index, self.jitter.next_u64());
                let body = json!({"currentPassword": self.password, "newPassword": new});
                let (r, lost) = self
                    .call(
                        &a,
                        Op::PasswordChange,
                        Method::POST,
                        "/api/password",
                        Some(&body),
                    )
                    .await;
                if r.status == 204 || (lost && r.code.as_deref() == Some("invalid_credentials")) {
                    self.password = new;
                    self.track("password_change", b, &r);
                    self.logout(a, "logout", "/api/logout?scope=session").await;
                } else {
                    self.unexpected(Op::PasswordChange, &r);
                }
            }
            (Ending::Reuse, _) => {
                let rotated = a.tokens.clone();
                if !self.refresh(&mut a).await {
                    return;
                }
                let mut stop = self.ctx.stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(GRACE_AND_MARGIN) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                let op = Op::Reuse;
                let (r, lost) = self.devices[a.device]
                    .call_retrying(
                        &self.ctx,
                        op,
                        Method::POST,
                        "/api/refresh",
                        None,
                        Cred::Cookie(&rotated),
                    )
                    .await;
                let code = r.code.as_deref();
                if code == Some("refresh_reused") || (lost && code == Some("session_revoked")) {
                    let counters = &self.ctx.counters;
                    counters.add(&counters.reuses_detected, 1);
                    self.track("reuse", a, &r);
                } else {
                    self.unexpected(op, &r);
                }
            }
            (Ending::DeleteAccount, _) => {
                let body = json!({"password": self.password});
                let (r, lost) = self
                    .call(
                        &a,
                        Op::AccountDelete,
                        Method::DELETE,
                        "/api/account",
                        Some(&body),
                    )
                    .await;
                if r.status == 204 || (lost && r.code.as_deref() == Some("invalid_token")) {
                    self.track("account_delete", a, &r);
                    self.generation += 1;
                    self.gone = !self.register().await;
                } else {
                    self.unexpected(Op::AccountDelete, &r);
                }
            }
            (Ending::DeleteOther | Ending::PasswordChange, None) => {}
        }
    }

    async fn logout(&mut self, a: Session, kind: &'static str, path: &str) {
        let (r, _) = self.devices[a.device]
            .call_retrying(
                &self.ctx,
                Op::Logout,
                Method::POST,
                path,
                None,
                Cred::Cookie(&a.tokens),
            )
            .await;
        if r.status == 204 {
            self.track(kind, a, &r);
        } else {
            self.unexpected(Op::Logout, &r);
        }
    }

    /// A call with the session's access token, retried while unanswered;
    /// whether an attempt went unanswered (its effect may have happened).
    async fn call(
        &self,
        a: &Session,
        op: Op,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (Reply, bool) {
        self.devices[a.device]
            .call_retrying(&self.ctx, op, method, path, body, Cred::Access(&a.tokens))
            .await
    }

    fn track(&self, kind: &'static str, session: Session, r: &Reply) {
        let revoked = Revoked {
            kind,
            tokens: session.tokens,
            sockets: session.sockets,
            at: r.at,
        };
        Tracker::follow(&self.ctx, revoked);
    }

    fn unexpected(&self, op: Op, r: &Reply) {
        if r.unanswered() {
            // Judged with the fault windows: a 5xx or no answer.
            return;
        }
        if r.code.as_deref() == Some("refresh_reused") {
            let counters = &self.ctx.counters;
            counters.add(&counters.reused_unexpected, 1);
        }
        self.ctx
            .rec
            .unexpected(op, format!("{} for {}", r.show(), self.name()));
    }
}
