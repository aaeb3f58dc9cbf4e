//! `hubctl`: the hub's admin operations from a terminal, over the REST API
//! (like RocketMQ's mqadmin or `emqx ctl`). Human-readable tables by
//! default, the API's JSON with `--json`. The credential comes from
//! `--token`, `HUB_ADMIN_TOKEN`, or `<data_dir>/admin.token`.

mod table;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hub::admin::client::{encode, AdminClient};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(
    name = "hubctl",
    version,
    about = "Manage a running hub over its admin API"
)]
struct Cli {
    /// Admin API base URL.
    #[arg(long, env = "HUB_ADMIN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin token (default: HUB_ADMIN_TOKEN, else <data-dir>/admin.token).
    #[arg(long, env = "HUB_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data folder holding admin.token, when no token is given.
    #[arg(long, default_value = "data")]
    data_dir: std::path::PathBuf,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Hub statistics.
    Stats,
    /// Connected clients.
    Clients {
        #[arg(long)]
        like: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, default_value_t = 1)]
        page: usize,
    },
    /// One client or session in detail.
    Client { id: String },
    /// Disconnect a client (DISCONNECT 0x98).
    Kick { id: String },
    /// Sessions, including offline ones with their queued messages.
    Sessions {
        #[arg(long)]
        offline: bool,
        #[arg(long)]
        like: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Delete an offline session.
    Discard { id: String },
    /// Subscriptions.
    Subscriptions {
        #[arg(long)]
        client: Option<String>,
    },
    /// Topic tree statistics.
    Topics,
    /// Retained messages.
    Retained {
        #[command(subcommand)]
        op: RetainedOp,
    },
    /// Publish to an MQTT topic.
    Publish {
        topic: String,
        payload: String,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long)]
        retain: bool,
    },
    /// Queue topics.
    Queue {
        #[command(subcommand)]
        op: QueueOp,
    },
    /// Consumer groups with lag; one group in detail when named.
    Groups { group: Option<String> },
    /// Reset a group's offsets on a topic: earliest, latest or a timestamp in ms.
    ResetOffsets {
        group: String,
        topic: String,
        /// earliest | latest | <ms since the epoch>
        to: String,
    },
    /// Message trace.
    Trace {
        #[command(subcommand)]
        op: TraceOp,
    },
    /// Alerts in force and recent changes.
    Alerts,
}

#[derive(Subcommand, Debug)]
enum RetainedOp {
    List {
        #[arg(long, default_value = "#")]
        filter: String,
    },
    Get {
        topic: String,
    },
    Delete {
        topic: String,
    },
}

#[derive(Subcommand, Debug)]
enum QueueOp {
    List,
    Describe {
        name: String,
    },
    Create {
        name: String,
        #[arg(long, default_value_t = 0)]
        partitions: u32,
        /// key=value, e.g. retention.ms=86400000 or flush.policy=sync
        #[arg(long = "config")]
        config: Vec<String>,
    },
    Delete {
        name: String,
    },
    /// Change retention or flush policy: --set key=value, --remove key.
    Configure {
        name: String,
        #[arg(long)]
        set: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Append a message (key and headers optional).
    Send {
        topic: String,
        value: String,
        #[arg(long)]
        key: Option<String>,
        /// name=value
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Read messages by offset.
    Read {
        topic: String,
        partition: i32,
        offset: i64,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Find messages by key, or by message id with --message-id.
    Find {
        topic: String,
        key: Option<String>,
        #[arg(long, conflicts_with = "key")]
        message_id: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TraceOp {
    /// Start tracing a client id, a topic filter or a message id.
    Start {
        #[arg(long, conflicts_with_all = ["topic", "message_id"])]
        client: Option<String>,
        #[arg(long, conflicts_with = "message_id")]
        topic: Option<String>,
        #[arg(long)]
        message_id: Option<String>,
    },
    /// Stop a trace rule.
    Stop {
        id: u64,
    },
    Rules,
    /// Traced messages.
    List {
        #[arg(long)]
        message_id: Option<String>,
    },
    /// One message's path.
    Show {
        id: u64,
    },
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .with_context(|| format!("{what} {kv:?} is not key=value"))
        })
        .collect()
}

/// What to print: a table (path into the body, columns) or the body itself.
enum Show {
    Table(&'static str, &'static [&'static str]),
    Object,
    Done(&'static str),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("hubctl: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let token = match cli.token.clone() {
        Some(t) => Some(t),
        None => std::fs::read_to_string(cli.data_dir.join(hub::admin::auth::TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_string()),
    };
    let client = AdminClient::new(&cli.url, token.as_deref());
    let (method, path, body, show): (&str, String, Option<Value>, Show) = match cli.cmd {
        Cmd::Stats => ("GET", "/api/v1/stats".into(), None, Show::Object),
        Cmd::Clients { like, limit, page } => (
            "GET",
            format!(
                "/api/v1/clients?limit={limit}&page={page}{}",
                like.map(|l| format!("&like={}", encode(&l))).unwrap_or_default()
            ),
            None,
            Show::Table("data", &["client_id", "protocol", "listener", "remote", "subscriptions", "queued", "keep_alive"]),
        ),
        Cmd::Client { id } => ("GET", format!("/api/v1/sessions/{}", encode(&id)), None, Show::Object),
        Cmd::Kick { id } => ("DELETE", format!("/api/v1/clients/{}", encode(&id)), None, Show::Done("kicked")),
        Cmd::Sessions { offline, like, limit } => (
            "GET",
            format!(
                "/api/v1/sessions?limit={limit}{}{}",
                if offline { "&online=false" } else { "" },
                like.map(|l| format!("&like={}", encode(&l))).unwrap_or_default()
            ),
            None,
            Show::Table("data", &["client_id", "online", "protocol", "subscriptions", "queued", "inflight", "expiry_secs"]),
        ),
        Cmd::Discard { id } => ("DELETE", format!("/api/v1/sessions/{}", encode(&id)), None, Show::Done("discarded")),
        Cmd::Subscriptions { client } => (
            "GET",
            format!(
                "/api/v1/subscriptions{}",
                client.map(|c| format!("?client_id={}", encode(&c))).unwrap_or_default()
            ),
            None,
            Show::Table("data", &["client_id", "filter", "qos", "shared", "online"]),
        ),
        Cmd::Topics => ("GET", "/api/v1/topics".into(), None, Show::Object),
        Cmd::Retained { op } => match op {
            RetainedOp::List { filter } => (
                "GET",
                format!("/api/v1/retained?filter={}", encode(&filter)),
                None,
                Show::Table("data", &["topic", "qos", "payload_bytes", "payload"]),
            ),
            RetainedOp::Get { topic } => ("GET", format!("/api/v1/retained/{}", topic_path(&topic)), None, Show::Object),
            RetainedOp::Delete { topic } => (
                "DELETE",
                format!("/api/v1/retained/{}", topic_path(&topic)),
                None,
                Show::Done("deleted"),
            ),
        },
        Cmd::Publish { topic, payload, qos, retain } => (
            "POST",
            "/api/v1/publish".into(),
            Some(json!({"topic": topic, "payload": payload, "qos": qos, "retain": retain})),
            Show::Object,
        ),
        Cmd::Queue { op } => match op {
            QueueOp::List => (
                "GET",
                "/api/v1/queue/topics".into(),
                None,
                Show::Table("data", &["name", "partitions", "messages", "size_bytes"]),
            ),
            QueueOp::Describe { name } => (
                "GET",
                format!("/api/v1/queue/topics/{}", encode(&name)),
                None,
                Show::Table("partition_list", &["partition", "log_start_offset", "high_watermark", "size_bytes", "segments"]),
            ),
            QueueOp::Create { name, partitions, config } => (
                "POST",
                "/api/v1/queue/topics".into(),
                Some(json!({"name": name, "partitions": partitions, "config": pairs(&config, "config")?})),
                Show::Table("partition_list", &["partition", "log_start_offset", "high_watermark"]),
            ),
            QueueOp::Delete { name } => (
                "DELETE",
                format!("/api/v1/queue/topics/{}", encode(&name)),
                None,
                Show::Done("deleted"),
            ),
            QueueOp::Configure { name, set, remove } => (
                "PATCH",
                format!("/api/v1/queue/topics/{}/config", encode(&name)),
                Some(json!({"set": pairs(&set, "setting")?, "remove": remove})),
                Show::Table("config", &["key", "value", "default"]),
            ),
            QueueOp::Send { topic, value, key, headers } => (
                "POST",
                format!("/api/v1/queue/topics/{}/messages", encode(&topic)),
                Some(json!({"key": key, "value": value, "headers": pairs(&headers, "header")?})),
                Show::Object,
            ),
            QueueOp::Read { topic, partition, offset, limit } => (
                "GET",
                format!(
                    "/api/v1/queue/topics/{}/partitions/{partition}/messages?offset={offset}&limit={limit}",
                    encode(&topic)
                ),
                None,
                Show::Table("data", &["partition", "offset", "timestamp_ms", "key", "value"]),
            ),
            QueueOp::Find { topic, key, message_id } => {
                let query = match (key, message_id) {
                    (Some(k), None) => format!("key={}", encode(&k)),
                    (None, Some(m)) => format!("message_id={}", encode(&m)),
                    _ => bail!("give a key or --message-id"),
                };
                (
                    "GET",
                    format!("/api/v1/queue/topics/{}/messages?{query}", encode(&topic)),
                    None,
                    Show::Table("data", &["partition", "offset", "timestamp_ms", "key", "value"]),
                )
            }
        },
        Cmd::Groups { group: None } => (
            "GET",
            "/api/v1/queue/groups".into(),
            None,
            Show::Table("data", &["group", "state", "members", "total_lag"]),
        ),
        Cmd::Groups { group: Some(g) } => (
            "GET",
            format!("/api/v1/queue/groups/{}", encode(&g)),
            None,
            Show::Table("partitions", &["topic", "partition", "committed", "high_watermark", "lag"]),
        ),
        Cmd::ResetOffsets { group, topic, to } => {
            let body = match to.as_str() {
                "earliest" | "latest" => json!({"topic": topic, "to": to}),
                ms => {
                    let ts: i64 = ms
                        .parse()
                        .with_context(|| format!("{ms:?} is not earliest, latest or a timestamp in ms"))?;
                    json!({"topic": topic, "to": "timestamp", "timestamp_ms": ts})
                }
            };
            (
                "POST",
                format!("/api/v1/queue/groups/{}/reset", encode(&group)),
                Some(body),
                Show::Table("offsets", &["partition", "offset"]),
            )
        }
        Cmd::Trace { op } => match op {
            TraceOp::Start { client, topic, message_id } => {
                let body = match (client, topic, message_id) {
                    (Some(c), None, None) => json!({"client_id": c}),
                    (None, Some(t), None) => json!({"topic": t}),
                    (None, None, Some(m)) => json!({"message_id": m}),
                    _ => bail!("give one of --client, --topic, --message-id"),
                };
                ("POST", "/api/v1/trace/rules".into(), Some(body), Show::Object)
            }
            TraceOp::Stop { id } => ("DELETE", format!("/api/v1/trace/rules/{id}"), None, Show::Done("stopped")),
            TraceOp::Rules => (
                "GET",
                "/api/v1/trace/rules".into(),
                None,
                Show::Table("data", &["id", "client_id", "topic", "message_id"]),
            ),
            TraceOp::List { message_id } => (
                "GET",
                format!(
                    "/api/v1/traces{}",
                    message_id.map(|m| format!("?message_id={}", encode(&m))).unwrap_or_default()
                ),
                None,
                Show::Table("data", &["trace_id", "topic", "publisher", "message_id"]),
            ),
            TraceOp::Show { id } => (
                "GET",
                format!("/api/v1/traces/{id}"),
                None,
                Show::Table("hops", &["at_ms", "kind", "client_id", "qos", "queue_topic", "partition", "offset", "group", "detail"]),
            ),
        },
        Cmd::Alerts => (
            "GET",
            "/api/v1/alerts".into(),
            None,
            Show::Table("active", &["key", "message", "raised_ms"]),
        ),
    };
    let resp = client.call(method, &path, body.as_ref())?;
    let v = resp.json();
    if resp.status >= 400 {
        let msg = v["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| resp.text());
        bail!(
            "{} ({}): {msg}",
            resp.status,
            v["error"].as_str().unwrap_or("error")
        );
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match show {
        Show::Done(word) => println!("{word}"),
        Show::Object => print!("{}", table::object(&v)),
        Show::Table(key, cols) => {
            let rows = v[key].as_array().cloned().unwrap_or_default();
            print!("{}", table::render(&rows, cols));
        }
    }
    Ok(())
}

/// A topic in a URL path: each level percent-encoded, slashes kept.
fn topic_path(topic: &str) -> String {
    topic.split('/').map(encode).collect::<Vec<_>>().join("/")
}
