//! Who is asking, as the edge saw it.

/// The client of a request: what the audit trail, the throttle and a
/// session's row record about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client address (peer, or forwarded by a trusted proxy).
    pub ip: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// The key the client proved it holds with this request (a DPoP proof
    /// that passed every check): a login binds the new family to it, a
    /// refresh of a bound family needs it (contract v3, "DPoP").
    pub key: Option<domain::dpop::Jkt>,
}
