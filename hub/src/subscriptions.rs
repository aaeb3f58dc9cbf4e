//! SUBSCRIBE and UNSUBSCRIBE against the hub: limits, the trie, the
//! session's stored subscription list, and retained messages sent on
//! subscribe according to Retain Handling.

use std::sync::Arc;
use std::time::Instant;

use mqtt::topic;
use mqtt::{QoS, ReasonCode, RetainHandling, Subscribe, Unsubscribe};

use crate::broker::{lock_read, lock_write, Broker};
use crate::router::trie::SubEntry;
use crate::session::SessionShared;
use crate::store::{Op, StoredSubscription};

impl Broker {
    /// Applies a SUBSCRIBE; returns one reason code per filter, in order.
    pub async fn subscribe(
        &self,
        session: &Arc<SessionShared>,
        sub: &Subscribe,
    ) -> Vec<ReasonCode> {
        let now = Instant::now();
        let id = sub.properties.subscription_identifiers.first().copied();
        let max_qos = self.server_cfg.max_qos;
        let max_subs = self.config.limits.max_subscriptions_per_client;
        let mut reasons = Vec::with_capacity(sub.filters.len());
        let mut ops = Vec::new();
        let mut retained_to_send = Vec::new();
        for f in &sub.filters {
            let shared = match topic::parse_shared(&f.filter) {
                Some(Ok(parts)) => Some(parts),
                Some(Err(_)) => {
                    reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                    continue;
                }
                None => None,
            };
            let inner_filter = shared.map(|(_, f)| f).unwrap_or(&f.filter);
            if topic::validate_topic_filter(&f.filter).is_err()
                || inner_filter.len() > self.config.limits.max_topic_length
                || inner_filter.split('/').count() > self.config.limits.max_topic_levels
            {
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            if shared.is_some() && f.options.no_local {
                // [MQTT-3.8.3-4] No Local on a shared subscription is not allowed.
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let mut options = f.options;
            options.qos = options.qos.min(max_qos);
            let is_new = {
                let mut inner = session.inner();
                let exists = inner.subscriptions.contains_key(&f.filter);
                if !exists && inner.subscriptions.len() >= max_subs {
                    reasons.push(ReasonCode::QUOTA_EXCEEDED);
                    continue;
                }
                inner.subscriptions.insert(StoredSubscription {
                    filter: f.filter.clone(),
                    options,
                    id,
                });
                !exists
            };
            lock_write(&self.subscriptions).insert(
                inner_filter,
                shared.map(|(g, _)| g),
                session.client_id.clone(),
                SubEntry {
                    subscriber: session.clone(),
                    options,
                    id,
                },
            );
            reasons.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::SUCCESS,
                QoS::AtLeastOnce => ReasonCode::GRANTED_QOS_1,
                QoS::ExactlyOnce => ReasonCode::GRANTED_QOS_2,
            });
            // [MQTT-3.3.1-9..11] retained messages per Retain Handling; never
            // for shared subscriptions ([MQTT-4.8.2-?] v5 §4.8.2).
            let send_retained = shared.is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => is_new,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for m in lock_read(&self.retained).matching(inner_filter) {
                    retained_to_send.push((m, options.qos, id));
                }
            }
        }
        if session.is_persistent() {
            let mut inner = session.inner();
            inner.in_store = true;
            ops.push(Op::PutSession(
                session.client_id.clone(),
                inner.record().encode(),
            ));
        }
        for (m, qos, id) in retained_to_send {
            if m.is_expired(now) {
                continue;
            }
            let q = m.qos.min(qos);
            // Retained messages sent on subscribe keep RETAIN=1 ([MQTT-3.3.1-8]).
            self.enqueue(
                session,
                m,
                q,
                true,
                id.into_iter().collect(),
                None,
                &mut ops,
                now,
            );
        }
        self.submit(ops).await;
        reasons
    }

    /// Applies an UNSUBSCRIBE; returns one reason code per filter.
    pub async fn unsubscribe(
        &self,
        session: &Arc<SessionShared>,
        unsub: &Unsubscribe,
    ) -> Vec<ReasonCode> {
        let mut reasons = Vec::with_capacity(unsub.filters.len());
        for f in &unsub.filters {
            let existed = session.inner().subscriptions.remove(f).is_some();
            if existed {
                self.remove_subscriptions(session, std::iter::once(f.as_str()));
                reasons.push(ReasonCode::SUCCESS);
            } else {
                reasons.push(ReasonCode::NO_SUBSCRIPTION_EXISTED);
            }
        }
        if session.is_persistent() {
            let record = {
                let mut inner = session.inner();
                inner.in_store = true;
                inner.record().encode()
            };
            self.submit(vec![Op::PutSession(session.client_id.clone(), record)])
                .await;
        }
        reasons
    }
}
