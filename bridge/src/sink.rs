//! The `embedded` backend: appends uplink records to the hub's in-process
//! queue. One thread takes jobs (the records of one connection's read,
//! already in the queue's encoded form) from a bounded channel, groups what
//! is waiting by (topic, partition) and appends each group as one batch off
//! the async threads, so concurrent publishers share one write (and, under
//! `sync`, one fsync). Each job learns, in one answer, where each of its
//! records went once durable under its topic's flush policy. A full channel
//! makes publishers wait: that is the back-pressure that reaches devices as
//! a delayed PUBACK.
//!
//! Records the queue can never take (too large, bad topic name, unknown
//! topic with auto-creation off) go to the rule's dead-letter topic with the
//! reason in a header; the device still gets its PUBACK, since the message
//! is durably kept. Storage errors are returned, so the device is refused
//! and resends.

use std::sync::Arc;

use queue::{EncodedRecord, QueueError};
use tokio::sync::{mpsc, oneshot};

use crate::config::{BridgeConfig, Rules};
use crate::counters::Counters;
use crate::headers;
use crate::partitioner::partition_for;
use crate::uplink::Encoded;

/// Jobs waiting for the append thread; beyond this, publishers wait. A job
/// is one connection's read, so this bounds memory by reads, not records.
const CHANNEL: usize = 1024;
/// Jobs taken per append round.
const BATCH: usize = 64;
/// Times the append thread yields before it parks.
const YIELDS: usize = 2;

/// Why a record was not taken.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SinkError {
    #[error("queue storage error: {0}")]
    Storage(String),
    #[error("the bridge is stopped")]
    Stopped,
}

/// The records of one read on their way to the append thread, with the
/// rules that made them (for each rule's dead-letter topic).
struct Job {
    records: Vec<Encoded>,
    rules: Arc<(BridgeConfig, Rules)>,
    done: oneshot::Sender<Vec<Result<Placed, SinkError>>>,
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

    /// Queues the records of one read, made under `rules`; waits only while
    /// the channel is full. The answer lists each record's outcome in order.
    pub async fn send(
        &self,
        records: Vec<Encoded>,
        rules: Arc<(BridgeConfig, Rules)>,
    ) -> oneshot::Receiver<Vec<Result<Placed, SinkError>>> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            records,
            rules,
            done,
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job).await {
            let n = job.records.len();
            let _ = job.done.send(vec![Err(SinkError::Stopped); n]);
        }
        answer
    }
}

/// Blocks for the first item, then takes up to `max` of what is waiting
/// (so concurrent publishers share one write); `None` once the channel is
/// closed and empty.
pub(crate) fn next_batch<T>(rx: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = match rx.try_recv() {
        Ok(j) => j,
        Err(_) => {
            // Before parking, let the publishers' threads run once or twice:
            // under load they hand over more work meanwhile, and a thread
            // that has not parked costs them no wake-up.
            let mut got = None;
            for _ in 0..YIELDS {
                std::thread::yield_now();
                if let Ok(j) = rx.try_recv() {
                    got = Some(j);
                    break;
                }
            }
            match got {
                Some(j) => j,
                None => rx.blocking_recv()?,
            }
        }
    };
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
    while let Some(jobs) = next_batch(&mut rx, BATCH) {
        append_all(&queue, &counters, jobs);
    }
}

/// A record with the dead-letter topic of its rule.
type Item<'a> = (&'a Encoded, &'a Arc<str>);

/// Appends the jobs' records in arrival order, one batch per run of the
/// same (topic, partition), then answers each job.
fn append_all(q: &queue::Broker, counters: &Counters, jobs: Vec<Job>) {
    let total: usize = jobs.iter().map(|j| j.records.len()).sum();
    let mut outcomes = Vec::with_capacity(total);
    {
        let items = jobs.iter().flat_map(|j| {
            j.records.iter().map(move |r| {
                let dl = j.rules.1.uplink.get(r.rule).map(|u| &u.dead_letter_topic);
                (r, dl)
            })
        });
        let mut parts = Partitions::default();
        let mut run: Vec<Item<'_>> = Vec::new();
        let mut at: Option<(&str, i32)> = None;
        for (r, dl) in items {
            let Some(dl) = dl else {
                // Records are mapped with the rules that travel with them.
                flush_pending(q, counters, &mut at, &mut run, &mut outcomes);
                outcomes.push(Err(SinkError::Stopped));
                continue;
            };
            match parts.destination(q, r) {
                Ok(p) if at == Some((&*r.topic, p)) => run.push((r, dl)),
                Ok(p) => {
                    flush_pending(q, counters, &mut at, &mut run, &mut outcomes);
                    at = Some((&*r.topic, p));
                    run.push((r, dl));
                }
                Err(reason) => {
                    flush_pending(q, counters, &mut at, &mut run, &mut outcomes);
                    outcomes.push(dead_letter(q, counters, (r, dl), &reason_of(&reason)));
                }
            }
        }
        flush_pending(q, counters, &mut at, &mut run, &mut outcomes);
    }
    let mut outcomes = outcomes.into_iter();
    for job in jobs {
        let mine: Vec<_> = outcomes.by_ref().take(job.records.len()).collect();
        // The publisher may have gone away; nothing to tell then.
        let _ = job.done.send(mine);
    }
}

/// Appends the run gathered so far (for `at`), so that outcomes stay in
/// arrival order, and starts an empty one.
fn flush_pending<'a>(
    q: &queue::Broker,
    counters: &Counters,
    at: &mut Option<(&'a str, i32)>,
    run: &mut Vec<Item<'a>>,
    out: &mut Vec<Result<Placed, SinkError>>,
) {
    if let Some((t, p)) = at.take() {
        flush_run(q, counters, t, p, run, out);
    }
    run.clear();
}

/// The partition count of the topic looked up last, so a run of records
/// for one topic looks it up once.
#[derive(Default)]
struct Partitions {
    last: Option<(Arc<str>, usize)>,
}

impl Partitions {
    fn destination(&mut self, q: &queue::Broker, r: &Encoded) -> Result<i32, QueueError> {
        let n = match &self.last {
            Some((t, n)) if **t == *r.topic => *n,
            _ => {
                let n = q.topic_or_create(&r.topic, true)?.partitions.len();
                self.last = Some((r.topic.clone(), n));
                n
            }
        };
        // One partition needs no key (its hash would not matter).
        Ok(partition_for(if n > 1 { r.record.key() } else { None }, n))
    }
}

/// Appends a run of records for one (topic, partition), pushing each
/// record's outcome.
fn flush_run(
    q: &queue::Broker,
    counters: &Counters,
    topic: &str,
    partition: i32,
    run: &[Item<'_>],
    out: &mut Vec<Result<Placed, SinkError>>,
) {
    if run.is_empty() {
        return;
    }
    let records: Vec<&EncodedRecord> = run.iter().map(|(r, _)| &r.record).collect();
    match q.append_encoded(topic, partition, &records) {
        Ok(range) => {
            counters
                .uplink_delivered
                .fetch_add(run.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let topic = &run[0].0.topic;
            for offset in range.start..range.start + run.len() as i64 {
                out.push(Ok(Placed {
                    topic: topic.clone(),
                    partition,
                    offset,
                    dead_lettered: false,
                }));
            }
        }
        Err(QueueError::MessageTooLarge { .. }) if run.len() > 1 => {
            // Find the culprit: one record per batch.
            for item in run {
                flush_run(
                    q,
                    counters,
                    topic,
                    partition,
                    std::slice::from_ref(item),
                    out,
                );
            }
        }
        Err(e) if is_permanent(&e) => {
            let reason = reason_of(&e);
            for &item in run {
                out.push(dead_letter(q, counters, item, &reason));
            }
        }
        Err(e) => {
            tracing::warn!(%topic, partition, error = %e, "bridge append failed");
            for _ in run {
                Counters::inc(&counters.uplink_failed);
                out.push(Err(SinkError::Storage(e.to_string())));
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
/// and the original topic in headers.
fn dead_letter(
    q: &queue::Broker,
    counters: &Counters,
    (r, dl): Item<'_>,
    reason: &str,
) -> Result<Placed, SinkError> {
    // A record too large loses its payload; the metadata says what was lost.
    let m = r.record.with_headers(
        reason.starts_with("too large"),
        &[
            (headers::DEAD_LETTER_REASON, reason.as_bytes()),
            (headers::DEAD_LETTER_TOPIC, r.topic.as_bytes()),
        ],
    );
    let res = q
        .topic_or_create(dl, true)
        .and_then(|_| q.append_encoded(dl, 0, std::slice::from_ref(&m)));
    match res {
        Ok(range) => {
            tracing::warn!(topic = %r.topic, dead_letter = %dl, reason, "record dead-lettered");
            Counters::inc(&counters.dead_lettered);
            Ok(Placed {
                topic: dl.clone(),
                partition: 0,
                offset: range.start,
                dead_lettered: true,
            })
        }
        Err(e) => {
            tracing::error!(dead_letter = %dl, error = %e, "dead-letter append failed");
            Counters::inc(&counters.uplink_failed);
            Err(SinkError::Storage(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> Encoded {
        let mut w = queue::RecordWriter::default();
        w.begin(64);
        w.key_with(|b| b.extend_from_slice(b"dev-1"));
        w.value(Some(value));
        w.header(&[headers::CLIENT_ID], Some(b"dev-1"));
        Encoded {
            rule: 0,
            topic: Arc::from("up"),
            record: w.finish(0),
        }
    }

    /// Records of two jobs sent back to back are appended in order, each job
    /// learns its records' offsets, and one the topic can never take goes to
    /// the dead-letter topic with the reason while the ones around it are
    /// appended.
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
        let cfg: BridgeConfig = toml::from_str(
            "[[uplink]]\nfilter = \"#\"\ntopic = \"up\"\ndead_letter_topic = \"up-dl\"\n",
        )
        .unwrap();
        let rules = Arc::new((cfg.clone(), cfg.compile().unwrap()));
        let (sink, thread) = EmbeddedSink::start(q.clone(), Arc::new(Counters::default())).unwrap();
        let big = vec![b'x'; 4096];
        let first = sink
            .send(
                vec![record(b"1"), record(b"2"), record(&big)],
                rules.clone(),
            )
            .await;
        let second = sink.send(vec![record(b"3")], rules).await;
        let mut at = Vec::new();
        for answer in [first.await.unwrap(), second.await.unwrap()] {
            let placed: Vec<_> = answer.into_iter().map(|p| p.unwrap()).collect();
            at.push(
                placed
                    .iter()
                    .map(|p| (p.topic.to_string(), p.offset, p.dead_lettered))
                    .collect::<Vec<_>>(),
            );
        }
        let s = |t: &str| t.to_string();
        assert_eq!(
            at,
            [
                vec![
                    (s("up"), 0, false),
                    (s("up"), 1, false),
                    (s("up-dl"), 0, true)
                ],
                vec![(s("up"), 2, false)]
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
            dead[0].value, None,
            "the payload that did not fit is left out"
        );
        assert_eq!(
            crate::headers::get(&dead[0].headers, headers::DEAD_LETTER_TOPIC),
            Some("up")
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
