//! `authd audit`: prints the stored security audit trail as JSON lines,
//! newest first, for investigating a reuse detection or a login storm after
//! the fact.

use std::io::Write;
use std::time::Duration;

use adapters::persistence::{AuditFilter, Database, SeaAuditLog};
use adapters::system::SystemClock;
use anyhow::Context;
use application::ports::{Clock as _, SecurityEventKind};
use authd::config::parse_duration;
use domain::{SessionId, Timestamp, UserId};

/// Filters of `authd audit` (all optional; they combine with AND).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Only events of this user (UUID).
    #[arg(long, value_name = "UUID", value_parser = parse_user)]
    pub user: Option<UserId>,
    /// Only events of this session, i.e. token family (UUID, the `sid` claim).
    #[arg(long, value_name = "UUID", value_parser = parse_session)]
    pub session: Option<SessionId>,
    /// Only events of this kind: login_succeeded, login_failed,
    /// login_throttled, logout, session_revoked or reuse_detected.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<SecurityEventKind>,
    /// Only events of the last DURATION (like 90, 15m, 24h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// At most N events (the newest).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

impl AuditArgs {
    /// The store query for these arguments at `now`.
    pub fn filter(&self, now: Timestamp) -> AuditFilter {
        AuditFilter {
            user: self.user,
            session: self.session,
            kind: self.kind,
            since: self.since.map(|d| now.minus(d)),
            limit: self.limit,
        }
    }
}

/// Reads the trail from `database_url` and prints one JSON object per line
/// to stdout, newest first. Does not migrate.
///
/// # Errors
/// The database cannot be reached or read.
pub async fn run(database_url: &str, args: &AuditArgs) -> anyhow::Result<()> {
    let db = Database::open_existing(database_url)
        .await
        .context("connecting to DATABASE_URL")?;
    let rows = SeaAuditLog::new(db)
        .recent(&args.filter(SystemClock.now()))
        .await
        .context("reading audit_events (is the database migrated? see `authd migrate`)")?;
    let mut out = std::io::stdout().lock();
    for row in rows {
        match writeln!(out, "{}", row.to_json()) {
            Ok(()) => {}
            // `authd audit | head`: the reader has seen enough.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// The audited kinds (the only ones stored), for messages.
fn audited_kinds() -> String {
    SecurityEventKind::ALL
        .into_iter()
        .filter(|k| k.is_audited())
        .map(SecurityEventKind::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_kind(text: &str) -> Result<SecurityEventKind, String> {
    SecurityEventKind::parse(text)
        .filter(|k| k.is_audited())
        .ok_or_else(|| {
            format!(
                "unknown audit event kind {text:?}; valid kinds: {}",
                audited_kinds()
            )
        })
}

fn parse_user(text: &str) -> Result<UserId, String> {
    text.trim()
        .parse()
        .map(UserId::from_uuid)
        .map_err(|e| format!("not a UUID: {e}"))
}

fn parse_session(text: &str) -> Result<SessionId, String> {
    text.trim()
        .parse()
        .map(SessionId::from_uuid)
        .map_err(|e| format!("not a UUID: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        audit: AuditArgs,
    }

    fn parse(args: &[&str]) -> Result<AuditArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("audit").chain(args.iter().copied())).map(|c| c.audit)
    }

    #[test]
    fn defaults_to_the_newest_hundred_of_everything() {
        let args = parse(&[]).unwrap();
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        assert_eq!(args.filter(now), AuditFilter::default());
        assert_eq!(args.filter(now).limit, 100);
    }

    #[test]
    fn filters_are_parsed() {
        let user = "0b6b4c3e-6c52-4c6f-9d36-1f0e7a3f9a01";
        let session = "5d1c8a92-1b7e-4f7a-8d0e-3c2b1a098765";
        let args = parse(&[
            "--user",
            user,
            "--session",
            session,
            "--kind",
            "reuse_detected",
            "--since",
            "24h",
            "--limit",
            "7",
        ])
        .unwrap();
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let filter = args.filter(now);
        assert_eq!(filter.user.unwrap().to_string(), user);
        assert_eq!(filter.session.unwrap().to_string(), session);
        assert_eq!(filter.kind, Some(SecurityEventKind::ReuseDetected));
        assert_eq!(
            filter.since,
            Some(Timestamp::from_unix_millis(1_800_000_000_000 - 86_400_000))
        );
        assert_eq!(filter.limit, 7);
    }

    #[test]
    fn an_unknown_kind_lists_the_valid_ones_and_exits_2() {
        for bad in ["reuse", "refresh_rotated", ""] {
            let err = parse(&["--kind", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            let text = err.to_string();
            assert!(
                text.contains(
                    "valid kinds: login_succeeded, login_failed, login_throttled, logout, \
                     session_revoked, reuse_detected"
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--user", "alice"][..],
            &["--session", "123"],
            &["--since", "yesterday"],
            &["--limit", "0"],
            &["--limit", "-3"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
