//! `loadtest`: an MQTT load generator and benchmark tool (a better
//! emqtt-bench). Drives many `mqtt::session::client::ClientSession`s over
//! TCP with our own codec, measures rates, loss and end-to-end latency, and
//! compares brokers side by side (`compare`).
//!
//! A library first so the tests can run scenarios against an in-process
//! hub; `main.rs` is the CLI.

pub mod broker;
pub mod compare;
pub mod compare_report;
pub mod driver;
pub mod html;
pub mod machine;
pub mod options;
pub mod payload;
pub mod pipe;
pub mod plan;
pub mod procstat;
pub mod progress;
pub mod report;
pub mod result;
pub mod rlimit;
pub mod roles;
pub mod run;
pub mod runner;
pub mod shared;
pub mod sim;
pub mod stats;
pub mod storm;
pub mod svg;
pub mod transport;
pub mod worker;

pub use options::{MqttVersion, RunOptions, Scenario};
pub use result::RunResult;
pub use run::run_scenario;
