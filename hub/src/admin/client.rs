//! A minimal blocking HTTP/1.0 client for plain `http://` URLs: what
//! `hubctl`, the alert webhook and the tests need to talk JSON to an admin
//! port, without pulling a full HTTP client stack into the hub.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read.
const MAX_BODY: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unsupported URL {0:?} (only http://host:port/path)")]
    Url(String),
    #[error("cannot reach {0}: {1}")]
    Io(String, std::io::Error),
    #[error("malformed HTTP response from {0}")]
    Response(String),
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Splits `http://host:port/path` into (host:port, /path).
fn split_url(url: &str) -> Result<(String, String), ClientError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::Url(url.into()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(ClientError::Url(url.into()));
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// Sends one request; `auth` is a full `Authorization` header value.
pub fn request_url(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Result<HttpResponse, ClientError> {
    let (host, path) = split_url(url)?;
    let io = |e| ClientError::Io(host.clone(), e);
    let addr = host
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| ClientError::Url(url.into()))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body).map_err(io)?;
    let mut raw = Vec::new();
    s.take(MAX_BODY).read_to_end(&mut raw).map_err(io)?;
    parse_response(&raw).ok_or(ClientError::Response(host))
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Some(HttpResponse {
        status,
        content_type,
        body: raw[end + 4..].to_vec(),
    })
}

/// A client bound to one admin base URL and credential.
#[derive(Debug, Clone)]
pub struct AdminClient {
    pub base: String,
    pub auth: Option<String>,
}

impl AdminClient {
    /// `base` like `http://127.0.0.1:8080`; `token` sent as a bearer token.
    pub fn new(base: &str, token: Option<&str>) -> AdminClient {
        AdminClient {
            base: base.trim_end_matches('/').to_string(),
            auth: token.map(|t| format!("Bearer {t}")),
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<HttpResponse, ClientError> {
        let body = body.map(|b| b.to_string().into_bytes());
        request_url(
            method,
            &format!("{}{path}", self.base),
            self.auth.as_deref(),
            body.as_deref(),
        )
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_responses() {
        assert_eq!(
            split_url("http://h:1/a/b").unwrap(),
            ("h:1".into(), "/a/b".into())
        );
        assert_eq!(split_url("http://h").unwrap(), ("h:80".into(), "/".into()));
        assert!(split_url("https://h/").is_err());
        let r =
            parse_response(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{}")
                .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body, b"{}");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
