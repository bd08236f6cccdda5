//! The allocator setting argon2's memory needs.
//!
//! Each argon2 run allocates its memory afresh (19 MiB at our cost) and
//! frees it after. glibc maps allocations above its mmap threshold directly
//! and unmaps them on free, but by default the threshold is dynamic: the
//! first such free raises it to the freed size, so every later run is carved
//! from the thread's arena instead, and the arenas kept what they were given
//! (494 MiB after 300 hashes beside request-like churn, in
//! `examples/argon2_arenas.rs`). A fixed threshold keeps every run mapped
//! and returned (73 MiB at the peak of the same run, at the same speed).

/// glibc's default threshold, 128 KiB, made fixed (setting it at all turns
/// the dynamic adjustment off).
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Fixes glibc's mmap threshold (see the module). Called once at start, before
/// the hashing threads run; elsewhere than glibc it does nothing. Returns
/// whether the setting was applied.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a malloc parameter (glibc takes its
        // lock); it is safe to call at any time from any thread.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident size of this process, KiB.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The test's name, which its child processes run (`--exact`).
    const TEST: &str = "system::allocator::tests::freed_argon2_memory_goes_back_to_the_system";

    /// What is left resident after three argon2-sized buffers were written
    /// and freed on one thread, in a child process of its own (so no other
    /// test's allocations count), with or without the setting.
    fn kept_after_three_runs(tuned: bool) -> u64 {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
            .env("ALLOCATOR_CHILD", if tuned { "tuned" } else { "default" })
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.split("kept_kib=").nth(1))
            .unwrap_or_else(|| panic!("no result from the child: {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The child's part: three runs, then what they left resident.
    fn three_runs(tuned: bool) {
        if tuned {
            assert!(tune_allocator());
        }
        std::thread::spawn(|| {
            let before = rss_kib();
            for _ in 0..3 {
                let mut run = vec![0u8; 19 * 1024 * 1024];
                for page in run.chunks_mut(4096) {
                    page[0] = 1;
                }
                drop(std::hint::black_box(run));
            }
            println!("kept_kib={}", rss_kib().saturating_sub(before));
        })
        .join()
        .unwrap();
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_argon2_memory_goes_back_to_the_system() {
        if let Ok(mode) = std::env::var("ALLOCATOR_CHILD") {
            return three_runs(mode == "tuned");
        }
        let tuned = kept_after_three_runs(true);
        assert!(tuned < 4 * 1024, "{tuned} KiB kept with the setting");
        let default = kept_after_three_runs(false);
        assert!(
            default > 16 * 1024,
            "glibc's default kept only {default} KiB: the setting may no longer be needed"
        );
    }
}
