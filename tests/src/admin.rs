//! Helpers for the admin API tests: an `Admin` client bound to a
//! `TestHub`'s admin port with the token the hub generated in its data
//! folder (the quick-start path), with calls run off the async workers.

use hub::admin::client::{AdminClient, HttpResponse};
use serde_json::Value;

use crate::TestHub;

pub struct Admin {
    pub client: AdminClient,
    pub token: String,
    pub base: String,
}

impl Admin {
    /// The admin API of `hub`, authenticated with its generated token.
    pub fn of(hub: &TestHub) -> Admin {
        let addr = hub
            .handle
            .as_ref()
            .and_then(|h| h.admin_addr)
            .expect("admin API listening");
        let token = if hub.config.admin.token.is_empty() {
            std::fs::read_to_string(hub.dir.path().join("admin.token"))
                .expect("the hub wrote data/admin.token")
                .trim()
                .to_string()
        } else {
            hub.config.admin.token.clone()
        };
        let base = format!("http://{addr}");
        Admin {
            client: AdminClient::new(&base, Some(&token)),
            token,
            base,
        }
    }

    /// One request with the credential; returns (status, JSON body or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.raw(method, path, body, true).await;
        (r.status, r.json())
    }

    /// One request, with or without the credential.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        with_credential: bool,
    ) -> HttpResponse {
        let mut c = self.client.clone();
        if !with_credential {
            c.auth = None;
        }
        let (m, p) = (method.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || c.call(&m, &p, body.as_ref()))
            .await
            .expect("request task")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET that must answer 200; returns the body.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Asserts a request fails with `status` and a JSON error body; returns the error code.
    pub async fn expect_error(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> String {
        let r = self.raw(method, path, body, true).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(
            r.content_type.starts_with("application/json"),
            "{method} {path}: error body is not JSON ({})",
            r.content_type
        );
        let v = r.json();
        let code = v["error"].as_str().unwrap_or_default().to_string();
        assert!(
            !code.is_empty() && v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: error body names no error: {v}"
        );
        code
    }
}

impl Admin {
    /// POST that must succeed (2xx); returns the body.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, resp) = self.call("POST", path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {resp}");
        resp
    }
}

/// Commits `offset` for `group` on one partition, as a consumer would.
pub fn commit(q: &queue::Broker, group: &str, topic: &str, partition: i32, offset: i64) {
    let c = queue::CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_ms: 1,
    };
    q.commit_offsets(group, &[(topic.to_string(), partition, c)])
        .expect("commit offsets");
}
