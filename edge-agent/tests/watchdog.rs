//! Watchdog test: a hub that accepts the connection but never acknowledges
//! a PUBLISH ("connected, but nothing moves") gets the link torn down after
//! `watchdog_ms`; the uplink reconnects and resends the same message with
//! the same id.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use edge_agent::buffer::{Buffer, BufferConfig, FsyncPolicy, FullPolicy, NewEntry, SharedBuffer};
use edge_agent::config::Config;
use edge_agent::ids::Boot;
use edge_agent::uplink::{self, UplinkParams, UplinkStats};
use mqtt::{codec, ConnAck, Packet, Properties, Protocol, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Accepts connections, CONNACKs them, and reports each PUBLISH's id
/// property without ever acking it.
async fn silent_hub(listener: TcpListener, seen: mpsc::Sender<String>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            loop {
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while let Ok(Some(packet)) = codec::decode(&mut buf, Protocol::V5, 1 << 20) {
                    match packet {
                        Packet::Connect(_) => {
                            let ack = Packet::ConnAck(ConnAck {
                                session_present: false,
                                code: ReasonCode::SUCCESS,
                                properties: Properties::default(),
                            });
                            let mut out = BytesMut::new();
                            codec::encode(&ack, Protocol::V5, &mut out).unwrap();
                            if stream.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                        Packet::Publish(p) => {
                            let id = p
                                .properties
                                .user_properties
                                .iter()
                                .find(|(k, _)| k == edge_agent::ids::PROP_ID)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let _ = seen.send(id).await;
                        }
                        _ => {}
                    }
                }
            }
        });
    }
}

#[tokio::test]
async fn stalled_link_is_torn_down_and_resent() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen) = mpsc::channel(16);
    tokio::spawn(silent_hub(listener, seen_tx));

    let text = format!(
        "gateway_id = \"gw-w\"\n[uplink]\naddress = \"127.0.0.1:{port}\"\nwatchdog_ms = 300\n\
         backoff_initial_ms = 20\nbackoff_max_ms = 50\n[[rules]]\nfilter = \"#\"\n"
    );
    let config = Config::parse(&text).unwrap();
    let mut buffer = Buffer::open(BufferConfig {
        dir: dir.path().to_owned(),
        segment_bytes: 4096,
        quota_bytes: 8192,
        fsync: FsyncPolicy::None,
    })
    .unwrap();
    buffer
        .append(
            &NewEntry {
                boot_epoch: 1,
                received_ms: 2,
                boot_id: 3,
                mono_ms: 4,
                qos: 1,
                retain: false,
                topic: "gw/gw-w/t".into(),
                payload: Bytes::from_static(b"x"),
            },
            FullPolicy::Block,
        )
        .unwrap();
    let buffer = SharedBuffer::new(buffer);
    let stats = Arc::new(UplinkStats::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(uplink::run(
        UplinkParams::from_config(&config).expect("uplink params"),
        Boot::new(),
        buffer.clone(),
        stats.clone(),
        stop_rx,
    ));

    let wait = Duration::from_secs(10);
    let first = tokio::time::timeout(wait, seen.recv())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(wait, seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, "gw-w:1:0");
    assert_eq!(second, first, "resent with the same id");
    assert!(stats.watchdog_trips.load(Ordering::Relaxed) >= 1);
    assert!(stats.connects.load(Ordering::Relaxed) >= 2);
    assert_eq!(buffer.lock().pending(), 1, "never acked, never deleted");
    stop.send(true).unwrap();
    tokio::time::timeout(wait, task).await.unwrap().unwrap();
}
