//! Each of the four algorithms end to end through [`JwtSigner`] and
//! [`JwtVerifier`]: the attack cases of the contract for every one (alg
//! confusion, `none`, HS256 keyed with the public key, kid tricks), and
//! cross-checks with an independent library (`jsonwebtoken`, on its
//! RustCrypto backend) in both directions.

use super::*;
use crate::crypto::jws_keys::test_pair;
use application::ports::KeyParams;
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey, Validation};

fn verifier_of(algs: &[Algorithm]) -> JwtVerifier {
    JwtVerifier::new(
        algs.iter()
            .map(|a| test_pair(*a).public().clone())
            .collect(),
        ISS.to_owned(),
        AUD.to_owned(),
    )
}

/// Every key: what a service holding a key of each algorithm accepts.
fn all() -> JwtVerifier {
    verifier_of(&Algorithm::ALL)
}

/// A real signature by `key` over any header and payload JSON.
fn forge_with(header: &Value, payload: &Value, key: &KeyPair) -> String {
    let input = format!(
        "{}.{}",
        base64url::encode(header.to_string()),
        base64url::encode(payload.to_string())
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", base64url::encode(sig))
}

fn header_of(alg: &str, key: &KeyPair) -> Value {
    header(alg, key.kid())
}

#[tokio::test]
async fn each_algorithm_signs_tokens_that_verify() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let c = claims();
        let token = JwtSigner::new(pair.clone()).sign(&c).await.unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header = String::from_utf8(base64url::decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            format!(
                r#"{{"alg":"{}","typ":"at+jwt","kid":"{}"}}"#,
                alg.as_str(),
                pair.kid()
            )
        );
        let signature_len = base64url::decode(parts[2]).unwrap().len();
        let expected = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => 256,
            Algorithm::Es256 | Algorithm::EdDsa => 64,
        };
        assert_eq!(signature_len, expected, "{alg}");
        assert_eq!(all().verify(&token, now(), 30), Ok(c.clone()), "{alg}");
        assert_eq!(
            verifier_of(&[alg]).verify(&token, now(), 30),
            Ok(c),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn a_token_verifies_only_with_the_algorithm_of_its_keys_kid() {
    let payload = claims_json(&claims());
    for key_alg in Algorithm::ALL {
        let pair = test_pair(key_alg);
        for claimed in Algorithm::ALL.into_iter().filter(|a| *a != key_alg) {
            // Signed by the key, the header naming another of our algorithms.
            let token = forge_with(&header_of(claimed.as_str(), pair), &payload, pair);
            assert_eq!(
                all().verify(&token, now(), 30),
                Err(InvalidToken::Algorithm),
                "a {key_alg} key's kid with alg {claimed}"
            );
            // Signed in the claimed algorithm by a key of that algorithm,
            // but pointing at this key's kid.
            let other = test_pair(claimed);
            let token = forge_with(&header_of(claimed.as_str(), pair), &payload, other);
            assert_eq!(
                all().verify(&token, now(), 30),
                Err(InvalidToken::Algorithm),
                "a {claimed} signature under the kid of a {key_alg} key"
            );
        }
    }
}

#[test]
fn alg_none_and_names_we_never_sign_with_are_refused_for_every_key() {
    let payload = claims_json(&claims());
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let h = base64url::encode(header_of("none", pair).to_string());
        let p = base64url::encode(payload.to_string());
        assert_eq!(
            all().verify(&format!("{h}.{p}."), now(), 30),
            Err(InvalidToken::Algorithm),
            "{alg}"
        );
        let real = forge_with(&header_of(alg.as_str(), pair), &payload, pair);
        let sig = real.rsplit('.').next().unwrap();
        for name in [
            "none", "None", "HS256", "RS384", "ES384", "Ed25519", "eddsa", "",
        ] {
            let forged = forge_with(&header_of(name, pair), &payload, pair);
            assert_eq!(
                all().verify(&forged, now(), 30),
                Err(InvalidToken::Algorithm),
                "{alg} key, alg {name:?}"
            );
            let h = base64url::encode(header_of(name, pair).to_string());
            assert_eq!(
                all().verify(&format!("{h}.{p}.{sig}"), now(), 30),
                Err(InvalidToken::Algorithm),
                "{alg} signature, alg {name:?}"
            );
        }
    }
}

/// HMAC keyed with the bytes a client could find for the key: its SPKI PEM
/// and its JWK members.
#[test]
fn hs256_keyed_with_the_public_key_is_refused_for_every_key() {
    let payload = claims_json(&claims());
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let spki = pair.public().to_spki_pem().unwrap();
        let member = match &pair.public().published().params {
            KeyParams::Rsa { n, .. } => n.clone(),
            KeyParams::Ec { x, .. } | KeyParams::Okp { x, .. } => x.clone(),
        };
        for secret in [spki.as_bytes(), member.as_bytes()] {
            for claimed in ["HS256", alg.as_str()] {
                let input = format!(
                    "{}.{}",
                    base64url::encode(header_of(claimed, pair).to_string()),
                    base64url::encode(payload.to_string())
                );
                let sig = jsonwebtoken::crypto::sign(
                    input.as_bytes(),
                    &EncodingKey::from_secret(secret),
                    jsonwebtoken::Algorithm::HS256,
                )
                .unwrap();
                let expected = if claimed == "HS256" {
                    InvalidToken::Algorithm
                } else {
                    InvalidToken::Signature
                };
                assert_eq!(
                    all().verify(&format!("{input}.{sig}"), now(), 30),
                    Err(expected),
                    "{alg} key, header alg {claimed}"
                );
            }
        }
    }
}

#[test]
fn kid_tricks_are_refused_for_every_algorithm() {
    let payload = claims_json(&claims());
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let name = alg.as_str();
        let only = verifier_of(&[alg]);
        let check_with = |h: Value| only.verify(&forge_with(&h, &payload, pair), now(), 30);
        for kid in [
            json!("../../../../dev/null"),
            json!(""),
            json!(format!("{} ", pair.kid())),
            json!(pair.kid().to_lowercase()),
            json!(format!("{}\u{0000}", pair.kid())),
        ] {
            assert_eq!(
                check_with(json!({"alg": name, "typ": TYP, "kid": kid})),
                Err(InvalidToken::UnknownKey),
                "{alg}: kid {kid}"
            );
        }
        assert_eq!(
            check_with(json!({"alg": name, "typ": TYP})),
            Err(InvalidToken::UnknownKey),
            "{alg}: no kid"
        );
        for kid in [json!(1), json!([pair.kid()]), json!({"kid": pair.kid()})] {
            assert_eq!(
                check_with(json!({"alg": name, "typ": TYP, "kid": kid})),
                Err(InvalidToken::Malformed),
                "{alg}: kid {kid}"
            );
        }
        // Keys a client might try to bring along are ignored: the kid decides.
        let embedded = json!({
            "alg": name, "typ": TYP, "kid": pair.kid(),
            "jwk": {"kty": "oct", "k": "AAAA"}, "jku": "https://evil.example/jwks.json",
            "x5u": "https://evil.example/cert.pem",
        });
        assert!(check_with(embedded).is_ok(), "{alg}: our own signature");
        // A stranger's key of the same algorithm, under our kid.
        let stranger = KeyPair::generate(alg, 2048).unwrap();
        let impostor = forge_with(&header_of(name, pair), &payload, &stranger);
        assert_eq!(
            only.verify(&impostor, now(), 30),
            Err(InvalidToken::Signature),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn a_tampered_payload_or_signature_is_refused_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let token = JwtSigner::new(test_pair(alg).clone())
            .sign(&claims())
            .await
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = b64_json(parts[1]);
        payload["username"] = json!("admin");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            base64url::encode(payload.to_string()),
            parts[2]
        );
        assert_eq!(
            all().verify(&tampered, now(), 30),
            Err(InvalidToken::Signature),
            "{alg}"
        );
        let mut sig = base64url::decode(parts[2]).unwrap();
        sig[7] ^= 0x01;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], base64url::encode(&sig));
        assert_eq!(
            all().verify(&flipped, now(), 30),
            Err(InvalidToken::Signature),
            "{alg}"
        );
        // The signature of another of our tokens.
        let other = JwtSigner::new(test_pair(alg).clone())
            .sign(&claims())
            .await
            .unwrap();
        let swapped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            other.rsplit('.').next().unwrap()
        );
        assert_eq!(
            all().verify(&swapped, now(), 30),
            Err(InvalidToken::Signature),
            "{alg}"
        );
    }
}

mod jsonwebtoken_cross_check {
    use super::*;

    fn library_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
        match alg {
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The library's key, built from the JWK members we publish.
    fn decoding_key(pair: &KeyPair) -> DecodingKey {
        match &pair.public().published().params {
            KeyParams::Rsa { n, e } => DecodingKey::from_rsa_components(n, e),
            KeyParams::Ec { x, y, .. } => DecodingKey::from_ec_components(x, y),
            KeyParams::Okp { x, .. } => DecodingKey::from_ed_components(x),
        }
        .unwrap()
    }

    /// The library's signing key, from our PKCS#8 as PEM.
    fn encoding_key(pair: &KeyPair) -> EncodingKey {
        let der = pair.to_pkcs8_der().unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_slice());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        match pair.alg() {
            Algorithm::Rs256 | Algorithm::Ps256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .unwrap()
    }

    #[tokio::test]
    async fn the_library_accepts_our_tokens_with_our_published_keys() {
        for alg in Algorithm::ALL {
            let pair = test_pair(alg);
            let c = claims();
            let token = JwtSigner::new(pair.clone()).sign(&c).await.unwrap();
            let mut validation = Validation::new(library_alg(alg));
            validation.set_issuer(&[ISS]);
            validation.set_audience(&[AUD]);
            // Our claims are at a fixed instant in the future; time is checked elsewhere.
            validation.validate_exp = false;
            validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
            let data = jsonwebtoken::decode::<Value>(&token, &decoding_key(pair), &validation)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(data.header.kid.as_deref(), Some(pair.kid()), "{alg}");
            assert_eq!(data.claims, claims_json(&c), "{alg}");
        }
    }

    #[test]
    fn we_accept_the_librarys_tokens_and_refuse_its_other_algorithms() {
        for alg in Algorithm::ALL {
            let pair = test_pair(alg);
            let c = claims();
            let mut header = jsonwebtoken::Header::new(library_alg(alg));
            header.typ = Some(TYP.to_owned());
            header.kid = Some(pair.kid().to_owned());
            let token = jsonwebtoken::encode(&header, &claims_json(&c), &encoding_key(pair))
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(all().verify(&token, now(), 30), Ok(c.clone()), "{alg}");
        }
        // The same RSA key signing RS384/PS384/RS512 through the library.
        let rsa = test_pair(Algorithm::Rs256);
        for other in [
            jsonwebtoken::Algorithm::RS384,
            jsonwebtoken::Algorithm::PS384,
            jsonwebtoken::Algorithm::RS512,
            jsonwebtoken::Algorithm::PS512,
        ] {
            let mut header = jsonwebtoken::Header::new(other);
            header.typ = Some(TYP.to_owned());
            header.kid = Some(rsa.kid().to_owned());
            let token =
                jsonwebtoken::encode(&header, &claims_json(&claims()), &encoding_key(rsa)).unwrap();
            assert_eq!(
                all().verify(&token, now(), 30),
                Err(InvalidToken::Algorithm),
                "{other:?}"
            );
        }
    }
}
