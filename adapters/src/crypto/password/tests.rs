//! Tests of [`super`].

use super::*;
use argon2::{Algorithm, Argon2, PasswordHasher as _, Version};
use argon2id::{MAX_ARGON2_M_KIB, MAX_ARGON2_WORK_KIB, argon2_within_caps};

/// From /work/shared/vectors.md, both of `password123`.
const BCRYPT: &str = "$2b$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW";
const PBKDF2: &str = "$pbkdf2-sha256$i=600000,l=32$YXV0aGQtdGVzdC1zYWx0IQ$cg2/hSV734b3wYj+NdcjkVWYYTCFnpjbHW4GdLrXQ28";

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

/// Cheap parameters for round trips; `new()` is tested on its own.
fn fast() -> Argon2Hasher {
    Argon2Hasher::with_params(1024, 1, 1).unwrap()
}

async fn verify(h: &Argon2Hasher, password: &str, hash: &str) -> PasswordCheck {
    h.verify(
        h.reserve().unwrap(),
        secret(password),
        PasswordHash::new(hash),
    )
    .await
    .unwrap()
}

const MATCH_OLD: PasswordCheck = PasswordCheck::Match { needs_rehash: true };
const MATCH_CURRENT: PasswordCheck = PasswordCheck::Match {
    needs_rehash: false,
};

#[tokio::test]
async fn default_parameters_are_owasp_argon2id() {
    let h = Argon2Hasher::new();
    let hash = h
        .hash(h.reserve().unwrap(), secret("correct horse battery"))
        .await
        .unwrap();
    assert!(
        hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash:?}"
    );
    assert_eq!(
        verify(&h, "correct horse battery", hash.as_str()).await,
        MATCH_CURRENT
    );
    assert_eq!(
        verify(&h, "correct horse battery!", hash.as_str()).await,
        PasswordCheck::Mismatch
    );
    assert!(h.concurrency() >= 2);
}

#[tokio::test]
async fn bcrypt_vector() {
    let h = fast();
    assert_eq!(verify(&h, "password123", BCRYPT).await, MATCH_OLD);
    for wrong in ["password124", "Password123", "", "password1234"] {
        assert_eq!(
            verify(&h, wrong, BCRYPT).await,
            PasswordCheck::Mismatch,
            "{wrong}"
        );
    }
    for prefix in ["$2a$", "$2y$"] {
        let variant = BCRYPT.replacen("$2b$", prefix, 1);
        assert_eq!(
            verify(&h, "password123", &variant).await,
            MATCH_OLD,
            "{prefix}"
        );
    }
}

#[tokio::test]
async fn pbkdf2_vector() {
    let h = fast();
    assert_eq!(verify(&h, "password123", PBKDF2).await, MATCH_OLD);
    assert_eq!(
        verify(&h, "password124", PBKDF2).await,
        PasswordCheck::Mismatch
    );
    assert_eq!(verify(&h, "", PBKDF2).await, PasswordCheck::Mismatch);
}

#[tokio::test]
async fn bcrypt_does_not_truncate_long_passwords() {
    let h = fast();
    let base = "a".repeat(BCRYPT_MAX_PASSWORD_BYTES);
    let hash = bcrypt::hash(&base, 4).unwrap();
    // Exactly 72 bytes: every byte is used by bcrypt, so it matches.
    assert_eq!(verify(&h, &base, &hash).await, MATCH_OLD);
    // bcrypt alone would call these a match; we do not.
    assert!(
        bcrypt::verify(format!("{base}b"), &hash).unwrap(),
        "bcrypt truncates"
    );
    assert_eq!(
        verify(&h, &format!("{base}b"), &hash).await,
        PasswordCheck::Mismatch
    );
    assert_eq!(
        verify(&h, &format!("{base}{base}"), &hash).await,
        PasswordCheck::Mismatch
    );
}

#[tokio::test]
async fn argon2_counts_bytes_after_72() {
    let h = fast();
    let prefix = "p".repeat(80);
    let hash = h
        .hash(h.reserve().unwrap(), secret(&format!("{prefix}1")))
        .await
        .unwrap();
    assert_eq!(
        verify(&h, &format!("{prefix}1"), hash.as_str()).await,
        MATCH_CURRENT
    );
    assert_eq!(
        verify(&h, &format!("{prefix}2"), hash.as_str()).await,
        PasswordCheck::Mismatch
    );
    assert_eq!(
        verify(&h, &prefix, hash.as_str()).await,
        PasswordCheck::Mismatch
    );
}

#[tokio::test]
async fn long_unicode_password_round_trip() {
    let h = fast();
    let password: String = "pässwörd-🦀-ключ-".chars().cycle().take(1024).collect();
    assert_eq!(password.chars().count(), 1024);
    let hash = h
        .hash(h.reserve().unwrap(), secret(&password))
        .await
        .unwrap();
    assert_eq!(verify(&h, &password, hash.as_str()).await, MATCH_CURRENT);
    let mut other: Vec<char> = password.chars().collect();
    other[1023] = 'X';
    let other: String = other.into_iter().collect();
    assert_eq!(
        verify(&h, &other, hash.as_str()).await,
        PasswordCheck::Mismatch
    );
}

#[tokio::test]
async fn weaker_or_other_argon2_needs_rehash() {
    let h = Argon2Hasher::with_params(2048, 2, 1).unwrap();
    let pw = "correct horse battery";
    let weaker = [
        Argon2Hasher::with_params(1024, 2, 1).unwrap(),
        Argon2Hasher::with_params(2048, 1, 1).unwrap(),
    ];
    for w in &weaker {
        let hash = w.hash(w.reserve().unwrap(), secret(pw)).await.unwrap();
        assert_eq!(verify(&h, pw, hash.as_str()).await, MATCH_OLD, "{w:?}");
    }
    let strong = Argon2Hasher::with_params(4096, 3, 2).unwrap();
    let stronger = strong
        .hash(strong.reserve().unwrap(), secret(pw))
        .await
        .unwrap();
    assert_eq!(verify(&h, pw, stronger.as_str()).await, MATCH_CURRENT);
    // argon2i and argon2d with our parameters: accepted, then upgraded.
    for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
        let other = Argon2::new(algorithm, Version::V0x13, h.params.clone())
            .hash_password(pw.as_bytes())
            .unwrap()
            .to_string();
        assert_eq!(verify(&h, pw, &other).await, MATCH_OLD, "{other}");
        assert_eq!(verify(&h, "wrong", &other).await, PasswordCheck::Mismatch);
    }
}

#[tokio::test]
async fn unknown_or_corrupt_hashes_never_match() {
    let h = fast();
    let good = h
        .hash(h.reserve().unwrap(), secret("password123"))
        .await
        .unwrap();
    let cases = [
        String::new(),
        "password123".to_owned(),
        "$1$saltsalt$abcdefghijklmnopqrstuv".to_owned(),
        "$2x$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW".to_owned(),
        BCRYPT[..40].to_owned(),
        PBKDF2.replace("i=600000", "i=zero"),
        "$pbkdf2-sha512$i=1000,l=32$YXV0aGQtdGVzdC1zYWx0IQ$cg2/hSV734b3wYj+NdcjkVWYYTCFnpjbHW4GdLrXQ28".to_owned(),
        good.as_str().replace("m=1024", "m=1"),
        good.as_str()[..good.as_str().len() - 10].to_owned(),
        "$argon2id$v=19$m=1024,t=1,p=1$!!!!$!!!!".to_owned(),
    ];
    for case in &cases {
        assert_eq!(
            verify(&h, "password123", case).await,
            PasswordCheck::Mismatch,
            "{case:?}"
        );
    }
}

#[tokio::test]
async fn dummy_hash_is_a_real_argon2id_hash_of_nothing_guessable() {
    let h = fast();
    let dummy = h.dummy_hash();
    assert!(
        dummy.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{dummy:?}"
    );
    assert_eq!(h.dummy_hash(), dummy, "computed once");
    assert_eq!(
        verify(&h, "password123", dummy.as_str()).await,
        PasswordCheck::Mismatch
    );
    assert_ne!(fast().dummy_hash(), dummy, "random per hasher");
    assert!(
        Argon2Hasher::new()
            .dummy_hash()
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
}

#[test]
fn invalid_parameters_are_refused() {
    assert!(Argon2Hasher::with_params(0, 1, 1).is_err());
    assert!(Argon2Hasher::with_params(1024, 0, 1).is_err());
    assert!(Argon2Hasher::with_params(1024, 1, 0).is_err());
}

#[test]
fn log_labels_never_carry_the_hash() {
    assert_eq!(scheme_of(BCRYPT), "2b");
    assert_eq!(scheme_of(PBKDF2), "pbkdf2-sha256");
    assert_eq!(scheme_of("plaintext-password"), "unknown");
    assert_eq!(scheme_of("$c2VjcmV0IHNlY3JldCBzZWNyZXQ$x"), "unknown");
    assert_eq!(scheme_of("$a/b$c"), "unknown");
}

#[tokio::test]
async fn hashes_cross_check_with_the_argon2_crate() {
    let h = fast();
    let pw = "correct horse battery";
    // Ours, checked by the crate's own verifier.
    let ours = h.hash(h.reserve().unwrap(), secret(pw)).await.unwrap();
    let parsed = phc::PasswordHash::new(ours.as_str()).unwrap();
    assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT);
    assert_eq!(parsed.version, Some(19));
    assert_eq!(parsed.params.as_str(), "m=1024,t=1,p=1");
    assert_eq!(parsed.salt.unwrap().len(), 16);
    assert_eq!(parsed.hash.unwrap().len(), 32);
    assert!(ours.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    assert_eq!(parsed.to_string(), ours.as_str(), "canonical PHC string");
    Argon2::default()
        .verify_password(pw.as_bytes(), &parsed)
        .unwrap();
    assert_eq!(
        Argon2::default().verify_password(b"correct horse battery!", &parsed),
        Err(password_hash::Error::PasswordInvalid)
    );
    // The crate's hashes (other variants, parameters, output lengths),
    // checked by ours.
    for (algorithm, m, t, p, len) in [
        (Algorithm::Argon2id, 1024, 1, 1, 32),
        (Algorithm::Argon2id, 2048, 2, 2, 64),
        (Algorithm::Argon2i, 256, 3, 1, 16),
        (Algorithm::Argon2d, 64, 2, 4, 32),
    ] {
        let params = Params::new(m, t, p, Some(len)).unwrap();
        let theirs = Argon2::new(algorithm, Version::V0x13, params)
            .hash_password(pw.as_bytes())
            .unwrap()
            .to_string();
        let current = algorithm == Algorithm::Argon2id;
        assert_eq!(
            verify(&h, pw, &theirs).await,
            PasswordCheck::Match {
                needs_rehash: !current
            },
            "{theirs}"
        );
        assert_eq!(
            verify(&h, "correct horse batterY", &theirs).await,
            PasswordCheck::Mismatch,
            "{theirs}"
        );
    }
}

/// `huge` is a mismatch through the hasher, refused before its scheme's
/// work (the scheme never ran).
async fn refused_unrun(h: &Argon2Hasher, huge: &str) {
    assert_eq!(
        verify(h, "password123", huge).await,
        PasswordCheck::Mismatch,
        "{huge}"
    );
    assert_eq!(
        check(&h.params, b"password123", huge),
        (PasswordCheck::Mismatch, false),
        "{huge}"
    );
}

#[tokio::test]
async fn stored_hash_with_huge_memory_cost_is_refused_without_allocating() {
    let h = fast();
    let good = h
        .hash(h.reserve().unwrap(), secret("password123"))
        .await
        .unwrap();
    let (over, max) = (MAX_ARGON2_M_KIB + 1, u32::MAX);
    for m in [over, 4 * 1024 * 1024, max] {
        let huge = good.as_str().replace("m=1024", &format!("m={m}"));
        let parsed = phc::PasswordHash::new(&huge).unwrap();
        // Refused by the caps, before argon2 allocates anything.
        assert_eq!(
            verify_argon2(b"password123", &parsed),
            Err(password_hash::Error::ParamInvalid { name: "m" })
        );
        // Through the hasher: a mismatch, and argon2 never ran.
        refused_unrun(&h, &huge).await;
    }
}

/// A stored hash asking for more work than the caps is not run: a
/// mismatch at once, where running it would hold a hashing thread for
/// minutes (argon2, PBKDF2) or days (bcrypt cost 31).
#[tokio::test]
async fn stored_hash_with_huge_time_cost_is_refused_at_once() {
    let h = fast();
    let good = h
        .hash(h.reserve().unwrap(), secret("password123"))
        .await
        .unwrap();
    let at_cap = u32::try_from(MAX_ARGON2_WORK_KIB / 1024).unwrap();
    // 1 MiB × 4096 passes is exactly the cap; 1 GiB × 4 too.
    for (m, t, ok) in [
        (1024, at_cap, true),
        (1024, at_cap + 1, false),
        (MAX_ARGON2_M_KIB, 4, true),
        (MAX_ARGON2_M_KIB, 5, false),
    ] {
        let params = Params::new(m, t, 1, None).unwrap();
        assert_eq!(argon2_within_caps(&params).is_ok(), ok, "m={m} t={t}");
    }
    assert!(good.as_str().contains("m=1024,t=1,"), "{}", good.as_str());
    let argon2 = |t: &str| good.as_str().replace("t=1,", &format!("t={t},"));
    let bcrypt = |cost: &str| BCRYPT.replacen("$10$", &format!("${cost}$"), 1);
    let pbkdf2 = |i: &str| PBKDF2.replacen("i=600000", &format!("i={i}"), 1);
    let over_cap = [
        argon2(&(at_cap + 1).to_string()),
        argon2(&u32::MAX.to_string()),
        bcrypt("17"),
        bcrypt("31"),
        pbkdf2(&(MAX_PBKDF2_ROUNDS + 1).to_string()),
        pbkdf2(&u32::MAX.to_string()),
    ];
    for huge in over_cap {
        refused_unrun(&h, &huge).await;
    }
}

/// Every kind of account answers a login in the same time: an unknown
/// user (the dummy hash), argon2id, bcrypt (with a password bcrypt cannot
/// hold, too), PBKDF2, and a hash nobody can check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_takes_as_long_as_the_slowest_kind() {
    let h = Argon2Hasher::new();
    let user = h
        .hash(h.reserve().unwrap(), secret("password123"))
        .await
        .unwrap();
    let long = "x".repeat(73);
    let cases = [
        (
            "unknown user",
            "password123",
            h.dummy_hash().as_str().to_owned(),
        ),
        ("argon2id", "password124", user.as_str().to_owned()),
        ("bcrypt", "password124", BCRYPT.to_owned()),
        ("bcrypt, 73 bytes", long.as_str(), BCRYPT.to_owned()),
        ("pbkdf2", "password124", PBKDF2.to_owned()),
        ("corrupt", "password124", "$argon2id$v=19$m=nope".to_owned()),
    ];
    // Each kind once, so that the floor has seen them all.
    for (_, password, hash) in &cases {
        verify(&h, password, hash).await;
    }
    let slowest = ["password124", "password124"]
        .iter()
        .zip([BCRYPT, PBKDF2])
        .map(|(pw, hash)| {
            let started = Instant::now();
            let _ = check(&h.params, pw.as_bytes(), hash);
            started.elapsed()
        })
        .max()
        .unwrap();
    for (name, password, hash) in &cases {
        let floor = h.timing_floor();
        let started = Instant::now();
        assert_eq!(
            verify(&h, password, hash).await,
            PasswordCheck::Mismatch,
            "{name}"
        );
        let took = started.elapsed();
        // The slowest kind itself is not stretched: its own run may be a
        // little under its average.
        assert!(
            took >= floor * 3 / 4,
            "{name}: {took:?} under the floor {floor:?}"
        );
        // The floor follows the slowest scheme (within a burst's noise).
        assert!(
            floor >= slowest / 2,
            "{name}: floor {floor:?}, slowest {slowest:?}"
        );
    }
}
