//! End-to-end and interop tests across the crates, built as one test binary
//! (one link of the whole workspace instead of one per file keeps `target/`
//! small enough for the CI disk). Each module holds one area; run one with
//! `cargo test -p tests --test e2e <module>::`.

mod acl;
mod admin_alerts;
mod admin_api;
mod admin_bridge;
mod admin_console;
mod admin_http_messaging;
mod admin_metrics;
mod admin_queue;
mod admin_trace;
mod auth;
mod bridge_crash;
mod bridge_embedded;
mod bridge_kafka;
mod bridge_receipts;
mod connect;
mod crash;
mod embedded_queue;
mod interop_mosquitto;
mod interop_paho;
mod limits;
mod malformed;
mod publish_qos;
mod rate_limit;
mod retained;
mod sessions;
mod shared;
mod subscriptions;
mod tenants;
mod transport_interop;
mod transport_listeners;
mod transport_quic;
mod transport_tls;
mod transport_ws;
mod will;
