//! Authentication of CONNECT: anonymous access (on or off per listener),
//! user name and password from the credentials file (argon2, checked on the
//! blocking pool), the client certificate's identity as the user name, and
//! JWTs (HS256/RS256) as the password. Settings are hub-wide with
//! per-listener overrides, keyed by listener name (`tcp`, ...).
//!
//! Reason codes: wrong or expired credentials get 0x86 Bad User Name or
//! Password (v3: 4); missing credentials where anonymous access is off get
//! 0x87 Not authorized (v3: 5).

pub mod cache;
pub mod cli;
pub mod credentials;
pub mod jwt;
pub mod throttle;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use mqtt::{Connect, ReasonCode};
use serde::Deserialize;

use crate::acl::Rule;
use crate::peer::PeerInfo;
use cache::VerifiedCache;
use credentials::{Account, CredentialStore};
use jwt::{JwtConfig, JwtVerifier};
use throttle::FailureThrottle;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Clients without credentials may connect.
    pub anonymous: bool,
    /// Users and argon2 hashes (`hub user add --file ...` writes it).
    pub credentials_file: Option<PathBuf>,
    /// A verified client certificate's identity (CN, else first SAN) is the
    /// user name; no password is needed.
    pub cert_identity: bool,
    pub jwt: JwtConfig,
    /// Overrides per listener name.
    pub listeners: HashMap<String, ListenerAuth>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous: true,
            credentials_file: None,
            cert_identity: false,
            jwt: JwtConfig::default(),
            listeners: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerAuth {
    pub anonymous: Option<bool>,
    pub cert_identity: Option<bool>,
}

/// Who a connection turned out to be.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Authenticated user name; `None` for anonymous clients.
    pub user: Option<String>,
    pub tenant: Option<String>,
    /// Sub-account rule lists the user must also pass (see `acl::allowed`).
    pub rule_chain: Vec<Vec<Rule>>,
    /// When a token ends the session.
    pub expires: Option<SystemTime>,
}

pub struct Authenticator {
    config: AuthConfig,
    credentials: Option<CredentialStore>,
    jwt: Option<JwtVerifier>,
    pub throttle: FailureThrottle,
    cache: VerifiedCache,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator, String> {
        let credentials = match &config.credentials_file {
            Some(path) => Some(CredentialStore::open(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let jwt = if config.jwt.enabled() {
            Some(JwtVerifier::new(&config.jwt)?)
        } else {
            None
        };
        Ok(Authenticator {
            config: config.clone(),
            credentials,
            jwt,
            throttle: FailureThrottle::default(),
            cache: VerifiedCache::default(),
        })
    }

    fn anonymous(&self, listener: &str) -> bool {
        self.config
            .listeners
            .get(listener)
            .and_then(|l| l.anonymous)
            .unwrap_or(self.config.anonymous)
    }

    fn cert_identity(&self, listener: &str) -> bool {
        self.config
            .listeners
            .get(listener)
            .and_then(|l| l.cert_identity)
            .unwrap_or(self.config.cert_identity)
    }

    /// Decides a CONNECT. Failures from an address slow down its next tries.
    pub async fn authenticate(
        &self,
        peer: Option<&PeerInfo>,
        connect: &Connect,
    ) -> Result<Identity, ReasonCode> {
        let ip = peer.and_then(|p| p.remote).map(|a| a.ip());
        if let Some(ip) = ip {
            let delay = self.throttle.delay(ip, Instant::now());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        let result = self.decide(peer, connect).await;
        if let Some(ip) = ip {
            match &result {
                Err(_) => self.throttle.failed(ip, Instant::now()),
                Ok(i) if i.user.is_some() => self.throttle.succeeded(ip),
                Ok(_) => {}
            }
        }
        result
    }

    async fn decide(&self, peer: Option<&PeerInfo>, c: &Connect) -> Result<Identity, ReasonCode> {
        let listener = peer.map_or("tcp", |p| &p.listener);
        if self.cert_identity(listener) {
            if let Some(id) = peer.and_then(|p| p.cert_identity.as_deref()) {
                let account = self.account(id).unwrap_or_default();
                return Ok(identity(id, account, None));
            }
        }
        let Some(password) = c.password.as_deref() else {
            return if self.anonymous(listener) {
                Ok(Identity::default())
            } else {
                Err(ReasonCode::NOT_AUTHORIZED)
            };
        };
        if let Some(jwt) = self
            .jwt
            .as_ref()
            .filter(|_| JwtVerifier::looks_like_jwt(password))
        {
            let claims = jwt.verify(password).map_err(|e| {
                tracing::debug!(error = %e, "JWT refused");
                ReasonCode::BAD_USER_NAME_OR_PASSWORD
            })?;
            let user = match (&claims.subject, &c.username) {
                (Some(s), Some(u)) if s != u => return Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
                (Some(s), _) => s.clone(),
                (None, Some(u)) => u.clone(),
                (None, None) => return Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            };
            let mut account = self.account(&user).unwrap_or_default();
            if claims.tenant.is_some() {
                account.tenant = claims.tenant.clone();
            }
            if let Some(t) = &account.tenant {
                crate::tenant::validate_id(t).map_err(|_| ReasonCode::BAD_USER_NAME_OR_PASSWORD)?;
            }
            return Ok(identity(&user, account, Some(claims.expires)));
        }
        let Some(store) = &self.credentials else {
            // Nothing to check credentials against: they mean nothing here.
            return if self.anonymous(listener) {
                Ok(Identity::default())
            } else {
                Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
            };
        };
        let user = c
            .username
            .as_deref()
            .ok_or(ReasonCode::BAD_USER_NAME_OR_PASSWORD)?;
        let users = store.users();
        let phc = users
            .users
            .get(user)
            .map(|u| u.password.clone())
            .ok_or(ReasonCode::BAD_USER_NAME_OR_PASSWORD)?;
        if !self.cache.check(user, password, &phc) {
            let pw = password.to_vec();
            let hash = phc.clone();
            let ok = tokio::task::spawn_blocking(move || credentials::verify_password(&pw, &hash))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
            }
            self.cache.remember(user, password, &phc);
        }
        let account = users
            .account(user)
            .map_err(|_| ReasonCode::NOT_AUTHORIZED)?;
        Ok(identity(user, account, None))
    }

    fn account(&self, user: &str) -> Option<Account> {
        self.credentials.as_ref()?.users().account(user).ok()
    }
}

fn identity(user: &str, account: Account, expires: Option<SystemTime>) -> Identity {
    Identity {
        user: Some(user.to_owned()),
        tenant: account.tenant,
        rule_chain: account.rule_chain,
        expires,
    }
}
