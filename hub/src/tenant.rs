//! Tenants (main and sub accounts share one): each owns a topic namespace.
//! A tenant client's topics, filters and client id are routed internally
//! under `$tenant/<id>/` (see `mqtt::topic::NAMESPACE_ROOT`). Leading
//! wildcards never match `$` topics, so `#`, `+/#` or `$share/g/#` from
//! anywhere else cannot reach it; retained messages and shared groups live
//! under the same root, so they are per tenant too. Clients outside tenants
//! may not name the root; deliveries drop it (`Message::wire_topic`).
//! Per-tenant limits: connections, and message/byte rates shared by all of
//! a tenant's connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mqtt::topic::NAMESPACE_ROOT;
use serde::Deserialize;

use crate::ratelimit::Rates;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// Limits for every tenant unless overridden.
    #[serde(flatten)]
    pub defaults: TenantLimits,
    /// Per-tenant overrides, keyed by tenant id.
    pub overrides: HashMap<String, TenantLimits>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Connections at once (CONNACK 0x97 Quota exceeded beyond it).
    pub max_connections: Option<usize>,
    /// Inbound PUBLISH packets per second, all the tenant's connections together.
    pub messages_per_sec: Option<u64>,
    /// Inbound bytes per second, all the tenant's connections together.
    pub bytes_per_sec: Option<u64>,
}

impl TenantConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for id in self.overrides.keys() {
            validate_id(id).map_err(|m| ("tenants.overrides", format!("`{id}`: {m}")))?;
        }
        Ok(())
    }

    fn limits(&self, tenant: &str) -> TenantLimits {
        let o = self.overrides.get(tenant);
        let d = &self.defaults;
        TenantLimits {
            max_connections: o.and_then(|o| o.max_connections).or(d.max_connections),
            messages_per_sec: o.and_then(|o| o.messages_per_sec).or(d.messages_per_sec),
            bytes_per_sec: o.and_then(|o| o.bytes_per_sec).or(d.bytes_per_sec),
        }
    }
}

/// A tenant id becomes one topic level: no separators, no wildcards.
pub fn validate_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 64 {
        return Err("tenant id must be 1 to 64 bytes");
    }
    if id.contains(['/', '+', '#', '\0']) || id.starts_with('$') {
        return Err("tenant id may not contain '/', '+', '#' or NUL, or start with '$'");
    }
    Ok(())
}

/// Maps a tenant client's names to the hub's internal ones.
#[derive(Debug, Clone)]
pub struct Namespace {
    root: String,
}

impl Namespace {
    pub fn new(tenant: &str) -> Namespace {
        Namespace {
            root: format!("{NAMESPACE_ROOT}{tenant}/"),
        }
    }

    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.root)
    }

    /// `$share/<group>/<f>` keeps its group, with `f` under the root, so
    /// each tenant's groups are its own.
    pub fn filter(&self, filter: &str) -> String {
        match mqtt::topic::parse_shared(filter) {
            Some(Ok((group, inner))) => format!("$share/{group}/{}{inner}", self.root),
            _ => self.topic(filter),
        }
    }

    pub fn client_id(&self, client_id: &str) -> String {
        if client_id.is_empty() {
            // The hub assigns a random id: unique across tenants already.
            String::new()
        } else {
            self.topic(client_id)
        }
    }
}

/// Whether a topic, filter or client id from a client outside any tenant
/// names the tenants' root (refused: it would read or write a tenant's space).
pub fn names_root(name: &str) -> bool {
    let inner = match mqtt::topic::parse_shared(name) {
        Some(Ok((_, inner))) => inner,
        _ => name,
    };
    inner.starts_with(NAMESPACE_ROOT) || inner == NAMESPACE_ROOT.trim_end_matches('/')
}

#[derive(Default)]
struct Live {
    connections: usize,
    rates: Option<Arc<Mutex<Rates>>>,
}

/// Live connection counts and shared rate buckets per tenant. Entries go
/// when a tenant's last connection does, so the table is bounded by the
/// connections themselves.
#[derive(Default)]
pub struct Tenants {
    config: TenantConfig,
    live: Mutex<HashMap<Arc<str>, Live>>,
}

/// A tenant connection's place; gives it back when dropped.
pub struct TenantSlot {
    tenants: Arc<Tenants>,
    tenant: Arc<str>,
    pub rates: Option<Arc<Mutex<Rates>>>,
}

impl Tenants {
    pub fn new(config: TenantConfig) -> Tenants {
        Tenants {
            config,
            live: Mutex::default(),
        }
    }

    /// Takes a connection slot, or `None` when the tenant is at its limit.
    pub fn enter(self: &Arc<Self>, tenant: &str) -> Option<TenantSlot> {
        let limits = self.config.limits(tenant);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let key: Arc<str> = Arc::from(tenant);
        let entry = live.entry(key.clone()).or_default();
        if limits
            .max_connections
            .is_some_and(|m| entry.connections >= m)
        {
            if entry.connections == 0 {
                live.remove(tenant);
            }
            return None;
        }
        entry.connections += 1;
        if entry.rates.is_none() {
            entry.rates = Rates::new(
                limits.messages_per_sec,
                limits.bytes_per_sec,
                Instant::now(),
            )
            .map(|r| Arc::new(Mutex::new(r)));
        }
        Some(TenantSlot {
            tenants: self.clone(),
            tenant: key,
            rates: entry.rates.clone(),
        })
    }

    pub fn connections(&self, tenant: &str) -> usize {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(tenant).map_or(0, |l| l.connections)
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut live = self.tenants.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = live.get_mut(&self.tenant) {
            l.connections = l.connections.saturating_sub(1);
            if l.connections == 0 {
                live.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_under_the_root_and_back() {
        let ns = Namespace::new("acme");
        assert_eq!(ns.topic("a/b"), "$tenant/acme/a/b");
        assert_eq!(ns.filter("#"), "$tenant/acme/#");
        assert_eq!(ns.filter("$share/g/+/x"), "$share/g/$tenant/acme/+/x");
        assert_eq!(ns.client_id("dev"), "$tenant/acme/dev");
        assert_eq!(mqtt::topic::wire_topic(&ns.topic("a/b")), "a/b");
        // A rival's wildcards never reach it.
        assert!(!mqtt::topic::matches("#", &ns.topic("a")));
        assert!(!mqtt::topic::matches("+/#", &ns.topic("a")));
        assert!(!mqtt::topic::matches("$tenant/other/#", &ns.topic("a")));
    }

    #[test]
    fn outsiders_may_not_name_the_root() {
        assert!(names_root("$tenant/acme/x"));
        assert!(names_root("$share/g/$tenant/acme/#"));
        assert!(names_root("$tenant"));
        assert!(!names_root("tenant/x"));
        assert!(validate_id("acme").is_ok());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("+").is_err());
    }

    #[test]
    fn connection_limit_per_tenant() {
        let cfg: TenantConfig =
            toml::from_str("max_connections = 1\n[overrides.big]\nmax_connections = 2\n").unwrap();
        let t = Arc::new(Tenants::new(cfg));
        let a = t.enter("small").unwrap();
        assert!(t.enter("small").is_none());
        let _b1 = t.enter("big").unwrap();
        let _b2 = t.enter("big").unwrap();
        assert!(t.enter("big").is_none());
        drop(a);
        assert_eq!(t.connections("small"), 0);
        assert!(t.enter("small").is_some());
    }
}
