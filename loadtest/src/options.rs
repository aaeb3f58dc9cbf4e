//! Command-line options shared by every scenario, and the scenario names.
//!
//! The same struct is the worker job description (it is serialised to JSON
//! for `--workers`), so every field must survive a round trip through serde.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// Which load shape to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Open connections at a rate and hold them idle.
    Conn,
    /// Publishers only.
    Pub,
    /// Subscribers only (to measure someone else's publishers).
    Sub,
    /// Many publishers to few subscribers.
    Fanin,
    /// One publisher to many subscribers.
    Fanout,
    /// Fan-in at QoS 1 (publishers wait for PUBACK within their window).
    Qos1,
    /// Fan-in at QoS 2.
    Qos2,
    /// Connect/disconnect cycles.
    Churn,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Conn => "conn",
            Scenario::Pub => "pub",
            Scenario::Sub => "sub",
            Scenario::Fanin => "fanin",
            Scenario::Fanout => "fanout",
            Scenario::Qos1 => "qos1",
            Scenario::Qos2 => "qos2",
            Scenario::Churn => "churn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
pub enum MqttVersion {
    #[value(name = "3.1.1", alias = "3", alias = "4")]
    #[serde(rename = "3.1.1")]
    V311,
    #[value(name = "5")]
    #[serde(rename = "5")]
    V5,
}

impl MqttVersion {
    pub fn protocol(self) -> mqtt::Protocol {
        match self {
            MqttVersion::V311 => mqtt::Protocol::V3_1_1,
            MqttVersion::V5 => mqtt::Protocol::V5,
        }
    }
}

/// Everything a run needs. Counts left unset take the scenario's default
/// (see `plan::Plan::new`).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct RunOptions {
    /// Broker host (name or address).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port.
    #[arg(short, long, default_value_t = 1883)]
    pub port: u16,
    /// How to reach the broker: tcp, tls, ws, wss or quic.
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: crate::transport::TransportKind,
    /// PEM CA certificates to verify the broker with (tls, wss, quic).
    #[arg(long)]
    pub cafile: Option<PathBuf>,
    /// Accept any broker certificate (tls, wss, quic), e.g. a self-signed one.
    #[arg(long)]
    pub insecure: bool,
    /// WebSocket path (ws, wss).
    #[arg(long, default_value = "/mqtt")]
    pub ws_path: String,
    /// MQTT protocol version.
    #[arg(short = 'V', long = "mqtt-version", value_enum, default_value = "5")]
    pub version: MqttVersion,
    /// Idle connections (`conn`, `churn`); default 1000.
    #[arg(short = 'n', long)]
    pub connections: Option<usize>,
    /// Publishers; scenario default (fanin/qos1/qos2: 10, fanout/pub: 1).
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Subscribers; scenario default (fanin: 1, fanout: 100, sub: 1).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Messages per second per publisher; 0 = as fast as the window and
    /// the socket allow.
    #[arg(short, long, default_value_t = 0.0)]
    pub rate: f64,
    /// Messages per second across all publishers (overrides --rate).
    #[arg(long)]
    pub total_rate: Option<f64>,
    /// Payload bytes (at least 28: the header carries run, id, sequence, time).
    #[arg(short, long, default_value_t = 64)]
    pub size: usize,
    /// Topic for publisher i; `%i` is replaced by i. Scenario default.
    #[arg(short, long)]
    pub topic: Option<String>,
    /// Filter for subscriber i; `%i` is replaced by i. Scenario default.
    #[arg(short, long)]
    pub filter: Option<String>,
    /// Publish QoS (0, 1, 2); qos1/qos2 scenarios force theirs.
    #[arg(short, long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Subscription QoS; default: the publish QoS.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub sub_qos: Option<u8>,
    /// Unacknowledged QoS 1/2 messages per publisher (and the Receive
    /// Maximum subscribers announce).
    #[arg(long, default_value_t = 64)]
    pub inflight: u16,
    /// Seconds of publishing (or holding, for `conn`).
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds over which connections are opened; 0 = as fast as
    /// --connect-rate allows.
    #[arg(long, default_value_t = 0.0)]
    pub ramp_up: f64,
    /// New connections per second (0 = unlimited) when --ramp-up is 0.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Connections dialling at once; bounds SYN bursts and file use.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Keep-alive in seconds (0 = off).
    #[arg(long, default_value_t = 60)]
    pub keep_alive: u16,
    /// Local source addresses to spread connections over (e.g.
    /// 127.0.0.1,127.0.0.2); each gives its own ~28k ephemeral ports.
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// Worker processes (this binary re-executed); connections are split
    /// between them and results merged.
    #[arg(short, long, default_value_t = 1)]
    pub workers: usize,
    /// Client id prefix; ids are `<prefix>-<role>-<index>`.
    #[arg(long, default_value = "lt")]
    pub client_prefix: String,
    /// `churn`: milliseconds each connection stays up per cycle.
    #[arg(long, default_value_t = 100)]
    pub churn_hold_ms: u64,
    /// Longest wait, in seconds, for in-flight messages after publishing
    /// stops.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Drain ends early once nothing arrived for this many milliseconds.
    #[arg(long, default_value_t = 500)]
    pub drain_idle_ms: u64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HTML report (SVG charts) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Run id stamped into payloads (default: random); set by the parent
    /// for its workers so they recognise each other's messages.
    #[arg(long, hide = true)]
    pub run_id: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            host: "127.0.0.1".into(),
            port: 1883,
            transport: crate::transport::TransportKind::Tcp,
            cafile: None,
            insecure: false,
            ws_path: "/mqtt".into(),
            version: MqttVersion::V5,
            connections: None,
            publishers: None,
            subscribers: None,
            rate: 0.0,
            total_rate: None,
            size: 64,
            topic: None,
            filter: None,
            qos: 0,
            sub_qos: None,
            inflight: 64,
            duration: 10.0,
            ramp_up: 0.0,
            connect_rate: 2000.0,
            connect_concurrency: 200,
            keep_alive: 60,
            source: Vec::new(),
            workers: 1,
            client_prefix: "lt".into(),
            churn_hold_ms: 100,
            drain: 5.0,
            drain_idle_ms: 500,
            json: None,
            html: None,
            quiet: true,
            run_id: None,
        }
    }
}
