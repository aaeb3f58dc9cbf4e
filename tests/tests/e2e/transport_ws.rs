//! WebSocket listener (issue 5, item 1): the upgrade needs the configured
//! path and subprotocol `mqtt`; MQTT packets may share one binary frame or
//! span several, and the hub's replies arrive as binary frames.

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use hub::listener::config::{ListenerConfig, ListenerKind};
use mqtt::{codec, Packet, Protocol, QoS};
use tests::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn ws_hub() -> (TestHub, std::net::SocketAddr) {
    let mut l = ListenerConfig::ephemeral("ws", ListenerKind::Ws);
    l.path = "/custom".into();
    let hub = TestHub::start_with(|c| c.listeners = vec![l]).await;
    let addr = hub.handle.as_ref().unwrap().listener_addr("ws").unwrap();
    (hub, addr)
}

fn request(
    addr: std::net::SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    req
}

fn encode(packets: &[Packet]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for p in packets {
        codec::encode(p, Protocol::V5, &mut out).unwrap();
    }
    out.to_vec()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn ws_connect(
    addr: std::net::SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("TCP connect");
    within(
        "WebSocket upgrade",
        tokio_tungstenite::client_async(request(addr, path, protocol), tcp),
    )
    .await
}

/// The next MQTT packet from the hub, however its frames are cut.
async fn next_packet(ws: &mut Ws, rbuf: &mut BytesMut) -> Packet {
    loop {
        if let Some(p) = codec::decode(rbuf, Protocol::V5, usize::MAX).unwrap() {
            return p;
        }
        match within("frame from hub", ws.next()).await {
            Some(Ok(Message::Binary(b))) => rbuf.extend_from_slice(&b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_may_share_and_span_frames() {
    let (hub, addr) = ws_hub().await;
    let (mut ws, resp) = ws_connect(addr, "/custom", Some("mqtt"))
        .await
        .expect("upgrade");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt"
    );
    // CONNECT and SUBSCRIBE in one frame.
    let sub = Packet::Subscribe(mqtt::Subscribe {
        pkid: 1,
        filters: vec![mqtt::SubscribeFilter {
            filter: "ws/#".into(),
            options: sub_opts(QoS::AtLeastOnce),
        }],
        properties: Default::default(),
    });
    let bytes = encode(&[
        Packet::Connect(Box::new(connect_packet(Protocol::V5, "ws-client", true))),
        sub,
    ]);
    ws.send(Message::Binary(bytes.into())).await.unwrap();
    let mut rbuf = BytesMut::new();
    assert!(
        matches!(next_packet(&mut ws, &mut rbuf).await, Packet::ConnAck(a) if a.code.is_success())
    );
    assert!(matches!(
        next_packet(&mut ws, &mut rbuf).await,
        Packet::SubAck(_)
    ));
    // A PUBLISH from a TCP client reaches the WebSocket client...
    let (mut tcp, _) = RawClient::connect(hub.addr, Protocol::V5, "tcp", true).await;
    tcp.publish_acked(publish("ws/in", QoS::AtLeastOnce, 1, "to ws"))
        .await;
    // ...and one split over three frames from the WebSocket client reaches TCP.
    tcp.sub(2, "ws/out", QoS::AtMostOnce).await;
    let bytes = encode(&[Packet::Publish(publish(
        "ws/out",
        QoS::AtMostOnce,
        0,
        vec![7u8; 3000],
    ))]);
    for chunk in [&bytes[..1], &bytes[1..1500], &bytes[1500..]] {
        ws.send(Message::Binary(chunk.to_vec().into()))
            .await
            .unwrap();
    }
    let got = tcp.recv_publish().await;
    assert_eq!(got.payload.len(), 3000);
    let delivered = next_packet(&mut ws, &mut rbuf).await;
    match delivered {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"to ws"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_path_or_subprotocol_is_refused() {
    let (_hub, addr) = ws_hub().await;
    for (path, proto, status) in [
        ("/mqtt", Some("mqtt"), 404),
        ("/custom", None, 400),
        ("/custom", Some("chat"), 400),
    ] {
        match ws_connect(addr, path, proto).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), status, "{path} {proto:?}")
            }
            other => panic!("{path} {proto:?}: expected HTTP {status}, got {other:?}"),
        }
    }
}
