//! Tests of [`super`]: the RFC vectors of each algorithm, key encodings,
//! and that a key verifies only its own algorithm's signatures.

use super::*;

fn b64(s: &str) -> Vec<u8> {
    base64url::decode(s).expect("base64url")
}

/// RFC 7515 Appendix A.3: the ES256 example key, signing input and signature.
mod rfc7515_a3 {
    use super::*;

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    const INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const SIGNATURE: &str =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    fn pair() -> KeyPair {
        KeyPair::from_secret(Secret::Es256(
            p256::ecdsa::SigningKey::from_slice(&b64(D)).unwrap(),
        ))
    }

    #[test]
    fn the_key_has_the_published_coordinates() {
        let key = pair();
        let KeyParams::Ec { crv, x, y } = &key.public().published().params else {
            panic!("an EC key");
        };
        assert_eq!((*crv, x.as_str(), y.as_str()), ("P-256", X, Y));
        assert_eq!(key.public().published().alg, "ES256");
    }

    #[test]
    fn the_published_signature_verifies_and_a_tampered_one_does_not() {
        let public = pair().public().clone();
        let signature = b64(SIGNATURE);
        assert!(public.verifies(INPUT.as_bytes(), &signature));
        let mut tampered = signature.clone();
        tampered[10] ^= 1;
        assert!(!public.verifies(INPUT.as_bytes(), &tampered));
        assert!(!public.verifies(b"another input", &signature));
    }

    #[test]
    fn our_signature_is_64_bytes_and_verifies() {
        // ECDSA signatures differ each time only in their nonce; RFC 6979
        // makes ours deterministic, so two signatures of one input are equal.
        let signature = pair().sign(INPUT.as_bytes()).unwrap();
        assert_eq!(signature.len(), 64, "r || s, 32 bytes each");
        assert!(pair().public().verifies(INPUT.as_bytes(), &signature));
        assert_eq!(pair().sign(INPUT.as_bytes()).unwrap(), signature);
    }
}

/// RFC 8037 Appendix A: the Ed25519 key (A.1, A.2), its thumbprint (A.3)
/// and the JWS (A.4); Ed25519 is deterministic, so ours must be the same.
mod rfc8037_a {
    use super::*;

    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
    const INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    const SIGNATURE: &str =
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn pair() -> KeyPair {
        let d: [u8; 32] = b64(D).try_into().unwrap();
        KeyPair::from_secret(Secret::EdDsa(ed25519_dalek::SigningKey::from_bytes(&d)))
    }

    #[test]
    fn the_key_and_its_thumbprint_are_the_rfcs() {
        let published = pair().public().published().clone();
        assert_eq!(
            published.params,
            KeyParams::Okp {
                crv: "Ed25519",
                x: X.to_owned()
            }
        );
        assert_eq!(published.kid, THUMBPRINT);
        assert_eq!(published.alg, "EdDSA");
    }

    #[test]
    fn our_signature_is_the_rfcs_exactly() {
        assert_eq!(pair().sign(INPUT.as_bytes()).unwrap(), b64(SIGNATURE));
    }

    #[test]
    fn the_published_signature_verifies_and_a_tampered_one_does_not() {
        let public = pair().public().clone();
        assert!(public.verifies(INPUT.as_bytes(), &b64(SIGNATURE)));
        let mut tampered = b64(SIGNATURE);
        tampered[63] ^= 0x10;
        assert!(!public.verifies(INPUT.as_bytes(), &tampered));
    }
}

#[test]
fn every_algorithm_signs_and_verifies_its_own_signatures() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        assert_eq!(pair.alg(), alg);
        assert_eq!(pair.public().alg(), alg);
        assert_eq!(pair.public().published().alg, alg.as_str());
        let signature = pair.sign(b"header.payload").unwrap();
        assert!(
            pair.public().verifies(b"header.payload", &signature),
            "{alg}"
        );
        assert!(
            !pair.public().verifies(b"header.payloaD", &signature),
            "{alg}"
        );
        assert!(!pair.public().verifies(b"header.payload", &[]), "{alg}");
        assert!(
            !pair.public().verifies(b"header.payload", &signature[1..]),
            "{alg}: a shortened signature"
        );
    }
}

#[test]
fn a_key_refuses_the_signatures_of_every_other_algorithm() {
    for signer in Algorithm::ALL {
        let signature = test_pair(signer).sign(b"input").unwrap();
        for verifier in Algorithm::ALL.into_iter().filter(|a| *a != signer) {
            assert!(
                !test_pair(verifier).public().verifies(b"input", &signature),
                "a {verifier} key accepted a {signer} signature"
            );
        }
    }
}

#[test]
fn pkcs1v15_and_pss_are_not_interchangeable_on_one_rsa_key() {
    // The same RSA key as RS256 and as PS256: each verifies only its own padding.
    let rsa = super::super::keys::test_key().clone();
    let (rs, ps) = (
        KeyPair::rsa(Algorithm::Rs256, rsa.clone()).unwrap(),
        KeyPair::rsa(Algorithm::Ps256, rsa).unwrap(),
    );
    let (rs_sig, ps_sig) = (rs.sign(b"input").unwrap(), ps.sign(b"input").unwrap());
    assert!(rs.public().verifies(b"input", &rs_sig));
    assert!(ps.public().verifies(b"input", &ps_sig));
    assert!(!rs.public().verifies(b"input", &ps_sig));
    assert!(!ps.public().verifies(b"input", &rs_sig));
    assert_ne!(
        ps.sign(b"input").unwrap(),
        ps_sig,
        "PSS draws a fresh salt each time"
    );
}

#[test]
fn private_and_public_keys_round_trip_through_pkcs8_and_spki() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let der = pair.to_pkcs8_der().unwrap();
        let back = KeyPair::from_pkcs8_der(alg, &der).unwrap();
        assert_eq!(back.kid(), pair.kid(), "{alg}");
        let signature = back.sign(b"input").unwrap();
        assert!(pair.public().verifies(b"input", &signature), "{alg}");

        let pem = pair.public().to_spki_pem().unwrap();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{alg}: {pem}"
        );
        let public = PublicJwk::from_pem(alg, &format!("\n{pem}\n")).unwrap();
        assert_eq!(public.kid(), pair.kid(), "{alg}");
        assert_eq!(public.published(), pair.public().published(), "{alg}");
    }
}

#[test]
fn a_key_is_read_only_as_its_own_type() {
    let es = test_pair(Algorithm::Es256);
    let ed = test_pair(Algorithm::EdDsa);
    let rs = test_pair(Algorithm::Rs256);
    assert!(KeyPair::from_pkcs8_der(Algorithm::EdDsa, &es.to_pkcs8_der().unwrap()).is_err());
    assert!(KeyPair::from_pkcs8_der(Algorithm::Es256, &ed.to_pkcs8_der().unwrap()).is_err());
    assert!(KeyPair::from_pkcs8_der(Algorithm::Es256, &rs.to_pkcs8_der().unwrap()).is_err());
    assert!(KeyPair::from_pkcs8_der(Algorithm::Rs256, &ed.to_pkcs8_der().unwrap()).is_err());
    let es_pem = es.public().to_spki_pem().unwrap();
    assert!(PublicJwk::from_pem(Algorithm::EdDsa, &es_pem).is_err());
    assert!(PublicJwk::from_pem(Algorithm::Rs256, &es_pem).is_err());
    assert!(PublicJwk::from_pem(Algorithm::Es256, "").is_err());
}

#[test]
fn generated_keys_are_new_each_time() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa] {
        let (a, b) = (
            KeyPair::generate(alg, 0).unwrap(),
            KeyPair::generate(alg, 0).unwrap(),
        );
        assert_ne!(a.kid(), b.kid(), "{alg}");
    }
    assert!(KeyPair::rsa(Algorithm::Es256, super::super::keys::test_key().clone()).is_err());
}

#[test]
fn ec_thumbprints_follow_rfc7638_member_order() {
    // RFC 7638 section 3.2: for EC, exactly crv, kty, x, y in that order.
    let pair = test_pair(Algorithm::Es256);
    let KeyParams::Ec { crv, x, y } = &pair.public().published().params else {
        panic!("an EC key");
    };
    let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
    assert_eq!(
        pair.kid(),
        base64url::encode(Sha256::digest(canonical.as_bytes()))
    );
    assert_eq!(b64(x).len(), 32);
    assert_eq!(b64(y).len(), 32);
}

#[test]
fn debug_shows_no_key_material() {
    for alg in Algorithm::ALL {
        let pair = test_pair(alg);
        let shown = format!("{pair:?} {:?}", pair.public());
        assert!(shown.contains(pair.kid()) && shown.contains(&format!("{alg:?}")));
        let der = pair.to_pkcs8_der().unwrap();
        let tail = base64url::encode(&der[der.len() - 24..]);
        assert!(!shown.contains(&tail), "{shown}");
    }
}

#[test]
fn rsa_keys_publish_their_modulus_and_exponent() {
    let pair = test_pair(Algorithm::Rs256);
    let published = pair.public().published();
    let KeyParams::Rsa { n, e } = &published.params else {
        panic!("an RSA key");
    };
    assert_eq!((published.kty(), published.alg), ("RSA", "RS256"));
    assert_eq!(e, "AQAB");
    let n = b64(n);
    assert_eq!(n.len(), 256);
    assert_ne!(n[0], 0, "no leading zero octet");
    assert_eq!(published.kid, super::super::keys::test_key().kid());
}
