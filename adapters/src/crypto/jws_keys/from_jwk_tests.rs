//! Tests of [`PublicJwk::from_jwk`]: it reads one spelling of each key, and
//! anything the holder could hash differently from us is refused (the DPoP
//! proof's `jkt` relies on it).

use super::*;
use crate::crypto::jws_keys::JwkRefused;
use serde_json::{Value, json};

fn read(alg: Algorithm, jwk: &Value) -> Result<PublicJwk, JwkRefused> {
    PublicJwk::from_jwk(alg, jwk)
}

fn with(mut jwk: Value, name: &str, value: impl Into<Value>) -> Value {
    jwk[name] = value.into();
    jwk
}

#[test]
fn members_missing_or_not_strings_are_malformed() {
    let ec = jwk_of(test_pair(Algorithm::Es256));
    assert_eq!(
        read(Algorithm::Es256, &json!("EC")).err(),
        Some(JwkRefused::Malformed)
    );
    for name in ["kty", "x", "y"] {
        let mut jwk = ec.clone();
        jwk.as_object_mut().unwrap().remove(name);
        assert_eq!(
            read(Algorithm::Es256, &jwk).err(),
            Some(JwkRefused::Malformed),
            "{name}"
        );
        let jwk = with(ec.clone(), name, 1);
        assert_eq!(
            read(Algorithm::Es256, &jwk).err(),
            Some(JwkRefused::Malformed),
            "{name}"
        );
    }
    let rsa = jwk_of(test_pair(Algorithm::Rs256));
    for name in ["n", "e"] {
        let jwk = with(rsa.clone(), name, json!(null));
        assert_eq!(
            read(Algorithm::Rs256, &jwk).err(),
            Some(JwkRefused::Malformed),
            "{name}"
        );
    }
}

#[test]
fn kty_crv_and_alg_must_be_the_algorithms() {
    let ec = jwk_of(test_pair(Algorithm::Es256));
    let okp = jwk_of(test_pair(Algorithm::EdDsa));
    for (alg, jwk) in [
        (Algorithm::Es256, with(ec.clone(), "crv", "P-384")),
        (Algorithm::Es256, with(ec.clone(), "crv", "secp256k1")),
        (Algorithm::Es256, with(ec.clone(), "kty", "ec")),
        (Algorithm::Es256, with(ec.clone(), "alg", "ES384")),
        (Algorithm::Es256, with(ec.clone(), "alg", 1)),
        (Algorithm::Es256, okp.clone()),
        (Algorithm::EdDsa, with(okp.clone(), "crv", "X25519")),
        (Algorithm::EdDsa, with(okp.clone(), "crv", "Ed448")),
        (Algorithm::EdDsa, ec.clone()),
        (Algorithm::Rs256, ec.clone()),
        (Algorithm::Ps256, okp.clone()),
    ] {
        assert_eq!(
            read(alg, &jwk).err(),
            Some(JwkRefused::KeyType),
            "{alg} {jwk}"
        );
    }
    let mut no_crv = ec.clone();
    no_crv.as_object_mut().unwrap().remove("crv");
    assert_eq!(
        read(Algorithm::Es256, &no_crv).err(),
        Some(JwkRefused::KeyType)
    );
}

#[test]
fn ec_coordinates_are_canonical_full_length_and_on_the_curve() {
    let ec = jwk_of(test_pair(Algorithm::Es256));
    let x = ec["x"].as_str().unwrap().to_owned();
    let y = ec["y"].as_str().unwrap().to_owned();
    let x_bytes = base64url::decode(&x).unwrap();
    let mut y_off = base64url::decode(&y).unwrap();
    y_off[31] ^= 1;
    let mut long = vec![0];
    long.extend_from_slice(&x_bytes);
    // The field's prime p: a coordinate of p + x would name x modulo p.
    let p = base64url::encode([
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    assert_eq!(base64url::decode(&p).map(|p| p.len()), Some(32));
    for jwk in [
        with(ec.clone(), "x", format!("{x}=")),
        with(ec.clone(), "x", format!("+{}", &x[1..])),
        with(ec.clone(), "x", base64url::encode(&long)),
        with(ec.clone(), "x", base64url::encode(&x_bytes[1..])),
        with(ec.clone(), "y", base64url::encode(&y_off)),
        with(ec.clone(), "x", p.clone()),
        with(ec.clone(), "x", ""),
    ] {
        assert_eq!(
            read(Algorithm::Es256, &jwk).err(),
            Some(JwkRefused::Invalid),
            "{jwk}"
        );
    }
}

#[test]
fn rsa_integers_are_minimal_and_the_modulus_at_least_2048_bits() {
    let rsa = jwk_of(test_pair(Algorithm::Rs256));
    let n = base64url::decode(rsa["n"].as_str().unwrap()).unwrap();
    let mut padded_n = vec![0];
    padded_n.extend_from_slice(&n);
    let mut even_n = n.clone();
    even_n[n.len() - 1] &= 0xfe;
    for jwk in [
        with(rsa.clone(), "n", base64url::encode(&padded_n)),
        with(rsa.clone(), "e", "AAEAAQ"),
        with(rsa.clone(), "e", "AQAB="),
        with(rsa.clone(), "e", ""),
        with(rsa.clone(), "e", "Ag"),
        with(rsa.clone(), "n", base64url::encode(&even_n)),
    ] {
        assert_eq!(
            read(Algorithm::Rs256, &jwk).err(),
            Some(JwkRefused::Invalid),
            "{jwk}"
        );
    }
    // The bounds, on odd moduli (no factors needed to read a public key).
    let modulus = |bytes: usize, top: u8| {
        let mut n = vec![0xff; bytes];
        n[0] = top;
        with(rsa.clone(), "n", base64url::encode(n))
    };
    assert_eq!(
        read(Algorithm::Rs256, &modulus(256, 0x7f)).err(),
        Some(JwkRefused::Weak),
        "2047 bits"
    );
    assert!(
        read(Algorithm::Rs256, &modulus(256, 0x80)).is_ok(),
        "2048 bits"
    );
    assert!(
        read(Algorithm::Ps256, &modulus(512, 0xff)).is_ok(),
        "4096 bits"
    );
    assert_eq!(
        read(Algorithm::Rs256, &modulus(513, 0x01)).err(),
        Some(JwkRefused::Invalid),
        "4097 bits"
    );
}

#[test]
fn ed25519_points_are_reduced_and_not_of_small_order() {
    let okp = jwk_of(test_pair(Algorithm::EdDsa));
    // The identity and a point of order 4 (y = 0).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for weak in [identity, [0u8; 32]] {
        let jwk = with(okp.clone(), "x", base64url::encode(weak));
        assert_eq!(read(Algorithm::EdDsa, &jwk).err(), Some(JwkRefused::Weak));
    }
    // y = p + k for small k: a spelling of the point with y = k, which
    // decompresses but is not the key's encoding.
    let unreduced = (2u8..19)
        .map(|k| {
            let mut y = [0xff; 32];
            y[0] = 0xed + k;
            y[31] = 0x7f;
            y
        })
        .find(|y| ed25519_dalek::VerifyingKey::from_bytes(y).is_ok_and(|k| !k.is_weak()))
        .expect("some y = p + k is on the curve");
    let jwk = with(okp.clone(), "x", base64url::encode(unreduced));
    assert_eq!(
        read(Algorithm::EdDsa, &jwk).err(),
        Some(JwkRefused::Invalid)
    );
    let x = base64url::decode(okp["x"].as_str().unwrap()).unwrap();
    for bad in [&x[1..], &[x.as_slice(), &[0]].concat()] {
        let jwk = with(okp.clone(), "x", base64url::encode(bad));
        assert_eq!(
            read(Algorithm::EdDsa, &jwk).err(),
            Some(JwkRefused::Invalid)
        );
    }
}
