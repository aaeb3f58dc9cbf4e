//! Clients (connected), sessions (connected or not, with their queued
//! counts) and subscriptions: list with paging and filters, details, kick
//! a client, discard an offline session.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mqtt::{Connect, Protocol, ReasonCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::AdminState;
use crate::peer::PeerInfo;
use crate::session::SessionShared;
use crate::trace::now_ms;

/// The last connection of a session, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// What the listener knows (shared by its connections, so not a copy
    /// per client); the remote address is kept beside it.
    pub peer: Option<Arc<PeerInfo>>,
    pub remote: Option<std::net::SocketAddr>,
    pub connected_ms: u64,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub username: Option<Box<str>>,
}

/// Records who connected, when the connection attaches to its session.
/// Kept small (one 80-byte allocation per session): every connected
/// device pays for it.
pub fn attach_info(
    session: &SessionShared,
    peer: Option<Arc<PeerInfo>>,
    remote: Option<std::net::SocketAddr>,
    c: &Connect,
) {
    let info = ClientInfo {
        peer,
        remote,
        connected_ms: now_ms(),
        keep_alive: c.keep_alive,
        clean_start: c.clean_start,
        username: c.username.as_deref().map(Box::from),
    };
    session.inner().client_info = Some(Box::new(info));
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1-based page number.
    pub page: Option<usize>,
    /// Items per page (1..=1000, default 100).
    pub limit: Option<usize>,
    /// Only client ids containing this text.
    pub like: Option<String>,
    /// Only clients of this listener.
    pub listener: Option<String>,
    /// Sessions only: online (true) or offline (false).
    pub online: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct SessionView {
    pub client_id: String,
    pub online: bool,
    pub protocol: &'static str,
    pub expiry_secs: u32,
    pub subscriptions: usize,
    /// Messages waiting in the session's queue.
    pub queued: usize,
    pub queued_bytes: usize,
    /// Deliveries sent and not yet acknowledged (offline sessions: kept for resend).
    pub inflight: usize,
    pub listener: Option<String>,
    pub remote: Option<String>,
    pub cert_identity: Option<String>,
    pub username: Option<String>,
    pub keep_alive: Option<u16>,
    pub clean_start: Option<bool>,
    pub connected_at_ms: Option<u64>,
    pub offline_secs: Option<u64>,
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "3.1",
        Protocol::V3_1_1 => "3.1.1",
        Protocol::V5 => "5.0",
    }
}

pub fn view(s: &SessionShared) -> SessionView {
    let (queued, queued_bytes) = {
        let o = s.outbox();
        (o.len(), o.bytes())
    };
    let inner = s.inner();
    let info = inner.client_info.as_deref();
    let peer = info.and_then(|i| i.peer.as_deref());
    SessionView {
        client_id: s.client_id.to_string(),
        online: s.is_online(),
        protocol: protocol_name(inner.protocol),
        expiry_secs: inner.expiry,
        subscriptions: inner.subscriptions.len(),
        queued,
        queued_bytes,
        inflight: inner.parked.as_ref().map_or(0, |p| p.outgoing.len()),
        listener: peer.map(|p| p.listener.to_string()),
        remote: info
            .and_then(|i| i.remote.or(peer.and_then(|p| p.remote)))
            .map(|r| r.to_string()),
        cert_identity: peer.and_then(|p| p.cert_identity.clone()),
        username: info.and_then(|i| i.username.as_deref().map(String::from)),
        keep_alive: info.map(|i| i.keep_alive),
        clean_start: info.map(|i| i.clean_start),
        connected_at_ms: info.map(|i| i.connected_ms),
        offline_secs: inner
            .disconnected_at
            .map(|t| t.elapsed_at(std::time::Instant::now()).as_secs()),
    }
}

fn all_sessions(state: &AdminState) -> Vec<Arc<SessionShared>> {
    state
        .broker
        .sessions
        .iter()
        .map(|e| e.value().clone())
        .collect()
}

fn by_client_id(v: &mut [Arc<SessionShared>]) {
    v.sort_unstable_by(|a, b| a.client_id.cmp(&b.client_id));
}

/// Pages a filtered list: `{"data": [...], "meta": {page, limit, count}}`.
/// Filters look at cheap fields first and views are built for the page
/// only, so a hub with a million sessions answers without copying them all.
fn page(state: &AdminState, q: &ListQuery, online_only: bool) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_request("page starts at 1"));
    }
    let mut matching: Vec<Arc<SessionShared>> = all_sessions(state)
        .into_iter()
        .filter(|s| !online_only || s.is_online())
        .filter(|s| q.online.map_or(true, |o| s.is_online() == o))
        .filter(|s| q.like.as_deref().map_or(true, |l| s.client_id.contains(l)))
        .filter(|s| {
            q.listener.as_deref().map_or(true, |l| {
                let inner = s.inner();
                let listener = inner.client_info.as_ref().and_then(|i| i.peer.as_ref());
                listener.is_some_and(|p| *p.listener == *l)
            })
        })
        .collect();
    by_client_id(&mut matching);
    let count = matching.len();
    let data: Vec<SessionView> = matching
        .iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(|s| view(s))
        .collect();
    Ok(Json(
        json!({ "data": data, "meta": { "page": page, "limit": limit, "count": count } }),
    ))
}

pub async fn list_clients(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    page(&state, &q, true)
}

pub async fn list_sessions(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    page(&state, &q, false)
}

fn find(state: &AdminState, id: &str) -> ApiResult<Arc<SessionShared>> {
    state
        .broker
        .sessions
        .get(id)
        .map(|s| s.value().clone())
        .ok_or_else(|| ApiError::not_found(format!("no session for client id {id:?}")))
}

fn details(s: &SessionShared) -> Value {
    let subs: Vec<Value> = s
        .inner()
        .subscriptions
        .values()
        .map(|sub| json!({ "filter": sub.filter, "qos": sub.options.qos as u8, "no_local": sub.options.no_local, "id": sub.id }))
        .collect();
    let mut v = serde_json::to_value(view(s)).unwrap_or_default();
    v["subscription_list"] = Value::Array(subs);
    v
}

pub async fn client(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let s = find(&state, &id)?;
    if !s.is_online() {
        return Err(ApiError::not_found(format!(
            "client {id:?} is not connected (see /api/v1/sessions/{id})"
        )));
    }
    Ok(Json(details(&s)))
}

pub async fn session(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let s = find(&state, &id)?;
    Ok(Json(details(&s)))
}

/// Disconnects a client (v5: DISCONNECT 0x98 Administrative action). Its
/// session stays if it is persistent.
pub async fn kick(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let s = find(&state, &id)?;
    if s.kick_connection(ReasonCode::ADMINISTRATIVE_ACTION) {
        tracing::info!(client = %id, "client kicked through the admin API");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "client {id:?} is not connected"
        )))
    }
}

/// Deletes an offline session with its subscriptions and queued messages.
pub async fn discard(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let s = find(&state, &id)?;
    if s.is_online() {
        return Err(ApiError::conflict(
            "client_connected",
            format!("client {id:?} is connected; kick it first"),
        ));
    }
    let mut ops = Vec::new();
    state.broker.discard(&s, &mut ops);
    state.broker.submit(ops).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SubQuery {
    pub client_id: Option<String>,
    /// Only subscriptions whose filter contains this text.
    pub filter: Option<String>,
    pub limit: Option<usize>,
}

pub async fn subscriptions(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<SubQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let mut out = Vec::new();
    let mut count = 0usize;
    let mut sessions = all_sessions(&state);
    by_client_id(&mut sessions);
    for s in sessions {
        if q.client_id.as_deref().is_some_and(|c| *c != *s.client_id) {
            continue;
        }
        let inner = s.inner();
        for sub in inner.subscriptions.values() {
            if q.filter.as_deref().is_some_and(|f| !sub.filter.contains(f)) {
                continue;
            }
            count += 1;
            if out.len() < limit {
                out.push(json!({
                    "client_id": &*s.client_id,
                    "filter": sub.filter,
                    "qos": sub.options.qos as u8,
                    "shared": sub.filter.starts_with("$share/"),
                    "online": s.is_online(),
                }));
            }
        }
    }
    Ok(Json(
        json!({ "data": out, "meta": { "count": count, "limit": limit } }),
    ))
}
