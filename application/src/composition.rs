//! Composition: every use case of a serving process, each built on exactly
//! the ports it uses. `bin` chooses the adapters behind [`Ports`]; the
//! use-case tests pass fakes. Which use case needs which port is decided
//! here, once.

use std::sync::Arc;

use crate::ports::{
    AccessTokenSigner, AccessTokenVerifier, Clock, DpopReplayStore, DpopVerifier, HealthCheck,
    LoginThrottle, MailSeal, MailStore, Mailer, MfaStore, OutboxSignal, PasskeyStore,
    PasswordHasher, RandomSource, RelyingParty, RevocationBus, SecurityEvents, SessionStore,
    TotpCodes, UserRepository,
};
use crate::use_cases::{
    Emails, Outbox, Passkeys, PasswordReplacement, Reauthentication, TwoFactor,
};
use crate::{
    AccessCheck, AccessTokenIssuer, Account, AuthConfig, DpopProofs, Housekeeping, Logins,
    Readiness, Registration, Revocations, Sessions, UserAccounts,
};

/// The adapters behind each port, chosen by `bin`: what [`compose`] builds
/// the use cases on.
#[derive(Clone)]
pub struct Ports {
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access-token signing.
    pub signer: Arc<dyn AccessTokenSigner>,
    /// Access-token verification.
    pub verifier: Arc<dyn AccessTokenVerifier>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub random: Arc<dyn RandomSource>,
    /// Revocation announcements.
    pub bus: Arc<dyn RevocationBus>,
    /// Login brute-force throttle.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Storage probe.
    pub health: Arc<dyn HealthCheck>,
    /// Security events: audit trail and outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Two-factor login's state.
    pub mfa: Arc<dyn MfaStore>,
    /// TOTP secrets and codes.
    pub totp: Arc<dyn TotpCodes>,
    /// Passkeys, user handles and ceremonies.
    pub passkeys: Arc<dyn PasskeyStore>,
    /// The WebAuthn relying party.
    pub relying_party: Arc<dyn RelyingParty>,
    /// DPoP proofs' JWS.
    pub dpop_verifier: Arc<dyn DpopVerifier>,
    /// DPoP proof ids used at logins and refreshes.
    pub dpop_replay: Arc<dyn DpopReplayStore>,
    /// Addresses, mail tokens and the outbox.
    pub mail_store: Arc<dyn MailStore>,
    /// Seals queued mail.
    pub mail_seal: Arc<dyn MailSeal>,
    /// Sends mail (SMTP, or files).
    pub mailer: Arc<dyn Mailer>,
    /// Wakes this process's outbox sender.
    pub outbox_signal: Arc<dyn OutboxSignal>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ports { .. }")
    }
}

/// Every use case of a serving process, each on the ports it needs.
#[derive(Debug, Clone)]
pub struct UseCases {
    /// `POST /api/register`.
    pub registration: Arc<Registration>,
    /// The password step and the second factor.
    pub logins: Arc<Logins>,
    /// Refresh, logout, the sessions list.
    pub sessions: Arc<Sessions>,
    /// The account: its view, password change, deletion.
    pub account: Arc<Account>,
    /// Managing two-factor login.
    pub two_factor: Arc<TwoFactor>,
    /// Passkeys: registering, listing, deleting, logging in.
    pub passkeys: Arc<Passkeys>,
    /// DPoP proofs of requests.
    pub dpop: Arc<DpopProofs>,
    /// Access tokens (REST and WebSocket).
    pub access: Arc<AccessCheck>,
    /// The revoked-session cache and its feed.
    pub revocations: Revocations,
    /// `GET /api/health`.
    pub readiness: Arc<Readiness>,
    /// The periodic deletions.
    pub housekeeping: Arc<Housekeeping>,
    /// Addresses, their verification, password resets.
    pub emails: Arc<Emails>,
    /// Sends the queued mail.
    pub outbox: Arc<Outbox>,
    /// The settings they were built with.
    pub config: AuthConfig,
}

/// Builds each use case on exactly the ports it uses; the revoked-session
/// cache subscribes to the bus.
pub fn compose(ports: Ports, config: &AuthConfig) -> UseCases {
    let Ports {
        users,
        sessions,
        hasher,
        signer,
        verifier,
        clock,
        random,
        bus,
        throttle,
        health,
        events,
        mfa,
        totp,
        passkeys,
        relying_party,
        dpop_verifier,
        dpop_replay,
        mail_store,
        mail_seal,
        mailer,
        outbox_signal,
    } = ports;
    let dpop = Arc::new(DpopProofs::new(
        dpop_verifier,
        dpop_replay.clone(),
        clock.clone(),
        events.clone(),
        config.dpop_max_age,
    ));
    let revocations = Revocations::new(bus, sessions.clone(), clock.clone(), config.access_ttl);
    let access = AccessCheck::new(
        verifier,
        clock.clone(),
        revocations.clone(),
        config.token_cache_size,
        config.access_ttl,
    );
    let issuer = AccessTokenIssuer {
        signer,
        random: random.clone(),
        issuer: config.issuer.clone(),
        audience: config.audience.clone(),
        access_ttl: config.access_ttl,
    };
    let reauth = Reauthentication {
        users: users.clone(),
        hasher: hasher.clone(),
        throttle: throttle.clone(),
        mfa: mfa.clone(),
        totp: totp.clone(),
        events: events.clone(),
        clock: clock.clone(),
    };
    let logins = Logins {
        users: users.clone(),
        hasher: hasher.clone(),
        throttle: throttle.clone(),
        mfa: mfa.clone(),
        totp: totp.clone(),
        sessions: sessions.clone(),
        issuer: issuer.clone(),
        events: events.clone(),
        clock: clock.clone(),
        random: random.clone(),
        seal_key: config.seal_key.clone(),
        token_policy: config.token_policy,
    };
    let replacement = PasswordReplacement {
        users: users.clone(),
        hasher: hasher.clone(),
        sessions: sessions.clone(),
        mfa: mfa.clone(),
        throttle: throttle.clone(),
        events: events.clone(),
        clock: clock.clone(),
    };
    let emails = Arc::new(Emails {
        store: mail_store.clone(),
        seal: mail_seal.clone(),
        signal: outbox_signal,
        users: users.clone(),
        reauth: reauth.clone(),
        replacement,
        revocations: revocations.clone(),
        random: random.clone(),
        events: events.clone(),
        clock: clock.clone(),
        lifetimes: config.mail_lifetimes,
    });
    let outbox = Arc::new(Outbox {
        store: mail_store.clone(),
        seal: mail_seal,
        mailer,
        events: events.clone(),
        clock: clock.clone(),
    });
    UseCases {
        emails,
        outbox,
        registration: Arc::new(Registration {
            accounts: UserAccounts {
                users: users.clone(),
                hasher: hasher.clone(),
                clock: clock.clone(),
                random: random.clone(),
                events: events.clone(),
                mfa: mfa.clone(),
            },
            open: config.allow_registration,
        }),
        logins: Arc::new(logins.clone()),
        passkeys: Arc::new(Passkeys {
            reauth: reauth.clone(),
            logins,
            relying_party,
            store: passkeys.clone(),
            users: users.clone(),
            throttle: throttle.clone(),
            events: events.clone(),
            clock: clock.clone(),
            random: random.clone(),
        }),
        sessions: Arc::new(Sessions {
            sessions: sessions.clone(),
            users: users.clone(),
            issuer,
            access: access.clone(),
            revocations: revocations.clone(),
            events: events.clone(),
            clock: clock.clone(),
            random: random.clone(),
            seal_key: config.seal_key.clone(),
            token_policy: config.token_policy,
        }),
        account: Arc::new(Account {
            reauth: reauth.clone(),
            users: users.clone(),
            hasher,
            sessions: sessions.clone(),
            revocations: revocations.clone(),
            mfa: mfa.clone(),
            passkeys: passkeys.clone(),
            mail: mail_store.clone(),
            events: events.clone(),
            clock: clock.clone(),
        }),
        two_factor: Arc::new(TwoFactor {
            reauth,
            users,
            throttle: throttle.clone(),
            mfa: mfa.clone(),
            totp,
            clock: clock.clone(),
            random,
            issuer: config.issuer.clone(),
        }),
        readiness: Arc::new(Readiness {
            health,
            revocations: revocations.clone(),
        }),
        housekeeping: Arc::new(Housekeeping {
            sessions,
            throttle,
            mfa,
            passkeys,
            dpop: dpop_replay,
            mail: mail_store,
            events,
            clock,
            token_policy: config.token_policy,
            audit_retention: config.audit_retention,
        }),
        dpop,
        access: Arc::new(access),
        revocations,
        config: config.clone(),
    }
}
