//! Criterion benchmarks of the crypto adapter: access-token signing and
//! verification in each `JWT_ALG` (RSA at 2048 and 4096 bits), argon2id
//! hashing and verification at the default (OWASP) parameters.
//!
//! `cargo bench -p adapters --bench crypto -- --warm-up-time 1 --measurement-time 5`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a failed step ends the run"
)]

use std::hint::black_box;

use adapters::crypto::jws_keys::KeyPair;
use adapters::crypto::jwt::{JwtSigner, JwtVerifier};
use adapters::crypto::password::Argon2Hasher;
use application::ports::{AccessTokenSigner as _, AccessTokenVerifier as _, PasswordHasher as _};
use criterion::{Criterion, criterion_group, criterion_main};
use domain::{AccessClaims, Algorithm, SessionId, Timestamp, UserId};
use secrecy::SecretString;
use uuid::Uuid;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "auth".to_owned(),
        aud: "api".to_owned(),
        sub: UserId::from_uuid(Uuid::new_v4()),
        sid: SessionId::from_uuid(Uuid::new_v4()),
        jti: Uuid::new_v4(),
        iat: now,
        nbf: now,
        exp: now + 900,
        username: "alice".to_owned(),
        amr: domain::AuthMethods::Password,
        cnf: None,
    }
}

fn tokens(c: &mut Criterion) {
    let rt = runtime();
    let now = 1_800_000_000;
    let mut group = c.benchmark_group("jwt");
    group.sample_size(20);
    let keys = [
        (Algorithm::Rs256, 2048),
        (Algorithm::Rs256, 4096),
        (Algorithm::Ps256, 4096),
        (Algorithm::Es256, 0),
        (Algorithm::EdDsa, 0),
    ];
    for (alg, bits) in keys {
        let key = KeyPair::generate(alg, bits).expect("key generation");
        let name = if bits == 0 {
            alg.to_string()
        } else {
            format!("{alg}-{bits}")
        };
        let signer = JwtSigner::new(key.clone());
        let verifier = JwtVerifier::new(vec![key.public().clone()], "auth".into(), "api".into());
        let claims = claims(now);
        // The whole signature as a login pays it (with the hop to the
        // blocking pool for RSA), and the bare signature of a token's input.
        group.bench_function(format!("{name}/sign"), |b| {
            b.iter(|| rt.block_on(signer.sign(black_box(&claims))).expect("sign"));
        });
        let token = rt.block_on(signer.sign(&claims)).expect("sign");
        let input = &token[..token.rfind('.').expect("three parts")];
        group.bench_function(format!("{name}/bare-signature"), |b| {
            b.iter(|| key.sign(black_box(input.as_bytes())).expect("sign"));
        });
        let at = Timestamp::from_unix_seconds(now);
        group.bench_function(format!("{name}/verify"), |b| {
            b.iter(|| verifier.verify(black_box(&token), at, 30).expect("verify"));
        });
    }
    group.finish();
}

fn argon2id(c: &mut Criterion) {
    let rt = runtime();
    let hasher = Argon2Hasher::new();
    let password = || SecretString::from("correct horse battery staple");
    let hash = rt
        .block_on(hasher.hash(hasher.reserve().expect("a place"), password()))
        .expect("hash");
    let mut group = c.benchmark_group("argon2id-m19456-t2-p1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| {
            rt.block_on(hasher.hash(hasher.reserve().expect("a place"), password()))
                .expect("hash")
        });
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            rt.block_on(hasher.verify(hasher.reserve().expect("a place"), password(), hash.clone()))
                .expect("verify")
        });
    });
    group.finish();
}

criterion_group!(benches, tokens, argon2id);
criterion_main!(benches);
