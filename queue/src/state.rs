//! Small mutable state (topics and their configs, committed offsets, the
//! producer-id counter, idempotent-producer state) behind the `StateStore`
//! trait, stored in redb. Logs never go here: see `log/`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{QueueError, Result};
use crate::log::producer::ProducerEntry;

/// A topic as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (Kafka UUID) as a u128.
    pub id: u128,
    /// Number of partitions.
    pub partitions: u32,
    /// Per-topic config overrides, Kafka key names.
    pub configs: BTreeMap<String, String>,
}

/// A committed consumer-group offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch the client sent (-1 for none).
    pub leader_epoch: i32,
    /// Client metadata string, kept verbatim.
    pub metadata: Option<String>,
    /// Wall-clock ms of the commit.
    pub commit_ms: i64,
}

/// Storage for the queue's small mutable state.
pub trait StateStore: Send + Sync + 'static {
    /// All topics.
    fn load_topics(&self) -> Result<Vec<TopicMeta>>;
    /// Creates or replaces a topic.
    fn put_topic(&self, meta: &TopicMeta) -> Result<()>;
    /// Removes a topic and its producer state.
    fn delete_topic(&self, name: &str) -> Result<()>;
    /// Stores committed offsets of a group, durably.
    fn commit_offsets(&self, group: &str, offsets: &[(String, i32, CommittedOffset)])
        -> Result<()>;
    /// Committed offsets of a group.
    fn group_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>>;
    /// Groups that have committed offsets.
    fn groups(&self) -> Result<Vec<String>>;
    /// Allocates a new, never reused producer id.
    fn allocate_producer_id(&self) -> Result<i64>;
    /// Stores producer states of a partition; `durable` forces an fsync.
    fn save_producers(
        &self,
        topic: &str,
        partition: i32,
        states: &[(i64, ProducerEntry)],
        durable: bool,
    ) -> Result<()>;
    /// Producer states of a partition.
    fn load_producers(&self, topic: &str, partition: i32) -> Result<HashMap<i64, ProducerEntry>>;
    /// Stores a consumer group's serialized state, durably.
    fn put_group(&self, group: &str, state: &[u8]) -> Result<()>;
    /// Every stored group state.
    fn load_groups(&self) -> Result<Vec<(String, Vec<u8>)>>;
}

const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");
const OFFSETS: TableDefinition<&str, &[u8]> = TableDefinition::new("offsets");
const PRODUCERS: TableDefinition<&str, &[u8]> = TableDefinition::new("producers");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");

/// The redb-backed store.
pub struct RedbStore {
    db: Database,
}

fn st<E: std::fmt::Display>(e: E) -> QueueError {
    QueueError::State(e.to_string())
}

// Keys join parts with NUL, which topic and group names cannot sensibly hold,
// so a prefix range scan finds one group's or partition's entries.
fn offset_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}\0{topic}\0{partition}")
}
fn producer_prefix(topic: &str, partition: i32) -> String {
    format!("{topic}\0{partition}\0")
}

impl RedbStore {
    /// Opens or creates the database file.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(st)?;
        let tx = db.begin_write().map_err(st)?;
        {
            tx.open_table(TOPICS).map_err(st)?;
            tx.open_table(OFFSETS).map_err(st)?;
            tx.open_table(PRODUCERS).map_err(st)?;
            tx.open_table(META).map_err(st)?;
            tx.open_table(GROUPS).map_err(st)?;
        }
        tx.commit().map_err(st)?;
        Ok(Self { db })
    }

    fn scan_prefix(
        &self,
        table: TableDefinition<&str, &[u8]>,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(st)?;
        let t = tx.open_table(table).map_err(st)?;
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(st)? {
            let (k, v) = item.map_err(st)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl StateStore for RedbStore {
    fn load_topics(&self) -> Result<Vec<TopicMeta>> {
        let mut out = Vec::new();
        for (_, v) in self.scan_prefix(TOPICS, "")? {
            out.push(serde_json::from_slice(&v).map_err(st)?);
        }
        Ok(out)
    }

    fn put_topic(&self, meta: &TopicMeta) -> Result<()> {
        let v = serde_json::to_vec(meta).map_err(st)?;
        let tx = self.db.begin_write().map_err(st)?;
        tx.open_table(TOPICS)
            .map_err(st)?
            .insert(meta.name.as_str(), v.as_slice())
            .map_err(st)?;
        tx.commit().map_err(st)
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        let prefix = format!("{name}\0");
        let producer_keys: Vec<String> = self
            .scan_prefix(PRODUCERS, &prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let tx = self.db.begin_write().map_err(st)?;
        {
            tx.open_table(TOPICS)
                .map_err(st)?
                .remove(name)
                .map_err(st)?;
            let mut p = tx.open_table(PRODUCERS).map_err(st)?;
            for k in &producer_keys {
                p.remove(k.as_str()).map_err(st)?;
            }
        }
        tx.commit().map_err(st)
    }

    fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<()> {
        let tx = self.db.begin_write().map_err(st)?;
        {
            let mut t = tx.open_table(OFFSETS).map_err(st)?;
            for (topic, partition, c) in offsets {
                let v = serde_json::to_vec(c).map_err(st)?;
                t.insert(offset_key(group, topic, *partition).as_str(), v.as_slice())
                    .map_err(st)?;
            }
        }
        tx.commit().map_err(st)
    }

    fn group_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>> {
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(OFFSETS, &format!("{group}\0"))? {
            let mut parts = k.splitn(3, '\0').skip(1);
            let (Some(topic), Some(p)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(p) = p.parse() else { continue };
            out.push((
                topic.to_string(),
                p,
                serde_json::from_slice(&v).map_err(st)?,
            ));
        }
        Ok(out)
    }

    fn groups(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for (k, _) in self.scan_prefix(OFFSETS, "")? {
            let g = k.split('\0').next().unwrap_or_default().to_string();
            if out.last() != Some(&g) {
                out.push(g);
            }
        }
        Ok(out)
    }

    fn allocate_producer_id(&self) -> Result<i64> {
        let tx = self.db.begin_write().map_err(st)?;
        let id = {
            let mut t = tx.open_table(META).map_err(st)?;
            let id = t
                .get("next_producer_id")
                .map_err(st)?
                .map_or(1000, |v| v.value());
            t.insert("next_producer_id", id + 1).map_err(st)?;
            id
        };
        tx.commit().map_err(st)?;
        i64::try_from(id).map_err(st)
    }

    fn save_producers(
        &self,
        topic: &str,
        partition: i32,
        states: &[(i64, ProducerEntry)],
        durable: bool,
    ) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(st)?;
        if !durable {
            tx.set_durability(Durability::Eventual);
        }
        {
            let mut t = tx.open_table(PRODUCERS).map_err(st)?;
            for (id, e) in states {
                let v = serde_json::to_vec(e).map_err(st)?;
                let k = format!("{}{id}", producer_prefix(topic, partition));
                t.insert(k.as_str(), v.as_slice()).map_err(st)?;
            }
        }
        tx.commit().map_err(st)
    }

    fn put_group(&self, group: &str, state: &[u8]) -> Result<()> {
        let tx = self.db.begin_write().map_err(st)?;
        tx.open_table(GROUPS)
            .map_err(st)?
            .insert(group, state)
            .map_err(st)?;
        tx.commit().map_err(st)
    }

    fn load_groups(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.scan_prefix(GROUPS, "")
    }

    fn load_producers(&self, topic: &str, partition: i32) -> Result<HashMap<i64, ProducerEntry>> {
        let prefix = producer_prefix(topic, partition);
        let mut out = HashMap::new();
        for (k, v) in self.scan_prefix(PRODUCERS, &prefix)? {
            let Ok(id) = k[prefix.len()..].parse::<i64>() else {
                continue;
            };
            out.insert(id, serde_json::from_slice(&v).map_err(st)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("state.redb")).unwrap();
        let c = CommittedOffset {
            offset: 5,
            leader_epoch: -1,
            metadata: Some("m".into()),
            commit_ms: 1,
        };
        s.commit_offsets(
            "g",
            &[("t".into(), 0, c.clone()), ("t".into(), 1, c.clone())],
        )
        .unwrap();
        s.commit_offsets("g2", &[("t".into(), 0, c.clone())])
            .unwrap();
        assert_eq!(s.group_offsets("g").unwrap().len(), 2);
        assert_eq!(s.groups().unwrap(), vec!["g".to_string(), "g2".to_string()]);
        let a = s.allocate_producer_id().unwrap();
        assert_eq!(s.allocate_producer_id().unwrap(), a + 1);
        let e = ProducerEntry {
            epoch: 3,
            ..Default::default()
        };
        s.save_producers("t", 0, &[(a, e.clone())], false).unwrap();
        assert_eq!(s.load_producers("t", 0).unwrap().get(&a), Some(&e));
        s.delete_topic("t").unwrap();
        assert!(s.load_producers("t", 0).unwrap().is_empty());
    }
}
