//! The admin credential. A bearer token (`Authorization: Bearer <token>`)
//! or HTTP Basic (`admin.username` and `admin.password`, the token standing
//! in for an empty password) is required on every route but `/health`.
//! With no token configured, one is generated at first start, kept in
//! `<data_dir>/admin.token` (mode 0600) and logged, the way EMQX prints its
//! default dashboard login: the quick start works and nothing is open.

use std::path::Path;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::ApiError;
use super::AdminState;
use crate::config::Config;

pub const TOKEN_FILE: &str = "admin.token";

#[derive(Debug, Clone)]
pub struct Credentials {
    pub token: String,
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// The configured credentials, generating and storing a token if none is set.
    pub fn load(config: &Config) -> anyhow::Result<Credentials> {
        let a = &config.admin;
        let token = if a.token.is_empty() {
            token_from_file(&config.data_dir.join(TOKEN_FILE))?
        } else {
            a.token.clone()
        };
        Ok(Credentials {
            password: if a.password.is_empty() {
                token.clone()
            } else {
                a.password.clone()
            },
            username: a.username.clone(),
            token,
        })
    }

    /// Whether an `Authorization` header value proves the credential.
    pub fn accepts(&self, header: &str) -> bool {
        if let Some(t) = header.strip_prefix("Bearer ") {
            return same(t.trim().as_bytes(), self.token.as_bytes());
        }
        if let Some(b) = header.strip_prefix("Basic ") {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
                return false;
            };
            let Some(colon) = raw.iter().position(|c| *c == b':') else {
                return false;
            };
            let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
            // Both compared, so timing does not tell which one was wrong.
            let u = same(user, self.username.as_bytes());
            let p = same(pass, self.password.as_bytes());
            return u & p;
        }
        false
    }
}

/// Compares without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn token_from_file(path: &Path) -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            tracing::info!(file = %path.display(), "admin token read from the data folder");
            return Ok(t);
        }
    }
    let token: String = rand::random::<[u8; 20]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    write_private(path, &token)
        .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
    tracing::warn!(
        file = %path.display(),
        %token,
        "generated an admin token (set admin.token to choose one); use it as `Authorization: Bearer <token>` or user `admin` with it as password"
    );
    Ok(token)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

/// Middleware: lets the request through only with the credential.
pub async fn require(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| state.credentials.accepts(v));
    if ok {
        return next.run(req).await;
    }
    let message = if req.headers().contains_key(AUTHORIZATION) {
        "wrong admin credential"
    } else {
        "admin credential required: Authorization: Bearer <token> or Basic"
    };
    let mut resp = ApiError::unauthorized(message).into_response();
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"hub admin\", charset=\"UTF-8\""),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic() {
        let c = Credentials {
            token: "tok".into(),
            username: "admin".into(),
            password: "pw".into(),
        };
        assert!(c.accepts("Bearer tok"));
        assert!(!c.accepts("Bearer tok2"));
        let b = base64::engine::general_purpose::STANDARD.encode("admin:pw");
        assert!(c.accepts(&format!("Basic {b}")));
        let b = base64::engine::general_purpose::STANDARD.encode("admin:tok");
        assert!(!c.accepts(&format!("Basic {b}")));
        assert!(!c.accepts("Basic !!!"));
        assert!(!c.accepts("tok"));
    }
}
