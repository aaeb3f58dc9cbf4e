//! Helpers for the authentication, ACL, tenant and rate-limit tests: a
//! credentials file written with cheap argon2 parameters (the real ones cost
//! tens of milliseconds per check, far more in debug builds), CONNECTs with
//! credentials, and signed tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hub::acl::Rule;
use hub::auth::credentials::Users;
use mqtt::{ConnAck, Protocol, ReasonCode};

use crate::{connect_packet, RawClient};

/// One user to write: name, password, tenant, main account, own rules.
pub struct NewUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub tenant: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub acl: Vec<Rule>,
}

impl<'a> NewUser<'a> {
    pub fn new(name: &'a str, password: &'a str) -> NewUser<'a> {
        NewUser {
            name,
            password,
            tenant: None,
            parent: None,
            acl: Vec::new(),
        }
    }

    pub fn tenant(mut self, t: &'a str) -> Self {
        self.tenant = Some(t);
        self
    }

    pub fn sub_of(mut self, parent: &'a str, acl: Vec<Rule>) -> Self {
        self.parent = Some(parent);
        self.acl = acl;
        self
    }
}

/// Writes `users.toml` in `dir` (main accounts must come before their subs).
pub fn write_users(dir: &Path, users: Vec<NewUser<'_>>) -> PathBuf {
    let path = dir.join("users.toml");
    let mut file = Users::load(&path).expect("credentials file");
    let cheap = argon2::Params::new(256, 1, 1, None).expect("argon2 params");
    for u in users {
        file.add(
            u.name,
            u.password,
            u.tenant.map(str::to_owned),
            u.parent.map(str::to_owned),
            u.acl,
            cheap.clone(),
        )
        .expect("user added");
    }
    file.save(&path).expect("credentials saved");
    path
}

/// CONNECTs with a user name and password (either may be absent).
pub async fn connect_as(
    addr: SocketAddr,
    protocol: Protocol,
    client_id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> (RawClient, ConnAck) {
    let mut c = connect_packet(protocol, client_id, true);
    c.username = user.map(str::to_owned);
    c.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    RawClient::connect_with(addr, c).await
}

/// Connects and asserts success.
pub async fn login(
    addr: SocketAddr,
    protocol: Protocol,
    client_id: &str,
    user: &str,
    password: &str,
) -> RawClient {
    let (c, ack) = connect_as(addr, protocol, client_id, Some(user), Some(password)).await;
    assert_eq!(
        ack.code,
        ReasonCode::SUCCESS,
        "CONNACK for {user}/{client_id}"
    );
    c
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HS256 token with `claims`.
pub fn hs256(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

/// An RSA key pair made with the `openssl` command: (private PEM, public PEM file).
pub fn rsa_keys(dir: &Path, name: &str) -> (Vec<u8>, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let (k, p) = (private.to_string_lossy(), public.to_string_lossy());
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &k,
    ]);
    run(&["pkey", "-in", &k, "-pubout", "-out", &p]);
    (std::fs::read(&private).expect("private key"), public)
}

/// An RS256 token signed with a PEM private key.
pub fn rs256(claims: serde_json::Value, private_pem: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(private_pem).expect("RSA key"),
    )
    .expect("token")
}

/// A rule for sub-accounts and configs.
pub fn rule(permission: hub::acl::Permission, action: hub::acl::Action, topic: &str) -> Rule {
    Rule::new(permission, action, topic)
}
