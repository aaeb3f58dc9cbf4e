//! The `kafka` backend's sender thread: owns the librdkafka producer, hands
//! it what the book says to send, turns delivery reports into book updates
//! (on this thread, inside `poll`), deletes finished segment files, saves
//! the cursor and fsyncs the buffer on the flush interval.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::ClientContext;

use super::book::Send;
use super::codec::{self, Stored};
use super::config::KafkaConfig;
use super::segment;
use super::{lock, Shared};
use crate::config::ConfigError;
use crate::headers;

/// How long a stopping sender waits for answers to what is in flight (the
/// rest stays in the buffer for the next start).
const STOP_WAIT: Duration = Duration::from_secs(1);
/// The cursor is saved at most this often.
const CURSOR_EVERY: Duration = Duration::from_millis(100);

pub(super) struct Ctx {
    shared: Arc<Shared>,
}

/// librdkafka reports a lost connection as an error, several times over;
/// with the records safe in the buffer it is a warning (the buffer's
/// counters say how far behind Kafka is).
impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, message),
            RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice => {
                tracing::info!(target: "librdkafka", fac, message)
            }
            RDKafkaLogLevel::Warning | RDKafkaLogLevel::Error => {
                tracing::warn!(target: "librdkafka", fac, message)
            }
            _ => tracing::error!(target: "librdkafka", fac, message),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, reason, "kafka client error");
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(_) => lock(&self.shared.core).book.delivered(*seq),
            Err((e, _)) => outcome(&self.shared, *seq, e),
        }
    }
}

/// Records the failure of `seq`: for good (dead letter) or for now (backoff).
fn outcome(shared: &Shared, seq: u64, e: &KafkaError) {
    let mut core = lock(&shared.core);
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => core.book.unsend(seq),
        Some(code) if is_permanent(code) => {
            let reason = if is_too_large(code) {
                format!("too large: {e}")
            } else {
                format!("rejected: {e}")
            };
            tracing::warn!(seq, %reason, "kafka refused a bridged record; dead-lettering it");
            core.book.rejected(seq, reason);
        }
        _ => {
            if let Some(delay) = core.book.failed(seq, Instant::now(), rand::random::<f64>()) {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, pending = core.book.pending(), "kafka send failed; records stay in the bridge buffer");
            }
        }
    }
}

fn is_too_large(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
    )
}

/// Errors that a resend cannot fix.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    is_too_large(code)
        || matches!(
            code,
            RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
        )
}

/// The producer: `acks=all`, idempotent, Kafka's murmur2 partitioner (the
/// embedded backend's too), the configured batching and timeout.
pub(super) fn producer(
    cfg: &KafkaConfig,
    shared: Arc<Shared>,
) -> Result<BaseProducer<Ctx>, ConfigError> {
    let mut c = ClientConfig::new();
    c.set(
        "queue.buffering.max.messages",
        cfg.max_in_flight
            .max(cfg.batch_num_messages as usize)
            .to_string(),
    );
    // librdkafka's own reconnects and retries follow the buffer's backoff
    // (its default reconnect backoff grows to 10 s, which would delay the
    // resend long after the cluster is back). `properties` may override.
    let (initial, max) = (
        cfg.buffer.retry_initial_ms.to_string(),
        cfg.buffer.retry_max_ms.to_string(),
    );
    c.set("reconnect.backoff.ms", &initial)
        .set("reconnect.backoff.max.ms", &max)
        .set("retry.backoff.ms", &initial)
        .set("retry.backoff.max.ms", &max);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("client.id", &cfg.client_id)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", cfg.linger_ms.to_string())
        .set("batch.num.messages", cfg.batch_num_messages.to_string())
        .set("batch.size", cfg.batch_bytes.to_string())
        .set("message.timeout.ms", cfg.message_timeout_ms.to_string())
        .set("partitioner", "murmur2_random");
    c.create_with_context(Ctx { shared }).map_err(|e| {
        let message = e.to_string();
        let field = cfg
            .properties
            .keys()
            .find(|k| message.contains(k.as_str()))
            .map_or("bridge.kafka".to_string(), |k| {
                format!("bridge.kafka.properties.{k}")
            });
        ConfigError { field, message }
    })
}

pub(super) struct Sender {
    pub shared: Arc<Shared>,
    pub config: KafkaConfig,
    /// Created on the cluster, if missing, before the first send.
    pub topics: Vec<(String, u32)>,
    pub producer: BaseProducer<Ctx>,
    pub max_in_flight: usize,
    pub flush_interval: Duration,
}

impl Sender {
    pub fn run(mut self) {
        super::topics::create_missing(&self.config, &self.topics);
        let shared = self.shared.clone();
        let mut last_sync = Instant::now();
        let mut saved: Option<u64> = None;
        let mut last_save = Instant::now();
        let mut stop_by: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let stopping = shared.stop.load(Ordering::Relaxed);
            let (sends, purge, sync, in_flight) = {
                let mut core = lock(&shared.core);
                let sends = if stopping {
                    Vec::new()
                } else {
                    core.book.next_to_send(now, self.max_in_flight)
                };
                let purge = core.book.take_purge();
                let due = stopping || now.duration_since(last_sync) >= self.flush_interval;
                let sync = (core.dirty && due).then(|| {
                    core.dirty = false;
                    core.files.active_file()
                });
                core.settle(&shared.counters);
                let cursor = core.book.cursor();
                if saved != Some(cursor) && (stopping || now - last_save >= CURSOR_EVERY) {
                    if let Err(e) = core.files.save_cursor(cursor) {
                        tracing::warn!(error = %e, "bridge buffer cursor not saved");
                    }
                    saved = Some(cursor);
                    last_save = now;
                }
                (sends, purge, sync.flatten(), core.book.in_flight())
            };
            // Records were acknowledged: a writer waiting for room may go on.
            shared.room.notify_all();
            if purge {
                // What is queued behind a failed record must not overtake it.
                self.producer.purge(PurgeConfig::default().queue());
            }
            if let Some(f) = sync {
                if let Err(e) = f.sync_data() {
                    tracing::error!(error = %e, "bridge buffer fsync failed");
                }
                last_sync = now;
            }
            let busy = !sends.is_empty();
            for s in sends {
                self.send(s);
            }
            if !stopping {
                self.reset_if_fatal();
            }
            if stopping {
                let by = *stop_by.get_or_insert(now + STOP_WAIT);
                if in_flight == 0 || now >= by {
                    break;
                }
            }
            self.producer.poll(if busy {
                Duration::ZERO
            } else {
                Duration::from_millis(10)
            });
        }
        // Dropping the producer purges what is left; its reports come in now.
        let Sender { producer, .. } = self;
        drop(producer);
        let mut core = lock(&shared.core);
        core.settle(&shared.counters);
        if let Err(e) = core.files.save_cursor(core.book.cursor()) {
            tracing::warn!(error = %e, "bridge buffer cursor not saved");
        }
        if let Some(f) = core.files.active_file() {
            let _ = f.sync_data();
        }
    }

    /// After a fatal error (an idempotence guarantee could not be kept)
    /// librdkafka refuses every send: replace the producer. Dropping the old
    /// one fails what it held, and the book resends it, oldest first, after
    /// the backoff.
    fn reset_if_fatal(&mut self) {
        let Some((code, why)) = self.producer.client().fatal_error() else {
            return;
        };
        tracing::error!(
            ?code,
            why,
            "kafka producer failed fatally; starting a new one"
        );
        match producer(&self.config, self.shared.clone()) {
            Ok(p) => drop(std::mem::replace(&mut self.producer, p)),
            Err(e) => tracing::error!(error = %e, "new kafka producer not created"),
        }
    }

    /// The record of `s`, from memory or read back from its segment.
    fn load(&self, s: &Send<Arc<Stored>>) -> Option<Arc<Stored>> {
        if let Some(item) = &s.item {
            return Some(item.clone());
        }
        let dir = lock(&self.shared.core).files.dir().to_path_buf();
        let l = s.loc;
        let read = segment::read_record(&dir, l.segment, l.offset, l.len, s.seq);
        let why = match read.map(|b| codec::decode(&b)) {
            Ok(Some(stored)) => return Some(Arc::new(stored)),
            Ok(None) => "undecodable".to_string(),
            Err(e) => e.to_string(),
        };
        // Dropped by drop-oldest meanwhile (the book has forgotten it
        // then and this does nothing), or unreadable: counted and dropped
        // rather than blocking everything behind it.
        let mut core = lock(&self.shared.core);
        if core.book.is_in_flight(s.seq) {
            tracing::error!(
                seq = s.seq,
                why,
                "bridge buffer record not read back; dropped"
            );
            core.book.discard(s.seq);
        }
        None
    }

    fn send(&self, s: Send<Arc<Stored>>) {
        let Some(item) = self.load(&s) else {
            return;
        };
        let r = &item.record;
        let mut hs = OwnedHeaders::new_with_capacity(r.headers.len() + 2);
        for (k, v) in &r.headers {
            hs = hs.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut value = Some(&r.value[..]);
        let topic: &str = match &s.dead_letter {
            None => &r.topic,
            Some(reason) => {
                if reason.starts_with("too large") {
                    // The payload is what did not fit; keep the metadata.
                    value = None;
                }
                let reason = Bytes::from(reason.clone());
                hs = hs
                    .insert(Header {
                        key: headers::DEAD_LETTER_REASON,
                        value: Some(&reason[..]),
                    })
                    .insert(Header {
                        key: headers::DEAD_LETTER_TOPIC,
                        value: Some(r.topic.as_bytes()),
                    });
                &item.dead_letter
            }
        };
        let mut rec: BaseRecord<'_, [u8], [u8], Box<u64>> =
            BaseRecord::with_opaque_to(topic, Box::new(s.seq))
                .headers(hs)
                .timestamp(r.timestamp_ms);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        if let Some(k) = &r.key {
            rec = rec.key(&k[..]);
        }
        if let Err((e, _)) = self.producer.send(rec) {
            outcome(&self.shared, s.seq, &e);
        }
    }
}
