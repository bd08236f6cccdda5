//! CPU per bare access-token signature when 1 or 2 threads sign at once:
//! the yardstick for "CPU per refresh against the bare signature cost"
//! (issue #16), measured beside a refresh load run so that both see the
//! same machine (on a 2-vCPU VM, two threads computing at once each run
//! slower than one alone).
//!
//! `cargo run --release -p adapters --example sign_cpu -- RS256 4096 2 5`
//! (algorithm, RSA bits, threads, seconds).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement tool: a failed step ends the run"
)]

use std::time::{Duration, Instant};

use adapters::crypto::jws_keys::KeyPair;
use domain::Algorithm;

/// User and system CPU of this process, every thread, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a number");
    (ticks(14) + ticks(15)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alg = Algorithm::parse(args.first().map_or("RS256", String::as_str))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bits: usize = args.get(1).map_or(Ok(4096), |a| a.parse())?;
    let threads: usize = args.get(2).map_or(Ok(1), |a| a.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(5), |a| a.parse())?;
    let key = KeyPair::generate(alg, bits)?;
    let input = vec![b'x'; 400];
    let (start_cpu, start) = (cpu_seconds(), Instant::now());
    let until = start + Duration::from_secs(seconds);
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        key.sign(&input).expect("sign");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let (cpu, wall) = (cpu_seconds() - start_cpu, start.elapsed().as_secs_f64());
    let total: u64 = counts.iter().sum();
    println!(
        "{alg} {bits} bits, {threads} thread(s): {:.1} signatures/s, {:.3} ms CPU each",
        total as f64 / wall,
        cpu * 1000.0 / total as f64
    );
    Ok(())
}
