//! Consumer groups: the I/O-free `Coordinator` state machine and the thin
//! async driver (`GroupService`) that feeds it requests and wall-clock time
//! and routes its deferred answers back to the waiting connections.

pub mod coordinator;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

pub use coordinator::{
    Coordinator, GroupDescription, GroupSnapshot, JoinRequest, JoinResponse, Output, SyncResponse,
    Token,
};

use crate::error::ErrorCode;
use crate::state::StateStore;
use crate::util::now_ms;

struct Shared {
    coordinator: Coordinator,
    /// Where Stable/Empty group states are persisted (None in tests).
    store: Option<Arc<dyn StateStore>>,
    joins: HashMap<Token, oneshot::Sender<JoinResponse>>,
    syncs: HashMap<Token, oneshot::Sender<SyncResponse>>,
}

/// Async front of the coordinator. The std mutex is never held across an `.await`.
#[derive(Clone)]
pub struct GroupService {
    shared: Arc<Mutex<Shared>>,
    next_token: Arc<AtomicU64>,
    timer_changed: Arc<Notify>,
}

impl Default for GroupService {
    fn default() -> Self {
        Self::new(None)
    }
}

impl GroupService {
    /// A service that persists group state in `store` and restores what it holds.
    pub fn new(store: Option<Arc<dyn StateStore>>) -> Self {
        let mut coordinator = Coordinator::new();
        if let Some(st) = &store {
            match st.load_groups() {
                Ok(groups) => {
                    for (name, data) in groups {
                        match serde_json::from_slice::<GroupSnapshot>(&data) {
                            Ok(snap) => coordinator.restore(now_ms(), &name, snap),
                            Err(e) => {
                                tracing::warn!(group = %name, error = %e, "ignoring unreadable group state")
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot load group state"),
            }
        }
        Self {
            shared: Arc::new(Mutex::new(Shared {
                coordinator,
                store,
                joins: HashMap::new(),
                syncs: HashMap::new(),
            })),
            next_token: Arc::new(AtomicU64::new(1)),
            timer_changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatch(s: &mut Shared) {
        while let Some(o) = s.coordinator.poll_output() {
            match o {
                Output::Join(t, r) => {
                    if let Some(tx) = s.joins.remove(&t) {
                        // The connection may be gone; its member then expires by session timeout.
                        let _ = tx.send(r);
                    }
                }
                Output::Persist(group, snap) => {
                    // Written under the lock so snapshots of one group land in order.
                    if let Some(st) = &s.store {
                        let r = serde_json::to_vec(&snap)
                            .map_err(|e| crate::error::QueueError::State(e.to_string()))
                            .and_then(|v| st.put_group(&group, &v));
                        if let Err(e) = r {
                            tracing::error!(group = %group, error = %e, "cannot persist group state");
                        }
                    }
                }
                Output::Sync(t, r) => {
                    if let Some(tx) = s.syncs.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
    }

    /// JoinGroup: resolves when the rebalance completes.
    pub async fn join(&self, req: JoinRequest) -> JoinResponse {
        let member = req.member_id.clone();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.lock();
            s.joins.insert(token, tx);
            s.coordinator.join(now_ms(), token, req);
            Self::dispatch(&mut s);
        }
        self.timer_changed.notify_one();
        rx.await.unwrap_or_else(|_| JoinResponse {
            error: ErrorCode::REBALANCE_IN_PROGRESS,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member,
            members: Vec::new(),
        })
    }

    /// SyncGroup: resolves when the leader's assignment is in.
    pub async fn sync(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResponse {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.lock();
            s.syncs.insert(token, tx);
            s.coordinator
                .sync(now_ms(), token, group, member, generation, assignments);
            Self::dispatch(&mut s);
        }
        self.timer_changed.notify_one();
        rx.await.unwrap_or(SyncResponse {
            error: ErrorCode::REBALANCE_IN_PROGRESS,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        })
    }

    /// Heartbeat.
    pub fn heartbeat(&self, group: &str, member: &str, generation: i32) -> ErrorCode {
        let mut s = self.lock();
        let e = s.coordinator.heartbeat(now_ms(), group, member, generation);
        Self::dispatch(&mut s);
        e
    }

    /// LeaveGroup.
    pub fn leave(&self, group: &str, members: &[String]) -> Vec<ErrorCode> {
        let mut s = self.lock();
        let e = s.coordinator.leave(now_ms(), group, members);
        Self::dispatch(&mut s);
        drop(s);
        self.timer_changed.notify_one();
        e
    }

    /// Checks an OffsetCommit's member and generation.
    pub fn validate_commit(&self, group: &str, member: &str, generation: i32) -> ErrorCode {
        self.lock()
            .coordinator
            .validate_commit(now_ms(), group, member, generation)
    }

    /// True when the group has no members.
    pub fn is_inactive(&self, group: &str) -> bool {
        self.lock().coordinator.is_inactive(group)
    }

    /// DescribeGroups data.
    pub fn describe(&self, group: &str) -> GroupDescription {
        self.lock().coordinator.describe(group)
    }

    /// ListGroups data.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.lock().coordinator.list()
    }

    /// Drives session and rebalance timeouts until `shutdown` resolves.
    pub async fn run_timers(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let wait = {
                let mut s = self.lock();
                s.coordinator.handle_timeout(now_ms());
                Self::dispatch(&mut s);
                s.coordinator
                    .poll_timeout()
                    .map_or(1000, |t| t.saturating_sub(now_ms()).clamp(1, 1000))
            };
            tokio::select! {
                // Stop with the server.
                _ = &mut shutdown => return,
                // A request may have moved the next deadline earlier.
                _ = self.timer_changed.notified() => {}
                // The next deadline (at most a second away, to bound clock drift).
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
        }
    }
}
