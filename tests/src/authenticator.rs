//! A software WebAuthn authenticator: it plays the browser and a platform
//! authenticator in both ceremonies (`navigator.credentials.create` / `get`
//! followed by `credential.toJSON()`), so tests drive the server's passkey
//! API with plain JSON. Attestation is "none"; `Tweaks` bend one field of a
//! ceremony at a time to prove the server refuses it.
//!
//! It ignores `excludeCredentials` (an authenticator that does not honour
//! the exclusion): refusing a known credential id is the server's job.

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Bytes of a fresh credential id.
const CREDENTIAL_ID_LEN: usize = 16;

/// Authenticator data flags (WebAuthn Level 3, 6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// The signature algorithm of the credentials an authenticator creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256, COSE -7.
    Es256,
    /// Ed25519, COSE -8.
    EdDsa,
}

impl Algorithm {
    /// The COSE algorithm identifier.
    pub fn cose(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::EdDsa => -8,
        }
    }
}

/// A credential the authenticator holds (a discoverable one: it keeps the
/// user handle).
#[derive(Clone, Debug)]
pub struct SoftCredential {
    /// The credential id (16 random bytes unless `Tweaks::credential_id`).
    pub id: Vec<u8>,
    /// The options' `user.id` at `create`, sent back as `userHandle`.
    pub user_handle: Vec<u8>,
    /// The rpId it was created for (`rp.id`, else the origin's host).
    pub rp_id: String,
    /// The signature counter last sent.
    pub counter: u32,
    /// The BE flag it was created with.
    pub backup_eligible: bool,
    /// The BS flag it was created with.
    pub backup_state: bool,
    key: PrivateKey,
}

#[derive(Clone)]
enum PrivateKey {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The algorithm only: no key material in a test log.
        f.write_str(match self {
            Self::Es256(_) => "Es256(..)",
            Self::EdDsa(_) => "EdDsa(..)",
        })
    }
}

impl PrivateKey {
    fn generate(alg: Algorithm) -> Self {
        match alg {
            // A random scalar out of range (zero or at least n) is all but
            // impossible; draw again if it happens.
            Algorithm::Es256 => loop {
                if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&random::<32>()) {
                    break Self::Es256(key);
                }
            },
            Algorithm::EdDsa => Self::EdDsa(ed25519_dalek::SigningKey::from_bytes(&random())),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Es256(_) => Algorithm::Es256,
            Self::EdDsa(_) => Algorithm::EdDsa,
        }
    }

    /// The public key as a COSE_Key in CTAP2 canonical CBOR.
    fn cose_key(&self) -> Vec<u8> {
        use ciborium::Value as Cbor;
        let int = |i: i64| Cbor::Integer(i.into());
        let map = match self {
            Self::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                vec![
                    (int(1), int(2)),
                    (int(3), int(-7)),
                    (int(-1), int(1)),
                    (
                        int(-2),
                        Cbor::Bytes(point.x().expect("uncompressed").to_vec()),
                    ),
                    (
                        int(-3),
                        Cbor::Bytes(point.y().expect("uncompressed").to_vec()),
                    ),
                ]
            }
            Self::EdDsa(key) => vec![
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (
                    int(-2),
                    Cbor::Bytes(key.verifying_key().to_bytes().to_vec()),
                ),
            ],
        };
        cbor(&Cbor::Map(map))
    }

    /// The public key as a DER SubjectPublicKeyInfo (the `publicKey` member).
    fn spki(&self) -> Vec<u8> {
        match self {
            Self::Es256(key) => key.verifying_key().to_public_key_der(),
            Self::EdDsa(key) => key.verifying_key().to_public_key_der(),
        }
        .expect("SPKI of a public key")
        .into_vec()
    }

    /// ES256: an ASN.1 DER signature; EdDSA: the raw 64 bytes.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Self::EdDsa(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

/// Departures from a well-behaved platform authenticator, one ceremony at a
/// time. `Tweaks::default()` is the well-behaved one.
#[derive(Clone, Debug)]
pub struct Tweaks {
    /// Hash this rpId instead of the options' `rp.id` / `rpId`.
    pub rp_id: Option<String>,
    /// The UP flag.
    pub user_present: bool,
    /// The UV flag.
    pub user_verified: bool,
    /// The BE flag; at `create` it is also stored with the credential.
    /// Default: the credential's (false at creation unless
    /// [`SoftAuthenticator::synced`]).
    pub backup_eligible: Option<bool>,
    /// The BS flag; at `create` it is also stored with the credential.
    pub backup_state: Option<bool>,
    /// Instead of "webauthn.create" / "webauthn.get".
    pub client_data_type: Option<String>,
    /// A base64url challenge for clientDataJSON instead of the options'.
    pub challenge: Option<String>,
    /// Instead of "public-key".
    pub credential_type: Option<String>,
    /// Send this signature counter (and store it).
    pub counter: Option<u32>,
    /// The userHandle to send at `get`.
    pub user_handle: Option<Vec<u8>>,
    /// `create`: use this credential id (to register an existing id again).
    pub credential_id: Option<Vec<u8>>,
}

impl Default for Tweaks {
    fn default() -> Self {
        Self {
            rp_id: None,
            user_present: true,
            user_verified: true,
            backup_eligible: None,
            backup_state: None,
            client_data_type: None,
            challenge: None,
            credential_type: None,
            counter: None,
            user_handle: None,
            credential_id: None,
        }
    }
}

/// A platform authenticator in software, holding the credentials it creates.
/// `Clone` gives a cloned authenticator (same keys, same counters).
#[derive(Clone, Debug)]
pub struct SoftAuthenticator {
    alg: Algorithm,
    synced: bool,
    credentials: Vec<SoftCredential>,
}

impl SoftAuthenticator {
    /// A device-bound authenticator (BE=0, BS=0). Counters start at 0 at
    /// `create` and grow by one at every `get`.
    pub fn new(alg: Algorithm) -> Self {
        Self {
            alg,
            synced: false,
            credentials: Vec::new(),
        }
    }

    /// A synced passkey provider (BE=1, BS=1).
    pub fn synced(alg: Algorithm) -> Self {
        Self {
            synced: true,
            ..Self::new(alg)
        }
    }

    /// The credentials created so far, oldest first.
    pub fn credentials(&self) -> &[SoftCredential] {
        &self.credentials
    }

    /// `options`: the `publicKey` member the server returns
    /// (PublicKeyCredentialCreationOptionsJSON); `origin` e.g.
    /// "http://localhost:3000". Returns RegistrationResponseJSON.
    pub fn create(&mut self, options: &Value, origin: &str) -> Value {
        self.create_with(options, origin, &Tweaks::default())
    }

    /// [`Self::create`] with `tweaks`.
    ///
    /// # Panics
    ///
    /// If no `pubKeyCredParams` entry offers the authenticator's algorithm,
    /// or a member it needs is missing.
    pub fn create_with(&mut self, options: &Value, origin: &str, tweaks: &Tweaks) -> Value {
        let offered = options["pubKeyCredParams"]
            .as_array()
            .expect("options carry pubKeyCredParams")
            .iter()
            .any(|p| p["type"] == "public-key" && p["alg"].as_i64() == Some(self.alg.cose()));
        assert!(
            offered,
            "the options offer no {:?} (COSE {}) in pubKeyCredParams: {}",
            self.alg,
            self.alg.cose(),
            options["pubKeyCredParams"]
        );
        let rp_id = options["rp"]["id"]
            .as_str()
            .map_or_else(|| host(origin), str::to_owned);
        let user_handle = b64_member(&options["user"]["id"], "user.id");
        let challenge = options["challenge"]
            .as_str()
            .expect("options carry a challenge");
        let credential = SoftCredential {
            id: tweaks
                .credential_id
                .clone()
                .unwrap_or_else(|| random::<CREDENTIAL_ID_LEN>().to_vec()),
            user_handle,
            rp_id: rp_id.clone(),
            counter: tweaks.counter.unwrap_or(0),
            backup_eligible: tweaks.backup_eligible.unwrap_or(self.synced),
            backup_state: tweaks.backup_state.unwrap_or(self.synced),
            key: PrivateKey::generate(self.alg),
        };

        let client_data = client_data_json("webauthn.create", challenge, origin, tweaks);
        let mut auth_data = authenticator_data(&rp_id, &credential, AT, tweaks);
        auth_data.extend_from_slice(&[0; 16]); // AAGUID: none
        let id_len = u16::try_from(credential.id.len()).expect("a credential id under 64 KiB");
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&credential.id);
        auth_data.extend_from_slice(&credential.key.cose_key());
        // CTAP2 canonical order: the shorter key first.
        let attestation_object = cbor(&ciborium::Value::Map(vec![
            ("fmt".into(), "none".into()),
            ("attStmt".into(), ciborium::Value::Map(Vec::new())),
            ("authData".into(), ciborium::Value::Bytes(auth_data.clone())),
        ]));

        let response = json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "transports": ["internal"],
                "publicKey": b64(&credential.key.spki()),
                "publicKeyAlgorithm": credential.key.algorithm().cose(),
                "attestationObject": b64(&attestation_object),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "type": tweaks.credential_type.as_deref().unwrap_or("public-key"),
        });
        self.credentials.retain(|c| c.id != credential.id);
        self.credentials.push(credential);
        response
    }

    /// `options`: PublicKeyCredentialRequestOptionsJSON. With an empty or
    /// absent `allowCredentials` (discoverable) it signs with the most
    /// recently created credential for the rpId, otherwise with the most
    /// recent one listed. Returns AuthenticationResponseJSON.
    pub fn get(&mut self, options: &Value, origin: &str) -> Value {
        self.get_with(options, origin, &Tweaks::default())
    }

    /// [`Self::get`] with `tweaks`.
    ///
    /// # Panics
    ///
    /// If the authenticator holds no credential the options accept.
    pub fn get_with(&mut self, options: &Value, origin: &str, tweaks: &Tweaks) -> Value {
        let rp_id = options["rpId"]
            .as_str()
            .map_or_else(|| host(origin), str::to_owned);
        let allowed: Vec<Vec<u8>> = options["allowCredentials"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| b64_member(&c["id"], "allowCredentials[].id"))
                    .collect()
            })
            .unwrap_or_default();
        let challenge = options["challenge"]
            .as_str()
            .expect("options carry a challenge");
        let credential = self
            .credentials
            .iter_mut()
            .rev()
            .find(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .unwrap_or_else(|| panic!("no credential for rpId {rp_id:?} in {options}"));
        credential.counter = tweaks
            .counter
            .unwrap_or_else(|| credential.counter.wrapping_add(1));

        let client_data = client_data_json("webauthn.get", challenge, origin, tweaks);
        let auth_data = authenticator_data(&rp_id, credential, 0, tweaks);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
        let user_handle = tweaks
            .user_handle
            .as_ref()
            .unwrap_or(&credential.user_handle);
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&credential.key.sign(&signed)),
                "userHandle": b64(user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "type": tweaks.credential_type.as_deref().unwrap_or("public-key"),
        })
    }
}

/// The JSON-compatible serialisation of client data (WebAuthn Level 3,
/// 5.8.1.1): these members, in this order.
fn client_data_json(kind: &str, challenge: &str, origin: &str, tweaks: &Tweaks) -> String {
    let string = |s: &str| Value::from(s).to_string();
    format!(
        r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
        string(tweaks.client_data_type.as_deref().unwrap_or(kind)),
        string(tweaks.challenge.as_deref().unwrap_or(challenge)),
        string(origin),
    )
}

/// rpIdHash | flags | signCount, without attested credential data.
fn authenticator_data(
    rp_id: &str,
    credential: &SoftCredential,
    extra: u8,
    tweaks: &Tweaks,
) -> Vec<u8> {
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    let flags = extra
        | flag(tweaks.user_present, UP)
        | flag(tweaks.user_verified, UV)
        | flag(
            tweaks.backup_eligible.unwrap_or(credential.backup_eligible),
            BE,
        )
        | flag(tweaks.backup_state.unwrap_or(credential.backup_state), BS);
    let mut data = Sha256::digest(tweaks.rp_id.as_deref().unwrap_or(rp_id).as_bytes()).to_vec();
    data.push(flags);
    data.extend_from_slice(&credential.counter.to_be_bytes());
    data
}

/// The host of an origin such as "http://localhost:3000": the rpId the
/// browser takes when the options name none.
fn host(origin: &str) -> String {
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    rest.split([':', '/']).next().unwrap_or(rest).to_owned()
}

fn cbor(value: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR into a Vec");
    out
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

fn b64_member(value: &Value, name: &str) -> Vec<u8> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{name} is a base64url string: {value}"));
    BASE64URL_NOPAD
        .decode(text.as_bytes())
        .unwrap_or_else(|e| panic!("{name} is base64url without padding ({e}): {text}"))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("randomness from the OS");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use webauthn_rp::bin::{Decode, Encode};
    use webauthn_rp::request::auth::AuthenticationVerificationOptions;
    use webauthn_rp::request::register::{
        Extension, PublicKeyCredentialUserEntity, RegistrationVerificationOptions,
        USER_HANDLE_MAX_LEN, UserHandle64,
    };
    use webauthn_rp::request::{AsciiDomain, RpId};
    use webauthn_rp::response::CredentialId;
    use webauthn_rp::response::auth::error::AuthCeremonyErr;
    use webauthn_rp::response::register::error::RegCeremonyErr;
    use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
    use webauthn_rp::{
        AuthenticatedCredential, DiscoverableAuthentication64,
        DiscoverableAuthenticationServerState, DiscoverableCredentialRequestOptions,
        PublicKeyCredentialCreationOptions, Registration, RegistrationServerState,
    };

    const ORIGIN: &str = "http://localhost:3000";
    type StoredKey = CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>;

    /// What a server keeps of a registered credential, as bytes.
    struct Stored {
        id: Vec<u8>,
        user: [u8; USER_HANDLE_MAX_LEN],
        static_state: Vec<u8>,
        dynamic_state: [u8; 7],
    }

    /// A registration as the server will run it, its state kept as bytes
    /// between the two requests.
    fn register(
        rp_id: &RpId,
        authenticator: &mut SoftAuthenticator,
        tweaks: &Tweaks,
    ) -> Result<Stored, RegCeremonyErr> {
        let user_id = UserHandle64::new();
        let user = PublicKeyCredentialUserEntity {
            name: "alice".try_into().unwrap(),
            id: &user_id,
            display_name: None,
        };
        let mut options = PublicKeyCredentialCreationOptions::passkey(rp_id, user, Vec::new());
        options.extensions = Extension::default();
        let (server, client) = options.start_ceremony().unwrap();
        let saved = server.encode().unwrap();
        let response =
            authenticator.create_with(&serde_json::to_value(&client).unwrap(), ORIGIN, tweaks);
        let registration: Registration = serde_json::from_str(&response.to_string()).unwrap();
        let verify = RegistrationVerificationOptions::<&str, &str> {
            allowed_origins: &[ORIGIN],
            ..RegistrationVerificationOptions::default()
        };
        let server =
            RegistrationServerState::<USER_HANDLE_MAX_LEN>::decode(saved.as_slice()).unwrap();
        let registered = server.verify(rp_id, &registration, &verify)?;
        Ok(Stored {
            id: registered.id().encode().unwrap().to_vec(),
            user: registered.user_id().encode().unwrap(),
            static_state: registered.static_state().encode().unwrap(),
            dynamic_state: registered.dynamic_state().encode().unwrap(),
        })
    }

    /// A discoverable login against `stored`; the new dynamic state.
    fn log_in(
        rp_id: &RpId,
        authenticator: &mut SoftAuthenticator,
        stored: &Stored,
        origin: &str,
    ) -> Result<DynamicState, AuthCeremonyErr> {
        let (server, client) = DiscoverableCredentialRequestOptions::passkey(rp_id)
            .start_ceremony()
            .unwrap();
        let saved = server.encode().unwrap();
        let response = authenticator.get(&serde_json::to_value(&client).unwrap(), origin);
        let authentication: DiscoverableAuthentication64 =
            serde_json::from_str(&response.to_string()).unwrap();
        let user = UserHandle64::decode(stored.user).unwrap();
        assert_eq!(authentication.response().user_handle(), &user);
        let mut credential = AuthenticatedCredential::new(
            CredentialId::decode(stored.id.as_slice()).unwrap(),
            &user,
            StaticState::<StoredKey>::decode(stored.static_state.as_slice()).unwrap(),
            DynamicState::decode(stored.dynamic_state).unwrap(),
        )
        .unwrap();
        let verify = AuthenticationVerificationOptions::<&str, &str> {
            allowed_origins: &[ORIGIN],
            ..AuthenticationVerificationOptions::default()
        };
        let server = DiscoverableAuthenticationServerState::decode(saved.as_slice()).unwrap();
        let updated = server.verify(rp_id, &authentication, &mut credential, &verify)?;
        assert!(updated, "the counter grew, so the dynamic state changed");
        Ok(credential.dynamic_state())
    }

    #[test]
    fn webauthn_rp_accepts_both_ceremonies_and_refuses_tweaks() {
        let rp_id = RpId::Domain(AsciiDomain::try_from("localhost".to_owned()).unwrap());
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let mut authenticator = SoftAuthenticator::new(alg);
            let stored = register(&rp_id, &mut authenticator, &Tweaks::default())
                .unwrap_or_else(|e| panic!("{alg:?}: registration verifies: {e:?}"));
            assert_eq!(authenticator.credentials()[0].id, stored.id);
            assert_eq!(authenticator.credentials()[0].user_handle, stored.user);
            let state = log_in(&rp_id, &mut authenticator, &stored, ORIGIN)
                .unwrap_or_else(|e| panic!("{alg:?}: authentication verifies: {e:?}"));
            assert_eq!(state.sign_count, 1);
            assert!(state.user_verified);
            assert!(
                matches!(
                    log_in(&rp_id, &mut authenticator, &stored, "http://evil.example"),
                    Err(AuthCeremonyErr::OriginMismatch)
                ),
                "{alg:?}: a foreign origin is refused"
            );
            let no_uv = Tweaks {
                user_verified: false,
                ..Tweaks::default()
            };
            assert!(
                matches!(
                    register(&rp_id, &mut SoftAuthenticator::new(alg), &no_uv),
                    Err(RegCeremonyErr::UserNotVerified)
                ),
                "{alg:?}: registration without UV is refused"
            );
        }
    }

    #[test]
    #[should_panic(expected = "pubKeyCredParams")]
    fn refuses_options_without_its_algorithm() {
        let options = json!({
            "rp": { "id": "localhost" },
            "user": { "id": "AAAA" },
            "challenge": "AAAA",
            "pubKeyCredParams": [{ "type": "public-key", "alg": -257 }],
        });
        SoftAuthenticator::new(Algorithm::EdDsa).create(&options, ORIGIN);
    }
}
