//! What the bridge needs from the hub, as a trait the hub implements (the
//! bridge does not depend on the hub crate): put a message into MQTT
//! routing and say when the hub has durably taken it.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A message for the hub to route (a command or a released delayed message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub user_properties: Vec<(String, String)>,
    /// Message expiry in seconds (header `mqtt.expiry`): a copy still
    /// queued for an offline device after this is dropped as expired.
    pub expiry_secs: Option<u32>,
    /// Where to report what became of each delivery, if the rule asks.
    pub receipt: Option<crate::receipts::ReceiptRequest>,
}

pub type Injected<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait HubPort: Send + Sync + 'static {
    /// Routes `cmd`; resolves once every session it was queued for has it
    /// stored (so a hub restart cannot lose it).
    fn inject(&self, cmd: Command) -> Injected<'_>;
}
