//! The embedded persistent backend queue: append-only segment logs, the
//! Kafka wire protocol, and consumer groups, for one node.
//!
//! - `log/`: partition logs of raw v2 record batches in segment files.
//! - `state`: small mutable state (topics, offsets, producer ids) in redb.
//! - `group/`: the consumer-group coordinator, a state machine without I/O.
//! - `protocol/`: Kafka request decoding, dispatch and response encoding.
//! - `server`: the TCP listener and maintenance tasks.
//! - `broker`: the library API the hub and the bridge call.

pub mod broker;
pub mod config;
pub mod error;
pub mod group;
pub mod log;
pub mod protocol;
pub mod server;
pub mod state;
pub mod topic;
mod util;

pub use broker::{Broker, Message, PartitionLag, StoredMessage};
pub use config::{FlushPolicy, QueueConfig, RetentionConfig};
pub use error::{ErrorCode, QueueError, Result};
pub use log::encoded::{EncodedRecord, RecordWriter};
pub use state::{CommittedOffset, RedbStore, StateStore};
