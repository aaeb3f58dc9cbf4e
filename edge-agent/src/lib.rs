//! Edge agent: a gateway's local MQTT listener, a disk buffer that keeps
//! every accepted message until the hub acknowledged it, and the uplink
//! that forwards the buffer to the hub.
//!
//! `agent` wires the parts: `local` (in-process hub for devices plus the
//! forwarder into the buffer), `buffer` (segment log, quota, recovery),
//! `uplink` (MQTT 5 client over a `transport`: TCP, TLS or QUIC, with
//! `backoff`, a watchdog and a `fallback` route), `ids` (stable message ids and time stamps), `status` (health figures,
//! published on a status topic and served by `status_http`), `config`.

pub mod agent;
pub mod backoff;
pub mod buffer;
pub mod config;
pub mod fallback;
pub mod ids;
pub mod local;
pub mod status;
pub mod status_http;
pub mod transport;
pub mod uplink;
