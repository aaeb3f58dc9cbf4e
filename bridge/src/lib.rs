//! The bridge between MQTT and the backend queue: uplink rules map device
//! publishes to queue records (appended durably before the device gets its
//! PUBACK), downlink rules turn queue records into MQTT commands, repeats of
//! edge-agent messages are dropped, and delayed messages are held on disk
//! until due. Uplink records go to the embedded queue or, with
//! `backend = "kafka"`, to a Kafka cluster through an on-disk retry buffer
//! (`kafka/`). The bridge does not depend on the hub: the hub calls
//! `Bridge::uplink` for each publish and implements `HubPort` for the way
//! back. See ARCHITECTURE.md for the write path and recovery.

pub mod backend;
pub mod batch;
pub mod config;
pub mod consumer;
pub mod counters;
pub mod dedupe;
pub mod delayed;
pub mod downlink;
pub mod headers;
pub mod kafka;
pub mod partitioner;
pub mod port;
pub mod receipts;
pub mod retry;
pub mod sink;
pub mod template;
pub mod uplink;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mqtt::message::Message;
use tokio::sync::watch;

pub use backend::Sink;
pub use batch::{BatchAck, Outcomes, UplinkBatch};
pub use config::{Backend, BridgeConfig, ConfigError, Rules};
pub use counters::{Counters, RuleCounters};
pub use delayed::{parse_delayed, DelayError, DelayStore};
pub use port::{Command, HubPort, Injected};
pub use sink::{EmbeddedSink, SinkError};

use dedupe::Dedupe;
use uplink::Published;

/// Starting the bridge failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("bridge rules need the embedded queue ([queue] enabled = true)")]
    NoQueue,
    #[error("queue topic {topic}: {source}")]
    Topic {
        topic: String,
        source: queue::QueueError,
    },
    #[error("kafka backend: {0}")]
    Kafka(#[from] kafka::KafkaStartError),
}

/// The running bridge.
pub struct Bridge {
    config: RwLock<Arc<(BridgeConfig, Rules)>>,
    /// The queue handles are taken out by `stop`, so the queue's files are
    /// released when the hub stops (a restart in the same process reopens them).
    queue: RwLock<Option<queue::Broker>>,
    sink: RwLock<Option<Sink>>,
    dedupe: Mutex<Dedupe>,
    delay: RwLock<Option<Arc<DelayStore>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    sink_task: Mutex<Option<sink::SinkTask>>,
    receipts: RwLock<Option<receipts::Receipts>>,
    pub counters: Arc<Counters>,
    boot: u64,
    seq: AtomicU64,
}

fn create_missing(
    q: &queue::Broker,
    topic: &str,
    partitions: u32,
    flush: Option<config::RuleFlush>,
) -> Result<(), StartError> {
    if q.topic(topic).is_some() {
        return Ok(());
    }
    let overrides: Vec<(String, String)> = flush
        .map(|f| vec![("flush.policy".to_string(), f.as_str().to_string())])
        .unwrap_or_default();
    match q.create_topic(topic, partitions, &overrides) {
        Ok(()) | Err(queue::QueueError::TopicExists(_)) => Ok(()),
        Err(source) => Err(StartError::Topic {
            topic: topic.to_string(),
            source,
        }),
    }
}

impl Bridge {
    /// Validates the config, creates the topics its rules name, opens the
    /// delay store. Call from inside a tokio runtime.
    pub fn new(
        cfg: &BridgeConfig,
        queue: Option<queue::Broker>,
    ) -> Result<Arc<Bridge>, StartError> {
        let rules = cfg.compile()?;
        let counters = Arc::new(Counters::default());
        let kafka = cfg.backend == config::Backend::Kafka;
        let active = cfg.enabled
            && ((!kafka && !rules.uplink.is_empty())
                || !rules.downlink.is_empty()
                || !cfg.retry.topics.is_empty());
        if active && queue.is_none() {
            return Err(StartError::NoQueue);
        }
        let mut delay = None;
        if let (Some(q), true) = (&queue, cfg.enabled) {
            for r in rules.uplink.iter().filter(|_| !kafka) {
                if let Some(t) = &r.topic {
                    create_missing(q, t, r.partitions, r.flush)?;
                }
            }
            for r in &rules.downlink {
                create_missing(q, &r.topic, r.partitions, None)?;
                if let Some(t) = &r.receipts_topic {
                    create_missing(q, t, 1, None)?;
                }
            }
            for t in &cfg.retry.topics {
                for name in [t.clone(), format!("{t}.retry"), format!("{t}.dlq")] {
                    create_missing(q, &name, 1, None)?;
                }
            }
            if cfg.delayed.enabled {
                let store = DelayStore::open(q.clone(), &cfg.delayed, counters.clone()).map_err(
                    |source| StartError::Topic {
                        topic: cfg.delayed.topic.clone(),
                        source,
                    },
                )?;
                delay = Some(Arc::new(store));
            }
        }
        let (sink, sink_task) = match (&queue, cfg.enabled, kafka) {
            (_, true, true) => {
                let mut topics: Vec<(String, u32)> = Vec::new();
                for r in &rules.uplink {
                    let dlq = (r.dead_letter_topic.to_string(), 1);
                    for t in r
                        .topic
                        .clone()
                        .map(|t| (t, r.partitions))
                        .into_iter()
                        .chain([dlq])
                    {
                        if !topics.iter().any(|(n, _)| *n == t.0) {
                            topics.push(t);
                        }
                    }
                }
                let (s, t) = kafka::KafkaSink::start(&cfg.kafka, topics, counters.clone())?;
                (Some(Sink::Kafka(s)), Some(t))
            }
            (Some(q), true, false) => {
                let (s, t) = EmbeddedSink::start(q.clone(), counters.clone()).map_err(|e| {
                    StartError::Topic {
                        topic: "(bridge-sink thread)".into(),
                        source: queue::QueueError::Io(e),
                    }
                })?;
                (Some(Sink::Embedded(s)), Some(t))
            }
            _ => (None, None),
        };
        Ok(Arc::new(Bridge {
            dedupe: Mutex::new(Dedupe::new(
                cfg.dedupe.max_ids,
                Duration::from_secs(cfg.dedupe.window_secs),
            )),
            config: RwLock::new(Arc::new((cfg.clone(), rules))),
            queue: RwLock::new(queue),
            sink: RwLock::new(sink),
            delay: RwLock::new(delay),
            tasks: Mutex::new(Vec::new()),
            sink_task: Mutex::new(sink_task),
            receipts: RwLock::new(None),
            counters,
            boot: rand::random::<u64>() >> 16,
            seq: AtomicU64::new(0),
        }))
    }

    /// The rules in force (for the admin API).
    pub fn config(&self) -> BridgeConfig {
        self.active().0.clone()
    }

    fn active(&self) -> Arc<(BridgeConfig, Rules)> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts the downlink consumers and the delay scheduler.
    pub fn run(&self, hub: Arc<dyn HubPort>, shutdown: watch::Receiver<bool>) {
        let active = self.active();
        let (cfg, rules) = &*active;
        if !cfg.enabled {
            return;
        }
        let delay = self.delay();
        let mut tasks = Vec::new();
        if let Some(d) = &delay {
            tasks.push(tokio::spawn(d.clone().run(hub.clone(), shutdown.clone())));
        }
        let Some(q) = read(&self.queue) else {
            lock(&self.tasks).extend(tasks);
            return;
        };
        let q = &q;
        if rules.downlink.iter().any(|r| r.receipts_topic.is_some()) {
            let (r, task) =
                receipts::Receipts::start(q.clone(), self.counters.clone(), shutdown.clone());
            *self.receipts.write().unwrap_or_else(|e| e.into_inner()) = Some(r);
            tasks.push(task);
        }
        let mut consume = |topic: &str, group: &str, handler: Arc<dyn consumer::Handler>| {
            let n = q.topic(topic).map_or(0, |t| t.partitions.len());
            for p in 0..n {
                let c = consumer::PartitionConsumer {
                    queue: q.clone(),
                    topic: topic.to_string(),
                    partition: p as i32,
                    group: group.to_string(),
                };
                tasks.push(tokio::spawn(c.run(handler.clone(), shutdown.clone())));
            }
        };
        for rule in &rules.downlink {
            let d = downlink::Downlink {
                rule: rule.clone(),
                hub: hub.clone(),
                delay: delay.clone(),
                counters: self.counters.clone(),
            };
            consume(&rule.topic, &rule.group, Arc::new(d));
        }
        if let Some(delay) = &delay {
            for topic in &cfg.retry.topics {
                let r = retry::RetryLadder {
                    queue: q.clone(),
                    topic: topic.clone(),
                    ladder_secs: cfg.retry.ladder_secs.clone(),
                    delay: delay.clone(),
                    counters: self.counters.clone(),
                };
                consume(&format!("{topic}.retry"), &cfg.retry.group, Arc::new(r));
            }
        }
        lock(&self.tasks).extend(tasks);
    }

    /// After the hub's shutdown signal and once no connection is left:
    /// waits for the bridge's tasks, lets the sink append what it holds,
    /// and drops every queue handle.
    pub async fn stop(&self) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            let _ = t.await;
        }
        drop(
            self.receipts
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        drop(self.sink.write().unwrap_or_else(|e| e.into_inner()).take());
        let sink_task = lock(&self.sink_task).take();
        if let Some(t) = sink_task {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        drop(self.delay.write().unwrap_or_else(|e| e.into_inner()).take());
        drop(self.queue.write().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Replaces the uplink rules and the de-duplication property (downlink
    /// rules take effect at the next start). On error the old rules stay.
    pub fn reload(&self, cfg: &BridgeConfig) -> Result<(), StartError> {
        let mut rules = cfg.compile()?;
        let mut cfg = cfg.clone();
        {
            let active = self.active();
            let running = &active.0;
            // A rule that stays the same keeps counting where it was.
            for r in &mut rules.uplink {
                if let Some(old) = active.1.uplink.iter().find(|o| o.same_as(r)) {
                    r.counters = old.counters.clone();
                }
            }
            if (cfg.backend, &cfg.kafka) != (running.backend, &running.kafka) {
                tracing::warn!(
                    "bridge backend settings changed; they take effect at the next start"
                );
                cfg.backend = running.backend;
                cfg.kafka = running.kafka.clone();
            }
        }
        let kafka = cfg.backend == config::Backend::Kafka;
        if let (Some(q), false) = (read(&self.queue), kafka) {
            for r in &rules.uplink {
                if let Some(t) = &r.topic {
                    create_missing(&q, t, r.partitions, r.flush)?;
                }
            }
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new((cfg.clone(), rules));
        tracing::info!(uplink = cfg.uplink.len(), "bridge rules reloaded");
        Ok(())
    }

    /// The edge-agent id of `m`, if it is a repeat within the window.
    pub fn edge_id<'m>(&self, m: &'m Message) -> Option<&'m str> {
        edge_id_of(&self.active().0.dedupe.property, m)
    }

    /// Whether `id` was accepted recently (the publish is then dropped).
    pub fn is_repeat(&self, id: &str) -> bool {
        let repeat = self
            .dedupe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_repeat(id, Instant::now());
        if repeat {
            Counters::inc(&self.counters.duplicates_dropped);
        }
        repeat
    }

    /// Records `id` as accepted (after the device got a successful ack).
    pub fn remember(&self, id: &str) {
        self.dedupe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remember(id, Instant::now());
    }

    /// Maps a publish through the uplink rules into `batch` (sent later, with
    /// the other publishes of the same read); the range of its records in
    /// the batch, or `None` if no rule matched.
    pub fn uplink_into(
        &self,
        m: &Message,
        username: Option<&str>,
        batch: &mut UplinkBatch,
    ) -> Option<Range<usize>> {
        if batch.active.is_none() {
            batch.active = Some(self.active());
            batch.sink = read(&self.sink);
            batch.publish_ms = delayed::now_ms();
        }
        let UplinkBatch {
            active,
            sink,
            publish_ms,
            encoded,
            writer,
            listed,
        } = batch;
        let (cfg, rules) = &**active.as_ref()?;
        if rules.uplink.is_empty() {
            return None;
        }
        let sink = sink.as_ref()?;
        let id = match edge_id_of(&cfg.dedupe.property, m) {
            Some(id) => uplink::MessageId::Given(id),
            None => uplink::MessageId::Generated {
                boot: self.boot,
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
            },
        };
        let p = Published {
            message: m,
            username,
            publish_ms: *publish_ms,
            id,
        };
        let start = encoded.len() + listed.len();
        let count = |rule: usize| {
            Counters::inc(&self.counters.uplink_matched);
            if let Some(r) = rules.uplink.get(rule) {
                Counters::inc(&r.counters.matched);
            }
        };
        match sink {
            Sink::Embedded(_) => {
                uplink::encode(&rules.uplink, &p, writer, encoded);
                encoded[start..].iter().for_each(|e| count(e.rule));
            }
            Sink::Kafka(_) => {
                listed.extend(uplink::map(&rules.uplink, &p));
                listed[start..].iter().for_each(|r| count(r.rule));
            }
        }
        let end = encoded.len() + listed.len();
        (end > start).then_some(start..end)
    }

    /// Hands one publish to the uplink rules and waits until its records are
    /// durable; `None` if no rule matched.
    pub async fn uplink(
        &self,
        m: &Message,
        username: Option<&str>,
    ) -> Option<Result<Vec<sink::Placed>, SinkError>> {
        let mut batch = UplinkBatch::default();
        let range = self.uplink_into(m, username, &mut batch)?;
        Some(batch.send().await.wait().await.of(range))
    }

    /// Each uplink rule's filter, queue topic and counters, in rule order.
    pub fn rule_counters(&self) -> Vec<(String, Option<String>, Arc<counters::RuleCounters>)> {
        self.active()
            .1
            .uplink
            .iter()
            .map(|r| (r.filter.clone(), r.topic.clone(), r.counters.clone()))
            .collect()
    }

    /// Reports what became of one delivery of a command that asked for
    /// receipts (`request` is what the hub carried with the message).
    pub fn report(
        &self,
        request: &[u8],
        client_id: &str,
        mqtt_topic: &str,
        status: receipts::Status,
        reason: Option<String>,
    ) {
        if let Some(r) = &*self.receipts.read().unwrap_or_else(|e| e.into_inner()) {
            r.report(request, client_id, mqtt_topic, status, reason);
        }
    }

    /// The delay store, when delayed messages are on.
    pub fn delay(&self) -> Option<Arc<DelayStore>> {
        read(&self.delay)
    }
}

/// The value of user property `prop` (the edge agent's message id).
fn edge_id_of<'m>(prop: &str, m: &'m Message) -> Option<&'m str> {
    m.properties
        .user_properties
        .iter()
        .find(|(k, _)| k == prop)
        .map(|(_, v)| v.as_str())
}

fn read<T: Clone>(l: &RwLock<Option<T>>) -> Option<T> {
    l.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
