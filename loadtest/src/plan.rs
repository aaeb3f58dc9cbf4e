//! Turns a scenario and its options into the concrete list of connections
//! a (worker) process opens, and how many deliveries to expect.
//!
//! Publisher and subscriber indices are global across workers, so topics,
//! client ids and payload publisher ids do not depend on how the run is
//! split; worker `w` of `n` takes the indices `i` with `i % n == w`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use mqtt::QoS;

use crate::options::{RunOptions, Scenario};
use crate::payload;
use crate::transport::Dialer;

/// What one connection does.
#[derive(Clone, Debug)]
pub enum Role {
    /// Connects and holds (keep-alive only).
    Idle,
    /// Connects, holds `hold`, disconnects, and again until the run stops.
    Churn {
        hold: Duration,
    },
    Publisher {
        /// Global publisher index (in the payload header).
        index: u32,
        topic: String,
    },
    Subscriber {
        filter: String,
    },
}

#[derive(Clone, Debug)]
pub struct ConnSpec {
    pub client_id: String,
    pub source: Option<IpAddr>,
    pub role: Role,
}

/// The whole run as seen by one process.
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: Scenario,
    /// Stamped into every payload; the same in every worker of a run.
    pub run_id: u32,
    pub broker: SocketAddr,
    /// Opens connections to `broker` over the chosen transport.
    pub dialer: Arc<Dialer>,
    pub protocol: mqtt::Protocol,
    pub qos: QoS,
    pub sub_qos: QoS,
    pub size: usize,
    /// Per publisher; `None` = unlimited.
    pub rate: Option<f64>,
    pub inflight: u16,
    pub keep_alive: Duration,
    pub duration: Duration,
    /// Delay between two connection attempts (zero: no pacing).
    pub connect_interval: Duration,
    pub connect_concurrency: usize,
    pub drain: Duration,
    pub drain_idle: Duration,
    /// Subscribers first: they must be subscribed before anyone publishes.
    pub subscribers: Vec<ConnSpec>,
    /// Publishers, idle and churn connections.
    pub others: Vec<ConnSpec>,
    /// Run-wide counts (all workers), for the report.
    pub total_publishers: usize,
    pub total_subscribers: usize,
    pub total_idle: usize,
    /// For each global publisher, how many run-wide subscribers' filters
    /// match its topic: every message it sends should arrive that often.
    pub fanout_per_publisher: Vec<u64>,
}

struct Shape {
    publishers: usize,
    subscribers: usize,
    idle: usize,
    churn: bool,
    topic: &'static str,
    filter: &'static str,
    qos: Option<QoS>,
}

fn shape(scenario: Scenario, o: &RunOptions) -> Shape {
    let conns = o.connections.unwrap_or(1000);
    let base = Shape {
        publishers: 0,
        subscribers: 0,
        idle: 0,
        churn: false,
        topic: "bench/%i",
        filter: "bench/#",
        qos: None,
    };
    match scenario {
        Scenario::Conn => Shape {
            idle: conns,
            ..base
        },
        Scenario::Churn => Shape {
            idle: conns,
            churn: true,
            ..base
        },
        Scenario::Pub => Shape {
            publishers: o.publishers.unwrap_or(1),
            subscribers: o.subscribers.unwrap_or(0),
            ..base
        },
        Scenario::Sub => Shape {
            subscribers: o.subscribers.unwrap_or(1),
            publishers: o.publishers.unwrap_or(0),
            ..base
        },
        Scenario::Fanin => Shape {
            publishers: o.publishers.unwrap_or(10),
            subscribers: o.subscribers.unwrap_or(1),
            filter: "#",
            ..base
        },
        Scenario::Qos1 | Scenario::Qos2 => Shape {
            publishers: o.publishers.unwrap_or(10),
            subscribers: o.subscribers.unwrap_or(1),
            filter: "#",
            qos: Some(if scenario == Scenario::Qos1 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            }),
            ..base
        },
        Scenario::Fanout => Shape {
            publishers: o.publishers.unwrap_or(1),
            subscribers: o.subscribers.unwrap_or(100),
            topic: "bench/fanout",
            filter: "bench/fanout",
            ..base
        },
    }
}

fn qos(v: u8) -> QoS {
    QoS::from_u8(v).unwrap_or(QoS::AtMostOnce)
}

/// Replaces `%i` by the index.
pub fn expand(pattern: &str, index: usize) -> String {
    pattern.replace("%i", &index.to_string())
}

impl Plan {
    /// The share of worker `worker` out of `workers`.
    pub fn new(
        scenario: Scenario,
        o: &RunOptions,
        worker: usize,
        workers: usize,
    ) -> anyhow::Result<Plan> {
        let workers = workers.max(1);
        let s = shape(scenario, o);
        let broker = resolve(&o.host, o.port)?;
        let topic = o.topic.clone().unwrap_or_else(|| s.topic.to_owned());
        let filter = o.filter.clone().unwrap_or_else(|| s.filter.to_owned());
        let pub_qos = s.qos.unwrap_or(qos(o.qos));
        let sub_qos = o.sub_qos.map(qos).unwrap_or(pub_qos);
        if o.size < payload::HEADER_LEN {
            bail!(
                "--size {} is below the {}-byte payload header",
                o.size,
                payload::HEADER_LEN
            );
        }
        for i in 0..s.publishers {
            mqtt::topic::validate_topic_name(&expand(&topic, i))
                .map_err(|e| anyhow::anyhow!("--topic {topic}: {e}"))?;
        }
        for i in 0..s.subscribers {
            mqtt::topic::validate_topic_filter(&expand(&filter, i))
                .map_err(|e| anyhow::anyhow!("--filter {filter}: {e}"))?;
        }
        let rate = match o.total_rate {
            Some(total) if total > 0.0 && s.publishers > 0 => Some(total / s.publishers as f64),
            Some(_) => None,
            None if o.rate > 0.0 => Some(o.rate),
            None => None,
        };
        let total_conns = s.publishers + s.subscribers + s.idle;
        // Rates are for the whole run: each of `workers` processes dials
        // its share, so its own interval is `workers` times longer.
        let connect_interval = if o.ramp_up > 0.0 && total_conns > 0 {
            Duration::from_secs_f64(o.ramp_up * workers as f64 / total_conns as f64)
        } else if o.connect_rate > 0.0 {
            Duration::from_secs_f64(workers as f64 / o.connect_rate)
        } else {
            Duration::ZERO
        };
        // Source addresses rotate over the global connection number so the
        // split across workers does not matter.
        let source = |n: usize| -> Option<IpAddr> {
            if o.source.is_empty() {
                None
            } else {
                Some(o.source[n % o.source.len()])
            }
        };
        let mine = |i: usize| i % workers == worker;
        let prefix = &o.client_prefix;
        let subscribers = (0..s.subscribers)
            .filter(|&i| mine(i))
            .map(|i| ConnSpec {
                client_id: format!("{prefix}-s-{i}"),
                source: source(i),
                role: Role::Subscriber {
                    filter: expand(&filter, i),
                },
            })
            .collect();
        let mut others: Vec<ConnSpec> = (0..s.publishers)
            .filter(|&i| mine(i))
            .map(|i| ConnSpec {
                client_id: format!("{prefix}-p-{i}"),
                source: source(s.subscribers + i),
                role: Role::Publisher {
                    index: i as u32,
                    topic: expand(&topic, i),
                },
            })
            .collect();
        let idle_role = if s.churn {
            Role::Churn {
                hold: Duration::from_millis(o.churn_hold_ms),
            }
        } else {
            Role::Idle
        };
        others.extend((0..s.idle).filter(|&i| mine(i)).map(|i| ConnSpec {
            client_id: format!("{prefix}-c-{i}"),
            source: source(s.subscribers + s.publishers + i),
            role: idle_role.clone(),
        }));
        let fanout_per_publisher = (0..s.publishers)
            .map(|p| {
                let name = expand(&topic, p);
                (0..s.subscribers)
                    .filter(|&i| mqtt::topic::matches(&expand(&filter, i), &name))
                    .count() as u64
            })
            .collect();
        Ok(Plan {
            scenario,
            run_id: o.run_id.unwrap_or_else(payload::new_run_id),
            broker,
            dialer: Arc::new(Dialer::new(o, broker)?),
            protocol: o.version.protocol(),
            qos: pub_qos,
            sub_qos,
            size: o.size,
            rate,
            inflight: o.inflight.max(1),
            keep_alive: Duration::from_secs(u64::from(o.keep_alive)),
            duration: Duration::from_secs_f64(o.duration.max(0.0)),
            connect_interval,
            connect_concurrency: o.connect_concurrency.max(1),
            drain: Duration::from_secs_f64(o.drain.max(0.0)),
            drain_idle: Duration::from_millis(o.drain_idle_ms),
            subscribers,
            others,
            total_publishers: s.publishers,
            total_subscribers: s.subscribers,
            total_idle: s.idle,
            fanout_per_publisher,
        })
    }
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}
