//! Who is on the other end of a connection, as far as the listener knows:
//! which listener accepted it, the remote address, and the identity a
//! client certificate proved. Listeners fill it in; authentication, ACLs
//! and rate limits read it.

use std::net::SocketAddr;
use std::sync::Arc;

/// Name of the listener configured by `[mqtt] listen`.
pub const DEFAULT_LISTENER: &str = "tcp";

#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Name of the listener that accepted the connection (`tcp` for the
    /// default MQTT listener).
    pub listener: Arc<str>,
    /// Remote address, when the transport has one (in-memory pipes do not).
    /// Listeners usually leave it `None` in the shared value they give every
    /// connection; `Connection::peer` then asks the transport.
    pub remote: Option<SocketAddr>,
    /// Identity from a verified client certificate (CN, else first SAN).
    pub cert_identity: Option<String>,
}

impl PeerInfo {
    pub fn new(listener: Arc<str>, remote: Option<SocketAddr>) -> PeerInfo {
        PeerInfo {
            listener,
            remote,
            cert_identity: None,
        }
    }
}
