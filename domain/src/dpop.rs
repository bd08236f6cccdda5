//! Sender-constrained sessions (contract v3, "DPoP", RFC 9449): which
//! proofs a request may carry, and what binding means for a family's
//! refreshes and for its access tokens.
//!
//! The proof's signature, header and key are checked by the crypto adapter
//! (the key's RFC 7638 thumbprint comes out of it); this module judges the
//! claims against the request, the clock and the token, and the bindings.

use std::time::Duration;

use crate::Timestamp;

/// `DPOP_PROOF_MAX_AGE`'s default: how far a proof's `iat` may be from the
/// server's clock, either way.
pub const DEFAULT_PROOF_MAX_AGE: Duration = Duration::from_secs(60);

/// The RFC 7638 thumbprint of a client's key (base64url SHA-256): what a
/// bound family stores and its access tokens carry as `cnf.jkt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jkt(pub String);

/// A proof whose signature verified, as far as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofClaims {
    /// The thumbprint of the key that signed it.
    pub jkt: Jkt,
    /// Its unique id.
    pub jti: String,
    /// The request method it was made for.
    pub htm: String,
    /// The request URL it was made for.
    pub htu: String,
    /// When it was made, Unix seconds.
    pub iat: i64,
    /// The base64url SHA-256 of the access token it comes with.
    pub ath: Option<String>,
}

/// The request a proof came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The URL the client used: scheme, host (and port), path.
    pub url: &'a str,
}

/// Why a proof (or its absence) does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    /// `htm` is not the request's method.
    #[error("htm is not the request's method")]
    Method,
    /// `htu` is not the request's URL.
    #[error("htu is not the request's URL")]
    Url,
    /// `iat` is further from now than the allowed age.
    #[error("iat is too old")]
    Stale,
    /// `iat` is further in the future than the allowed age.
    #[error("iat is in the future")]
    Future,
    /// `ath` is missing or is not the access token's hash.
    #[error("ath is not the access token's hash")]
    TokenHash,
    /// The `jti` was seen before.
    #[error("the jti was used before")]
    Replayed,
    /// The proof's key is not the one the family or token is bound to.
    #[error("the proof's key is not the bound key")]
    OtherKey,
    /// A bound family or token came without a proof.
    #[error("a proof is needed")]
    Missing,
}

impl ProofRefusal {
    /// The stable snake_case reason (audit trail, metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Method => "htm",
            Self::Url => "htu",
            Self::Stale => "stale",
            Self::Future => "future",
            Self::TokenHash => "ath",
            Self::Replayed => "replayed",
            Self::OtherKey => "other_key",
            Self::Missing => "missing",
        }
    }
}

/// Judges a verified proof's claims against the request it came with, the
/// clock and, for a request with an access token, the token's hash.
///
/// # Errors
/// See [`ProofRefusal`].
pub fn check_proof(
    proof: &ProofClaims,
    target: &Target<'_>,
    now: Timestamp,
    max_age: Duration,
    token_hash: Option<&str>,
) -> Result<(), ProofRefusal> {
    if proof.htm != target.method {
        return Err(ProofRefusal::Method);
    }
    match (normal_url(&proof.htu), normal_url(target.url)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(ProofRefusal::Url),
    }
    let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let age = now.unix_seconds().saturating_sub(proof.iat);
    if age > max {
        return Err(ProofRefusal::Stale);
    }
    if age < -max {
        return Err(ProofRefusal::Future);
    }
    if let Some(expected) = token_hash
        && proof.ath.as_deref() != Some(expected)
    {
        return Err(ProofRefusal::TokenHash);
    }
    Ok(())
}

/// The last second (Unix) at which a proof made at `iat` is still fresh
/// for [`check_proof`]: a process that checks its proofs on one clock may
/// forget the `jti` after it. For proofs made just before they are sent,
/// that is `max_age` after their use, half of [`replay_window`].
pub fn fresh_until(iat: i64, max_age: Duration) -> i64 {
    iat.saturating_add(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX))
}

/// How long a `jti` must be remembered: a proof is acceptable from
/// `max_age` before its `iat` to `max_age` after it, so from its first use
/// it can come back for at most twice that.
pub fn replay_window(max_age: Duration) -> Duration {
    max_age.saturating_mul(2)
}

/// A URL as RFC 9449 compares `htu`: scheme and host lower-cased, the
/// scheme's default port dropped, the query and fragment dropped, an empty
/// path read as `/`. `None` for anything but an absolute http(s) URL.
pub fn normal_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

/// What a refresh of a family bound to `bound` (if it is) needs of the
/// proof presented with it: the same key. A refresh of an unbound family
/// ignores a proof.
///
/// # Errors
/// [`ProofRefusal::Missing`] or [`ProofRefusal::OtherKey`].
pub fn refresh_binding(bound: Option<&Jkt>, presented: Option<&Jkt>) -> Result<(), ProofRefusal> {
    match (bound, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(ProofRefusal::Missing),
        (Some(b), Some(p)) if b == p => Ok(()),
        (Some(_), Some(_)) => Err(ProofRefusal::OtherKey),
    }
}

/// How a request presented its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer`, or a WebSocket token with no proof.
    Bearer,
    /// `Authorization: DPoP`, or a WebSocket token with a proof.
    Dpop,
}

/// Whether a token whose `cnf.jkt` is `bound` (if any) may be used as
/// presented: a bound token only with the `DPoP` scheme and a proof by its
/// key; an unbound one only as `Bearer`.
///
/// # Errors
/// [`ProofRefusal::Missing`] (a bound token as `Bearer`, or without a
/// proof), [`ProofRefusal::OtherKey`] (a proof by another key, or an
/// unbound token presented as `DPoP`).
pub fn token_binding(
    bound: Option<&Jkt>,
    scheme: Scheme,
    proof: Option<&Jkt>,
) -> Result<(), ProofRefusal> {
    match (bound, scheme, proof) {
        (None, Scheme::Bearer, _) => Ok(()),
        (None, Scheme::Dpop, _) => Err(ProofRefusal::OtherKey),
        (Some(_), Scheme::Bearer, _) | (Some(_), Scheme::Dpop, None) => Err(ProofRefusal::Missing),
        (Some(b), Scheme::Dpop, Some(p)) if b == p => Ok(()),
        (Some(_), Scheme::Dpop, Some(_)) => Err(ProofRefusal::OtherKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof() -> ProofClaims {
        ProofClaims {
            jkt: Jkt("k".into()),
            jti: "j".into(),
            htm: "POST".into(),
            htu: "https://auth.example.com/api/refresh".into(),
            iat: 1_000,
            ath: None,
        }
    }

    const TARGET: Target<'static> = Target {
        method: "POST",
        url: "https://auth.example.com/api/refresh",
    };

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    #[test]
    fn a_proof_matches_its_request_and_the_clock() {
        let max = DEFAULT_PROOF_MAX_AGE;
        assert_eq!(check_proof(&proof(), &TARGET, at(1_000), max, None), Ok(()));
        assert_eq!(check_proof(&proof(), &TARGET, at(1_060), max, None), Ok(()));
        assert_eq!(check_proof(&proof(), &TARGET, at(940), max, None), Ok(()));
        assert_eq!(
            check_proof(&proof(), &TARGET, at(1_061), max, None),
            Err(ProofRefusal::Stale)
        );
        assert_eq!(
            check_proof(&proof(), &TARGET, at(939), max, None),
            Err(ProofRefusal::Future)
        );
        let get = Target {
            method: "GET",
            ..TARGET
        };
        assert_eq!(
            check_proof(&proof(), &get, at(1_000), max, None),
            Err(ProofRefusal::Method)
        );
        let other = Target {
            url: "https://auth.example.com/api/login",
            ..TARGET
        };
        assert_eq!(
            check_proof(&proof(), &other, at(1_000), max, None),
            Err(ProofRefusal::Url)
        );
    }

    #[test]
    fn with_a_token_the_proof_names_its_hash() {
        let max = DEFAULT_PROOF_MAX_AGE;
        let with = ProofClaims {
            ath: Some("h".into()),
            ..proof()
        };
        assert_eq!(
            check_proof(&with, &TARGET, at(1_000), max, Some("h")),
            Ok(())
        );
        assert_eq!(
            check_proof(&with, &TARGET, at(1_000), max, Some("other")),
            Err(ProofRefusal::TokenHash)
        );
        assert_eq!(
            check_proof(&proof(), &TARGET, at(1_000), max, Some("h")),
            Err(ProofRefusal::TokenHash)
        );
    }

    #[test]
    fn urls_compare_without_query_fragment_case_or_default_port() {
        let n = |u| normal_url(u).unwrap();
        assert_eq!(
            n("HTTPS://Auth.Example.com:443/api/refresh?x=1#f"),
            "https://auth.example.com/api/refresh"
        );
        assert_eq!(n("http://h:80"), "http://h/");
        assert_eq!(n("http://h:8080/a"), "http://h:8080/a");
        assert_ne!(n("http://h/A"), n("http://h/a"), "paths are case-sensitive");
        for bad in ["ftp://h/", "/api/refresh", "https://", "https://u@h/"] {
            assert_eq!(normal_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bound_family_refreshes_only_with_its_key() {
        let k = Jkt("k".into());
        let other = Jkt("o".into());
        assert_eq!(refresh_binding(None, None), Ok(()));
        assert_eq!(refresh_binding(None, Some(&other)), Ok(()), "ignored");
        assert_eq!(refresh_binding(Some(&k), Some(&k)), Ok(()));
        assert_eq!(refresh_binding(Some(&k), None), Err(ProofRefusal::Missing));
        assert_eq!(
            refresh_binding(Some(&k), Some(&other)),
            Err(ProofRefusal::OtherKey)
        );
    }

    #[test]
    fn a_bound_token_needs_the_dpop_scheme_and_its_key() {
        let k = Jkt("k".into());
        let other = Jkt("o".into());
        assert_eq!(token_binding(None, Scheme::Bearer, None), Ok(()));
        assert_eq!(token_binding(Some(&k), Scheme::Dpop, Some(&k)), Ok(()));
        assert_eq!(
            token_binding(Some(&k), Scheme::Bearer, Some(&k)),
            Err(ProofRefusal::Missing)
        );
        assert_eq!(
            token_binding(Some(&k), Scheme::Dpop, None),
            Err(ProofRefusal::Missing)
        );
        assert_eq!(
            token_binding(Some(&k), Scheme::Dpop, Some(&other)),
            Err(ProofRefusal::OtherKey)
        );
        assert_eq!(
            token_binding(None, Scheme::Dpop, Some(&k)),
            Err(ProofRefusal::OtherKey)
        );
        assert_eq!(
            replay_window(DEFAULT_PROOF_MAX_AGE),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn a_proof_is_fresh_up_to_and_including_its_last_second() {
        let max = DEFAULT_PROOF_MAX_AGE;
        let last = fresh_until(proof().iat, max);
        assert_eq!(last, 1_060);
        let late = |s: i64| Timestamp::from_unix_millis(s * 1000 + 999);
        assert_eq!(
            check_proof(&proof(), &TARGET, late(last), max, None),
            Ok(())
        );
        assert_eq!(
            check_proof(&proof(), &TARGET, at(last + 1), max, None),
            Err(ProofRefusal::Stale)
        );
        assert_eq!(fresh_until(i64::MAX, max), i64::MAX);
    }
}
