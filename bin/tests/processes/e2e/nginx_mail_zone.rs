//! Nginx's strict mail zone (issue 35): the endpoints that mail an
//! address someone names or look up a mail's token, throttled per client
//! address harder than logins, in a zone of their own.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::header;
use super::nginx::NginxAlone;

/// `MAIL_BURST`, render.sh's default: requests past the first that the
/// mail zone lets through at once.
const MAIL_BURST: usize = 5;

/// Nginx's strict mail zone, in front of the stand-in upstream (what Nginx
/// lets through answers 200): a burst at `POST /api/password/forgot` gets
/// Nginx's own `429` problem+json past the first `1 + MAIL_BURST`, none of
/// which reaches the upstream; `/api/email/verify` and `/api/account/email`
/// then draw on the same spent budget, while `/api/login`,
/// `/api/password/reset` (the login zone) and the rest of `/api/` are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(missing = "nginx", missing = "openssl", missing = "envsubst"),
    ignore = "needs nginx, openssl and envsubst"
)]
async fn nginx_throttles_reset_requests_in_a_strict_mail_zone() -> Result<()> {
    const TEST: &str = "nginx_throttles_reset_requests_in_a_strict_mail_zone";
    let NginxAlone {
        dir,
        origin,
        http,
        heads,
        nginx,
    } = NginxAlone::start(TEST, "authd-nginx-mail")?;
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..(MAIL_BURST + 6) {
        let resp = http
            .post(format!("{origin}/api/password/forgot"))
            .json(&json!({ "email": format!("someone.{i}@example.com") }))
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 && limited.is_none() {
            let retry = header(&resp, "retry-after").to_owned();
            let ctype = header(&resp, "content-type").to_owned();
            limited = Some((retry, ctype, resp.json::<Value>().await?));
        }
    }
    eprintln!("e2e: reset-request flood statuses {statuses:?}");
    // 5r/m is one request every 12 s: within the burst's second none comes back.
    let (passed, refused) = statuses.split_at(MAIL_BURST + 1);
    assert!(passed.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(refused.iter().all(|s| *s == 429), "{statuses:?}");
    let (retry, ctype, problem) = limited.context("no 429 from the mail zone")?;
    assert!(
        retry.parse::<u32>().is_ok_and(|s| s > 0),
        "Retry-After {retry:?}"
    );
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(problem["code"], "rate_limited", "{problem}");

    let mut others = Vec::new();
    for (method, path) in [
        ("POST", "/api/email/verify"),
        ("PUT", "/api/account/email"),
        ("POST", "/api/login"),
        ("POST", "/api/password/reset"),
        ("POST", "/api/register"),
        ("GET", "/api/account"),
    ] {
        let resp = http
            .request(method.parse()?, format!("{origin}{path}"))
            .json(&json!({}))
            .send()
            .await?;
        others.push((path, resp.status().as_u16()));
    }
    assert_eq!(
        others,
        [
            ("/api/email/verify", 429),
            ("/api/account/email", 429),
            ("/api/login", 200),
            ("/api/password/reset", 200),
            ("/api/register", 200),
            ("/api/account", 200),
        ],
        "the mail zone is shared by the mail endpoints only"
    );
    drop(nginx);
    let upstream: Vec<String> = heads
        .try_iter()
        .filter_map(|h| h.lines().next().map(str::to_owned))
        .collect();
    let forgot = upstream
        .iter()
        .filter(|l| l.starts_with("POST /api/password/forgot "))
        .count();
    assert_eq!(
        forgot,
        MAIL_BURST + 1,
        "refused requests reached the upstream: {upstream:?}"
    );
    let access = std::fs::read_to_string(dir.join("logs/nginx-access.log"))?;
    let refused_here = access
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["uri"] == "/api/password/forgot" && l["status"] == 429)
        .filter(|l| l["upstream_addr"] == "")
        .count();
    assert_eq!(
        refused_here,
        refused.len(),
        "429s by Nginx itself:\n{access}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
