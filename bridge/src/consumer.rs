//! Reads one queue partition for the bridge (downlink commands, the retry
//! ladder) under a consumer group: resumes at the committed offset, hands
//! each record to a `Handler`, and commits after a fetched batch was fully
//! handled, so a restart redelivers at most that batch and loses nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::delayed::now_ms;

/// Pause between polls of an idle partition.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// Pause before retrying a record the handler could not place.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Bytes fetched per poll.
const FETCH_BYTES: usize = 1 << 20;

pub type Handled<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Takes one record; resolves `false` only when shutting down (the record
/// was not handled and must not be committed).
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        m: &'a queue::StoredMessage,
        shutdown: &'a mut watch::Receiver<bool>,
    ) -> Handled<'a>;
}

/// Waits `RETRY_PAUSE`; false if shutdown came first.
pub async fn pause(shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RETRY_PAUSE) => true,
        _ = shutdown.changed() => false,
    }
}

pub struct PartitionConsumer {
    pub queue: queue::Broker,
    pub topic: String,
    pub partition: i32,
    pub group: String,
}

impl PartitionConsumer {
    fn start_offset(&self) -> i64 {
        let committed = self
            .queue
            .committed_offsets(&self.group)
            .ok()
            .and_then(|v| {
                v.into_iter()
                    .find(|(t, p, _)| *t == self.topic && *p == self.partition)
                    .map(|(_, _, c)| c.offset)
            });
        let start = self
            .queue
            .log_start_offset(&self.topic, self.partition)
            .unwrap_or(0);
        committed.unwrap_or(start).max(start)
    }

    fn commit(&self, offset: i64) {
        let c = queue::CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_ms: now_ms(),
        };
        if let Err(e) = self
            .queue
            .commit_offsets(&self.group, &[(self.topic.clone(), self.partition, c)])
        {
            tracing::warn!(error = %e, topic = %self.topic, "bridge offset not committed");
        }
    }

    pub async fn run(self, handler: Arc<dyn Handler>, mut shutdown: watch::Receiver<bool>) {
        let mut offset = self.start_offset();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let q = self.queue.clone();
            let (t, p) = (self.topic.clone(), self.partition);
            let fetched =
                tokio::task::spawn_blocking(move || q.fetch(&t, p, offset, FETCH_BYTES)).await;
            let batch = match fetched {
                Ok(Ok(b)) => b,
                Ok(Err(queue::QueueError::OffsetOutOfRange { start, end, .. })) => {
                    // Retention removed what we had not read, or the log was recreated.
                    offset = if offset < start { start } else { end };
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, topic = %self.topic, "bridge fetch failed");
                    Vec::new()
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            for m in &batch {
                if !handler.handle(m, &mut shutdown).await {
                    if offset > self.start_offset() {
                        self.commit(offset);
                    }
                    return;
                }
                offset = m.offset + 1;
            }
            self.commit(offset);
        }
    }
}
