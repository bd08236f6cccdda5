//! Builds the adapters from the configuration and composes the use cases
//! on them ([`compose`]).
//! Starting and stopping the servers is [`crate::lifecycle`]'s.

use std::sync::Arc;

use adapters::crypto::dpop_verifier::DpopJws;
use adapters::crypto::jws_keys::KeyPair;
use adapters::crypto::key_ring::{self, KeyRing, KeyRingConfig, Minter};
use adapters::crypto::key_seal::KeySeal;
use adapters::crypto::keys::DEFAULT_KEY_BITS;
use adapters::crypto::mail_seal::OutboxSeal;
use adapters::crypto::password::{Argon2Cost, Argon2Hasher};
use adapters::crypto::totp::TotpSecrets;
use adapters::http::HttpConfig;
use adapters::mail::MailSettings;
use adapters::persistence::{
    Database, PgRevocationBus, PollingRevocationBus, SeaAuditLog, SeaDpopReplayStore,
    SeaLoginThrottle, SeaMailStore, SeaMfaStore, SeaPasskeyStore, SeaSessionStore,
    SeaSigningKeyStore, SeaUserRepository,
};
use adapters::system::{OsRandom, SystemClock};
use adapters::telemetry::metrics::PasswordQueueStatus;
use adapters::telemetry::{EventRecorder, Metrics};
use adapters::webauthn::{WebAuthnConfig, WebAuthnRelyingParty};
use adapters::ws::WsConfig;
use anyhow::Context;
pub use application::composition::{Ports, UseCases, compose};
use application::ports::{
    AccessTokenVerifier as _, Clock, RevocationBus, SessionStore, ThrottlePolicy, UserRepository,
};
use application::use_cases::{PasswordReplacement, SigningKeys, UserAccounts};
use application::{AuthConfig, SealKey};
use domain::{Algorithm, TokenPolicy};

use crate::config::Config;
pub use crate::key_files::KeyMaterial;

/// What the real wiring lets a caller replace: what time it is, what a
/// password hash costs and whether the hourly prune runs. [`Seams::default`]
/// is production (the system clock, the OWASP argon2id parameters, the
/// prune on its schedule); tests move a clock forward instead of sleeping,
/// hash cheaply, and a test that prunes by hand turns the schedule off so
/// that the first pass at start cannot race it.
#[derive(Clone)]
pub struct Seams {
    /// Tells every use case and store the time.
    pub clock: Arc<dyn Clock>,
    /// argon2id's cost for new hashes; `None`: the OWASP parameters.
    pub argon2: Option<Argon2Cost>,
    /// Whether housekeeping prunes on its schedule (first pass at start).
    pub scheduled_prune: bool,
    /// The size of RSA signing keys the service makes (4096; tests use 2048,
    /// which generates in a fraction of the time).
    pub rsa_key_bits: usize,
    /// Wakes the outbox sender of the process these seams build.
    pub outbox_wake: Arc<crate::outbox::OutboxWake>,
}

impl Default for Seams {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            argon2: None,
            scheduled_prune: true,
            rsa_key_bits: DEFAULT_KEY_BITS,
            outbox_wake: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seams")
            .field("argon2", &self.argon2)
            .field("scheduled_prune", &self.scheduled_prune)
            .field("rsa_key_bits", &self.rsa_key_bits)
            .finish_non_exhaustive()
    }
}

impl Seams {
    fn hasher(&self, config: &Config) -> anyhow::Result<Argon2Hasher> {
        match self.argon2 {
            Some(cost) => Argon2Hasher::with_cost(cost, config.password_queue_limit),
            None => Argon2Hasher::with_queue_limit(config.password_queue_limit),
        }
    }
}

/// Connects to the configured database and applies migrations unless `AUTO_MIGRATE=false`.
///
/// # Errors
/// The database cannot be reached, or a migration failed.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(&config.database_url)
        .await
        .context("connecting to DATABASE_URL")?;
    if config.auto_migrate {
        db.migrate().await.context("applying migrations")?;
    }
    Ok(db)
}

/// What `authd user add|delete|reset-mfa` needs: the users and two-factor
/// tables, the audit trail and the password hasher,
/// on a connected (and, unless `AUTO_MIGRATE=false`, migrated) database.
/// No key is read or created, no revocation feed started.
///
/// # Errors
/// The database cannot be reached, or the hasher cannot start.
pub async fn user_accounts(config: &Config) -> anyhow::Result<UserAccounts> {
    let db = connect(config).await?;
    Ok(UserAccounts {
        users: Arc::new(SeaUserRepository::new(db.clone())),
        hasher: Arc::new(Argon2Hasher::with_queue_limit(config.password_queue_limit)?),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        events: Arc::new(
            EventRecorder::new(Metrics::disabled()).with_store(SeaAuditLog::new(db.clone())),
        ),
        mfa: Arc::new(SeaMfaStore::new(db)),
    })
}

/// What `authd user set-password` needs: the users, their sessions, the
/// two-factor challenges, the login throttle, the audit trail and the
/// hasher, on a connected database. Every process hears of the revoked
/// sessions from the revocation feed within its poll.
///
/// # Errors
/// The database cannot be reached, or the hasher cannot start.
pub async fn password_replacement(
    config: &Config,
) -> anyhow::Result<(Arc<dyn UserRepository>, PasswordReplacement)> {
    let db = connect(config).await?;
    let users: Arc<dyn UserRepository> = Arc::new(SeaUserRepository::new(db.clone()));
    let replacement = PasswordReplacement {
        users: users.clone(),
        hasher: Arc::new(Argon2Hasher::with_queue_limit(config.password_queue_limit)?),
        sessions: Arc::new(SeaSessionStore::new(db.clone())),
        mfa: Arc::new(SeaMfaStore::new(db.clone())),
        throttle: Arc::new(SeaLoginThrottle::new(db.clone(), throttle_policy(config))),
        events: Arc::new(EventRecorder::new(Metrics::disabled()).with_store(SeaAuditLog::new(db))),
        clock: Arc::new(SystemClock),
    };
    Ok((users, replacement))
}

/// Builds every adapter on `db` and composes the use cases on them;
/// security events count into `metrics`.
///
/// # Errors
/// The revocation bus could not start.
pub async fn build_service(
    config: &Config,
    db: &Database,
    keys: &KeyMaterial,
    metrics: Metrics,
    seams: &Seams,
    signs: bool,
) -> anyhow::Result<UseCases> {
    let clock = seams.clock.clone();
    let sessions: Arc<dyn SessionStore> = Arc::new(SeaSessionStore::new(db.clone()));
    // Both read the recent revocations every second: a lost NOTIFY, or another
    // process on the same SQLite file, is still heard.
    let bus: Arc<dyn RevocationBus> = if db.is_postgres() {
        Arc::new(
            PgRevocationBus::start(
                &config.database_url,
                config.access_token_expiry,
                clock.clone(),
            )
            .await
            .context("starting the revocation bus")?,
        )
    } else {
        Arc::new(PollingRevocationBus::start(
            sessions.clone(),
            config.access_token_expiry,
            clock.clone(),
        ))
    };
    let hasher = Arc::new(seams.hasher(config)?);
    let queue = Arc::clone(&hasher);
    metrics.observe_password_queue(Arc::new(move || {
        let stats = queue.queue_stats();
        PasswordQueueStatus {
            waiting: stats.waiting as u64,
            shed: stats.shed,
            skipped: stats.skipped,
        }
    }));
    let ring = key_ring(config, db, keys, seams, signs).await?;
    let ports = Ports {
        users: Arc::new(SeaUserRepository::new(db.clone())),
        sessions,
        hasher,
        signer: ring.clone(),
        verifier: ring,
        clock,
        random: Arc::new(OsRandom),
        bus,
        throttle: Arc::new(SeaLoginThrottle::new(db.clone(), throttle_policy(config))),
        health: Arc::new(db.clone()),
        events: Arc::new(EventRecorder::new(metrics).with_store(SeaAuditLog::new(db.clone()))),
        mfa: Arc::new(SeaMfaStore::new(db.clone())),
        totp: Arc::new(TotpSecrets::new(&keys.seal)),
        passkeys: Arc::new(SeaPasskeyStore::new(db.clone())),
        relying_party: Arc::new(WebAuthnRelyingParty::new(&WebAuthnConfig {
            rp_id: config.webauthn_rp_id.clone(),
            rp_name: config.webauthn_rp_name.clone(),
            origins: config.webauthn_origins.clone(),
        })?),
        dpop_verifier: Arc::new(DpopJws),
        dpop_replay: Arc::new(SeaDpopReplayStore::new(db.clone())),
        mail_store: Arc::new(SeaMailStore::new(db.clone())),
        mail_seal: Arc::new(OutboxSeal::new(&keys.seal)),
        mailer: adapters::mail::mailer(&mail_settings(config)?)?,
        outbox_signal: seams.outbox_wake.clone(),
    };
    Ok(compose(ports, &auth_config(config, keys.seal.clone())))
}

/// Where mail goes (`SMTP_URL`, or files under `MAIL_DIR`).
///
/// # Errors
/// A setting that cannot be used; `SMTP_URL` without `PUBLIC_URL` (a link
/// in a mail must not be built from a request's `Host`, which whoever asks
/// for a reset chooses).
pub fn mail_settings(config: &Config) -> anyhow::Result<MailSettings> {
    anyhow::ensure!(
        config.smtp_url.is_none() || config.public_url.is_some(),
        "SMTP_URL needs PUBLIC_URL: links in mail point at it, never at a request's Host"
    );
    Ok(MailSettings::new(
        config.smtp_url.as_ref().map(|u| u.0.as_str()),
        &config.mail_from,
        config.mail_dir.clone(),
        config.smtp_ca_file.clone(),
    )?)
}

/// What the REST API serves of `use_cases`.
pub fn rest(use_cases: &UseCases) -> adapters::http::RestUseCases {
    adapters::http::RestUseCases {
        registration: use_cases.registration.clone(),
        logins: use_cases.logins.clone(),
        sessions: use_cases.sessions.clone(),
        account: use_cases.account.clone(),
        two_factor: use_cases.two_factor.clone(),
        passkeys: use_cases.passkeys.clone(),
        emails: use_cases.emails.clone(),
        dpop: use_cases.dpop.clone(),
        access: use_cases.access.clone(),
        readiness: use_cases.readiness.clone(),
    }
}

/// Checks that `seal_key` opens the signing key that signs now, before
/// `authd keys rotate` seals a new one under it (security review 2, finding
/// 7): a key sealed under another deployment's secret would stop every
/// server once it became current. Nothing to check in an empty set.
///
/// # Errors
/// The store failed, or the current key does not open
/// ([`adapters::crypto::key_seal::KeyDoesNotOpen`] in the chain).
pub async fn check_secret_opens_current_key(
    db: &Database,
    seal_key: &SealKey,
    now: domain::Timestamp,
) -> anyhow::Result<()> {
    use application::ports::SigningKeyStore as _;
    let keys = SeaSigningKeyStore::new(db.clone()).list().await?;
    let records: Vec<domain::KeyRecord> = keys.iter().map(|k| k.record.clone()).collect();
    let Some(current) = domain::signing_keys::current(&records, now) else {
        return Ok(());
    };
    let key = keys
        .iter()
        .find(|k| k.record.kid == current.kid)
        .context("the current key vanished from its own list")?;
    KeySeal::new(seal_key).open(&key.record.kid, key.record.alg, &key.sealed_private)?;
    Ok(())
}

/// The key-set operations (`authd keys ...`, and the first key of an empty set).
/// New RSA keys have `rsa_bits` bits ([`DEFAULT_KEY_BITS`] but in tests).
pub fn signing_keys(
    config: &Config,
    db: &Database,
    seal: &SealKey,
    clock: Arc<dyn Clock>,
    rsa_bits: usize,
) -> SigningKeys {
    SigningKeys {
        store: Arc::new(SeaSigningKeyStore::new(db.clone())),
        minter: Arc::new(Minter::new(KeySeal::new(seal), rsa_bits)),
        clock,
        alg: config.jwt_alg,
        publish_ahead: config.key_publish_ahead,
        access_ttl: config.access_token_expiry,
    }
}

/// How often a verify-only process looks for the first key of an empty set.
const FIRST_KEY_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The key set of this process, followed in the database from now on.
///
/// A process that `signs` (one that serves the REST API) first gives an
/// empty set its first key (the key files' pair, or a new key) and opens
/// the private keys; one that only verifies (`authd ws`) opens no private
/// key and creates none: it picks up the API's first key when it follows.
async fn key_ring(
    config: &Config,
    db: &Database,
    keys: &KeyMaterial,
    seams: &Seams,
    signs: bool,
) -> anyhow::Result<Arc<KeyRing>> {
    let clock = &seams.clock;
    let seal = KeySeal::new(&keys.seal);
    let store = Arc::new(SeaSigningKeyStore::new(db.clone()));
    let ring_config = KeyRingConfig {
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_ttl: config.access_token_expiry,
    };
    if signs {
        let added = signing_keys(config, db, &keys.seal, clock.clone(), seams.rsa_key_bits)
            .ensure_first(|| {
                keys.import
                    .as_ref()
                    .map(|private| {
                        let pair = KeyPair::from(private.clone());
                        Ok((Algorithm::Rs256, key_ring::seal_private(&seal, &pair)?))
                    })
                    .transpose()
            })
            .await
            .context("creating the first signing key")?;
        if let Some(kid) = added {
            let from = if keys.import.is_some() {
                "the key files"
            } else {
                "a new key"
            };
            tracing::info!(kid, from, "the key set was empty: first signing key added");
        }
    }
    let ring = KeyRing::load(store, signs.then_some(seal), clock.clone(), ring_config)
        .await
        .context("loading the signing keys")?;
    // Serving before the first key exists would refuse the first tokens the
    // API signs until the next re-read: a verify-only process waits for it.
    if ring.published_keys().is_empty() {
        tracing::info!("not serving yet: waiting for the REST API to create the first signing key");
        while ring.published_keys().is_empty() {
            tokio::time::sleep(FIRST_KEY_POLL).await;
            ring.refresh()
                .await
                .context("re-reading the signing keys")?;
        }
    }
    let ring = Arc::new(ring);
    tokio::spawn(KeyRing::follow(Arc::downgrade(&ring)));
    Ok(ring)
}

/// The login throttle's policy of `config`.
pub fn throttle_policy(config: &Config) -> ThrottlePolicy {
    ThrottlePolicy {
        max_failures: config.login_max_failures,
        window: config.login_failure_window,
    }
}

/// The use cases' settings of `config`, sealing with `seal_key`.
pub fn auth_config(config: &Config, seal_key: SealKey) -> AuthConfig {
    AuthConfig {
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_ttl: config.access_token_expiry,
        token_policy: TokenPolicy {
            refresh_ttl: config.refresh_token_expiry,
            reuse_grace: config.refresh_reuse_grace,
            session_max_age: config.session_max_age,
        },
        allow_registration: config.allow_registration,
        token_cache_size: config.token_cache_size,
        audit_retention: config.audit_retention,
        seal_key,
        dpop_max_age: config.dpop_proof_max_age,
        mail_lifetimes: domain::email::MailLifetimes {
            verify: config.email_verify_expiry,
            reset: config.password_reset_expiry,
        },
    }
}

/// The REST settings of `config`; request counts go to `metrics`.
pub fn http_config(config: &Config, metrics: Metrics) -> HttpConfig {
    HttpConfig {
        cookie_secure: config.cookie_secure,
        trusted_proxies: config.trusted_proxies.clone(),
        cors_origins: config.cors_origins.clone(),
        demo_dir: config.demo_dir.clone(),
        docs: config.api_docs,
        metrics,
        public_url: config.public_url.clone(),
    }
}

/// The WebSocket settings of `config`; connection counts go to `metrics`.
pub fn ws_config(config: &Config, metrics: Metrics) -> WsConfig {
    WsConfig {
        expiry_warning: config.ws_expiry_warning,
        allowed_origins: config.cors_origins.clone(),
        max_connections_per_user: config.ws_max_connections_per_user,
        max_connections_per_address: config.ws_max_connections_per_address,
        trusted_proxies: config.trusted_proxies.clone(),
        metrics,
        public_url: config.public_url.clone(),
        ..WsConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration's declared defaults (`config.rs`, what `authd
    /// --help` and the README show) are the ones the library types fall back
    /// to, so tests built on those types run with production's settings.
    #[test]
    fn declared_defaults_are_the_libraries_defaults() {
        let config = Config::default();
        assert_eq!(throttle_policy(&config), ThrottlePolicy::default());
        let seal = || SealKey::from_bytes([7; SealKey::LEN]);
        let ours = auth_config(&config, seal());
        let theirs = AuthConfig {
            seal_key: seal(),
            ..AuthConfig::default()
        };
        assert_eq!(ours, theirs);
        let ws = ws_config(&config, Metrics::disabled());
        let defaults = WsConfig::default();
        assert_eq!(
            (
                ws.expiry_warning,
                ws.allowed_origins,
                ws.max_connections_per_user,
                ws.max_connections_per_address,
                ws.trusted_proxies
            ),
            (
                defaults.expiry_warning,
                defaults.allowed_origins,
                defaults.max_connections_per_user,
                defaults.max_connections_per_address,
                defaults.trusted_proxies
            )
        );
        let http = http_config(&config, Metrics::disabled());
        let defaults = HttpConfig::default();
        assert_eq!(
            (
                http.cookie_secure,
                http.trusted_proxies,
                http.cors_origins,
                http.demo_dir,
                http.docs
            ),
            (
                defaults.cookie_secure,
                defaults.trusted_proxies,
                defaults.cors_origins,
                defaults.demo_dir,
                defaults.docs
            )
        );
    }
}
