//! The front-line MQTT server: listeners, connection tasks, the topic trie
//! router, sessions and their persistence, `$SYS` statistics. A library
//! first, so tests, the loadtest simulation and the edge agent can run it
//! in-process; `main.rs` is a thin CLI over `server::start`.

pub mod access;
pub mod acl;
pub mod admin;
pub mod admission;
pub mod alerts;
pub mod auth;
pub mod bridge_glue;
pub mod broker;
pub mod config;
pub mod connection;
pub mod deadlines;
pub mod doorbell;
pub mod fdtable;
pub mod httpq;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod peer;
pub mod ratelimit;
pub mod receipts;
pub mod router;
pub mod server;
pub mod session;
pub mod store;
pub mod subscription_set;
pub mod subscriptions;
pub mod sys;
pub mod tenant;
pub mod trace;
pub mod transport;

pub use config::Config;
pub use server::{start, HubHandle};
