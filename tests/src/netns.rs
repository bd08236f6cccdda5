//! A network namespace of the test's own, for tests that need client
//! addresses other than loopback (per-address caps exempt loopback): a
//! child process made by `unshare -n` holds the namespace, with the given
//! IPv6 addresses (use `fd00::/8`, unique local) on its loopback
//! interface, and [`NetNs::run`] runs a future on a thread that joined it.
//! Nothing leaves the machine: the namespace has no other interface.

use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::os::fd::AsFd as _;
use std::process::{Child, Command, Stdio};

/// A private network namespace; dropped, it is gone.
#[derive(Debug)]
pub struct NetNs {
    holder: Child,
    ns: std::fs::File,
}

impl NetNs {
    /// A namespace with `addresses` (IPv6, each as a /64 on loopback), or
    /// why not (no `unshare`/`ip`, or no permission to make one).
    ///
    /// # Errors
    /// The namespace could not be made.
    pub fn new(addresses: &[&str]) -> Result<Self, String> {
        let mut script = String::from("ip link set lo up");
        for a in addresses {
            script.push_str(&format!(" && ip -6 addr add {a}/64 dev lo nodad"));
        }
        script.push_str(" && echo ready && exec sleep 3600");
        let mut holder = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let mut line = String::new();
        let stdout = holder.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let _ = holder.kill();
            let out = holder.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "unshare -n: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", holder.id()))
            .map_err(|e| format!("the namespace's handle: {e}"))?;
        Ok(Self { holder, ns })
    }

    /// Runs `make()`'s future to its end on a thread that joined the
    /// namespace, on a runtime of its own (its worker and blocking threads
    /// start from that thread, so every socket of the future is inside).
    ///
    /// # Panics
    /// The thread could not join the namespace, or the future panicked.
    pub fn run<F, Fut>(&self, make: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    rustix::thread::move_into_link_name_space(
                        self.ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .expect("setns into the test's network namespace");
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("a runtime")
                        .block_on(make())
                })
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
