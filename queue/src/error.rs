//! Library errors and the Kafka error codes they map to.

use std::fmt;

/// A Kafka protocol error code: an open set of `i16` values with named
/// constants for the ones this server sends, printed by name in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i16);

macro_rules! codes {
    ($($name:ident = $v:expr;)*) => {
        impl ErrorCode {
            $(#[allow(missing_docs)] pub const $name: ErrorCode = ErrorCode($v);)*
            /// The protocol's name for this code, if known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some(stringify!($name)),)* _ => None }
            }
        }
    };
}

codes! {
    UNKNOWN_SERVER_ERROR = -1;
    NONE = 0;
    OFFSET_OUT_OF_RANGE = 1;
    CORRUPT_MESSAGE = 2;
    UNKNOWN_TOPIC_OR_PARTITION = 3;
    INVALID_FETCH_SIZE = 4;
    MESSAGE_TOO_LARGE = 10;
    COORDINATOR_NOT_AVAILABLE = 15;
    NOT_COORDINATOR = 16;
    INVALID_TOPIC_EXCEPTION = 17;
    RECORD_LIST_TOO_LARGE = 18;
    INVALID_REQUIRED_ACKS = 21;
    ILLEGAL_GENERATION = 22;
    INCONSISTENT_GROUP_PROTOCOL = 23;
    INVALID_GROUP_ID = 24;
    UNKNOWN_MEMBER_ID = 25;
    INVALID_SESSION_TIMEOUT = 26;
    REBALANCE_IN_PROGRESS = 27;
    INVALID_COMMIT_OFFSET_SIZE = 28;
    UNSUPPORTED_VERSION = 35;
    TOPIC_ALREADY_EXISTS = 36;
    INVALID_PARTITIONS = 37;
    INVALID_REPLICATION_FACTOR = 38;
    INVALID_REQUEST = 42;
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43;
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45;
    DUPLICATE_SEQUENCE_NUMBER = 46;
    INVALID_PRODUCER_EPOCH = 47;
    INVALID_CONFIG = 40;
    INVALID_RECORD = 87;
    KAFKA_STORAGE_ERROR = 56;
    UNKNOWN_PRODUCER_ID = 59;
    GROUP_ID_NOT_FOUND = 69;
    NON_EMPTY_GROUP = 68;
    MEMBER_ID_REQUIRED = 79;
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53;
    UNSUPPORTED_COMPRESSION_TYPE = 76;
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({})", self.0),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Errors of the queue's library calls.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The topic or partition does not exist.
    #[error("unknown topic or partition {topic}/{partition}")]
    UnknownTopicOrPartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The topic already exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// Illegal topic name.
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    /// Bad partition count or config value.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A record batch failed validation.
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    /// A batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Batch size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The offset is before the log start or after the high watermark.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// High watermark.
        end: i64,
    },
    /// Idempotent producer sequence error.
    #[error("producer error: {0:?}")]
    Producer(ErrorCode),
    /// The group has active members, so its offsets cannot be reset.
    #[error("group {0} has active members")]
    GroupNotEmpty(String),
    /// Disk I/O failed (full disk, bad sector...).
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The state store failed.
    #[error("state store error: {0}")]
    State(String),
}

impl QueueError {
    /// The Kafka error code a client gets for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownTopicOrPartition { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            Self::TopicExists(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
            Self::InvalidTopic(..) => ErrorCode::INVALID_TOPIC_EXCEPTION,
            Self::InvalidArgument(_) => ErrorCode::INVALID_CONFIG,
            Self::Corrupt(_) => ErrorCode::CORRUPT_MESSAGE,
            Self::MessageTooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
            Self::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
            Self::Producer(c) => *c,
            Self::GroupNotEmpty(_) => ErrorCode::NON_EMPTY_GROUP,
            Self::Io(_) | Self::State(_) => ErrorCode::KAFKA_STORAGE_ERROR,
        }
    }
}

/// Result alias for the queue's library calls.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
