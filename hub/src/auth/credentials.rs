//! The credentials file: users with salted argon2 password hashes (PHC
//! strings, so each hash carries its own salt and cost), the tenant each
//! belongs to, and for sub-accounts the main account and the extra ACL
//! rules that narrow what the main account may do. The `hub user` command
//! edits it; the hub re-reads it when its modification time changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use crate::acl::Rule;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid credentials file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write credentials file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("user `{0}`: {1}")]
    User(String, String),
    #[error("cannot hash password: {0}")]
    Hash(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub password: String,
    /// Tenant (namespace) the user belongs to; none for hub-wide users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// For a sub-account: the main account whose tenant and rules it inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Rules a sub-account must also pass (first match wins, default deny
    /// when the list is not empty). They can only narrow: the main
    /// account's rules and the hub's ACL still apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<Rule>,
}

/// What a successful lookup tells about a user.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub tenant: Option<String>,
    /// Rule lists to pass, the user's own first, then each main account's.
    pub rule_chain: Vec<Vec<Rule>>,
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, CredentialsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(CredentialsError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let users: Users = toml::from_str(&text).map_err(|e| CredentialsError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for (name, u) in &users.users {
            PasswordHash::new(&u.password).map_err(|e| CredentialsError::Parse {
                path: path.to_owned(),
                message: format!("user `{name}`: password is not an argon2 hash: {e}"),
            })?;
            if let Some(t) = &u.tenant {
                // A tenant id is one topic level of the namespace root.
                crate::tenant::validate_id(t).map_err(|m| CredentialsError::Parse {
                    path: path.to_owned(),
                    message: format!("user `{name}`: tenant `{t}`: {m}"),
                })?;
            }
            users.account(name).map_err(|m| CredentialsError::Parse {
                path: path.to_owned(),
                message: m.to_string(),
            })?;
        }
        Ok(users)
    }

    /// Writes the file whole to a temporary name, then renames it over the
    /// old one, so the hub never reads half a file.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let text =
            toml::to_string_pretty(self).map_err(|e| CredentialsError::Hash(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let write = |p: &Path| std::fs::write(p, &text);
        write(&tmp)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| CredentialsError::Write {
                path: path.to_owned(),
                source,
            })
    }

    /// Adds or replaces a user. A sub-account takes its main account's tenant.
    pub fn add(
        &mut self,
        name: &str,
        password: &str,
        tenant: Option<String>,
        parent: Option<String>,
        acl: Vec<Rule>,
        params: argon2::Params,
    ) -> Result<(), CredentialsError> {
        if name.is_empty() {
            return Err(CredentialsError::User(
                name.into(),
                "empty user name".into(),
            ));
        }
        let tenant = match &parent {
            Some(p) => {
                let main = self.users.get(p).ok_or_else(|| {
                    CredentialsError::User(
                        name.into(),
                        format!("main account `{p}` does not exist"),
                    )
                })?;
                if tenant.is_some() && tenant != main.tenant {
                    return Err(CredentialsError::User(
                        name.into(),
                        "a sub-account belongs to its main account's tenant".into(),
                    ));
                }
                main.tenant.clone()
            }
            None => tenant,
        };
        if let Some(t) = &tenant {
            crate::tenant::validate_id(t)
                .map_err(|m| CredentialsError::User(name.into(), m.into()))?;
        }
        let password = hash_password(password, params)?;
        self.users.insert(
            name.to_owned(),
            User {
                password,
                tenant,
                parent,
                acl,
            },
        );
        Ok(())
    }

    /// Removes a user; refuses while sub-accounts still name it.
    pub fn remove(&mut self, name: &str) -> Result<(), CredentialsError> {
        if let Some((sub, _)) = self
            .users
            .iter()
            .find(|(_, u)| u.parent.as_deref() == Some(name))
        {
            return Err(CredentialsError::User(
                name.into(),
                format!("sub-account `{sub}` still belongs to it; remove that first"),
            ));
        }
        self.users
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| CredentialsError::User(name.into(), "no such user".into()))
    }

    /// The user's tenant and rule chain, following main accounts.
    pub fn account(&self, name: &str) -> Result<Account, &'static str> {
        let mut account = Account::default();
        let mut at = name;
        for _ in 0..8 {
            let u = self.users.get(at).ok_or("main account does not exist")?;
            if account.tenant.is_none() {
                account.tenant = u.tenant.clone();
            }
            if !u.acl.is_empty() {
                account.rule_chain.push(u.acl.clone());
            }
            match &u.parent {
                Some(p) => at = p,
                None => return Ok(account),
            }
        }
        Err("sub-accounts nest deeper than 8 levels (or loop)")
    }
}

pub fn hash_password(password: &str, params: argon2::Params) -> Result<String, CredentialsError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| CredentialsError::Hash(e.to_string()))?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialsError::Hash(e.to_string()))
}

/// Checks a password against a PHC string (CPU heavy: call off the async threads).
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// The credentials file as the hub sees it, re-read when it changes.
pub struct CredentialStore {
    path: PathBuf,
    loaded: RwLock<(Option<SystemTime>, std::sync::Arc<Users>)>,
}

impl CredentialStore {
    pub fn open(path: &Path) -> Result<CredentialStore, CredentialsError> {
        let users = Users::load(path)?;
        Ok(CredentialStore {
            path: path.to_owned(),
            loaded: RwLock::new((modified(path), std::sync::Arc::new(users))),
        })
    }

    /// The current users; a changed file is re-read, a broken one is logged
    /// and the last good version kept.
    pub fn users(&self) -> std::sync::Arc<Users> {
        let now = modified(&self.path);
        {
            let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if l.0 == now {
                return l.1.clone();
            }
        }
        let mut l = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        match Users::load(&self.path) {
            Ok(u) => {
                tracing::info!(path = %self.path.display(), users = u.users.len(), "credentials reloaded");
                *l = (now, std::sync::Arc::new(u));
            }
            Err(e) => {
                tracing::error!(error = %e, "credentials file not reloaded; keeping the previous one");
                l.0 = now;
            }
        }
        l.1.clone()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> argon2::Params {
        argon2::Params::new(64, 1, 1, None).unwrap()
    }

    #[test]
    fn add_verify_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut u = Users::load(&path).unwrap();
        u.add(
            "alice",
            "s3cret",
            Some("acme".into()),
            None,
            vec![],
            cheap(),
        )
        .unwrap();
        u.add("bob", "pw", None, Some("alice".into()), vec![], cheap())
            .unwrap();
        u.save(&path).unwrap();
        let u = Users::load(&path).unwrap();
        let alice = &u.users["alice"];
        assert!(alice.password.starts_with("$argon2id$"));
        assert!(verify_password(b"s3cret", &alice.password));
        assert!(!verify_password(b"S3cret", &alice.password));
        assert_eq!(u.account("bob").unwrap().tenant.as_deref(), Some("acme"));
        let mut u = u;
        assert!(u.remove("alice").is_err(), "bob still belongs to alice");
        u.remove("bob").unwrap();
        u.remove("alice").unwrap();
        assert!(u.remove("alice").is_err());
    }

    #[test]
    fn a_tenant_that_is_not_one_level_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut u = Users::default();
        u.add("a", "pw", Some("acme".into()), None, vec![], cheap())
            .unwrap();
        assert!(u
            .add("b", "pw", Some("acme/x".into()), None, vec![], cheap())
            .is_err());
        let mut text = toml::to_string(&u).unwrap();
        text = text.replace("tenant = \"acme\"", "tenant = \"acme/x\"");
        std::fs::write(&path, text).unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("acme/x"), "{err}");
    }

    #[test]
    fn same_password_gets_different_salts() {
        let a = hash_password("pw", cheap()).unwrap();
        let b = hash_password("pw", cheap()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_plain_text_password_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, "[users.eve]\npassword = \"hunter2\"\n").unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("eve"), "{err}");
    }
}
