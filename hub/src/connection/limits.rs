//! The rights and limits a connection applies to its client: token expiry,
//! read pauses under a rate limit, ACL refusals of publishes and
//! subscriptions, and tenant namespaces for filters.

use super::*;

impl<S: Transport> Connection<S> {
    /// The session's own timer, or the end of the client's token if sooner.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let own = self.session.poll_timeout();
        match self.access.as_ref().and_then(|a| a.expires_at) {
            Some(t) => Some(own.map_or(t, |o| o.min(t))),
            None => own,
        }
    }

    pub(super) fn on_timeout(&mut self, now: Instant) {
        if self
            .access
            .as_ref()
            .and_then(|a| a.expires_at)
            .is_some_and(|t| now >= t)
        {
            Metrics::inc(&self.broker.metrics.sessions_token_expired);
            // Only once: the close below ends the loop.
            if let Some(a) = self.access.as_mut() {
                a.expires_at = None;
            }
            self.session
                .close_by_server(ReasonCode::MAXIMUM_CONNECT_TIME);
        } else {
            self.session.handle_timeout(now);
        }
    }

    /// When reads may resume, if a rate limit holds them now.
    pub(super) fn read_pause(&mut self) -> Option<Instant> {
        let a = self.access.as_mut().filter(|a| a.limiter.is_active())?;
        let until = a.limiter.pause_until(Instant::now());
        if until.is_some() {
            Metrics::inc(&self.broker.metrics.rate_limit_pauses);
        }
        until
    }

    pub(super) fn charge(&mut self, messages: u64, bytes: usize) {
        if let Some(a) = self.access.as_mut().filter(|a| a.limiter.is_active()) {
            a.limiter.charge(messages, bytes as u64, Instant::now());
        }
    }

    /// A publish the ACL refuses: v5 gets PUBACK/PUBREC 0x87; v3 has no
    /// negative acknowledgement, so it is acknowledged and dropped with the
    /// connection kept (as mosquitto does).
    pub(super) fn publish_denied(&mut self, p: &mqtt::Publish) {
        Metrics::inc(&self.broker.metrics.acl_denied);
        tracing::debug!(conn = self.id, topic = %p.topic, "publish denied");
        if p.qos != QoS::AtMostOnce {
            let reason = if self.session.protocol() == Protocol::V5 {
                ReasonCode::NOT_AUTHORIZED
            } else {
                ReasonCode::SUCCESS
            };
            self.session.publish_done(p.qos, p.pkid, reason);
        }
    }

    /// Moves a SUBSCRIBE's filters into the client's namespace and takes out
    /// the ones the ACL refuses; returns which positions were refused.
    pub(super) fn map_subscribe(&mut self, s: &mut mqtt::Subscribe) -> Vec<bool> {
        let security = &self.broker.security;
        let mut denied = Vec::with_capacity(s.filters.len());
        s.filters.retain_mut(|f| {
            let mapped = match &self.access {
                Some(a) => a.subscribe_filter(security, &f.filter),
                None => crate::access::open_allows(&f.filter).then(|| f.filter.clone()),
            };
            match mapped {
                Some(filter) => {
                    f.filter = filter;
                    denied.push(false);
                    true
                }
                None => {
                    denied.push(true);
                    false
                }
            }
        });
        for _ in denied.iter().filter(|d| **d) {
            Metrics::inc(&self.broker.metrics.acl_denied);
        }
        denied
    }
}
