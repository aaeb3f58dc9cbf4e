//! What a connection may do, decided once at CONNECT and consulted on every
//! publish and subscribe: the hub-wide `Security` (authenticator, ACL,
//! tenants, rate limits) and each connection's `Access` (its identity, its
//! tenant namespace, its read limiter, its token deadline). `connection.rs`
//! calls in here through a few small hooks.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mqtt::{Connect, ReasonCode};

use crate::acl::{self, AclConfig, Action, Rule, Who};
use crate::auth::{AuthConfig, Authenticator};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::peer::PeerInfo;
use crate::ratelimit::{RateLimitConfig, Rates, ReadLimiter};
use crate::tenant::{self, Namespace, TenantSlot, Tenants};

/// Hub-wide security settings and state.
pub struct Security {
    pub auth: Authenticator,
    pub acl: AclConfig,
    pub tenants: Arc<Tenants>,
    pub rates: RateLimitConfig,
}

impl Security {
    pub fn from_config(config: &Config) -> Result<Security, String> {
        Ok(Security {
            auth: Authenticator::new(&config.auth)?,
            acl: config.acl.clone(),
            tenants: Arc::new(Tenants::new(config.tenants.clone())),
            rates: config.rate_limits.clone(),
        })
    }

    /// Refuses every client (for settings that could not be loaded).
    pub fn locked() -> Security {
        let auth = AuthConfig {
            anonymous: false,
            ..AuthConfig::default()
        };
        Security {
            auth: Authenticator::new(&auth).unwrap_or_else(|_| unreachable!("no files to read")),
            acl: AclConfig {
                default: acl::Permission::Deny,
                rules: Vec::new(),
            },
            tenants: Arc::new(Tenants::default()),
            rates: RateLimitConfig::default(),
        }
    }

    /// Authenticates a CONNECT and, for a tenant's client, moves its client
    /// id and will into the tenant's namespace. The error is the CONNACK
    /// reason to refuse with.
    pub async fn admit(
        &self,
        metrics: &Metrics,
        peer: Option<&PeerInfo>,
        connect: &mut Connect,
    ) -> Result<Access, ReasonCode> {
        let identity = match self.auth.authenticate(peer, connect).await {
            Ok(i) => i,
            Err(code) => {
                Metrics::inc(&metrics.auth_failures);
                tracing::info!(remote = ?peer.and_then(|p| p.remote), user = ?connect.username, reason = %code, "authentication failed");
                return Err(code);
            }
        };
        let now = Instant::now();
        let mut access = Access {
            user: identity.user,
            client_id: connect.client_id.clone(),
            tenant: None,
            rule_chain: identity.rule_chain,
            expires_at: identity
                .expires
                .map(|t| now + t.duration_since(SystemTime::now()).unwrap_or_default()),
            limiter: ReadLimiter::default(),
            _slot: None,
        };
        let tenant_rates = match identity.tenant {
            Some(t) => {
                let slot = self.tenants.enter(&t).ok_or(ReasonCode::QUOTA_EXCEEDED)?;
                let rates = slot.rates.clone();
                let ns = Namespace::new(&t);
                access.tenant = Some((t, ns));
                access._slot = Some(slot);
                rates
            }
            None if tenant::names_root(&connect.client_id) => {
                return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
            }
            None => None,
        };
        if let Some(will) = &connect.will {
            if !access.may(self, Action::Publish, &will.topic) {
                Metrics::inc(&metrics.acl_denied);
                return Err(ReasonCode::NOT_AUTHORIZED);
            }
        }
        if let Some((_, ns)) = &access.tenant {
            connect.client_id = ns.client_id(&connect.client_id);
            if let Some(will) = &mut connect.will {
                will.topic = ns.topic(&will.topic);
            }
        }
        let own = Rates::new(self.rates.messages_per_sec, self.rates.bytes_per_sec, now);
        access.limiter = ReadLimiter::new(own, tenant_rates);
        Ok(access)
    }
}

/// One connection's rights and limits.
pub struct Access {
    user: Option<String>,
    /// The client id as the client knows it (for `%c`).
    client_id: String,
    tenant: Option<(String, Namespace)>,
    rule_chain: Vec<Vec<Rule>>,
    /// When the client's token runs out (the session is closed then).
    pub expires_at: Option<Instant>,
    pub limiter: ReadLimiter,
    _slot: Option<TenantSlot>,
}

impl Access {
    fn who(&self) -> Who<'_> {
        Who {
            user: self.user.as_deref(),
            client_id: &self.client_id,
            tenant: self.tenant.as_ref().map(|(t, _)| t.as_str()),
        }
    }

    fn may(&self, security: &Security, action: Action, name: &str) -> bool {
        if self.tenant.is_none() && tenant::names_root(name) {
            return false;
        }
        let inner = match mqtt::topic::parse_shared(name) {
            Some(Ok((_, inner))) => inner,
            _ => name,
        };
        acl::allowed(&security.acl, &self.rule_chain, self.who(), action, inner)
    }

    /// Whether this client may do anything a client outside tenants may:
    /// no tenant, no token expiry, no rate limit, no rules that could say
    /// no. The connection then keeps no `Access` at all (an idle device's
    /// memory is the hub's scaling limit) and uses `open_allows`.
    pub fn is_open(&self, security: &Security) -> bool {
        self.tenant.is_none()
            && self.expires_at.is_none()
            && !self.limiter.is_active()
            && self._slot.is_none()
            && self.rule_chain.iter().all(|r| r.is_empty())
            && security.acl.rules.is_empty()
            && security.acl.default == crate::acl::Permission::Allow
    }

    /// The internal topic to route a PUBLISH to, or `None` if it is denied.
    pub fn publish_topic(&self, security: &Security, topic: &str) -> Option<String> {
        if !self.may(security, Action::Publish, topic) {
            return None;
        }
        Some(match &self.tenant {
            Some((_, ns)) => ns.topic(topic),
            None => topic.to_owned(),
        })
    }

    /// The internal filter to subscribe to, or `None` if it is denied.
    pub fn subscribe_filter(&self, security: &Security, filter: &str) -> Option<String> {
        if !self.may(security, Action::Subscribe, filter) {
            return None;
        }
        Some(self.map_filter(filter))
    }

    /// A filter in the client's namespace (for UNSUBSCRIBE).
    pub fn map_filter(&self, filter: &str) -> String {
        match &self.tenant {
            Some((_, ns)) => ns.filter(filter),
            None => filter.to_owned(),
        }
    }
}

/// What an open client (see `Access::is_open`) may name: anything but
/// the tenants' root.
pub fn open_allows(name: &str) -> bool {
    !tenant::names_root(name)
}

/// SUBACK codes in the SUBSCRIBE's order: 0x87 where the ACL refused a
/// filter (v3 encodes it as 0x80), the broker's code elsewhere.
pub fn merge_suback(denied: &[bool], granted: Vec<ReasonCode>) -> Vec<ReasonCode> {
    let mut granted = granted.into_iter();
    denied
        .iter()
        .map(|&d| {
            if d {
                ReasonCode::NOT_AUTHORIZED
            } else {
                granted.next().unwrap_or(ReasonCode::UNSPECIFIED_ERROR)
            }
        })
        .collect()
}
