//! What argon2's memory does to the process's resident size: the argon2
//! crate's own functions allocate the 19 MiB of blocks afresh on every run
//! (`hash_password_into`, `per-run`), or one buffer is kept per hashing
//! thread (`hash_password_into_with_memory`, `reuse`, what authd did until
//! `system::tune_allocator` made the first as lean).
//!
//! Two hashing threads run `ROUNDS` argon2id hashes each (OWASP parameters)
//! while four threads churn the allocator the way request handling does
//! (buffers of 64 B to 256 KiB, a few hundred alive at a time). Prints the
//! peak and final resident size and the time per hash.
//!
//! ```text
//! cargo run -p adapters --example argon2_arenas -- per-run
//! cargo run -p adapters --example argon2_arenas -- reuse
//! GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 \
//!     cargo run -p adapters --example argon2_arenas -- per-run
//! ```
//! (dependencies build at opt-level 2 in the dev profile, so argon2 runs at
//! full speed here.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

const ROUNDS: usize = 150;
const HASHERS: usize = 2;
const CHURNERS: usize = 4;

/// `VmRSS` and `VmHWM` of this process, KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Allocates and frees like request handling until `stop`.
fn churn(seed: u64, stop: &AtomicBool) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut live: Vec<Vec<u8>> = Vec::with_capacity(512);
    while !stop.load(Ordering::Relaxed) {
        let size = 64 << (next() % 13); // 64 B .. 256 KiB
        let mut buffer = vec![0u8; usize::try_from(size).unwrap()];
        buffer[0] = 1;
        if live.len() < 300 {
            live.push(buffer);
        } else {
            let at = usize::try_from(next() % 300).unwrap();
            live[at] = buffer;
        }
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "per-run".into());
    let reuse = match mode.as_str() {
        "reuse" => true,
        "per-run" => false,
        other => panic!("unknown mode {other}: per-run or reuse"),
    };
    let params = Params::default();
    let blocks = usize::try_from(params.m_cost()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..CHURNERS)
        .map(|i| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || churn(0x9e37_79b9 + i as u64, &stop))
        })
        .collect();
    let started = Instant::now();
    let hashers: Vec<_> = (0..HASHERS)
        .map(|i| {
            let params = params.clone();
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let mut memory = reuse.then(|| vec![Block::default(); blocks]);
                let mut out = [0u8; 32];
                let salt = [u8::try_from(i).unwrap(); 16];
                for round in 0..ROUNDS {
                    let password = format!("password {round}");
                    match memory.as_mut() {
                        Some(memory) => argon2
                            .hash_password_into_with_memory(
                                password.as_bytes(),
                                &salt,
                                &mut out,
                                memory,
                            )
                            .unwrap(),
                        None => argon2
                            .hash_password_into(password.as_bytes(), &salt, &mut out)
                            .unwrap(),
                    }
                    // A pause between logins lets the churn reuse what was freed.
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    let mut peak = 0;
    while !hashers.iter().all(std::thread::JoinHandle::is_finished) {
        peak = peak.max(memory_kib().0);
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    for h in hashers {
        h.join().unwrap();
    }
    let (during, hwm) = memory_kib();
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        c.join().unwrap();
    }
    let per_hash = elapsed / u32::try_from(ROUNDS).unwrap();
    println!(
        "mode={mode} tunables={:?} rounds={ROUNDS}x{HASHERS} rss_peak_mib={:.1} rss_end_mib={:.1} hwm_mib={:.1} per_hash_ms={:.1}",
        std::env::var("GLIBC_TUNABLES").unwrap_or_default(),
        peak as f64 / 1024.0,
        during as f64 / 1024.0,
        hwm as f64 / 1024.0,
        per_hash.as_secs_f64() * 1000.0
    );
}
