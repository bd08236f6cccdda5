//! The open-file limit: every socket is a descriptor.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when it is lower, and
/// logs the limit in force, once per process (the REST and WebSocket
/// listeners and the wiring all ask). Returns the soft limit (`None`:
/// unlimited).
pub fn raise_open_file_limit() -> Option<u64> {
    static RAISED: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *RAISED.get_or_init(raise)
}

fn raise() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(from = current, to = maximum, "raised the open-file limit"),
            Err(e) => {
                tracing::warn!(error = %e, current, maximum, "could not raise the open-file limit")
            }
        }
    }
    let limit = getrlimit(Resource::Nofile);
    tracing::info!(soft = ?limit.current, hard = ?limit.maximum, "open-file limit (one per connection)");
    limit.current
}
