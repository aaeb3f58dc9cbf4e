//! `Broker`: the queue's library API. Owns the topics, the state store and
//! the group service; the Kafka server (`server.rs`) and the hub's bridge
//! both go through it.

mod messages;

pub use messages::{Message, StoredMessage};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use crate::config::{FlushPolicy, QueueConfig};
use crate::error::{QueueError, Result};
use crate::group::GroupService;
use crate::log::Partition;
use crate::state::{CommittedOffset, RedbStore, StateStore, TopicMeta};
use crate::topic::{self, Topic};
use crate::util::now_ms_i64;

/// Backlog of one group on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset (None if the group never committed here).
    pub committed: Option<i64>,
    /// High watermark.
    pub high_watermark: i64,
    /// high watermark - committed (or - log start when nothing is committed).
    pub lag: i64,
}

pub(crate) struct Inner {
    pub(crate) config: QueueConfig,
    pub(crate) state: Arc<dyn StateStore>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation and deletion (which touch disk and the store).
    topic_admin: Mutex<()>,
    /// Woken on every append, for long-polling fetches.
    pub(crate) data_arrived: Notify,
    pub(crate) groups: GroupService,
    pub(crate) bound: Mutex<Option<SocketAddr>>,
    pub(crate) counters: Counters,
}

/// Traffic counters, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records appended (produce and in-process appends).
    pub appended_records: std::sync::atomic::AtomicU64,
    /// Bytes of record batches appended.
    pub appended_bytes: std::sync::atomic::AtomicU64,
    /// Partition reads (fetches) served.
    pub fetches: std::sync::atomic::AtomicU64,
    /// Bytes of record batches returned by reads.
    pub fetched_bytes: std::sync::atomic::AtomicU64,
}

/// The embedded queue. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

fn log_dir(cfg: &QueueConfig, topic: &str, partition: u32) -> PathBuf {
    cfg.data_dir
        .join("logs")
        .join(format!("{topic}-{partition}"))
}

fn random_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut out = 0u128;
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(out ^ crate::util::now_ms() as u128);
        out = (out << 64) | u128::from(h.finish());
    }
    out
}

impl Broker {
    /// Opens the queue in `config.data_dir`, recovering every partition.
    pub fn open(config: QueueConfig) -> Result<Self> {
        if config.data_dir.as_os_str().is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "queue data_dir is not set",
            )
            .into());
        }
        std::fs::create_dir_all(config.data_dir.join("logs"))?;
        let state: Arc<dyn StateStore> =
            Arc::new(RedbStore::open(&config.data_dir.join("state.redb"))?);
        Self::open_with_store(config, state)
    }

    /// Opens the queue with a caller-supplied state store.
    pub fn open_with_store(config: QueueConfig, state: Arc<dyn StateStore>) -> Result<Self> {
        std::fs::create_dir_all(config.data_dir.join("logs"))?;
        let mut topics = HashMap::new();
        for meta in state.load_topics()? {
            let t = Self::open_topic(&config, state.as_ref(), &meta)?;
            topics.insert(meta.name.clone(), Arc::new(t));
        }
        let groups = GroupService::new(Some(state.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                state,
                topics: RwLock::new(topics),
                topic_admin: Mutex::new(()),
                data_arrived: Notify::new(),
                groups,
                bound: Mutex::new(None),
                counters: Counters::default(),
            }),
        })
    }

    fn open_topic(config: &QueueConfig, state: &dyn StateStore, meta: &TopicMeta) -> Result<Topic> {
        let log = topic::log_config(config, &meta.configs)?;
        let now = now_ms_i64();
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        for p in 0..meta.partitions {
            let producers = state.load_producers(&meta.name, p as i32)?;
            partitions.push(Arc::new(Partition::open(
                &log_dir(config, &meta.name, p),
                producers,
                now,
            )?));
        }
        Ok(Topic {
            name: meta.name.clone(),
            id: meta.id,
            partitions,
            log,
            overrides: meta.configs.clone(),
        })
    }

    /// Changes a topic's config overrides (retention, flush policy, ...):
    /// `set` entries replace or add, `remove` keys fall back to the broker
    /// default. The partitions stay open; later appends and retention passes
    /// use the new settings.
    pub fn alter_topic_config(
        &self,
        name: &str,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<()> {
        let _admin = self
            .inner
            .topic_admin
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let t = self
            .topic(name)
            .ok_or_else(|| QueueError::UnknownTopicOrPartition {
                topic: name.to_string(),
                partition: -1,
            })?;
        let mut configs = t.overrides.clone();
        for k in remove {
            configs.remove(k);
        }
        for (k, v) in set {
            configs.insert(k.clone(), v.clone());
        }
        let log = topic::log_config(&self.inner.config, &configs)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: t.id,
            partitions: t.partitions.len() as u32,
            configs: configs.clone(),
        };
        self.inner.state.put_topic(&meta)?;
        let altered = Topic {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.clone(),
            log,
            overrides: configs,
        };
        self.inner
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(altered));
        tracing::info!(topic = name, "altered topic config");
        Ok(())
    }

    /// Woken on every append: in-process long polls wait on it.
    pub fn data_arrived(&self) -> &Notify {
        &self.inner.data_arrived
    }

    /// Append and fetch counters since start.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Every group the queue knows: with live members or with committed offsets.
    pub fn group_names(&self) -> Result<Vec<String>> {
        let mut names = self.inner.state.groups()?;
        names.extend(self.inner.groups.list().into_iter().map(|(n, _, _)| n));
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The configuration in force.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// Host and port clients should connect to.
    pub fn advertised(&self) -> (String, i32) {
        let cfg = &self.inner.config;
        let bound = *self.inner.bound.lock().unwrap_or_else(|e| e.into_inner());
        let addr = bound.unwrap_or(cfg.listen);
        let host = if !cfg.advertised_host.is_empty() {
            cfg.advertised_host.clone()
        } else if addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            addr.ip().to_string()
        };
        let port = if cfg.advertised_port != 0 {
            cfg.advertised_port
        } else {
            addr.port()
        };
        (host, i32::from(port))
    }

    /// Creates a topic. `partitions` 0 means the configured default.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(String, String)],
    ) -> Result<()> {
        topic::validate_name(name)?;
        let partitions = if partitions == 0 {
            self.inner.config.default_partitions.max(1)
        } else {
            partitions
        };
        if partitions > 10_000 {
            return Err(QueueError::InvalidArgument(format!(
                "{partitions} partitions is more than 10000"
            )));
        }
        let configs: BTreeMap<String, String> = configs.iter().cloned().collect();
        topic::log_config(&self.inner.config, &configs)?;
        let _admin = self
            .inner
            .topic_admin
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.topic(name).is_some() {
            return Err(QueueError::TopicExists(name.to_string()));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: random_u128(),
            partitions,
            configs,
        };
        // Remove leftovers of a deleted topic of the same name before creating the logs.
        for p in 0..partitions {
            let _ = std::fs::remove_dir_all(log_dir(&self.inner.config, name, p));
        }
        let t = Self::open_topic(&self.inner.config, self.inner.state.as_ref(), &meta)?;
        self.inner.state.put_topic(&meta)?;
        self.inner
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(t));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(())
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self
            .inner
            .topic_admin
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let t = self
            .inner
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| QueueError::UnknownTopicOrPartition {
                topic: name.to_string(),
                partition: -1,
            })?;
        self.inner.state.delete_topic(name)?;
        for p in 0..t.partitions.len() {
            let _ = std::fs::remove_dir_all(log_dir(&self.inner.config, name, p as u32));
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Returns the topic, creating it when auto-creation is on and `auto_create` is set.
    pub fn topic_or_create(&self, name: &str, auto_create: bool) -> Result<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if auto_create && self.inner.config.auto_create_topics {
            match self.create_topic(name, 0, &[]) {
                Ok(()) | Err(QueueError::TopicExists(_)) => {}
                Err(e) => return Err(e),
            }
            if let Some(t) = self.topic(name) {
                return Ok(t);
            }
        }
        Err(QueueError::UnknownTopicOrPartition {
            topic: name.to_string(),
            partition: -1,
        })
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub(crate) fn partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(Arc<Topic>, Arc<Partition>)> {
        let t = self
            .topic(topic)
            .ok_or_else(|| QueueError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition,
            })?;
        let p = t.partition(partition)?.clone();
        Ok((t, p))
    }

    /// First offset whose timestamp is >= `ts` (the high watermark if none).
    pub fn offset_for_timestamp(&self, topic: &str, partition: i32, ts: i64) -> Result<i64> {
        let (_, p) = self.partition(topic, partition)?;
        Ok(p.offset_for_timestamp(ts)?
            .map_or_else(|| p.high_watermark(), |(o, _)| o))
    }

    /// Stores committed offsets for a group.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<()> {
        self.inner.state.commit_offsets(group, offsets)
    }

    /// Committed offsets of a group.
    pub fn committed_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>> {
        self.inner.state.group_offsets(group)
    }

    /// Per-partition backlog of a group over every partition it committed to.
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        let mut out = Vec::new();
        for (topic, partition, c) in self.inner.state.group_offsets(group)? {
            let Ok((_, p)) = self.partition(&topic, partition) else {
                continue;
            };
            let hw = p.high_watermark();
            let from = if c.offset < 0 {
                p.log_start_offset()
            } else {
                c.offset.max(p.log_start_offset())
            };
            out.push(PartitionLag {
                topic,
                partition,
                committed: Some(c.offset),
                high_watermark: hw,
                lag: (hw - from).max(0),
            });
        }
        Ok(out)
    }

    /// Message backtracking: sets the group's committed offset on every
    /// partition of `topic` to the first message at or after `ts_ms`. Allowed
    /// only while the group has no active members, as in Kafka.
    pub fn reset_group_offsets_to_timestamp(
        &self,
        group: &str,
        topic: &str,
        ts_ms: i64,
    ) -> Result<Vec<(i32, i64)>> {
        if !self.inner.groups.is_inactive(group) {
            return Err(QueueError::GroupNotEmpty(group.to_string()));
        }
        let t = self
            .topic(topic)
            .ok_or_else(|| QueueError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition: -1,
            })?;
        let now = now_ms_i64();
        let mut commits = Vec::new();
        let mut out = Vec::new();
        for (i, p) in t.partitions.iter().enumerate() {
            let off = p
                .offset_for_timestamp(ts_ms)?
                .map_or_else(|| p.high_watermark(), |(o, _)| o);
            out.push((i as i32, off));
            commits.push((
                topic.to_string(),
                i as i32,
                CommittedOffset {
                    offset: off,
                    leader_epoch: -1,
                    metadata: None,
                    commit_ms: now,
                },
            ));
        }
        self.inner.state.commit_offsets(group, &commits)?;
        Ok(out)
    }

    /// fsyncs every partition with unsynced writes and persists changed producer state.
    pub fn flush_all(&self) -> Result<()> {
        let mut first_err = None;
        for t in self.topics() {
            for (i, p) in t.partitions.iter().enumerate() {
                if t.log.flush != FlushPolicy::None {
                    if let Err(e) = p.flush() {
                        first_err.get_or_insert(e);
                    }
                }
                let dirty = p.take_dirty_producers();
                if !dirty.is_empty() {
                    let durable = t.log.flush == FlushPolicy::Sync;
                    if let Err(e) = self
                        .inner
                        .state
                        .save_producers(&t.name, i as i32, &dirty, durable)
                    {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Applies retention to every partition; returns the number of segments deleted.
    pub fn enforce_retention(&self) -> Result<usize> {
        let now = now_ms_i64();
        let mut n = 0;
        for t in self.topics() {
            for p in &t.partitions {
                n += p.enforce_retention(&t.log, now)?;
            }
        }
        Ok(n)
    }

    /// Flushes everything; call before dropping at shutdown.
    pub fn close(&self) -> Result<()> {
        self.flush_all()?;
        for t in self.topics() {
            for p in &t.partitions {
                p.close()?;
            }
        }
        Ok(())
    }

    /// The consumer-group service.
    pub fn groups(&self) -> &GroupService {
        &self.inner.groups
    }
}
