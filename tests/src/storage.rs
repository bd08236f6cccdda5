//! The application's ports on real adapters over a fresh SQLite file, for
//! tests that drive `AuthService` directly (WebSocket tests, load tool).

use std::sync::Arc;

use adapters::crypto::jwt::{JwtSigner, JwtVerifier};
use adapters::crypto::password::Argon2Hasher;
use adapters::crypto::totp::TotpSecrets;
use adapters::persistence::{
    Database, LocalRevocationBus, SeaAuditLog, SeaLoginThrottle, SeaMfaStore, SeaPasskeyStore,
    SeaSessionStore, SeaUserRepository,
};
use adapters::system::{OsRandom, SystemClock};
use adapters::telemetry::{EventRecorder, Metrics};
use adapters::webauthn::{WebAuthnConfig, WebAuthnRelyingParty};
use application::SealKey;
use application::ports::ThrottlePolicy;
use authd::wiring::Ports;

use crate::postgres::fresh_sqlite_url;

/// Real ports on a fresh, migrated SQLite database. Argon2id runs with small
/// parameters (1 MiB, one pass) so that tests are not dominated by hashing;
/// everything else is what `authd` wires in production.
///
/// # Panics
/// When the database cannot be created.
pub async fn sqlite_ports(signer: Arc<JwtSigner>, verifier: Arc<JwtVerifier>) -> Ports {
    let db = Database::connect(&fresh_sqlite_url())
        .await
        .expect("SQLite database");
    db.migrate().await.expect("migrations");
    Ports {
        users: Arc::new(SeaUserRepository::new(db.clone())),
        sessions: Arc::new(SeaSessionStore::new(db.clone())),
        hasher: Arc::new(Argon2Hasher::with_params(1024, 1, 1).expect("argon2 parameters")),
        signer,
        verifier,
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        bus: Arc::new(LocalRevocationBus::new()),
        throttle: Arc::new(SeaLoginThrottle::new(db.clone(), ThrottlePolicy::default())),
        health: Arc::new(db.clone()),
        events: Arc::new(
            EventRecorder::new(Metrics::disabled()).with_store(SeaAuditLog::new(db.clone())),
        ),
        mfa: Arc::new(SeaMfaStore::new(db.clone())),
        totp: Arc::new(TotpSecrets::new(&SealKey::from_bytes([0; SealKey::LEN]))),
        passkeys: Arc::new(SeaPasskeyStore::new(db.clone())),
        dpop_verifier: Arc::new(adapters::crypto::dpop_verifier::DpopJws),
        dpop_replay: Arc::new(adapters::persistence::SeaDpopReplayStore::new(db.clone())),
        mail_store: Arc::new(adapters::persistence::SeaMailStore::new(db)),
        mail_seal: Arc::new(adapters::crypto::mail_seal::OutboxSeal::new(
            &SealKey::from_bytes([0; SealKey::LEN]),
        )),
        mailer: Arc::new(NoMail),
        outbox_signal: Arc::new(NoMail),
        relying_party: Arc::new(
            WebAuthnRelyingParty::new(&WebAuthnConfig {
                rp_id: "localhost".into(),
                rp_name: "authd".into(),
                origins: vec!["http://localhost:3000".into()],
            })
            .expect("a relying party"),
        ),
    }
}

/// The mailer of [`sqlite_ports`]: these tests send no mail, and one
/// that tried would fail loudly rather than write files somewhere.
#[derive(Debug)]
struct NoMail;

#[async_trait::async_trait]
impl application::ports::Mailer for NoMail {
    async fn send(
        &self,
        _: &application::ports::OutgoingMail,
    ) -> Result<(), application::ports::DeliveryError> {
        Err(application::ports::DeliveryError::Permanent(
            "no mail in these tests".into(),
        ))
    }
}

impl application::ports::OutboxSignal for NoMail {
    fn mail_queued(&self) {}
}
