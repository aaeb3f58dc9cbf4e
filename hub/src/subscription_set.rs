//! A session's own list of its subscriptions (the trie holds the routing
//! copy): a vector sorted by filter. Most devices hold one or a few
//! subscriptions, and a one-entry hash map costs ~280 bytes (four buckets
//! and the filter stored twice, as key and in the value) against ~40 here;
//! at millions of sessions that is the difference between fitting in
//! memory or not. Lookups are binary searches; inserts shift the tail,
//! which is cheap at the sizes `limits.max_subscriptions` allows.

use crate::store::StoredSubscription;

#[derive(Debug, Default, Clone)]
pub struct SubscriptionSet {
    subs: Vec<StoredSubscription>,
}

impl SubscriptionSet {
    fn find(&self, filter: &str) -> Result<usize, usize> {
        self.subs
            .binary_search_by(|s| s.filter.as_str().cmp(filter))
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    pub fn contains_key(&self, filter: &str) -> bool {
        self.find(filter).is_ok()
    }

    /// Adds `sub`, or replaces the subscription with the same filter and
    /// returns it.
    pub fn insert(&mut self, sub: StoredSubscription) -> Option<StoredSubscription> {
        match self.find(&sub.filter) {
            Ok(i) => Some(std::mem::replace(&mut self.subs[i], sub)),
            Err(i) => {
                if self.subs.capacity() == 0 {
                    // Room for exactly one: the common case is one filter.
                    self.subs.reserve_exact(1);
                }
                self.subs.insert(i, sub);
                None
            }
        }
    }

    pub fn remove(&mut self, filter: &str) -> Option<StoredSubscription> {
        let i = self.find(filter).ok()?;
        let removed = self.subs.remove(i);
        if self.subs.is_empty() {
            self.subs = Vec::new();
        }
        Some(removed)
    }

    /// The subscriptions, in filter order.
    pub fn values(&self) -> std::slice::Iter<'_, StoredSubscription> {
        self.subs.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.subs.iter().map(|s| s.filter.as_str())
    }

    /// Removes and returns every subscription.
    pub fn drain(&mut self) -> Vec<StoredSubscription> {
        std::mem::take(&mut self.subs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt::{QoS, SubscriptionOptions};

    fn sub(filter: &str, qos: QoS) -> StoredSubscription {
        StoredSubscription {
            filter: filter.to_owned(),
            options: SubscriptionOptions {
                qos,
                ..Default::default()
            },
            id: None,
        }
    }

    #[test]
    fn keeps_one_entry_per_filter_and_finds_it() {
        let mut set = SubscriptionSet::default();
        for f in ["b/#", "a/+", "c", "a/+"] {
            set.insert(sub(f, QoS::AtMostOnce));
        }
        assert_eq!(set.len(), 3);
        assert_eq!(set.keys().collect::<Vec<_>>(), ["a/+", "b/#", "c"]);
        let old = set.insert(sub("c", QoS::ExactlyOnce)).expect("replaced");
        assert_eq!(old.options.qos, QoS::AtMostOnce);
        assert_eq!(
            set.values()
                .find(|s| s.filter == "c")
                .map(|s| s.options.qos),
            Some(QoS::ExactlyOnce)
        );
        assert!(set.contains_key("b/#") && !set.contains_key("b"));
        assert_eq!(set.remove("b/#").map(|s| s.filter), Some("b/#".into()));
        assert!(set.remove("b/#").is_none());
        let all: Vec<String> = set.drain().into_iter().map(|s| s.filter).collect();
        assert_eq!(all, ["a/+", "c"]);
        assert!(set.is_empty());
    }

    #[test]
    fn a_single_subscription_allocates_room_for_one() {
        let mut set = SubscriptionSet::default();
        set.insert(sub("sim/all", QoS::AtMostOnce));
        assert_eq!(set.subs.capacity(), 1);
        set.remove("sim/all");
        assert_eq!(set.subs.capacity(), 0);
    }
}
