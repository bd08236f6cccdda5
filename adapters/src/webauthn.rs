//! The WebAuthn relying party ([`RelyingParty`]) on `webauthn_rp`: every
//! check of a ceremony (challenge, origin, `type`, rpIdHash, the UP and UV
//! flags, the algorithm, the attestation object, the signature, CTAP2
//! canonical CBOR, strict JSON forms) is the library's.
//!
//! Why `webauthn_rp` and not `webauthn-rs`: `webauthn-rs-core` 0.6.2
//! verifies no EdDSA signature (its COSE key type for Ed25519 answers
//! "unsupported"), while the contract offers `-8`; and its crypto facade
//! needs `rsa`'s pre-release `sha2` feature, which `rsa` 0.10.0 (ours)
//! dropped, so the two cannot be in one build. `webauthn_rp` verifies
//! Ed25519, ES256 and RS256 on the RustCrypto and dalek crates already in
//! the build, and serialises its ceremony state for storage between
//! processes (`serializable_server_state`).
//!
//! What is ours: the options' few contract-specific members (the relying
//! party's name, the three algorithms, no extensions), the storage forms
//! (the library's own binary encodings), and reading the signature
//! counter and flags of a verified assertion, whose judging is
//! `domain::passkey`'s.

use application::ports::{
    AssertionClaim, CredentialId, Passkey, PasskeyRejected, PasskeyUser, RegisteredCredential,
    RelyingParty, StartedCeremony, VerifiedAssertion,
};
use domain::passkey::USER_HANDLE_BYTES;
use serde_json::Value;
use webauthn_rp::bin::{Decode as _, Encode as _};
use webauthn_rp::request::auth::{AuthenticationVerificationOptions, SignatureCounterEnforcement};
use webauthn_rp::request::register::{
    CoseAlgorithmIdentifier, CoseAlgorithmIdentifiers, CredProtect, Extension, Nickname,
    PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle, Username,
};
use webauthn_rp::request::{AsciiDomain, PublicKeyCredentialDescriptor, RpId};
use webauthn_rp::response::register::{DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, AuthenticatorAttachment, Backup};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, PublicKeyCredentialCreationOptions, Registration,
    RegistrationServerState,
};

/// A user handle as the library types it.
type Handle = UserHandle<USER_HANDLE_BYTES>;

/// `WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnConfig {
    /// The relying party id: a domain (`localhost` by default).
    pub rp_id: String,
    /// Its name, as authenticators show it.
    pub rp_name: String,
    /// The origins a ceremony may come from (`clientDataJSON.origin`).
    pub origins: Vec<String>,
}

/// The relying party of [`WebAuthnConfig`].
#[derive(Debug)]
pub struct WebAuthnRelyingParty {
    rp_id: RpId,
    rp_name: String,
    origins: Vec<String>,
}

/// A configuration the library refuses (an rpId that is not a domain).
#[derive(Debug, thiserror::Error)]
#[error("WEBAUTHN_RP_ID {0:?} is not a domain name")]
pub struct InvalidRpId(String);

impl WebAuthnRelyingParty {
    /// The relying party `config` describes.
    ///
    /// # Errors
    /// The rpId is not a domain name.
    pub fn new(config: &WebAuthnConfig) -> Result<Self, InvalidRpId> {
        let domain = AsciiDomain::try_from(config.rp_id.clone())
            .map_err(|_| InvalidRpId(config.rp_id.clone()))?;
        Ok(Self {
            rp_id: RpId::Domain(domain),
            rp_name: config.rp_name.clone(),
            origins: config.origins.clone(),
        })
    }
}

fn rejected(what: &str, e: impl std::fmt::Display) -> PasskeyRejected {
    PasskeyRejected(format!("{what}: {e}"))
}

/// ES256, EdDSA and RS256 (contract v3), not the library's ES384.
const ALGORITHMS: CoseAlgorithmIdentifiers =
    CoseAlgorithmIdentifiers::ALL.remove(CoseAlgorithmIdentifier::Es384);

/// The flags byte of authenticator data (after the 32-byte rpIdHash), and
/// the signature counter after it.
fn flags_and_counter(authenticator_data: &[u8]) -> Option<(u8, u32)> {
    let flags = *authenticator_data.get(32)?;
    let counter = authenticator_data.get(33..37)?.try_into().ok()?;
    Some((flags, u32::from_be_bytes(counter)))
}

const BACKUP_ELIGIBLE: u8 = 0x08;
const BACKED_UP: u8 = 0x10;

impl RelyingParty for WebAuthnRelyingParty {
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[CredentialId],
    ) -> anyhow::Result<StartedCeremony> {
        let handle_bytes: [u8; USER_HANDLE_BYTES] = user
            .handle
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("a user handle of {} bytes", user.handle.len()))?;
        let handle = Handle::from(handle_bytes);
        let name = Username::try_from(user.name.as_str())
            .map_err(|e| anyhow::anyhow!("the username is no WebAuthn user name: {e}"))?;
        let display = Nickname::try_from(user.name.as_str())
            .map_err(|e| anyhow::anyhow!("the username is no WebAuthn display name: {e}"))?;
        let exclude = exclude
            .iter()
            .filter_map(|c| {
                webauthn_rp::response::CredentialId::try_from(c.0.clone())
                    .ok()
                    .map(|id| PublicKeyCredentialDescriptor {
                        id,
                        transports: AuthTransports::NONE,
                    })
            })
            .collect();
        let entity = PublicKeyCredentialUserEntity {
            name,
            id: &handle,
            display_name: Some(display),
        };
        let mut options = PublicKeyCredentialCreationOptions::passkey(&self.rp_id, entity, exclude);
        options.pub_key_cred_params = ALGORITHMS;
        options.extensions = Extension {
            cred_props: None,
            cred_protect: CredProtect::None,
            min_pin_length: None,
            prf: None,
        };
        let (server, client) = options
            .start_ceremony()
            .map_err(|e| anyhow::anyhow!("registration options: {e}"))?;
        let mut options = serde_json::to_value(&client)?;
        options["rp"]["name"] = Value::String(self.rp_name.clone());
        let state = server
            .encode()
            .map_err(|e| anyhow::anyhow!("encoding the registration state: {e}"))?;
        Ok(StartedCeremony { options, state })
    }

    fn finish_registration(
        &self,
        state: &[u8],
        credential: &str,
    ) -> Result<RegisteredCredential, PasskeyRejected> {
        let server = RegistrationServerState::<USER_HANDLE_BYTES>::decode(state)
            .map_err(|e| rejected("the stored ceremony", e))?;
        let registration: Registration =
            serde_json::from_str(credential).map_err(|e| rejected("the credential", e))?;
        let options = RegistrationVerificationOptions::<String, String> {
            allowed_origins: &self.origins,
            // A browser may report extensions it was not asked for; none
            // is security-relevant here.
            error_on_unsolicited_extensions: false,
            ..Default::default()
        };
        let registered = server
            .verify(&self.rp_id, &registration, &options)
            .map_err(|e| rejected("registration", e))?;
        let dynamic = registered.dynamic_state();
        let public_key = registered
            .static_state()
            .encode()
            .map_err(|e| rejected("encoding the public key", e))?;
        Ok(RegisteredCredential {
            id: CredentialId(registered.id().as_ref().to_vec()),
            public_key,
            counter: dynamic.sign_count,
            backup_eligible: !matches!(dynamic.backup, Backup::NotEligible),
            backup_state: matches!(dynamic.backup, Backup::Exists),
        })
    }

    fn start_login(&self) -> anyhow::Result<StartedCeremony> {
        let (server, client) = DiscoverableCredentialRequestOptions::passkey(&self.rp_id)
            .start_ceremony()
            .map_err(|e| anyhow::anyhow!("login options: {e}"))?;
        let options = serde_json::to_value(&client)?;
        let state = server
            .encode()
            .map_err(|e| anyhow::anyhow!("encoding the login state: {e}"))?;
        Ok(StartedCeremony { options, state })
    }

    fn read_assertion(&self, credential: &str) -> Result<AssertionClaim, PasskeyRejected> {
        let assertion: DiscoverableAuthentication<USER_HANDLE_BYTES> =
            serde_json::from_str(credential).map_err(|e| rejected("the credential", e))?;
        Ok(AssertionClaim {
            credential: CredentialId(assertion.raw_id().as_ref().to_vec()),
            user_handle: Some(assertion.response().user_handle().as_ref().to_vec()),
        })
    }

    fn finish_login(
        &self,
        state: &[u8],
        credential: &str,
        stored: &Passkey,
        user_handle: &[u8],
    ) -> Result<VerifiedAssertion, PasskeyRejected> {
        let server = DiscoverableAuthenticationServerState::decode(state)
            .map_err(|e| rejected("the stored ceremony", e))?;
        let assertion: DiscoverableAuthentication<USER_HANDLE_BYTES> =
            serde_json::from_str(credential).map_err(|e| rejected("the credential", e))?;
        let handle_bytes: [u8; USER_HANDLE_BYTES] = user_handle
            .try_into()
            .map_err(|_| rejected("the user handle", "wrong length"))?;
        let handle = Handle::from(handle_bytes);
        let id = webauthn_rp::response::CredentialId::try_from(stored.credential.0.as_slice())
            .map_err(|e| rejected("the stored credential id", e))?;
        let static_state = StaticState::decode(stored.public_key.as_slice())
            .map_err(|e| rejected("the stored public key", e))?;
        let backup = match (stored.backup_eligible, stored.backup_state) {
            (false, _) => Backup::NotEligible,
            (true, false) => Backup::Eligible,
            (true, true) => Backup::Exists,
        };
        let dynamic = DynamicState {
            user_verified: true,
            backup,
            // The counter is judged by `domain::passkey::counter_grew`,
            // on the value read below.
            sign_count: stored.counter,
            authenticator_attachment: AuthenticatorAttachment::None,
        };
        let mut credential = AuthenticatedCredential::new(id, &handle, static_state, dynamic)
            .map_err(|e| rejected("the stored credential", e))?;
        let options = AuthenticationVerificationOptions::<String, String> {
            allowed_origins: &self.origins,
            error_on_unsolicited_extensions: false,
            sig_counter_enforcement: SignatureCounterEnforcement::Ignore,
            ..Default::default()
        };
        server
            .verify(&self.rp_id, &assertion, &mut credential, &options)
            .map_err(|e| rejected("login", e))?;
        let (flags, counter) = flags_and_counter(assertion.response().authenticator_data())
            .ok_or_else(|| rejected("the authenticator data", "too short"))?;
        Ok(VerifiedAssertion {
            counter,
            backup_eligible: flags & BACKUP_ELIGIBLE != 0,
            backup_state: flags & BACKED_UP != 0,
        })
    }
}
