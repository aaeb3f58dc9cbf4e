//! The `kafka` backend: uplink records go to an external Kafka cluster
//! through librdkafka (`acks=all`, idempotent producer), by way of an
//! on-disk retry buffer. A record is written to the buffer first (fsynced
//! under its rule's flush policy) and the device's PUBACK waits only for
//! that; the sender then produces it and deletes it only once Kafka has
//! acknowledged it. While Kafka is down the buffer fills up to its byte
//! quota and the rule's `on_full` applies; after a restart the sender
//! resends what the buffer holds. See ARCHITECTURE.md, "kafka backend".
//!
//! Threads: `bridge-kbuf` appends (like the embedded sink's thread: a
//! bounded channel, batches, one fsync per batch); `bridge-kafka` owns the
//! producer, sends, polls delivery reports, deletes finished segments and
//! flushes on the interval. The bookkeeping is `book.rs` (no I/O).

pub mod backoff;
pub mod book;
pub mod codec;
pub mod config;
pub mod segment;
mod sender;
mod topics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use self::backoff::Backoff;
use self::book::{Book, Refused};
use self::codec::Stored;
use self::config::KafkaConfig;
use self::segment::{frame_len, Segments};
use crate::config::{ConfigError, OnFull, RuleFlush, UplinkRule};
use crate::counters::Counters;
use crate::sink::{Pending, Placed, SinkError};
use crate::uplink::Record;

/// Records waiting for the buffer thread; beyond this, publishers wait.
const CHANNEL: usize = 4096;
/// Records taken per append round.
const BATCH: usize = 512;

/// Starting the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaStartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("bridge buffer {dir}: {source}")]
    Buffer { dir: String, source: std::io::Error },
}

struct Job {
    stored: Arc<Stored>,
    flush: RuleFlush,
    on_full: OnFull,
    done: oneshot::Sender<Result<Placed, SinkError>>,
}

/// State shared by the two threads.
struct Shared {
    core: Mutex<Core>,
    /// Signalled when records are acknowledged (room for a blocked writer).
    room: Condvar,
    counters: Arc<Counters>,
    /// The buffer thread has finished: the sender stops once what is in
    /// flight is answered (or after a short wait).
    stop: AtomicBool,
}

struct Core {
    book: Book<Arc<Stored>>,
    files: Segments,
    /// Appended since the last fsync.
    dirty: bool,
}

impl Core {
    /// Deletes the segment files the book has freed; publishes counters.
    fn settle(&mut self, counters: &Counters) {
        for id in self.book.take_removable() {
            if let Err(e) = self.files.remove(id) {
                tracing::warn!(segment = id, error = %e, "bridge buffer segment not deleted");
            }
        }
        let s = self.book.take_stats();
        let add = |c: &std::sync::atomic::AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&counters.uplink_delivered, s.delivered);
        add(&counters.dead_lettered, s.dead_lettered);
        add(&counters.uplink_retried, s.retried);
        add(&counters.dropped_buffer_full, s.dropped_full);
        add(&counters.dropped_undeliverable, s.dropped_undeliverable);
        counters
            .buffered_bytes
            .store(self.book.disk_bytes(), Ordering::Relaxed);
        counters.buffer_oldest_ms.store(
            self.book
                .oldest_ts_ms()
                .map_or(0, |t| u64::try_from(t).unwrap_or(1)),
            Ordering::Relaxed,
        );
    }
}

fn lock(m: &Mutex<Core>) -> MutexGuard<'_, Core> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handle to the backend. Cheap to clone.
#[derive(Clone)]
pub struct KafkaSink {
    tx: mpsc::Sender<Job>,
}

impl KafkaSink {
    /// Opens the buffer (recovering what it holds), creates the producer
    /// and starts both threads. The returned thread ends once every
    /// `KafkaSink` is dropped, the queued records are buffered and the
    /// sender has stopped.
    /// `topics` (name, partitions) are created on the cluster if missing,
    /// before anything is sent.
    pub fn start(
        cfg: &KafkaConfig,
        topics: Vec<(String, u32)>,
        counters: Arc<Counters>,
    ) -> Result<(KafkaSink, std::thread::JoinHandle<()>), KafkaStartError> {
        let b = &cfg.buffer;
        let io_err = |source| KafkaStartError::Buffer {
            dir: b.dir.display().to_string(),
            source,
        };
        let (files, recovered) = Segments::open(&b.dir).map_err(io_err)?;
        let mut book = Book::new(
            b.max_bytes,
            b.segment_bytes,
            b.memory_bytes,
            Backoff::new(
                Duration::from_millis(b.retry_initial_ms),
                Duration::from_millis(b.retry_max_ms),
            ),
        );
        let mut restored = 0usize;
        for seg in recovered.segments {
            book.restore_segment(seg.id, seg.bytes);
            for f in seg.records {
                match codec::decode(&f.record) {
                    Some(s) => {
                        let loc = book::Loc {
                            segment: seg.id,
                            offset: f.offset,
                            len: f.len,
                        };
                        book.restore_record(f.seq, loc, s.record.timestamp_ms, Arc::new(s));
                        restored += 1;
                    }
                    None => {
                        tracing::error!(
                            seq = f.seq,
                            "undecodable record in the bridge buffer; skipped"
                        )
                    }
                }
            }
        }
        book.finish_restore(recovered.next_seq);
        if restored > 0 {
            tracing::info!(
                records = restored,
                bytes = book.disk_bytes(),
                "bridge buffer recovered; resending"
            );
        }
        let mut core = Core {
            book,
            files,
            dirty: false,
        };
        core.settle(&counters);
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            room: Condvar::new(),
            counters,
            stop: AtomicBool::new(false),
        });
        let producer = sender::producer(cfg, shared.clone())?;
        let s = sender::Sender {
            shared: shared.clone(),
            config: cfg.clone(),
            topics,
            producer,
            max_in_flight: cfg.max_in_flight,
            flush_interval: Duration::from_millis(b.flush_interval_ms),
        };
        let spawn_err = |e| KafkaStartError::Buffer {
            dir: "(thread)".into(),
            source: e,
        };
        let sender = std::thread::Builder::new()
            .name("bridge-kafka".into())
            .spawn(move || s.run())
            .map_err(spawn_err)?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let writer = std::thread::Builder::new()
            .name("bridge-kbuf".into())
            .spawn(move || {
                write_loop(&shared, rx);
                shared.stop.store(true, Ordering::Relaxed);
                let _ = sender.join();
            })
            .map_err(spawn_err)?;
        Ok((KafkaSink { tx }, writer))
    }

    /// Queues a record for the buffer; waits only while the channel is full.
    pub async fn send(&self, record: Record, rule: &UplinkRule) -> Pending {
        let (done, pending) = oneshot::channel();
        let job = Job {
            stored: Arc::new(Stored {
                record,
                dead_letter: rule.dead_letter_topic.clone(),
            }),
            flush: rule.flush.unwrap_or(RuleFlush::Interval),
            on_full: rule.on_full,
            done,
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job).await {
            let _ = job.done.send(Err(SinkError::Stopped));
        }
        pending
    }
}

/// Appended records waiting for their fsync (if any) and their answer.
#[derive(Default)]
struct Written {
    jobs: Vec<Job>,
    sync: bool,
}

/// The buffer thread: takes what is waiting, appends each (waiting for
/// room under `block`), then fsyncs once if a `sync` rule is among them and
/// answers.
fn write_loop(shared: &Shared, mut rx: mpsc::Receiver<Job>) {
    while let Some(batch) = crate::sink::next_batch(&mut rx, BATCH) {
        let mut written = Written::default();
        for job in batch {
            append(shared, &rx, job, &mut written);
        }
        answer(shared, &mut written);
    }
}

fn append(shared: &Shared, rx: &mpsc::Receiver<Job>, job: Job, written: &mut Written) {
    let bytes = codec::encode(&job.stored);
    let size = frame_len(bytes.len());
    let ts = job.stored.record.timestamp_ms;
    let mut waited = false;
    loop {
        let mut core = lock(&shared.core);
        match core.book.push(size, ts, job.stored.clone(), job.on_full) {
            Ok(p) => {
                // Delete freed segments first, so the files never exceed the quota.
                core.settle(&shared.counters);
                let r = match p.new_segment {
                    Some(id) => core.files.start(id),
                    None => Ok(()),
                }
                .and_then(|()| core.files.append(p.seq, &bytes));
                match r {
                    Ok(()) => {
                        core.dirty = true;
                        written.sync |= job.flush == RuleFlush::Sync;
                        written.jobs.push(job);
                    }
                    Err(e) => {
                        core.book.write_failed(p.seq);
                        drop(core);
                        tracing::error!(error = %e, "bridge buffer write failed; refusing the record");
                        fail(
                            shared,
                            job,
                            SinkError::Storage(format!("bridge buffer: {e}")),
                        );
                    }
                }
                return;
            }
            Err(Refused::TooLarge) => {
                drop(core);
                fail(
                    shared,
                    job,
                    SinkError::Storage("record larger than the bridge buffer quota".into()),
                );
                return;
            }
            Err(Refused::Full) => {
                drop(core);
                if !waited {
                    tracing::warn!(
                        "bridge buffer full; withholding PUBACKs until Kafka takes records"
                    );
                    waited = true;
                }
                // Answer what is already written before waiting for room.
                answer(shared, written);
                if rx.is_closed() {
                    fail(shared, job, SinkError::Stopped);
                    return;
                }
                let core = lock(&shared.core);
                let _ = shared
                    .room
                    .wait_timeout(core, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

fn fail(shared: &Shared, job: Job, e: SinkError) {
    Counters::inc(&shared.counters.uplink_failed);
    let _ = job.done.send(Err(e));
}

/// fsyncs if a `sync` record is among `written`, then answers each.
fn answer(shared: &Shared, written: &mut Written) {
    if written.jobs.is_empty() {
        return;
    }
    let mut result = Ok(());
    if std::mem::take(&mut written.sync) {
        let file = {
            let mut core = lock(&shared.core);
            core.dirty = false;
            core.files.active_file()
        };
        if let Some(f) = file {
            result = f.sync_data();
        }
    }
    for job in written.jobs.drain(..) {
        let r = match &result {
            Ok(()) => Ok(Placed {
                topic: job.stored.record.topic.clone(),
                partition: -1,
                offset: -1,
                dead_lettered: false,
            }),
            Err(e) => {
                Counters::inc(&shared.counters.uplink_failed);
                Err(SinkError::Storage(format!("bridge buffer fsync: {e}")))
            }
        };
        let _ = job.done.send(r);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::{BridgeConfig, BufferConfig};

    fn rule(on_full: &str) -> UplinkRule {
        let c: BridgeConfig = toml::from_str(&format!(
            "[[uplink]]\nfilter = \"#\"\ntopic = \"t\"\nflush = \"sync\"\non_full = \"{on_full}\"\n"
        ))
        .unwrap();
        c.compile().unwrap().uplink.remove(0)
    }

    fn record(i: usize, size: usize) -> Record {
        Record {
            rule: 0,
            topic: "t".into(),
            key: Some(Bytes::from("d1")),
            value: Bytes::from(vec![b'x'; size]),
            headers: vec![("n".into(), Some(Bytes::from(i.to_string())))],
            timestamp_ms: 1_000 + i as i64,
        }
    }

    fn config(dir: &std::path::Path) -> KafkaConfig {
        KafkaConfig {
            // Nothing listens there: every record stays in the buffer.
            bootstrap_servers: "127.0.0.1:9".into(),
            buffer: BufferConfig {
                dir: dir.to_path_buf(),
                max_bytes: 16 * 1024,
                memory_bytes: 2048,
                segment_bytes: 4096,
                ..BufferConfig::default()
            },
            ..KafkaConfig::default()
        }
    }

    async fn stop(sink: KafkaSink, thread: std::thread::JoinHandle<()>) {
        drop(sink);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    /// Without a reachable cluster: each record is answered once it is in
    /// the buffer; a full buffer under `block` holds the answer back; what
    /// the buffer holds is found again by the next start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_wait_in_the_buffer_within_the_quota_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let counters = Arc::new(Counters::default());
        let (sink, thread) = KafkaSink::start(&cfg, Vec::new(), counters.clone()).unwrap();
        let block = rule("block");
        let mut n = 0;
        let held = loop {
            let pending = sink.send(record(n, 1000), &block).await;
            n += 1;
            match tokio::time::timeout(Duration::from_millis(300), pending).await {
                Ok(r) => {
                    let placed = r.unwrap().unwrap();
                    assert_eq!((&*placed.topic, placed.offset), ("t", -1));
                }
                Err(_) => break n - 1,
            }
            assert!(n < 100, "the quota never filled");
        };
        let buffered = Counters::get(&counters.buffered_bytes);
        assert!(buffered <= 16 * 1024 && buffered > 12 * 1024, "{buffered}");
        assert!(Counters::get(&counters.buffer_oldest_ms) == 1_000);
        stop(sink, thread).await;

        let counters = Arc::new(Counters::default());
        let (sink, thread) = KafkaSink::start(&cfg, Vec::new(), counters.clone()).unwrap();
        assert_eq!(Counters::get(&counters.buffered_bytes), buffered);
        assert_eq!(Counters::get(&counters.buffer_oldest_ms), 1_000);
        // drop-oldest makes room instead of waiting.
        let placed = sink
            .send(record(held + 1, 1000), &rule("drop-oldest"))
            .await;
        placed.await.unwrap().unwrap();
        assert!(Counters::get(&counters.dropped_buffer_full) > 0);
        assert!(Counters::get(&counters.buffered_bytes) <= 16 * 1024);
        assert!(Counters::get(&counters.buffer_oldest_ms) > 1_000);
        stop(sink, thread).await;
    }
}
