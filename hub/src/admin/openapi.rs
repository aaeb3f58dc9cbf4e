//! The OpenAPI 3.0 document of the admin API, built from one table of
//! endpoints so it lists exactly what `admin::router` serves (a test checks
//! every route in the table answers something other than 404).

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, summary, query parameters, has JSON body).
pub const ENDPOINTS: &[(&str, &str, &str, &[&str], bool)] = &[
    ("get", "/api/v1/stats", "Hub statistics", &[], false),
    ("get", "/api/v1/clients", "Connected clients (paged)", &["page", "limit", "like", "listener"], false),
    ("get", "/api/v1/clients/{id}", "One connected client with its subscriptions", &[], false),
    ("delete", "/api/v1/clients/{id}", "Kick a client (DISCONNECT 0x98)", &[], false),
    ("get", "/api/v1/sessions", "Sessions incl. offline, with queued counts (paged)", &["page", "limit", "like", "listener", "online"], false),
    ("get", "/api/v1/sessions/{id}", "One session", &[], false),
    ("delete", "/api/v1/sessions/{id}", "Discard an offline session", &[], false),
    ("get", "/api/v1/subscriptions", "Subscriptions", &["client_id", "filter", "limit"], false),
    ("get", "/api/v1/topics", "Topic tree statistics", &[], false),
    ("get", "/api/v1/retained", "Retained messages matching a filter (paged)", &["filter", "page", "limit"], false),
    ("get", "/api/v1/retained/{topic}", "One retained message", &[], false),
    ("delete", "/api/v1/retained/{topic}", "Delete a retained message", &[], false),
    ("post", "/api/v1/publish", "Publish to an MQTT topic {topic, payload, payload_encoding, qos, retain, user_properties, message_id}", &[], true),
    ("get", "/api/v1/queue/topics", "Queue topics", &[], false),
    ("post", "/api/v1/queue/topics", "Create a queue topic {name, partitions, config}", &[], true),
    ("get", "/api/v1/queue/topics/{name}", "Queue topic with partitions, sizes, watermarks", &[], false),
    ("delete", "/api/v1/queue/topics/{name}", "Delete a queue topic", &[], false),
    ("patch", "/api/v1/queue/topics/{name}/config", "Change retention / flush policy {set, remove}", &[], true),
    ("get", "/api/v1/queue/topics/{name}/messages", "Find messages by key or message id (header message-id)", &["key", "message_id", "from_ms", "to_ms", "limit"], false),
    ("post", "/api/v1/queue/topics/{name}/messages", "Publish to a queue topic {key, value, headers, partition, message_id}", &[], true),
    ("get", "/api/v1/queue/topics/{name}/partitions/{partition}/messages", "Read messages by offset", &["offset", "limit"], false),
    ("get", "/api/v1/queue/groups", "Consumer groups with total lag", &[], false),
    ("get", "/api/v1/queue/groups/{group}", "Group members, assignments, lag per partition", &[], false),
    ("post", "/api/v1/queue/groups/{group}/reset", "Reset offsets {topic, to: earliest|latest|timestamp, timestamp_ms}", &[], true),
    ("post", "/api/v1/queue/groups/{group}/topics/{topic}/poll", "HTTP consumer: long-poll a batch {member, max_messages, wait_ms, visibility_ms}", &[], true),
    ("post", "/api/v1/queue/groups/{group}/topics/{topic}/ack", "HTTP consumer: acknowledge a batch {batch_id}", &[], true),
    ("post", "/api/v1/queue/groups/{group}/topics/{topic}/nack", "HTTP consumer: give a batch back for redelivery {batch_id}", &[], true),
    ("get", "/api/v1/trace/rules", "Message trace rules", &[], false),
    ("post", "/api/v1/trace/rules", "Trace a client_id, topic filter or message_id", &[], true),
    ("delete", "/api/v1/trace/rules/{id}", "Stop a trace rule", &[], false),
    ("get", "/api/v1/traces", "Traced messages, newest first", &["message_id", "limit"], false),
    ("get", "/api/v1/traces/{id}", "One traced message's path, in time order", &[], false),
    ("get", "/api/v1/alerts", "Alerts in force and recent changes", &[], false),
    ("get", "/api/v1/bridge/rules", "Bridge rules, status and counters (404 without a bridge)", &[], false),
    ("post", "/api/v1/bridge/reload", "Re-read the bridge uplink rules from the config file (400 names the field; 409 without a file)", &[], false),
    ("get", "/metrics", "Prometheus text format", &[], false),
    ("get", "/console", "Web console", &[], false),
];

pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary, query, body) in ENDPOINTS {
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(query.iter().map(
            |q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}),
        ));
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK (201 on create, 204 on delete)"},
                "400": {"description": "Bad input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "Missing or wrong admin credential", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "404": {"description": "Not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if *body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|o| o.insert(method.to_string(), op));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "hub admin API", "version": env!("CARGO_PKG_VERSION")},
        "security": [{"bearer": []}, {"basic": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": {"Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}}}},
        },
        "paths": paths,
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
