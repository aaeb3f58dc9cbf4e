//! The uplink records of the publishes one connection decoded together.
//! They are mapped one publish at a time (`Bridge::uplink_into`), handed to
//! the backend in one go and answered in one go: one channel message and
//! one wake-up per read instead of one per record, which is most of what a
//! bridged publish costs beyond a plain one.

use std::ops::Range;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::backend::Sink;
use crate::config::{BridgeConfig, Rules};
use crate::counters::Counters;
use crate::sink::{Pending, Placed, SinkError};
use crate::uplink::{Encoded, Record};

/// Records on their way to one backend, in the order their publishes came.
#[derive(Default)]
pub struct UplinkBatch {
    /// The rules the batch was mapped with (a reload applies from the next
    /// batch) and the backend it goes to; taken at the first publish.
    pub(crate) active: Option<Arc<(BridgeConfig, Rules)>>,
    pub(crate) sink: Option<Sink>,
    /// Publish time of the batch's records (unix ms): the publishes of one
    /// read arrived together, so the clock is read once.
    pub(crate) publish_ms: i64,
    /// Embedded backend: records in the queue's form, and the block they
    /// are cut from.
    pub(crate) encoded: Vec<Encoded>,
    pub(crate) writer: queue::RecordWriter,
    /// Kafka backend: records as parts for librdkafka.
    pub(crate) listed: Vec<Record>,
}

/// Resolves once every record of a batch is durable (or failed).
pub struct BatchAck {
    active: Option<Arc<(BridgeConfig, Rules)>>,
    /// The rule of each record, for its counters.
    rules: Vec<usize>,
    wait: Wait,
}

enum Wait {
    Nothing,
    /// The embedded sink answers a batch at once.
    Together(oneshot::Receiver<Vec<Result<Placed, SinkError>>>),
    /// The kafka sink answers each record.
    Each(Vec<Pending>),
}

/// Where each record of a batch went, in order.
pub struct Outcomes(Vec<Result<Placed, SinkError>>);

impl UplinkBatch {
    pub fn len(&self) -> usize {
        self.encoded.len() + self.listed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands the records to the backend; waits only while its channel is
    /// full (the back-pressure that reaches devices as a later PUBACK).
    pub async fn send(self) -> BatchAck {
        let UplinkBatch {
            active,
            sink,
            encoded,
            listed,
            ..
        } = self;
        let rules: Vec<usize> = encoded
            .iter()
            .map(|e| e.rule)
            .chain(listed.iter().map(|r| r.rule))
            .collect();
        let wait = match (&sink, &active) {
            _ if rules.is_empty() => Wait::Nothing,
            (Some(Sink::Embedded(s)), Some(a)) => Wait::Together(s.send(encoded, a.clone()).await),
            (Some(Sink::Kafka(s)), Some(a)) => {
                let mut each = Vec::with_capacity(listed.len());
                for r in listed {
                    match a.1.uplink.get(r.rule) {
                        Some(rule) => each.push(s.send(r, rule).await),
                        // Records are mapped with the rules that travel with them.
                        None => {
                            let (tx, rx) = oneshot::channel();
                            let _ = tx.send(Err(SinkError::Stopped));
                            each.push(rx);
                        }
                    }
                }
                Wait::Each(each)
            }
            // Records are only mapped with a sink and rules in hand.
            _ => Wait::Nothing,
        };
        BatchAck {
            active,
            rules,
            wait,
        }
    }
}

impl BatchAck {
    /// Each record's outcome, counted under its rule.
    pub async fn wait(self) -> Outcomes {
        let n = self.rules.len();
        let outcomes = match self.wait {
            Wait::Nothing => Vec::new(),
            Wait::Together(rx) => rx
                .await
                .unwrap_or_else(|_| vec![Err(SinkError::Stopped); n]),
            Wait::Each(each) => {
                let mut out = Vec::with_capacity(each.len());
                for p in each {
                    out.push(p.await.unwrap_or(Err(SinkError::Stopped)));
                }
                out
            }
        };
        if let Some(a) = &self.active {
            for (o, &rule) in outcomes.iter().zip(&self.rules) {
                let Some(c) = a.1.uplink.get(rule).map(|r| &r.counters) else {
                    continue;
                };
                Counters::inc(match o {
                    Ok(p) if p.dead_lettered => &c.dead_lettered,
                    Ok(_) => &c.accepted,
                    Err(_) => &c.failed,
                });
            }
        }
        Outcomes(outcomes)
    }
}

impl Outcomes {
    /// Whether every record in `range` (one publish's) was taken, or the
    /// first reason one was not.
    pub fn check(&self, range: Range<usize>) -> Result<(), SinkError> {
        match self.0.get(range) {
            Some(all) => all
                .iter()
                .try_for_each(|o| o.as_ref().map(|_| ()).map_err(Clone::clone)),
            None => Err(SinkError::Stopped),
        }
    }

    /// Where the records in `range` went (message trace), or the first
    /// reason one was not taken.
    pub fn of(&self, range: Range<usize>) -> Result<Vec<Placed>, SinkError> {
        match self.0.get(range) {
            Some(all) => all.iter().cloned().collect(),
            None => Err(SinkError::Stopped),
        }
    }
}
