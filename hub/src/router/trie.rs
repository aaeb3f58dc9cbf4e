//! The subscription trie: one node per topic level, `+` and `#` stored as
//! ordinary children, so a lookup walks only the branches a topic can match
//! (exact level, `+`, `#`) instead of testing every filter.
//!
//! Each node holds the plain subscriptions on that filter, keyed by
//! subscriber, and the shared-subscription groups on it.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use mqtt::SubscriptionOptions;

/// One subscription of one subscriber on one filter.
#[derive(Clone, Debug)]
pub struct SubEntry<S> {
    pub subscriber: Arc<S>,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

/// The members of one `$share/<group>/<filter>` group, in join order.
#[derive(Debug)]
pub struct SharedGroup<S> {
    pub name: Arc<str>,
    pub filter: Arc<str>,
    pub members: Vec<SubEntry<S>>,
    /// Next member for round-robin; atomic so matching needs only a read lock.
    pub cursor: AtomicUsize,
}

#[derive(Debug)]
struct Node<S> {
    children: HashMap<Box<str>, Node<S>>,
    subs: HashMap<Arc<str>, SubEntry<S>>,
    shared: HashMap<Box<str>, SharedGroup<S>>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            subs: HashMap::new(),
            shared: HashMap::new(),
        }
    }
}

impl<S> Node<S> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty() && self.shared.is_empty()
    }
}

/// Visitor callbacks for a match: plain entries and shared groups.
pub trait MatchSink<S> {
    /// Called before the plain entries of each matching node that has any.
    /// Within one node a subscriber appears once; across nodes it may repeat.
    /// `plain` is how many plain entries follow.
    fn node(&mut self, _plain: usize) {}
    fn plain(&mut self, entry: &SubEntry<S>);
    fn shared(&mut self, group: &SharedGroup<S>);
}

#[derive(Debug)]
pub struct Trie<S> {
    root: Node<S>,
    count: usize,
}

impl<S> Default for Trie<S> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
            count: 0,
        }
    }
}

impl<S> Trie<S> {
    /// Number of subscriptions (plain and shared members).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn node_mut(&mut self, filter: &str) -> &mut Node<S> {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        node
    }

    /// Adds or replaces `key`'s subscription on `filter` (or in `group`).
    /// Returns true if it did not exist before.
    pub fn insert(
        &mut self,
        filter: &str,
        group: Option<&str>,
        key: Arc<str>,
        entry: SubEntry<S>,
    ) -> bool {
        let filter_arc: Arc<str> = Arc::from(filter);
        let node = self.node_mut(filter);
        let new = match group {
            None => node.subs.insert(key, entry).is_none(),
            Some(g) => {
                let grp = node.shared.entry(g.into()).or_insert_with(|| SharedGroup {
                    name: Arc::from(g),
                    filter: filter_arc,
                    members: Vec::new(),
                    cursor: AtomicUsize::new(0),
                });
                match grp.members.iter_mut().find(|m| same_key(m, &key, &entry)) {
                    Some(m) => {
                        *m = entry;
                        false
                    }
                    None => {
                        grp.members.push(entry);
                        true
                    }
                }
            }
        };
        if new {
            self.count += 1;
        }
        new
    }

    /// Removes `key`'s subscription on `filter`; true if there was one.
    pub fn remove(
        &mut self,
        filter: &str,
        group: Option<&str>,
        key: &str,
        is_key: impl Fn(&S) -> bool,
    ) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, group, key, &is_key);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Calls `sink` for every subscription whose filter matches `topic`.
    pub fn matches(&self, topic: &str, sink: &mut impl MatchSink<S>) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        match_at(&self.root, &levels, 0, dollar, sink);
    }
}

fn same_key<S>(m: &SubEntry<S>, _key: &str, entry: &SubEntry<S>) -> bool {
    Arc::ptr_eq(&m.subscriber, &entry.subscriber)
}

fn remove_at<S>(
    node: &mut Node<S>,
    levels: &[&str],
    group: Option<&str>,
    key: &str,
    is_key: &impl Fn(&S) -> bool,
) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return match group {
            None => node.subs.remove(key).is_some(),
            Some(g) => {
                let Some(grp) = node.shared.get_mut(g) else {
                    return false;
                };
                let before = grp.members.len();
                grp.members.retain(|m| !is_key(&m.subscriber));
                let removed = grp.members.len() != before;
                if grp.members.is_empty() {
                    node.shared.remove(g);
                }
                removed
            }
        };
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove_at(child, rest, group, key, is_key);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn visit<S>(node: &Node<S>, sink: &mut impl MatchSink<S>) {
    if !node.subs.is_empty() {
        sink.node(node.subs.len());
    }
    for e in node.subs.values() {
        sink.plain(e);
    }
    for g in node.shared.values() {
        sink.shared(g);
    }
}

fn match_at<S>(
    node: &Node<S>,
    levels: &[&str],
    depth: usize,
    dollar: bool,
    sink: &mut impl MatchSink<S>,
) {
    // [MQTT-4.7.2-1] a leading wildcard does not match a `$` topic.
    let wild_ok = !(dollar && depth == 0);
    if wild_ok {
        // `#` matches the parent level too ("a/#" matches "a").
        if let Some(hash) = node.children.get("#") {
            visit(hash, sink);
        }
    }
    let Some((first, rest)) = levels.split_first() else {
        visit(node, sink);
        return;
    };
    if let Some(child) = node.children.get(*first) {
        match_at(child, rest, depth + 1, dollar, sink);
    }
    if wild_ok {
        if let Some(plus) = node.children.get("+") {
            match_at(plus, rest, depth + 1, dollar, sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<String>);
    impl MatchSink<String> for Collect {
        fn plain(&mut self, e: &SubEntry<String>) {
            self.0.push(format!("{}", e.subscriber));
        }
        fn shared(&mut self, g: &SharedGroup<String>) {
            for m in &g.members {
                self.0.push(format!("share:{}", m.subscriber));
            }
        }
    }

    fn entry(name: &str) -> SubEntry<String> {
        SubEntry {
            subscriber: Arc::new(name.to_string()),
            options: Default::default(),
            id: None,
        }
    }

    fn matched(t: &Trie<String>, topic: &str) -> Vec<String> {
        let mut c = Collect(Vec::new());
        t.matches(topic, &mut c);
        c.0.sort();
        c.0
    }

    #[test]
    fn wildcards_and_dollar_topics() {
        let mut t = Trie::default();
        for (f, who) in [
            ("a/b", "exact"),
            ("a/+", "plus"),
            ("a/#", "hash"),
            ("#", "all"),
            ("+/b", "pb"),
            ("$SYS/#", "sys"),
        ] {
            t.insert(f, None, Arc::from(who), entry(who));
        }
        assert_eq!(matched(&t, "a/b"), ["all", "exact", "hash", "pb", "plus"]);
        assert_eq!(matched(&t, "a"), ["all", "hash"]);
        assert_eq!(matched(&t, "a/b/c"), ["all", "hash"]);
        assert_eq!(matched(&t, "$SYS/uptime"), ["sys"]);
        assert_eq!(matched(&t, "x/b"), ["all", "pb"]);
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut t = Trie::default();
        assert!(t.insert("a/b/c", None, Arc::from("x"), entry("x")));
        assert!(!t.insert("a/b/c", None, Arc::from("x"), entry("x")));
        assert!(t.remove("a/b/c", None, "x", |_| true));
        assert!(!t.remove("a/b/c", None, "x", |_| true));
        assert!(t.is_empty());
        assert!(t.root.is_empty());
    }

    #[test]
    fn shared_groups() {
        let mut t = Trie::default();
        let a = entry("a");
        let b = entry("b");
        t.insert("s/+", Some("g"), Arc::from("a"), a.clone());
        t.insert("s/+", Some("g"), Arc::from("b"), b.clone());
        assert_eq!(matched(&t, "s/1"), ["share:a", "share:b"]);
        assert!(t.remove("s/+", Some("g"), "a", |s| Arc::ptr_eq(
            &Arc::new(s.clone()),
            &a.subscriber
        ) || s == "a"));
        assert_eq!(matched(&t, "s/1"), ["share:b"]);
    }
}
