//! The consumer retry ladder. An application that cannot process a record
//! of `<topic>` produces it to `<topic>.retry` with a `retry-count` header
//! (1 for the first retry, then one more each time). The bridge holds it in
//! the delay store for the ladder's step for that count (from the record's
//! timestamp) and appends it back to `<topic>`, headers kept; a count beyond
//! the ladder sends it to `<topic>.dlq` with the reason in a header.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use crate::consumer::{pause, Handled, Handler};
use crate::counters::Counters;
use crate::delayed::{DelayStore, Held, QueueRecord};
use crate::headers;

/// Header with the retry number (1-based).
pub const RETRY_COUNT: &str = "retry-count";

/// What to do with one record of `<topic>.retry`.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Back to the topic at this time (unix ms).
    Retry { due_ms: i64 },
    /// To the dead-letter topic, with this reason.
    DeadLetter(String),
}

/// Decides a record's fate from its `retry-count` and timestamp.
pub fn step(ladder_secs: &[u64], m: &queue::StoredMessage) -> Step {
    let count = headers::get(&m.headers, RETRY_COUNT);
    let n = match count.map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) => n.max(1),
        Some(Err(_)) => return Step::DeadLetter(format!("bad {RETRY_COUNT} header {count:?}")),
    };
    match ladder_secs.get(n - 1) {
        Some(secs) => Step::Retry {
            due_ms: m.timestamp_ms + i64::try_from(secs * 1000).unwrap_or(i64::MAX / 2),
        },
        None => Step::DeadLetter(format!(
            "retry-count {n} is beyond the ladder's {} steps",
            ladder_secs.len()
        )),
    }
}

pub struct RetryLadder {
    pub queue: queue::Broker,
    /// The base topic (records come from `<topic>.retry`).
    pub topic: String,
    pub ladder_secs: Vec<u64>,
    pub delay: Arc<DelayStore>,
    pub counters: Arc<Counters>,
}

impl RetryLadder {
    async fn place(&self, m: &queue::StoredMessage) -> Result<(), String> {
        match step(&self.ladder_secs, m) {
            Step::Retry { due_ms } => {
                let r = QueueRecord {
                    topic: self.topic.clone(),
                    key: m.key.clone(),
                    value: m.value.clone(),
                    headers: m.headers.clone(),
                };
                self.delay
                    .schedule(Held::Queue(r), due_ms)
                    .await
                    .map_err(|e| e.to_string())?;
                Counters::inc(&self.counters.retry_scheduled);
                Ok(())
            }
            Step::DeadLetter(reason) => {
                let mut hs = m.headers.clone();
                hs.push((
                    headers::DEAD_LETTER_REASON.into(),
                    Some(Bytes::from(reason)),
                ));
                let rec = queue::Message {
                    key: m.key.clone(),
                    value: m.value.clone(),
                    headers: hs,
                    timestamp_ms: 0,
                };
                let q = self.queue.clone();
                let dlq = format!("{}.dlq", self.topic);
                tokio::task::spawn_blocking(move || {
                    q.topic_or_create(&dlq, true)?;
                    q.append(&dlq, 0, &[rec])
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                Counters::inc(&self.counters.dead_lettered);
                Ok(())
            }
        }
    }
}

impl Handler for RetryLadder {
    fn handle<'a>(
        &'a self,
        m: &'a queue::StoredMessage,
        shutdown: &'a mut watch::Receiver<bool>,
    ) -> Handled<'a> {
        Box::pin(async move {
            loop {
                match self.place(m).await {
                    Ok(()) => return true,
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "retry record not placed");
                        if !pause(shutdown).await {
                            return false;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(count: Option<&str>) -> queue::StoredMessage {
        queue::StoredMessage {
            partition: 0,
            offset: 0,
            timestamp_ms: 10_000,
            key: None,
            value: None,
            headers: count
                .map(|c| vec![(RETRY_COUNT.to_string(), Some(Bytes::from(c.to_string())))])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn ladder_steps_then_dead_letter() {
        let ladder = [1, 5, 10];
        assert_eq!(step(&ladder, &rec(None)), Step::Retry { due_ms: 11_000 });
        assert_eq!(
            step(&ladder, &rec(Some("2"))),
            Step::Retry { due_ms: 15_000 }
        );
        assert_eq!(
            step(&ladder, &rec(Some("3"))),
            Step::Retry { due_ms: 20_000 }
        );
        assert!(
            matches!(step(&ladder, &rec(Some("4"))), Step::DeadLetter(r) if r.contains("beyond"))
        );
        assert!(matches!(
            step(&ladder, &rec(Some("x"))),
            Step::DeadLetter(_)
        ));
    }
}
