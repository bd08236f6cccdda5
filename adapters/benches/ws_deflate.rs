//! What permessage-deflate costs and saves per message, as the WebSocket
//! service applies it (`adapters::ws::deflate::codec`, one compressor per
//! thread, no context takeover): the protocol's own messages and a 16 KiB
//! JSON echo. Prints the bytes on the wire first (frame headers included),
//! then criterion times compressing and inflating each.
//!
//! `cargo bench -p adapters --bench ws_deflate -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a failed step ends the run"
)]

use std::hint::black_box;

use adapters::ws::deflate::COMPRESS_FROM;
use adapters::ws::deflate::codec::{TAIL, deflate, inflate};
use criterion::{Criterion, criterion_group, criterion_main};

/// The contract's server messages at their real sizes, and a 16 KiB echo.
fn messages() -> Vec<(&'static str, String)> {
    let items: Vec<String> = (0..290)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"item {i}","ok":{},"tags":["a","b"]}}"#,
                i % 3 == 0
            )
        })
        .collect();
    vec![
        (
            "connected",
            r#"{"type":"connected","payload":{"userId":"0b6f3e0c-5d0c-4f43-9a4e-1f0e7c1f3a21","username":"alice","sessionId":"5b8d2c44-51a8-4f1f-8b43-6a2b8e7d9c10","expiresAt":1800000900}}"#.to_owned(),
        ),
        ("pong", r#"{"type":"pong","payload":{"ts":1800000000123}}"#.to_owned()),
        (
            "token_expiring",
            r#"{"type":"token_expiring","payload":{"expiresAt":1800000900,"expiresIn":60}}"#.to_owned(),
        ),
        (
            "error",
            r#"{"type":"error","payload":{"code":"session_revoked","message":"the session was revoked"}}"#.to_owned(),
        ),
        ("echo_16k", format!(r#"{{"type":"echo","payload":{{"items":[{}]}}}}"#, items.join(","))),
    ]
}

/// A server frame's header length for a payload of `len` bytes.
fn header(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

fn wire_table() {
    eprintln!("\nbytes on the wire per server message (frame header included):");
    eprintln!(
        "{:<16}{:>8}{:>14}{:>8}{:>8}",
        "message", "plain", "if deflated", "sent", "ratio"
    );
    for (name, text) in messages() {
        let plain = text.len() + header(text.len());
        let deflated = deflate(text.as_bytes()).map_or(plain, |c| c.len() + header(c.len()));
        let sent = if text.len() >= COMPRESS_FROM {
            deflated
        } else {
            plain
        };
        let ratio = sent as f64 / plain as f64;
        eprintln!("{name:<16}{plain:>8}{deflated:>14}{sent:>8}{ratio:>8.2}");
    }
    eprintln!("(below {COMPRESS_FROM} bytes a message goes uncompressed)\n");
}

fn codec(c: &mut Criterion) {
    wire_table();
    let mut group = c.benchmark_group("ws_deflate");
    for (name, text) in messages() {
        let bytes = text.into_bytes();
        group.bench_function(format!("compress/{name}"), |b| {
            b.iter(|| deflate(black_box(&bytes)));
        });
        if let Some(mut compressed) = deflate(&bytes) {
            compressed.extend_from_slice(&TAIL);
            group.bench_function(format!("inflate/{name}"), |b| {
                b.iter(|| inflate(black_box(&compressed), 64 * 1024).expect("inflates"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
