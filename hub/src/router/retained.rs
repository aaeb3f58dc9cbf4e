//! Retained messages in a topic-level trie, so a wildcard subscribe walks
//! only the matching branches instead of scanning every retained topic.

use std::collections::HashMap;
use std::sync::Arc;

use mqtt::message::Message;

#[derive(Default, Debug)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

#[derive(Default, Debug)]
pub struct RetainedStore {
    root: Node,
    count: usize,
    bytes: usize,
}

impl RetainedStore {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sets the retained message for its topic, replacing any previous one.
    pub fn insert(&mut self, message: Arc<Message>) {
        let mut node = &mut self.root;
        for level in message.topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        self.bytes += message.payload.len();
        match node.message.replace(message) {
            Some(old) => self.bytes -= old.payload.len(),
            None => self.count += 1,
        }
    }

    /// Deletes the retained message on `topic`; true if there was one.
    pub fn remove(&mut self, topic: &str) -> bool {
        let levels: Vec<&str> = topic.split('/').collect();
        match remove_at(&mut self.root, &levels) {
            Some(old) => {
                self.count -= 1;
                self.bytes -= old.payload.len();
                true
            }
            None => false,
        }
    }

    pub fn get(&self, topic: &str) -> Option<Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.clone()
    }

    /// Every retained message whose topic matches `filter` (not shared).
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        collect(&self.root, &levels, 0, &mut out);
        out
    }

    /// Visits every retained message (for persistence snapshots and the API).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Message>)) {
        fn walk(n: &Node, f: &mut impl FnMut(&Arc<Message>)) {
            if let Some(m) = &n.message {
                f(m);
            }
            for c in n.children.values() {
                walk(c, f);
            }
        }
        walk(&self.root, &mut f);
    }
}

fn remove_at(node: &mut Node, levels: &[&str]) -> Option<Arc<Message>> {
    let Some((first, rest)) = levels.split_first() else {
        return node.message.take();
    };
    let child = node.children.get_mut(*first)?;
    let old = remove_at(child, rest);
    if child.is_empty() {
        node.children.remove(*first);
    }
    old
}

fn all_below(node: &Node, out: &mut Vec<Arc<Message>>) {
    if let Some(m) = &node.message {
        out.push(m.clone());
    }
    for c in node.children.values() {
        all_below(c, out);
    }
}

fn collect(node: &Node, filter: &[&str], depth: usize, out: &mut Vec<Arc<Message>>) {
    let Some((first, rest)) = filter.split_first() else {
        if let Some(m) = &node.message {
            out.push(m.clone());
        }
        return;
    };
    match *first {
        "#" => {
            // "a/#" also matches "a"; leading wildcards skip `$` topics.
            if let Some(m) = &node.message {
                if depth > 0 {
                    out.push(m.clone());
                }
            }
            for (name, c) in &node.children {
                if depth == 0 && name.starts_with('$') {
                    continue;
                }
                all_below(c, out);
            }
        }
        "+" => {
            for (name, c) in &node.children {
                if depth == 0 && name.starts_with('$') {
                    continue;
                }
                collect(c, rest, depth + 1, out);
            }
        }
        level => {
            if let Some(c) = node.children.get(level) {
                collect(c, rest, depth + 1, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt::{Properties, QoS};

    fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message::new(
            topic,
            Bytes::from(payload.to_string()),
            QoS::AtMostOnce,
            true,
            Properties::default(),
            Arc::from(""),
        ))
    }

    fn topics(v: Vec<Arc<Message>>) -> Vec<String> {
        let mut t: Vec<String> = v.iter().map(|m| m.topic.clone()).collect();
        t.sort();
        t
    }

    #[test]
    fn set_replace_delete() {
        let mut r = RetainedStore::default();
        r.insert(msg("a/b", "1"));
        r.insert(msg("a/b", "22"));
        assert_eq!(r.len(), 1);
        assert_eq!(r.bytes(), 2);
        assert_eq!(&r.get("a/b").unwrap().payload[..], b"22");
        assert!(r.remove("a/b"));
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
        assert!(r.get("a/b").is_none());
    }

    #[test]
    fn wildcard_lookup() {
        let mut r = RetainedStore::default();
        for t in ["a", "a/b", "a/b/c", "a/x", "b/b", "$SYS/up"] {
            r.insert(msg(t, "p"));
        }
        assert_eq!(topics(r.matching("a/#")), ["a", "a/b", "a/b/c", "a/x"]);
        assert_eq!(topics(r.matching("+/b")), ["a/b", "b/b"]);
        assert_eq!(topics(r.matching("#")), ["a", "a/b", "a/b/c", "a/x", "b/b"]);
        assert_eq!(topics(r.matching("$SYS/#")), ["$SYS/up"]);
        assert_eq!(topics(r.matching("a/b")), ["a/b"]);
    }
}
