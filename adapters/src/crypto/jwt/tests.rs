//! Tests of [`super`].

use super::*;
use crate::crypto::keys::{PrivateKey, other_test_key, test_key};
use crate::crypto::os_rng::OsRng;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use serde_json::{Value, json};
use sha2::Sha256;

mod every_algorithm;

/// The algorithm of the tests' main key.
const ALG: &str = "RS256";

const ISS: &str = "auth";
const AUD: &str = "api";
const NOW: i64 = 1_800_000_000;

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(NOW)
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISS.to_owned(),
        aud: AUD.to_owned(),
        sub: UserId::from_uuid(Uuid::new_v4()),
        sid: SessionId::from_uuid(Uuid::new_v4()),
        jti: Uuid::new_v4(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
        username: "Alice".to_owned(),
        amr: domain::AuthMethods::Password,
        cnf: None,
    }
}

fn claims_json(c: &AccessClaims) -> Value {
    serde_json::to_value(OutgoingClaims::from(c)).unwrap()
}

fn signer() -> JwtSigner {
    JwtSigner::new(test_key().clone())
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new(
        vec![test_key().public_key()],
        ISS.to_owned(),
        AUD.to_owned(),
    )
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": TYP, "kid": kid})
}

fn our_header() -> Value {
    header(ALG, test_key().kid())
}

/// A real RS256 token over arbitrary header and payload JSON.
fn forge(header: &Value, payload: &Value, key: &PrivateKey) -> String {
    let input = format!(
        "{}.{}",
        base64url::encode(header.to_string()),
        base64url::encode(payload.to_string())
    );
    let sig = SigningKey::<Sha256>::new(key.rsa().clone())
        .try_sign_with_rng(&mut OsRng, input.as_bytes())
        .unwrap();
    format!("{input}.{}", base64url::encode(sig.to_bytes()))
}

fn check(token: &str) -> Result<AccessClaims, InvalidToken> {
    verifier().verify(token, now(), 30)
}

fn check_claims(payload: Value) -> Result<AccessClaims, InvalidToken> {
    check(&forge(&our_header(), &payload, test_key()))
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&base64url::decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn signed_tokens_verify_and_round_trip_the_claims() {
    let c = claims();
    let token = signer().sign(&c).await.unwrap();
    assert_eq!(check(&token), Ok(c.clone()));
    assert_eq!(verifier().verify(&token, now(), 0), Ok(c));
}

#[tokio::test]
async fn header_and_claims_match_the_contract_exactly() {
    let c = claims();
    let token = signer().sign(&c).await.unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = String::from_utf8(base64url::decode(parts[0]).unwrap()).unwrap();
    assert_eq!(
        header,
        format!(
            r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}"}}"#,
            test_key().kid()
        )
    );
    let payload = b64_json(parts[1]);
    let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10, "{payload}");
    assert_eq!(payload["amr"], json!(["pwd"]));
    assert_eq!(payload["sub"], c.sub.to_string());
    assert_eq!(payload["sid"], c.sid.to_string());
    assert_eq!(payload["jti"], c.jti.to_string());
    assert_eq!(payload["exp"], NOW + 900);
    assert_eq!(payload["username"], "Alice");
    assert_eq!(base64url::decode(parts[2]).unwrap().len(), 256);
    assert!(!token.contains('='), "unpadded");
}

#[tokio::test]
async fn signing_is_pkcs1v15_deterministic_despite_blinding() {
    let c = claims();
    let (a, b) = (
        signer().sign(&c).await.unwrap(),
        signer().sign(&c).await.unwrap(),
    );
    assert_eq!(a, b, "blinding must not change a PKCS#1 v1.5 signature");
}

/// RFC 7515 Appendix A.2: the published key, signing input and signature.
mod rfc7515_a2 {
    use super::*;
    use crate::crypto::keys::uint;

    const N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const E: &str = "AQAB";
    const D: &str = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
    const P: &str = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
    const Q: &str = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
    /// `{"alg":"RS256"}` . `{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}`
    const SIGNING_INPUT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

    fn key() -> PrivateKey {
        let inner =
            rsa::PrivateKey::from_components(uint(N), uint(E), uint(D), vec![uint(P), uint(Q)])
                .unwrap();
        PrivateKey::from_rsa(inner).unwrap()
    }

    #[test]
    fn published_signature_verifies() {
        let vk = PublicJwk::from(key().public_key());
        let sig = base64url::decode(SIGNATURE).unwrap();
        assert!(vk.verifies(SIGNING_INPUT.as_bytes(), &sig));
        let mut tampered = SIGNING_INPUT.as_bytes().to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!vk.verifies(&tampered, &sig));
        let mut bad_sig = sig.clone();
        bad_sig[100] ^= 0x80;
        assert!(!vk.verifies(SIGNING_INPUT.as_bytes(), &bad_sig));
        assert!(
            !vk.verifies(SIGNING_INPUT.as_bytes(), &sig[1..]),
            "short signature"
        );
    }

    #[test]
    fn our_signer_reproduces_the_published_signature() {
        let sig = KeyPair::from(key()).sign(SIGNING_INPUT.as_bytes()).unwrap();
        assert_eq!(base64url::encode(sig), SIGNATURE);
    }
}

mod jsonwebtoken_cross_check {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
    use secrecy::ExposeSecret as _;

    #[tokio::test]
    async fn the_library_accepts_our_tokens() {
        let c = claims();
        let token = signer().sign(&c).await.unwrap();
        let public = test_key().public_key();
        let key = DecodingKey::from_rsa_components(public.modulus(), public.exponent()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        // Our claims are at a fixed instant in the future; time is checked elsewhere.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(data.header.kid.as_deref(), Some(test_key().kid()));
        assert_eq!(data.claims, claims_json(&c));
    }

    #[test]
    fn we_accept_the_librarys_tokens() {
        let c = claims();
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.typ = Some(TYP.to_owned());
        header.kid = Some(test_key().kid().to_owned());
        let pem = test_key().to_pkcs8_pem().unwrap();
        let key = EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &claims_json(&c), &key).unwrap();
        assert_eq!(check(&token), Ok(c));
    }

    /// The classic key-confusion attack: HMAC keyed with our public PEM.
    fn hs256(header: &Value, payload: &Value) -> String {
        let input = format!(
            "{}.{}",
            base64url::encode(header.to_string()),
            base64url::encode(payload.to_string())
        );
        let spki = test_key().public_key().to_spki_pem().unwrap();
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(spki.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn hs256_keyed_with_the_public_key_is_refused() {
        let payload = claims_json(&claims());
        let declared = hs256(&header("HS256", test_key().kid()), &payload);
        assert_eq!(check(&declared), Err(InvalidToken::Algorithm));
        let disguised = hs256(&our_header(), &payload);
        assert_eq!(check(&disguised), Err(InvalidToken::Signature));
    }
}

#[test]
fn alg_none_is_refused() {
    let h = base64url::encode(header("none", test_key().kid()).to_string());
    let p = base64url::encode(claims_json(&claims()).to_string());
    assert_eq!(check(&format!("{h}.{p}.")), Err(InvalidToken::Algorithm));
    let real = forge(&our_header(), &claims_json(&claims()), test_key());
    let sig = real.rsplit('.').next().unwrap();
    assert_eq!(
        check(&format!("{h}.{p}.{sig}")),
        Err(InvalidToken::Algorithm)
    );
    for alg in ["RS384", "PS256", "rs256", "ES256"] {
        let t = forge(
            &header(alg, test_key().kid()),
            &claims_json(&claims()),
            test_key(),
        );
        assert_eq!(check(&t), Err(InvalidToken::Algorithm), "{alg}");
    }
}

#[test]
fn kid_must_name_a_known_key() {
    let payload = claims_json(&claims());
    let foreign = forge(
        &header(ALG, other_test_key().kid()),
        &payload,
        other_test_key(),
    );
    assert_eq!(check(&foreign), Err(InvalidToken::UnknownKey));
    let missing = forge(&json!({"alg": ALG, "typ": TYP}), &payload, test_key());
    assert_eq!(check(&missing), Err(InvalidToken::UnknownKey));
    let impostor = forge(&our_header(), &payload, other_test_key());
    assert_eq!(check(&impostor), Err(InvalidToken::Signature));
    // Both keys configured: each verifies its own tokens (key rotation).
    let both = JwtVerifier::new(
        vec![test_key().public_key(), other_test_key().public_key()],
        ISS.to_owned(),
        AUD.to_owned(),
    );
    assert!(both.verify(&foreign, now(), 0).is_ok());
}

#[test]
fn typ_must_be_at_jwt() {
    let payload = claims_json(&claims());
    for h in [
        json!({"alg": ALG, "typ": "JWT", "kid": test_key().kid()}),
        json!({"alg": ALG, "kid": test_key().kid()}),
    ] {
        assert_eq!(
            check(&forge(&h, &payload, test_key())),
            Err(InvalidToken::Type),
            "{h}"
        );
    }
}

// Tampering (payload, signature bits, a swapped signature): for every
// algorithm in `every_algorithm`.

#[test]
fn issuer_and_audience_are_ours() {
    let mut p = claims_json(&claims());
    p["iss"] = json!("someone-else");
    assert_eq!(check_claims(p), Err(InvalidToken::Issuer));

    let mut p = claims_json(&claims());
    p["aud"] = json!("other-api");
    assert_eq!(check_claims(p), Err(InvalidToken::Audience));
    let mut p = claims_json(&claims());
    p["aud"] = json!(["other-api", "more"]);
    assert_eq!(check_claims(p), Err(InvalidToken::Audience));
    let mut p = claims_json(&claims());
    p["aud"] = json!(["other-api", AUD]);
    assert_eq!(check_claims(p).map(|c| c.aud), Ok(AUD.to_owned()));
}

#[test]
fn expiry_with_leeway() {
    let at = |exp: i64| {
        let mut p = claims_json(&claims());
        p["exp"] = json!(exp);
        forge(&our_header(), &p, test_key())
    };
    let v = verifier();
    assert_eq!(
        v.verify(&at(NOW - 31), now(), 30),
        Err(InvalidToken::Expired)
    );
    assert_eq!(
        v.verify(&at(NOW - 30), now(), 30),
        Err(InvalidToken::Expired)
    );
    assert!(v.verify(&at(NOW - 29), now(), 30).is_ok());
    assert_eq!(v.verify(&at(NOW), now(), 0), Err(InvalidToken::Expired));
    assert!(v.verify(&at(NOW + 1), now(), 0).is_ok());
    // Leeway is capped at 30 s whatever the caller asks.
    assert_eq!(
        v.verify(&at(NOW - 60), now(), 3600),
        Err(InvalidToken::Expired)
    );
}

#[test]
fn not_before_with_leeway() {
    let at = |nbf: i64| {
        let mut p = claims_json(&claims());
        p["nbf"] = json!(nbf);
        forge(&our_header(), &p, test_key())
    };
    let v = verifier();
    assert_eq!(
        v.verify(&at(NOW + 31), now(), 30),
        Err(InvalidToken::NotYetValid)
    );
    assert!(
        v.verify(&at(NOW + 30), now(), 30).is_ok(),
        "within 30 s is accepted"
    );
    assert_eq!(
        v.verify(&at(NOW + 1), now(), 0),
        Err(InvalidToken::NotYetValid)
    );
}

#[test]
fn every_claim_is_required_and_typed() {
    for name in [
        "iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "username",
    ] {
        let mut p = claims_json(&claims());
        p.as_object_mut().unwrap().remove(name);
        assert_eq!(check_claims(p), Err(InvalidToken::Claims), "missing {name}");
    }
    for (name, bad) in [
        ("sub", json!("not-a-uuid")),
        ("sid", json!(42)),
        ("exp", json!("1800000900")),
        ("nbf", json!(1.8e9)),
        ("username", json!(null)),
        ("aud", json!(7)),
    ] {
        let mut p = claims_json(&claims());
        p[name] = bad;
        assert_eq!(
            check_claims(p),
            Err(InvalidToken::Claims),
            "mistyped {name}"
        );
    }
    assert_eq!(
        check_claims(json!([1, 2])),
        Err(InvalidToken::Claims),
        "not an object"
    );
}

#[tokio::test]
async fn amr_says_how_the_session_began() {
    // Both methods round trip through a signed token.
    for amr in [
        domain::AuthMethods::Password,
        domain::AuthMethods::PasswordAndOtp,
    ] {
        let c = AccessClaims { amr, ..claims() };
        let token = signer().sign(&c).await.unwrap();
        assert_eq!(
            b64_json(token.split('.').nth(1).unwrap())["amr"],
            json!(amr.names())
        );
        assert_eq!(check(&token).map(|v| v.amr), Ok(amr));
    }
    // A token of a version before amr began with a password alone.
    let mut p = claims_json(&claims());
    p.as_object_mut().unwrap().remove("amr");
    assert_eq!(
        check_claims(p).map(|c| c.amr),
        Ok(domain::AuthMethods::Password)
    );
    // Anything but the two lists is a bad claim, even signed by us.
    for bad in [
        json!([]),
        json!(["otp"]),
        json!(["pwd", "otp", "hwk"]),
        json!("pwd"),
        json!([1]),
    ] {
        let mut p = claims_json(&claims());
        p["amr"] = bad.clone();
        assert_eq!(check_claims(p), Err(InvalidToken::Claims), "amr {bad}");
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let token = signer().sign(&claims()).await.unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let not_json = base64url::encode("{not json");
    let cases = [
        String::new(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}."),
        format!("{h}.{p}!.{s}"),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}.+{s}"),
        format!("{not_json}.{p}.{s}"),
        format!(
            "{}.{p}.{s}",
            base64url::encode(r#"{"alg":"RS256","alg":"RS256","typ":"at+jwt"}"#)
        ),
        format!("{}.{p}.{s}", base64url::encode(r#"{"typ":"at+jwt"}"#)),
        format!("{}.{p}.{s}", base64url::encode(r#"{"alg":256}"#)),
        "a b c".to_owned(),
    ];
    for case in &cases {
        assert_eq!(check(case), Err(InvalidToken::Malformed), "{case:?}");
    }
    // A signed payload that is not JSON.
    let input = format!("{h}.{not_json}");
    let sig = SigningKey::<Sha256>::new(test_key().rsa().clone())
        .try_sign_with_rng(&mut OsRng, input.as_bytes())
        .unwrap();
    let signed_garbage = format!("{input}.{}", base64url::encode(sig.to_bytes()));
    assert_eq!(check(&signed_garbage), Err(InvalidToken::Malformed));
    // Critical extensions we do not understand.
    let mut crit = our_header();
    crit["crit"] = json!(["b64"]);
    crit["b64"] = json!(false);
    assert_eq!(
        check(&forge(&crit, &claims_json(&claims()), test_key())),
        Err(InvalidToken::Malformed)
    );
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_decoding() {
    assert_eq!(check(&"a".repeat(9 * 1024)), Err(InvalidToken::Oversized));
    assert_eq!(
        check(&"!".repeat(domain::MAX_ACCESS_TOKEN_BYTES + 1)),
        Err(InvalidToken::Oversized)
    );
    assert_eq!(
        check(&"!".repeat(domain::MAX_ACCESS_TOKEN_BYTES)),
        Err(InvalidToken::Malformed)
    );
    // A real, valid token padded with a huge claim is still refused.
    let mut c = claims();
    c.username = "x".repeat(9 * 1024);
    let big = signer().sign(&c).await.unwrap();
    assert_eq!(check(&big), Err(InvalidToken::Oversized));
}

#[test]
fn debug_shows_no_key_material() {
    let shown = format!("{:?} {:?}", signer(), verifier());
    assert!(shown.contains(test_key().kid()), "{shown}");
    assert!(!shown.contains(&test_key().public_key().modulus()[..40]));
}
