//! Topic tree statistics: how many subscriptions, distinct filters,
//! wildcard and shared filters the router holds, the most subscribed
//! filters, and the retained store's size.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AdminState;
use crate::broker::lock_read;

/// Filters listed in `top_filters`.
const TOP: usize = 50;

pub async fn tree(State(state): State<AdminState>) -> Json<Value> {
    let b = &state.broker;
    let mut filters: HashMap<String, usize> = HashMap::new();
    for e in b.sessions.iter() {
        for f in e.value().inner().subscriptions.keys() {
            *filters.entry(f.to_owned()).or_default() += 1;
        }
    }
    let wildcard = filters
        .keys()
        .filter(|f| mqtt::topic::has_wildcard(f))
        .count();
    let shared = filters.keys().filter(|f| f.starts_with("$share/")).count();
    let mut top: Vec<(String, usize)> = filters.iter().map(|(f, n)| (f.clone(), *n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);
    let (retained, retained_bytes) = {
        let r = lock_read(&b.retained);
        (r.len(), r.bytes())
    };
    Json(json!({
        "subscriptions": b.subscription_count(),
        "filters": filters.len(),
        "wildcard_filters": wildcard,
        "shared_filters": shared,
        "retained": retained,
        "retained_bytes": retained_bytes,
        "top_filters": top.into_iter().map(|(f, n)| json!({"filter": f, "subscribers": n})).collect::<Vec<_>>(),
    }))
}
