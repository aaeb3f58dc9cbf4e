//! The `embedded` backend: appends uplink records to the hub's in-process
//! queue. One thread takes records from a bounded channel, groups what is
//! waiting by (topic, partition) and appends each group as one batch off
//! the async threads, so concurrent publishers share one write (and, under
//! `sync`, one fsync). Each record's waiter learns when it is durable under
//! its topic's flush policy. A full channel makes publishers wait: that is
//! the back-pressure that reaches devices as a delayed PUBACK.
//!
//! Records the queue can never take (too large, bad topic name, unknown
//! topic with auto-creation off) go to the rule's dead-letter topic with the
//! reason in a header; the device still gets its PUBACK, since the message
//! is durably kept. Storage errors are returned, so the device is refused
//! and resends.

use std::sync::Arc;

use bytes::Bytes;
use queue::QueueError;
use tokio::sync::{mpsc, oneshot};

use crate::counters::Counters;
use crate::headers;
use crate::partitioner::partition_for;
use crate::uplink::{HeaderName, Record};

/// Records waiting for the append task; beyond this, publishers wait.
const CHANNEL: usize = 4096;
/// Records taken per append round.
const BATCH: usize = 512;

/// Why a record was not taken.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SinkError {
    #[error("queue storage error: {0}")]
    Storage(String),
    #[error("the bridge is stopped")]
    Stopped,
}

/// A record on its way to the append thread, already in the queue's
/// message form (moved, not copied: header strings are the bulk of it).
struct Job {
    topic: Arc<str>,
    message: queue::Message<HeaderName>,
    waiter: Waiter,
}

/// Who learns where a record went, and where it goes if refused.
struct Waiter {
    dead_letter: Arc<str>,
    done: oneshot::Sender<Result<Placed, SinkError>>,
}

/// Handle to the append task. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedSink {
    tx: mpsc::Sender<Job>,
}

/// The append thread (a thread of its own, not a task: appends block on
/// disk, and a dedicated thread saves a hand-off per batch); it ends once
/// every `EmbeddedSink` is dropped and what was queued is appended.
pub type SinkTask = std::thread::JoinHandle<()>;

/// Resolves when a record is durable (or failed).
pub type Pending = oneshot::Receiver<Result<Placed, SinkError>>;

/// Where a record was appended (for message trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Appended to the rule's dead-letter topic instead.
    pub dead_lettered: bool,
}

impl EmbeddedSink {
    pub fn start(
        queue: queue::Broker,
        counters: Arc<Counters>,
    ) -> std::io::Result<(EmbeddedSink, SinkTask)> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let task = std::thread::Builder::new()
            .name("bridge-sink".into())
            .spawn(move || run(queue, counters, rx))?;
        Ok((EmbeddedSink { tx }, task))
    }

    /// Queues a record; waits only while the channel is full.
    pub async fn send(&self, record: Record, dead_letter: Arc<str>) -> Pending {
        let (done, pending) = oneshot::channel();
        let job = Job {
            topic: record.topic,
            message: queue::Message {
                key: record.key,
                value: Some(record.value),
                headers: record.headers,
                timestamp_ms: record.timestamp_ms,
            },
            waiter: Waiter { dead_letter, done },
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job).await {
            let _ = job.waiter.done.send(Err(SinkError::Stopped));
        }
        pending
    }
}

/// Blocks for the first item, then takes up to `max` of what is waiting
/// (so concurrent publishers share one write); `None` once the channel is
/// closed and empty.
pub(crate) fn next_batch<T>(rx: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = rx.blocking_recv()?;
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The append thread.
fn run(queue: queue::Broker, counters: Arc<Counters>, mut rx: mpsc::Receiver<Job>) {
    while let Some(batch) = next_batch(&mut rx, BATCH) {
        append_all(&queue, &counters, batch);
    }
}

/// Appends jobs in arrival order, one batch per run of the same (topic, partition).
fn append_all(q: &queue::Broker, counters: &Counters, jobs: Vec<Job>) {
    let mut run = Run::default();
    let mut at: Option<(Arc<str>, i32)> = None;
    for job in jobs {
        let dest = destination(q, &job);
        match (&at, dest) {
            (Some(cur), Ok(d)) if *cur == d => run.push(job),
            (_, Ok(d)) => {
                if let Some((t, p)) = at.take() {
                    flush_run(q, counters, &t, p, std::mem::take(&mut run));
                }
                at = Some(d);
                run.push(job);
            }
            (_, Err(reason)) => {
                if let Some((t, p)) = at.take() {
                    flush_run(q, counters, &t, p, std::mem::take(&mut run));
                }
                dead_letter(
                    q,
                    counters,
                    &job.topic,
                    job.message,
                    job.waiter,
                    &reason_of(&reason),
                );
            }
        }
    }
    if let Some((t, p)) = at {
        flush_run(q, counters, &t, p, run);
    }
}

/// Records for one (topic, partition), as one slice for `append`.
#[derive(Default)]
struct Run {
    messages: Vec<queue::Message<HeaderName>>,
    waiters: Vec<Waiter>,
}

impl Run {
    fn push(&mut self, job: Job) {
        self.messages.push(job.message);
        self.waiters.push(job.waiter);
    }
}

fn destination(q: &queue::Broker, j: &Job) -> Result<(Arc<str>, i32), QueueError> {
    let t = q.topic_or_create(&j.topic, true)?;
    Ok((
        j.topic.clone(),
        partition_for(j.message.key.as_deref(), t.partitions.len()),
    ))
}

fn flush_run(q: &queue::Broker, counters: &Counters, topic: &Arc<str>, partition: i32, run: Run) {
    if run.messages.is_empty() {
        return;
    }
    match q.append(topic, partition, &run.messages) {
        Ok(range) => {
            counters.uplink_delivered.fetch_add(
                run.waiters.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            for (offset, w) in (range.start..).zip(run.waiters) {
                let placed = Placed {
                    topic: topic.clone(),
                    partition,
                    offset,
                    dead_lettered: false,
                };
                finish(w, Ok(placed));
            }
        }
        Err(QueueError::MessageTooLarge { .. }) if run.messages.len() > 1 => {
            // Find the culprit: one record per batch.
            for (message, waiter) in run.messages.into_iter().zip(run.waiters) {
                let one = Run {
                    messages: vec![message],
                    waiters: vec![waiter],
                };
                flush_run(q, counters, topic, partition, one);
            }
        }
        Err(e) if is_permanent(&e) => {
            let reason = reason_of(&e);
            for (message, waiter) in run.messages.into_iter().zip(run.waiters) {
                dead_letter(q, counters, topic, message, waiter, &reason);
            }
        }
        Err(e) => {
            tracing::warn!(%topic, partition, error = %e, "bridge append failed");
            for w in run.waiters {
                Counters::inc(&counters.uplink_failed);
                finish(w, Err(SinkError::Storage(e.to_string())));
            }
        }
    }
}

fn is_permanent(e: &QueueError) -> bool {
    matches!(
        e,
        QueueError::MessageTooLarge { .. }
            | QueueError::InvalidTopic(..)
            | QueueError::UnknownTopicOrPartition { .. }
            | QueueError::Corrupt(_)
    )
}

fn reason_of(e: &QueueError) -> String {
    match e {
        QueueError::MessageTooLarge { .. } => format!("too large: {e}"),
        _ => format!("rejected: {e}"),
    }
}

/// Moves a record to its dead-letter topic (partition 0), with the reason
/// and the original topic in headers; the waiter learns whether that worked.
fn dead_letter(
    q: &queue::Broker,
    counters: &Counters,
    topic: &str,
    mut m: queue::Message<HeaderName>,
    w: Waiter,
    reason: &str,
) {
    if reason.starts_with("too large") {
        // The payload is what did not fit; keep the metadata to say what was lost.
        m.value = None;
    }
    m.headers.push((
        headers::DEAD_LETTER_REASON.into(),
        Some(Bytes::from(reason.to_string())),
    ));
    m.headers.push((
        headers::DEAD_LETTER_TOPIC.into(),
        Some(Bytes::copy_from_slice(topic.as_bytes())),
    ));
    let r = q
        .topic_or_create(&w.dead_letter, true)
        .and_then(|_| q.append(&w.dead_letter, 0, std::slice::from_ref(&m)));
    match r {
        Ok(range) => {
            tracing::warn!(topic, dead_letter = %w.dead_letter, reason, "record dead-lettered");
            Counters::inc(&counters.dead_lettered);
            let placed = Placed {
                topic: w.dead_letter.clone(),
                partition: 0,
                offset: range.start,
                dead_lettered: true,
            };
            finish(w, Ok(placed));
        }
        Err(e) => {
            tracing::error!(dead_letter = %w.dead_letter, error = %e, "dead-letter append failed");
            Counters::inc(&counters.uplink_failed);
            finish(w, Err(SinkError::Storage(e.to_string())));
        }
    }
}

fn finish(w: Waiter, r: Result<Placed, SinkError>) {
    // The publisher may have gone away; nothing to tell then.
    let _ = w.done.send(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, value: Bytes) -> Record {
        Record {
            rule: 0,
            topic: Arc::from(topic),
            key: Some(Bytes::from_static(b"dev-1")),
            value,
            headers: vec![(
                std::borrow::Cow::Borrowed(headers::CLIENT_ID),
                Some(Bytes::from_static(b"dev-1")),
            )],
            timestamp_ms: 0,
        }
    }

    /// Records sent back to back are appended in order, each waiter learns
    /// its offset, and one the topic can never take goes to the dead-letter
    /// topic with the reason while the ones around it are appended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_in_order_and_dead_letters_what_cannot_fit() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue::Broker::open(queue::QueueConfig {
            data_dir: dir.path().to_path_buf(),
            ..queue::QueueConfig::default()
        })
        .unwrap();
        let small = [("max.message.bytes".to_string(), "2048".to_string())];
        q.create_topic("up", 1, &small).unwrap();
        let (sink, thread) = EmbeddedSink::start(q.clone(), Arc::new(Counters::default())).unwrap();
        let dl: Arc<str> = Arc::from("up-dl");
        let mut pending = Vec::new();
        for v in ["1", "2"] {
            pending.push(sink.send(record("up", Bytes::from(v)), dl.clone()).await);
        }
        let big = Bytes::from(vec![b'x'; 4096]);
        pending.push(sink.send(record("up", big), dl.clone()).await);
        pending.push(sink.send(record("up", Bytes::from("3")), dl.clone()).await);
        let mut placed = Vec::new();
        for p in pending {
            placed.push(p.await.unwrap().unwrap());
        }
        let at: Vec<_> = placed
            .iter()
            .map(|p| (&*p.topic, p.offset, p.dead_lettered))
            .collect();
        assert_eq!(
            at,
            [
                ("up", 0, false),
                ("up", 1, false),
                ("up-dl", 0, true),
                ("up", 2, false)
            ]
        );
        let values: Vec<_> = q
            .fetch("up", 0, 0, 1 << 20)
            .unwrap()
            .into_iter()
            .map(|m| m.value.unwrap_or_default())
            .collect();
        assert_eq!(values, ["1", "2", "3"]);
        let dead = q.fetch("up-dl", 0, 0, 1 << 20).unwrap();
        let reason = crate::headers::get(&dead[0].headers, headers::DEAD_LETTER_REASON);
        assert!(
            reason.is_some_and(|r| r.starts_with("too large")),
            "{reason:?}"
        );
        assert_eq!(
            crate::headers::get(&dead[0].headers, headers::CLIENT_ID),
            Some("dev-1"),
            "metadata kept"
        );
        drop(sink);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}
