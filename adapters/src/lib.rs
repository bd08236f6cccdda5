//! Adapters of the auth service: what the application's ports look like on
//! real infrastructure.
//!
//! - [`crypto`]: the hand-rolled RS256 signer/verifier, JWKS, password hashing.
//! - [`persistence`]: SeaORM repositories (PostgreSQL and SQLite), the revocation bus.
//! - [`http`]: the poem-openapi REST edge.
//! - [`ws`]: the async-tungstenite WebSocket edge.
//! - [`mail`]: the mailer on SMTP (lettre) or on `.eml` files.
//! - [`system`]: the clock and the CSPRNG.
//! - [`net`]: address blocks and the request id, for both edges.
//! - [`client_presence`]: whether a request's client is still connected.
//! - [`telemetry`]: security events, metrics, OTLP export.

pub mod client_presence;
pub mod crypto;
pub mod http;
pub mod mail;
pub mod net;
pub mod persistence;
pub mod private_files;
pub mod problem;
pub mod system;
pub mod telemetry;
pub mod webauthn;
pub mod ws;

/// The arrows between the adapter modules point one way: each module may
/// import only the modules listed for it (shared vocabulary such as `net`,
/// `system` and `client_presence` is open to all). A new arrow, or one
/// that closes a cycle, fails here.
#[cfg(test)]
mod arrows {
    use std::path::Path;

    const MODULES: [&str; 6] = ["crypto", "http", "mail", "persistence", "telemetry", "ws"];

    /// What each module may import.
    const ALLOWED: [(&str, &[&str]); 6] = [
        ("crypto", &[]),
        ("http", &["telemetry"]),
        ("mail", &[]),
        ("persistence", &[]),
        ("telemetry", &[]),
        ("ws", &["telemetry"]),
    ];

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }

    #[test]
    fn adapter_modules_import_only_what_they_may() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (module, allowed) in ALLOWED {
            let mut files = vec![(
                format!("{module}.rs"),
                std::fs::read_to_string(src.join(format!("{module}.rs"))).unwrap(),
            )];
            sources(&src.join(module), &mut files);
            for (file, text) in &files {
                for other in MODULES.iter().filter(|m| **m != module) {
                    let used = text.contains(&format!("crate::{other}::"))
                        || text.contains(&format!("crate::{other}}}"))
                        || text.contains(&format!("crate::{other};"));
                    assert!(
                        !used || allowed.contains(other),
                        "{file} imports crate::{other}, which {module} may not"
                    );
                }
            }
        }
    }
}
