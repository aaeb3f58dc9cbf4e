//! Session state machines, no I/O: the server side (one per connected
//! client, driven by the hub) and the client side (used by the edge agent
//! and loadtest). Both take decoded packets and `Instant`s and hand back
//! packets to send, events, and the next time they need to be woken.

pub mod client;
pub mod server;
