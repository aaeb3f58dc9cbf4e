//! Where the hub tells the bridge what became of a command that asked for
//! delivery receipts (`Message::receipt`): acknowledged, expired, dropped
//! (queue full, session ended, refused, no subscriber) or sent at QoS 0.
//! Messages without a request cost one `Option` check.

use bridge::receipts::Status;
use mqtt::message::Message;

use crate::broker::Broker;

/// Reports one delivery of `m` to `client_id`, if `m` asked for receipts.
#[inline]
pub fn report(broker: &Broker, m: &Message, client_id: &str, status: Status, reason: Option<&str>) {
    let Some(request) = &m.receipt else { return };
    if let Some(b) = broker.bridge.get() {
        b.report(
            request,
            client_id,
            &m.topic,
            status,
            reason.map(str::to_string),
        );
    }
}
