//! A device: one source address's HTTPS client to Nginx, and the calls a
//! session makes on it, with its credentials (a Bearer or DPoP-bound
//! access token, the refresh cookie, a proof) and retries while the
//! service cannot answer (a killed process, a database outage).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::record::{Answer, Op};
use super::run::Ctx;
use crate::client::refresh_cookie_in;
use crate::dpop::DpopKey;

/// How long a call is retried while it gets no answer or a 502/503/504:
/// inside the refresh grace (10 s), so that a refresh whose answer was
/// lost is replayed while the replay is still honest.
pub const RETRY_FOR: Duration = Duration::from_secs(8);
pub const RETRY_EVERY: Duration = Duration::from_millis(500);

/// What a session holds.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    /// The family (`sid`) and the signing key (`kid`) of the access token.
    pub sid: String,
    pub kid: String,
    /// The session's proof key when it is DPoP-bound.
    pub key: Option<Arc<DpopKey>>,
}

impl Tokens {
    /// The tokens of a `200 TokenResponse` with its cookie.
    pub fn issued(reply: &Reply, key: Option<Arc<DpopKey>>) -> Option<Self> {
        let access = reply.body["accessToken"].as_str()?.to_owned();
        let (sid, kid) = claims(&access)?;
        Some(Self {
            access,
            refresh: reply.cookie.clone()?,
            sid,
            kid,
            key,
        })
    }

    /// Takes the new access token and cookie of a refresh's answer.
    pub fn refreshed(&mut self, reply: &Reply) -> bool {
        match Self::issued(reply, self.key.clone()) {
            Some(next) if next.sid == self.sid => {
                *self = next;
                true
            }
            _ => false,
        }
    }
}

/// The `sid` claim and the header's `kid` of an access token.
pub fn claims(access: &str) -> Option<(String, String)> {
    let mut parts = access.split('.');
    let decode = |part: Option<&str>| -> Option<Value> {
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(part?.as_bytes())
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = decode(parts.next())?;
    let payload = decode(parts.next())?;
    Some((
        payload["sid"].as_str()?.to_owned(),
        header["kid"].as_str()?.to_owned(),
    ))
}

/// The credentials of a call.
#[derive(Debug, Clone, Copy)]
pub enum Cred<'a> {
    None,
    /// `Authorization: Bearer` or `DPoP` with its proof.
    Access(&'a Tokens),
    /// The refresh cookie, with a proof when the session is bound.
    Cookie(&'a Tokens),
    /// A proof by this key (a login that binds its session).
    Proof(&'a DpopKey),
}

/// An answer, read completely.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `0`: no answer (a transport error or a timeout).
    pub status: u16,
    pub code: Option<String>,
    pub body: Value,
    pub cookie: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

impl Reply {
    /// Whether the service could not answer it (worth a retry).
    pub fn unanswered(&self) -> bool {
        matches!(self.status, 0 | 502 | 503 | 504)
    }

    /// `status` and `code` for messages.
    pub fn show(&self) -> String {
        format!("{} {}", self.status, self.code.as_deref().unwrap_or(""))
    }
}

/// One source address's client.
#[derive(Debug)]
pub struct Device {
    pub source: IpAddr,
    http: reqwest::Client,
}

impl Device {
    /// A device of `ctx`'s front from `source`.
    ///
    /// # Errors
    /// The TLS backend cannot start.
    pub fn new(ctx: &Ctx, source: IpAddr) -> anyhow::Result<Self> {
        Ok(Self {
            source,
            http: ctx.front.https_client(source)?,
        })
    }

    /// One call through Nginx, recorded as `op`.
    pub async fn call(
        &self,
        ctx: &Ctx,
        op: Op,
        method: Method,
        path: &str,
        body: Option<&Value>,
        cred: Cred<'_>,
    ) -> Reply {
        let htu = format!(
            "{}{}",
            ctx.public_url,
            path.split('?').next().unwrap_or(path)
        );
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", ctx.public_url));
        match cred {
            Cred::None => {}
            Cred::Access(t) => match &t.key {
                Some(key) => {
                    request = request
                        .header("authorization", format!("DPoP {}", t.access))
                        .header("dpop", key.proof(method.as_str(), &htu, Some(&t.access)));
                }
                None => request = request.bearer_auth(&t.access),
            },
            Cred::Cookie(t) => {
                request = request.header("cookie", format!("refreshToken={}", t.refresh));
                if let Some(key) = &t.key {
                    request = request.header("dpop", key.proof(method.as_str(), &htu, None));
                }
            }
            Cred::Proof(key) => {
                request = request.header("dpop", key.proof(method.as_str(), &htu, None));
            }
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let reply = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let cookie = refresh_cookie_in(response.headers()).map(|(value, _)| value);
                match response.bytes().await {
                    Ok(bytes) => {
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let code = body["code"].as_str().map(str::to_owned);
                        Reply {
                            status,
                            code,
                            body,
                            cookie,
                            at: Instant::now(),
                        }
                    }
                    Err(_) => unanswered(),
                }
            }
            Err(_) => unanswered(),
        };
        ctx.rec.answer(
            op,
            started,
            &Answer {
                status: reply.status,
                code: reply.code.clone(),
            },
        );
        reply
    }

    /// [`Self::call`] again while the service cannot answer, for up to
    /// 8 s; the last reply, and whether an attempt before it went
    /// unanswered (its effect may have happened).
    pub async fn call_retrying(
        &self,
        ctx: &Ctx,
        op: Op,
        method: Method,
        path: &str,
        body: Option<&Value>,
        cred: Cred<'_>,
    ) -> (Reply, bool) {
        let started = Instant::now();
        let mut lost = false;
        loop {
            let reply = self.call(ctx, op, method.clone(), path, body, cred).await;
            if !reply.unanswered() || started.elapsed() > RETRY_FOR {
                return (reply, lost);
            }
            // A database outage's 503 did nothing; a lost answer may have.
            lost |= reply.code.as_deref() != Some("database_unavailable");
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }
}

fn unanswered() -> Reply {
    Reply {
        status: 0,
        code: None,
        body: Value::Null,
        cookie: None,
        at: Instant::now(),
    }
}
