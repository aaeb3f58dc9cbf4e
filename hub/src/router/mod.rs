//! Topic routing data structures: the subscription trie and the retained
//! message store. The routing itself (fan-out into session outboxes) is in
//! `crate::broker`.

pub mod retained;
pub mod trie;
