//! Tests of [`super`]: RFC 9449's own proofs and key, proofs made by an
//! independent library in each algorithm, and every refusal (the
//! strictness of [`PublicJwk::from_jwk`] is tested with it, in
//! `jws_keys/from_jwk_tests.rs`).

use super::*;
use crate::crypto::jws_keys::{KeyPair, PRIVATE_JWK_MEMBERS, jwk_of, test_pair};
use crate::crypto::keys::other_test_key;
use crate::crypto::os_rng::OsRng;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// RFC 9449: the key of every example proof (sections 4.1, 5 and 7.1) and
/// its thumbprint, the `cnf.jkt` of section 6.1.
mod rfc9449 {
    use super::*;

    const X: &str = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
    const Y: &str = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA";
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    /// The proof of the token request (section 5), no `ath`.
    const TOKEN_REQUEST_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";

    /// The proof of the protected resource request (section 7.1), with the
    /// `ath` of [`ACCESS_TOKEN`].
    const RESOURCE_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA";
    const ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    const ATH: &str = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";

    #[test]
    fn the_example_key_has_the_published_thumbprint() {
        // Members in the RFC's order (kty, x, y, crv): the thumbprint orders them.
        let jwk = json!({"kty": "EC", "x": X, "y": Y, "crv": "P-256"});
        let key = PublicJwk::from_jwk(Algorithm::Es256, &jwk).unwrap();
        assert_eq!(key.kid(), JKT);
        assert_eq!(key.published().kid, JKT);
    }

    #[test]
    fn the_token_request_proof_verifies() {
        assert_eq!(
            verify_proof(TOKEN_REQUEST_PROOF),
            Ok(VerifiedProof {
                jkt: JKT.to_owned(),
                jti: "-BwC3ESc6acc2lTc".to_owned(),
                htm: "POST".to_owned(),
                htu: "https://server.example.com/token".to_owned(),
                iat: 1_562_262_616,
                ath: None,
            })
        );
    }

    #[test]
    fn the_resource_proof_verifies_with_its_ath() {
        assert_eq!(
            base64url::encode(Sha256::digest(ACCESS_TOKEN)),
            ATH,
            "the RFC's ath is its token's hash"
        );
        assert_eq!(
            verify_proof(RESOURCE_PROOF),
            Ok(VerifiedProof {
                jkt: JKT.to_owned(),
                jti: "e1j3V_bKic8-LAEB".to_owned(),
                htm: "GET".to_owned(),
                htu: "https://resource.example.org/protectedresource".to_owned(),
                iat: 1_562_262_618,
                ath: Some(ATH.to_owned()),
            })
        );
    }

    #[test]
    fn the_examples_tampered_do_not_verify() {
        let parts: Vec<&str> = TOKEN_REQUEST_PROOF.split('.').collect();
        let resource: Vec<&str> = RESOURCE_PROOF.split('.').collect();
        // One proof's claims under the other's signature.
        let swapped = format!("{}.{}.{}", parts[0], resource[1], parts[2]);
        assert_eq!(verify_proof(&swapped), Err(ProofRefused::Signature));
        let mut signature = base64url::decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], base64url::encode(signature));
        assert_eq!(verify_proof(&flipped), Err(ProofRefused::Signature));
    }
}

/// RFC 7638 section 3.1 (the RSA example, with its `alg` and `kid`) and
/// RFC 8037 appendix A.3 (Ed25519), the vectors `keys` and `jws_keys` test
/// their keys with, read here from JWKs.
#[test]
fn rfc_thumbprints_of_rsa_and_okp_jwks() {
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_KID: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let rsa =
        json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    assert_eq!(
        PublicJwk::from_jwk(Algorithm::Rs256, &rsa).unwrap().kid(),
        RFC7638_KID
    );
    let mut ps = rsa.clone();
    ps["alg"] = json!("PS256");
    let ps = PublicJwk::from_jwk(Algorithm::Ps256, &ps).unwrap();
    assert_eq!((ps.kid(), ps.alg()), (RFC7638_KID, Algorithm::Ps256));

    let okp =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    assert_eq!(
        PublicJwk::from_jwk(Algorithm::EdDsa, &okp).unwrap().kid(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

fn header(alg: &str, jwk: &Value) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
}

/// A header naming `pair`'s algorithm and carrying its key.
fn header_of(pair: &KeyPair) -> Value {
    header(pair.alg().as_str(), &jwk_of(pair))
}

fn claims() -> Value {
    json!({
        "jti": "e1j3V_bKic8-LAEB",
        "htm": "POST",
        "htu": "https://auth.example.com/api/refresh",
        "iat": 1_700_000_000,
    })
}

fn expected(pair: &KeyPair) -> VerifiedProof {
    VerifiedProof {
        jkt: pair.kid().to_owned(),
        jti: "e1j3V_bKic8-LAEB".to_owned(),
        htm: "POST".to_owned(),
        htu: "https://auth.example.com/api/refresh".to_owned(),
        iat: 1_700_000_000,
        ath: None,
    }
}

/// A compact JWS of any header and payload bytes, really signed by `key`.
fn sign_raw(header: &[u8], payload: &[u8], key: &KeyPair) -> String {
    let input = format!(
        "{}.{}",
        base64url::encode(header),
        base64url::encode(payload)
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", base64url::encode(signature))
}

fn sign(header: &Value, claims: &Value, key: &KeyPair) -> String {
    sign_raw(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        key,
    )
}

/// A second key of `alg`, unrelated to [`test_pair`]'s.
fn other_pair(alg: Algorithm) -> KeyPair {
    match alg {
        Algorithm::Rs256 | Algorithm::Ps256 => KeyPair::rsa(alg, other_test_key().clone()).unwrap(),
        Algorithm::Es256 | Algorithm::EdDsa => KeyPair::generate(alg, 0).unwrap(),
    }
}

/// Proofs made by `jsonwebtoken` (RustCrypto backend): its own JWK of the
/// key, its own JOSE encoding and signature, its own thumbprint.
mod independent_library {
    use super::*;
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{EncodingKey, Header};

    fn library_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
        match alg {
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The library's signing key, from our PKCS#8.
    fn encoding_key(pair: &KeyPair) -> EncodingKey {
        let der = pair.to_pkcs8_der().unwrap();
        match pair.alg() {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                EncodingKey::from_rsa_pem(pem(&der).as_bytes()).unwrap()
            }
            Algorithm::Es256 => EncodingKey::from_ec_pem(pem(&der).as_bytes()).unwrap(),
            Algorithm::EdDsa => {
                // The library derives an Ed25519 JWK only from PKCS#8 v1
                // (RFC 8410 section 7: the seed alone); ours is v2, with the
                // public key.
                const V1_PREFIX: [u8; 16] = [
                    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04,
                    0x22, 0x04, 0x20,
                ];
                let seed = ed25519_dalek::SigningKey::from_pkcs8_der(&der)
                    .unwrap()
                    .to_bytes();
                EncodingKey::from_ed_der(&[&V1_PREFIX[..], &seed].concat())
            }
        }
    }

    fn pem(der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn its_proofs_are_accepted_in_each_algorithm() {
        for alg in Algorithm::ALL {
            let pair = test_pair(alg);
            let key = encoding_key(pair);
            let jwk = Jwk::from_encoding_key(&key, library_alg(alg)).unwrap();
            let mut header = Header::new(library_alg(alg));
            header.typ = Some("dpop+jwt".to_owned());
            header.jwk = Some(jwk.clone());
            let mut claims = claims();
            claims["ath"] = json!("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
            claims["nonce"] = json!("ignored: we issue none");
            let proof = jsonwebtoken::encode(&header, &claims, &key).unwrap();

            let verified = verify_proof(&proof).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(
                verified,
                VerifiedProof {
                    ath: Some("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo".to_owned()),
                    ..expected(pair)
                },
                "{alg}"
            );
            assert_eq!(
                jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
                verified.jkt,
                "{alg}: the library's RFC 7638 thumbprint"
            );
        }
    }

    #[test]
    fn hs256_keyed_with_the_jwk_is_refused() {
        // HMAC keyed with what anyone can read of the key: the JWK's JSON
        // and its x member.
        let pair = test_pair(Algorithm::Es256);
        let jwk = jwk_of(pair);
        let x = jwk["x"].as_str().unwrap().to_owned();
        for secret in [jwk.to_string(), x] {
            for claimed in ["HS256", "ES256"] {
                let input = format!(
                    "{}.{}",
                    base64url::encode(header(claimed, &jwk).to_string()),
                    base64url::encode(claims().to_string())
                );
                let signature = jsonwebtoken::crypto::sign(
                    input.as_bytes(),
                    &EncodingKey::from_secret(secret.as_bytes()),
                    jsonwebtoken::Algorithm::HS256,
                )
                .unwrap();
                let refusal = if claimed == "HS256" {
                    ProofRefused::Algorithm
                } else {
                    ProofRefused::Signature
                };
                assert_eq!(
                    verify_proof(&format!("{input}.{signature}")),
                    Err(refusal),
                    "header alg {claimed}"
                );
            }
        }
        // A symmetric jwk is no way round it: HS256 stops first, and `k` is
        // a private member for any other alg.
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        let input = format!(
            "{}.{}",
            base64url::encode(header("HS256", &oct).to_string()),
            base64url::encode(claims().to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(b"secret"),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(
            verify_proof(&format!("{input}.{signature}")),
            Err(ProofRefused::Algorithm)
        );
        assert_eq!(
            verify_proof(&sign(&header("ES256", &oct), &claims(), pair)),
            Err(ProofRefused::PrivateKeyMembers)
        );
    }
}

#[test]
fn our_own_proofs_verify_in_each_algorithm_with_the_jwks_thumbprint() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let proof = sign(&header_of(pair), &claims(), pair);
        assert_eq!(verify_proof(&proof), Ok(expected(pair)), "{alg}");
        // The thumbprint is computed the one way keys are named.
        let read = PublicJwk::from_jwk(alg, &jwk_of(pair)).unwrap();
        assert_eq!(read.published(), pair.public().published(), "{alg}");
    }
}

#[test]
fn typ_is_exactly_dpop_jwt() {
    let pair = test_pair(Algorithm::Es256);
    for typ in [
        Value::Null,
        json!("JWT"),
        json!("at+jwt"),
        json!("DPoP+JWT"),
        json!("application/dpop+jwt"),
        json!(["dpop+jwt"]),
    ] {
        let mut h = header_of(pair);
        h["typ"] = typ.clone();
        assert_eq!(
            verify_proof(&sign(&h, &claims(), pair)),
            Err(ProofRefused::Type),
            "{typ}"
        );
    }
    let mut h = header_of(pair);
    h.as_object_mut().unwrap().remove("typ");
    assert_eq!(
        verify_proof(&sign(&h, &claims(), pair)),
        Err(ProofRefused::Type),
        "no typ"
    );
}

#[test]
fn alg_none_and_other_names_are_refused() {
    let pair = test_pair(Algorithm::Es256);
    let jwk = jwk_of(pair);
    let unsigned = format!(
        "{}.{}.",
        base64url::encode(header("none", &jwk).to_string()),
        base64url::encode(claims().to_string())
    );
    assert_eq!(verify_proof(&unsigned), Err(ProofRefused::Algorithm));
    for alg in [
        json!("none"),
        json!("es256"),
        json!("ES384"),
        json!("HS256"),
        json!(7),
    ] {
        let mut h = header_of(pair);
        h["alg"] = alg.clone();
        assert_eq!(
            verify_proof(&sign(&h, &claims(), pair)),
            Err(ProofRefused::Algorithm),
            "{alg}"
        );
    }
    let mut h = header_of(pair);
    h.as_object_mut().unwrap().remove("alg");
    assert_eq!(
        verify_proof(&sign(&h, &claims(), pair)),
        Err(ProofRefused::Algorithm)
    );
}

#[test]
fn the_key_type_must_be_the_algorithms() {
    // Every key under every other algorithm's name, signed by the key: an
    // ES256 header with an OKP key, an EdDSA header with an RSA key, ...
    for key_alg in Algorithm::ALL {
        let pair = test_pair(key_alg);
        for claimed in Algorithm::ALL {
            let proof = sign(&header(claimed.as_str(), &jwk_of(pair)), &claims(), pair);
            let rsa = |a| matches!(a, Algorithm::Rs256 | Algorithm::Ps256);
            let outcome = if claimed == key_alg {
                Ok(expected(pair))
            } else if rsa(claimed) && rsa(key_alg) {
                // One RSA key type for both paddings: the padding is checked.
                Err(ProofRefused::Signature)
            } else {
                Err(ProofRefused::Key)
            };
            assert_eq!(verify_proof(&proof), outcome, "{key_alg} key as {claimed}");
        }
    }
    // A JWK's own alg must be the header's.
    let pair = test_pair(Algorithm::Rs256);
    let mut jwk = jwk_of(pair);
    jwk["alg"] = json!("PS256");
    assert_eq!(
        verify_proof(&sign(&header("RS256", &jwk), &claims(), pair)),
        Err(ProofRefused::Key)
    );
    jwk["alg"] = json!("RS256");
    assert_eq!(
        verify_proof(&sign(&header("RS256", &jwk), &claims(), pair)),
        Ok(expected(pair))
    );
}

#[test]
fn the_key_is_always_the_jwk_never_a_kid() {
    let pair = test_pair(Algorithm::Es256);
    // A kid alone, even our own key's: nothing is looked up.
    let kid_only = json!({"typ": "dpop+jwt", "alg": "ES256", "kid": pair.kid()});
    assert_eq!(
        verify_proof(&sign(&kid_only, &claims(), pair)),
        Err(ProofRefused::Key)
    );
    for jwk in [Value::Null, json!("a string"), json!([jwk_of(pair)])] {
        let h = header("ES256", &jwk);
        assert_eq!(
            verify_proof(&sign(&h, &claims(), pair)),
            Err(ProofRefused::Key),
            "{jwk}"
        );
    }
    // A kid beside the jwk, naming another key, is ignored.
    let mut h = header_of(pair);
    h["kid"] = json!(test_pair(Algorithm::EdDsa).kid());
    let mut jwk = jwk_of(pair);
    jwk["kid"] = json!("someone-else");
    h["jwk"] = jwk;
    assert_eq!(verify_proof(&sign(&h, &claims(), pair)), Ok(expected(pair)));
}

#[test]
fn a_jwk_with_private_members_is_refused() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let mut jwk = jwk_of(pair);
            jwk[member] = json!("AQAB");
            assert_eq!(
                verify_proof(&sign(&header(alg.as_str(), &jwk), &claims(), pair)),
                Err(ProofRefused::PrivateKeyMembers),
                "{alg} with {member}"
            );
        }
    }
    // Present at all is enough, whatever its value.
    let pair = test_pair(Algorithm::EdDsa);
    let mut jwk = jwk_of(pair);
    jwk["d"] = Value::Null;
    assert_eq!(
        verify_proof(&sign(&header("EdDSA", &jwk), &claims(), pair)),
        Err(ProofRefused::PrivateKeyMembers)
    );
    assert_eq!(
        PRIVATE_JWK_MEMBERS,
        ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
    );
}

#[test]
fn an_rsa_key_under_2048_bits_is_weak() {
    let small = rsa::PrivateKey::new(&mut OsRng, 1024).unwrap();
    let jwk = json!({
        "kty": "RSA",
        "n": base64url::encode(small.n_bytes()),
        "e": base64url::encode(small.e_bytes()),
    });
    // A real RS256 signature by that key.
    let input = format!(
        "{}.{}",
        base64url::encode(header("RS256", &jwk).to_string()),
        base64url::encode(claims().to_string())
    );
    let signature = rsa::pkcs1v15::SigningKey::<Sha256>::new(small)
        .try_sign_with_rng(&mut OsRng, input.as_bytes())
        .unwrap()
        .to_vec();
    let proof = format!("{input}.{}", base64url::encode(signature));
    assert_eq!(verify_proof(&proof), Err(ProofRefused::WeakKey));
}

#[test]
fn a_proof_by_another_key_than_its_jwk_is_refused() {
    for alg in Algorithm::ALL {
        let (pair, other) = (test_pair(alg), other_pair(alg));
        assert_ne!(pair.kid(), other.kid());
        let proof = sign(&header_of(pair), &claims(), &other);
        assert_eq!(verify_proof(&proof), Err(ProofRefused::Signature), "{alg}");
    }
}

#[test]
fn a_tampered_proof_is_refused() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let proof = sign(&header_of(pair), &claims(), pair);
        let parts: Vec<&str> = proof.split('.').collect();

        let mut claims = claims();
        claims["htu"] = json!("https://auth.example.com/api/login");
        let payload = base64url::encode(claims.to_string());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify_proof(&tampered),
            Err(ProofRefused::Signature),
            "{alg}"
        );

        // Another key in the header, the signature kept.
        let other = base64url::encode(header_of(&other_pair(alg)).to_string());
        let swapped = format!("{other}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verify_proof(&swapped),
            Err(ProofRefused::Signature),
            "{alg}"
        );

        let mut signature = base64url::decode(parts[2]).unwrap();
        let last = signature.len() - 1;
        signature[last] ^= 1;
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            base64url::encode(&signature)
        );
        assert_eq!(
            verify_proof(&flipped),
            Err(ProofRefused::Signature),
            "{alg}"
        );
        signature.truncate(last);
        let short = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            base64url::encode(&signature)
        );
        assert_eq!(verify_proof(&short), Err(ProofRefused::Signature), "{alg}");
    }
}

#[test]
fn only_three_strict_base64url_parts_are_read() {
    let pair = test_pair(Algorithm::EdDsa);
    let proof = sign(&header_of(pair), &claims(), pair);
    let parts: Vec<&str> = proof.split('.').collect();
    for bad in [
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        parts[0].to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{proof}."),
        format!("{proof}.{}", parts[2]),
        format!(" {proof}"),
        format!("{proof}\n"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.+{}.{}", parts[0], &parts[1][1..], parts[2]),
        proof.replace('.', ".."),
    ] {
        assert_eq!(verify_proof(&bad), Err(ProofRefused::Malformed), "{bad:?}");
    }
    assert_eq!(verify_proof(&proof), Ok(expected(pair)));
}

#[test]
fn the_header_is_one_json_object_without_crit() {
    let pair = test_pair(Algorithm::Es256);
    let h = header_of(pair);
    let jwk = jwk_of(pair).to_string();
    for bad in [
        "not json".to_owned(),
        String::new(),
        format!("[\"dpop+jwt\",\"ES256\",{jwk}]"),
        format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{jwk}}}"#),
    ] {
        let proof = sign_raw(bad.as_bytes(), claims().to_string().as_bytes(), pair);
        assert_eq!(verify_proof(&proof), Err(ProofRefused::Malformed), "{bad}");
    }
    let mut crit = h.clone();
    crit["crit"] = json!(["exp"]);
    crit["exp"] = json!(1);
    assert_eq!(
        verify_proof(&sign(&crit, &claims(), pair)),
        Err(ProofRefused::Malformed)
    );
    // Whitespace and other members are fine.
    let spaced = format!(
        " \n{{ \"typ\" : \"dpop+jwt\", \"alg\":\"ES256\", \"x5u\":\"ignored\", \"jwk\":{jwk} }}"
    );
    let proof = sign_raw(spaced.as_bytes(), claims().to_string().as_bytes(), pair);
    assert_eq!(verify_proof(&proof), Ok(expected(pair)));
}

#[test]
fn the_longest_proof_is_max_proof_bytes() {
    let pair = test_pair(Algorithm::Es256);
    let padded = |n: usize| {
        let mut c = claims();
        c["pad"] = json!("x".repeat(n));
        sign(&header_of(pair), &c, pair)
    };
    // The longest padding that fits, then one byte more.
    let n = (0..MAX_PROOF_BYTES * 3 / 4)
        .rev()
        .find(|n| padded(*n).len() <= MAX_PROOF_BYTES)
        .unwrap();
    assert!(MAX_PROOF_BYTES - padded(n).len() <= 2, "base64 steps");
    assert_eq!(verify_proof(&padded(n)), Ok(expected(pair)));
    assert!(padded(n + 1).len() > MAX_PROOF_BYTES);
    assert_eq!(verify_proof(&padded(n + 1)), Err(ProofRefused::TooLarge));
    assert_eq!(
        verify_proof(&"!".repeat(MAX_PROOF_BYTES + 1)),
        Err(ProofRefused::TooLarge)
    );
    assert_eq!(
        verify_proof(&"!".repeat(MAX_PROOF_BYTES)),
        Err(ProofRefused::Malformed)
    );
}

#[test]
fn every_claim_is_required_and_typed() {
    let pair = test_pair(Algorithm::EdDsa);
    let check = |c: &Value| verify_proof(&sign(&header_of(pair), c, pair));
    for name in ["jti", "htm", "htu", "iat"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        assert_eq!(check(&c), Err(ProofRefused::Claims), "no {name}");
    }
    for (name, value) in [
        ("jti", json!(12345)),
        ("jti", Value::Null),
        ("jti", json!(["a"])),
        ("jti", json!("")),
        ("jti", json!("j".repeat(257))),
        ("htm", json!(1)),
        ("htu", json!({"href": "https://auth.example.com/"})),
        ("iat", json!("1700000000")),
        ("iat", json!(1_700_000_000.5)),
        ("iat", json!(1.7e9)),
        ("iat", json!(u64::MAX)),
        ("iat", Value::Null),
        ("ath", json!(1)),
        ("ath", Value::Null),
    ] {
        let mut c = claims();
        c[name] = value.clone();
        assert_eq!(check(&c), Err(ProofRefused::Claims), "{name}: {value}");
    }
    // The bounds of jti, in characters.
    for jti in ["j".to_owned(), "j".repeat(256), "é".repeat(256)] {
        let mut c = claims();
        c["jti"] = json!(jti);
        assert_eq!(check(&c).map(|p| p.jti), Ok(jti));
    }
    // Not an object, or not JSON at all.
    for shape in [
        json!(["e1j3V_bKic8-LAEB", "POST", "https://h/", 1]),
        json!("jti"),
        json!(1),
    ] {
        assert_eq!(check(&shape), Err(ProofRefused::Claims), "{shape}");
    }
    for text in [&b"not json"[..], b"", b"{\"jti\":", b"\xff\xfe"] {
        let proof = sign_raw(header_of(pair).to_string().as_bytes(), text, pair);
        assert_eq!(
            verify_proof(&proof),
            Err(ProofRefused::Malformed),
            "{text:?}"
        );
    }
    // A claim given twice is not taken at either value.
    let twice = br#"{"jti":"a","jti":"b","htm":"POST","htu":"https://h/","iat":1}"#;
    let proof = sign_raw(header_of(pair).to_string().as_bytes(), twice, pair);
    assert_eq!(verify_proof(&proof), Err(ProofRefused::Claims));
}

#[test]
fn reasons_are_distinct_and_snake_case() {
    let all = [
        ProofRefused::Malformed,
        ProofRefused::TooLarge,
        ProofRefused::Type,
        ProofRefused::Algorithm,
        ProofRefused::Key,
        ProofRefused::PrivateKeyMembers,
        ProofRefused::WeakKey,
        ProofRefused::Signature,
        ProofRefused::Claims,
    ];
    let reasons: std::collections::HashSet<&str> = all.iter().map(|r| r.reason()).collect();
    assert_eq!(reasons.len(), all.len());
    for r in reasons {
        assert!(
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{r}"
        );
    }
    assert_eq!(ProofRefused::Signature.reason(), "bad_signature");
}
