//! Alerts: rules from `[admin.alerts]` (consumer-group lag above N for T
//! seconds, drops per minute above N, disk use above X%) evaluated every
//! few seconds. A rule that starts to hold raises an alert, one that stops
//! holding clears it; each change is logged, published on `$SYS/alerts`,
//! kept for the API and POSTed to the optional webhook. `Alerts::evaluate`
//! is the I/O-free part: it takes observations and time, returns changes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::lock;
use crate::trace::now_ms;

/// Past alert changes kept for the API.
const HISTORY: usize = 200;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// How often rules are checked, in seconds.
    pub interval_secs: u64,
    /// POST every raise/clear as JSON to this `http://` URL (empty: off).
    pub webhook_url: String,
    /// Raise when a consumer group's total lag stays above `max_lag` for `for_secs`.
    pub group_lag: Vec<LagRule>,
    /// Raise when more than this many messages are dropped in a minute (0: off).
    pub drops_per_minute: u64,
    /// Raise when the data folder's file system is fuller than this percent (0: off).
    pub disk_percent: f64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            interval_secs: 5,
            webhook_url: String::new(),
            group_lag: Vec::new(),
            drops_per_minute: 0,
            disk_percent: 90.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagRule {
    /// Group name, or `*` for every group.
    pub group: String,
    pub max_lag: i64,
    #[serde(default)]
    pub for_secs: u64,
}

/// What the hub saw at one evaluation.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    /// Total lag per consumer group.
    pub group_lag: BTreeMap<String, i64>,
    /// Dropped messages counter (monotonic).
    pub dropped_total: u64,
    /// Disk use of the data folder in percent, if known.
    pub disk_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// Stable key, e.g. `group_lag:orders`.
    pub key: String,
    pub message: String,
    pub value: f64,
    pub threshold: f64,
    pub raised_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertChange {
    /// `raised` or `cleared`.
    pub state: &'static str,
    #[serde(flatten)]
    pub alert: Alert,
    pub at_ms: u64,
}

#[derive(Default)]
struct State {
    active: BTreeMap<String, Alert>,
    history: VecDeque<AlertChange>,
    /// Since when each lag condition has held (ms).
    lag_since: HashMap<String, u64>,
    /// (time ms, dropped counter) samples of the last minute.
    drops: VecDeque<(u64, u64)>,
}

pub struct Alerts {
    config: AlertConfig,
    state: Mutex<State>,
}

impl Alerts {
    pub fn new(config: AlertConfig) -> Alerts {
        Alerts {
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub fn active(&self) -> Vec<Alert> {
        lock(&self.state).active.values().cloned().collect()
    }

    pub fn history(&self) -> Vec<AlertChange> {
        lock(&self.state).history.iter().rev().cloned().collect()
    }

    /// Applies the rules to one observation at `now_ms`; returns what changed.
    pub fn evaluate(&self, now: u64, obs: &Observation) -> Vec<AlertChange> {
        let c = &self.config;
        let mut s = lock(&self.state);
        let mut holding: Vec<Alert> = Vec::new();
        for rule in &c.group_lag {
            for (group, lag) in &obs.group_lag {
                if rule.group != "*" && rule.group != *group {
                    continue;
                }
                let key = format!("group_lag:{group}");
                if *lag > rule.max_lag {
                    let since = *s.lag_since.entry(key.clone()).or_insert(now);
                    if now.saturating_sub(since) >= rule.for_secs * 1000 {
                        holding.push(Alert {
                            key,
                            message: format!(
                                "consumer group {group} lag {lag} above {} for {}s",
                                rule.max_lag, rule.for_secs
                            ),
                            value: *lag as f64,
                            threshold: rule.max_lag as f64,
                            raised_ms: now,
                        });
                    }
                } else {
                    s.lag_since.remove(&key);
                }
            }
        }
        s.drops.push_back((now, obs.dropped_total));
        while s.drops.len() > 1 && s.drops[0].0 + 60_000 < now {
            s.drops.pop_front();
        }
        if c.drops_per_minute > 0 {
            let first = s.drops.front().map_or(obs.dropped_total, |d| d.1);
            let per_minute = obs.dropped_total.saturating_sub(first);
            if per_minute > c.drops_per_minute {
                holding.push(Alert {
                    key: "drops_per_minute".into(),
                    message: format!(
                        "{per_minute} messages dropped in the last minute (limit {})",
                        c.drops_per_minute
                    ),
                    value: per_minute as f64,
                    threshold: c.drops_per_minute as f64,
                    raised_ms: now,
                });
            }
        }
        if let Some(pct) = obs.disk_percent.filter(|_| c.disk_percent > 0.0) {
            if pct > c.disk_percent {
                holding.push(Alert {
                    key: "disk_percent".into(),
                    message: format!("data disk {pct:.1}% full (limit {}%)", c.disk_percent),
                    value: pct,
                    threshold: c.disk_percent,
                    raised_ms: now,
                });
            }
        }
        let mut changes = Vec::new();
        let keys: Vec<String> = s.active.keys().cloned().collect();
        for key in keys {
            if !holding.iter().any(|a| a.key == key) {
                if let Some(alert) = s.active.remove(&key) {
                    changes.push(AlertChange {
                        state: "cleared",
                        alert,
                        at_ms: now,
                    });
                }
            }
        }
        for alert in holding {
            if !s.active.contains_key(&alert.key) {
                s.active.insert(alert.key.clone(), alert.clone());
                changes.push(AlertChange {
                    state: "raised",
                    alert,
                    at_ms: now,
                });
            }
        }
        for ch in &changes {
            if s.history.len() >= HISTORY {
                s.history.pop_front();
            }
            s.history.push_back(ch.clone());
        }
        changes
    }
}

/// Percent of the file system holding `path` that is in use.
pub fn disk_percent(path: &std::path::Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 || st.f_blocks == 0 {
        return None;
    }
    let total = st.f_blocks as f64;
    let free = st.f_bavail as f64;
    Some((total - free) / total * 100.0)
}

/// Collects observations, applies the rules and carries out the changes
/// until shutdown.
pub async fn run(
    broker: Arc<crate::broker::Broker>,
    queue: Option<queue::Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let alerts = broker.alerts.clone();
    let period = Duration::from_secs(alerts.config.interval_secs.max(1));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut obs = Observation {
            dropped_total: broker.metrics.dropped_total(),
            disk_percent: disk_percent(&broker.config.data_dir),
            ..Observation::default()
        };
        if let Some(q) = &queue {
            for g in q.group_names().unwrap_or_default() {
                let lag: i64 = q
                    .group_lag(&g)
                    .unwrap_or_default()
                    .iter()
                    .map(|l| l.lag)
                    .sum();
                obs.group_lag.insert(g, lag);
            }
        }
        for change in alerts.evaluate(now_ms(), &obs) {
            announce(&broker, &alerts.config.webhook_url, change).await;
        }
    }
}

async fn announce(broker: &crate::broker::Broker, webhook: &str, change: AlertChange) {
    match change.state {
        "raised" => tracing::warn!(alert = %change.alert.key, "{}", change.alert.message),
        _ => tracing::info!(alert = %change.alert.key, "alert cleared"),
    }
    let body = serde_json::to_vec(&change).unwrap_or_default();
    let message = mqtt::message::Message::new(
        "$SYS/alerts",
        bytes::Bytes::from(body.clone()),
        mqtt::QoS::AtMostOnce,
        false,
        mqtt::Properties::default(),
        Arc::from(""),
    );
    broker.publish(Arc::new(message)).await;
    if !webhook.is_empty() {
        let url = webhook.to_string();
        let result = tokio::task::spawn_blocking(move || {
            crate::admin::client::request_url("POST", &url, None, Some(&body))
        })
        .await;
        match result {
            Ok(Ok(r)) if r.status < 300 => {}
            Ok(Ok(r)) => tracing::warn!(status = r.status, "alert webhook refused the alert"),
            Ok(Err(e)) => tracing::warn!(error = %e, "alert webhook unreachable"),
            Err(e) => tracing::warn!(error = %e, "alert webhook task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts() -> Alerts {
        Alerts::new(AlertConfig {
            group_lag: vec![LagRule {
                group: "*".into(),
                max_lag: 10,
                for_secs: 5,
            }],
            drops_per_minute: 100,
            disk_percent: 90.0,
            ..AlertConfig::default()
        })
    }

    #[test]
    fn lag_raises_only_after_holding_for_the_duration_and_clears() {
        let a = alerts();
        let mut obs = Observation::default();
        obs.group_lag.insert("g".into(), 50);
        assert!(a.evaluate(0, &obs).is_empty());
        assert!(a.evaluate(4_000, &obs).is_empty());
        let ch = a.evaluate(5_000, &obs);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].state, "raised");
        assert_eq!(ch[0].alert.key, "group_lag:g");
        assert!(a.evaluate(6_000, &obs).is_empty(), "raised once");
        obs.group_lag.insert("g".into(), 3);
        let ch = a.evaluate(7_000, &obs);
        assert_eq!(ch[0].state, "cleared");
        assert!(a.active().is_empty());
        assert_eq!(a.history().len(), 2);
    }

    #[test]
    fn drops_per_minute_and_disk() {
        let a = alerts();
        let mut obs = Observation {
            dropped_total: 1000,
            disk_percent: Some(50.0),
            ..Observation::default()
        };
        assert!(a.evaluate(0, &obs).is_empty());
        obs.dropped_total = 1200;
        obs.disk_percent = Some(95.0);
        let keys: Vec<_> = a
            .evaluate(30_000, &obs)
            .into_iter()
            .map(|c| c.alert.key)
            .collect();
        assert_eq!(keys, ["drops_per_minute", "disk_percent"]);
        // A minute later the window holds no new drops.
        obs.disk_percent = Some(10.0);
        let ch = a.evaluate(120_000, &obs);
        assert!(ch.iter().all(|c| c.state == "cleared") && ch.len() == 2);
    }
}
