//! MQTT 3.1, 3.1.1 and 5.0 without I/O: packet types, our own codec, topic
//! rules, and the server and client session state machines. Sessions take
//! decoded packets and time and return packets to send and effects; sockets
//! live in the `hub`, `edge-agent` and `loadtest` crates.

pub mod codec;
pub mod error;
pub mod message;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod session;
pub mod topic;

pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::Properties;
pub use reason::ReasonCode;
