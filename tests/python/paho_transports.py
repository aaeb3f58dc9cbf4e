#!/usr/bin/env python3
"""paho-mqtt 2.x over the hub's TLS, WebSocket and secure WebSocket listeners.

Usage: paho_transports.py PORT {tcp,websockets} PATH [CAFILE [CERT KEY]]

PATH is the WebSocket path (ignored for tcp). With CAFILE the connection is
TLS, verifying the hub's certificate for "localhost"; CERT and KEY add a
client certificate. A subscriber and a publisher exchange one message at
each QoS 0, 1 and 2. Exits non-zero naming the failed step; prints "OK".
"""
import queue
import sys
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 5.0


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def make_client(args, client_id):
    port, transport, path = int(args[0]), args[1], args[2]
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        transport=transport,
    )
    if transport == "websockets":
        c.ws_set_options(path=path)
    if len(args) > 3:
        cert, key = (args[4], args[5]) if len(args) > 5 else (None, None)
        c.tls_set(ca_certs=args[3], certfile=cert, keyfile=key)
    got = queue.Queue()
    acks = queue.Queue()
    connected = queue.Queue()
    c.on_message = lambda cl, ud, msg: got.put(msg)
    c.on_subscribe = lambda cl, ud, mid, rcs, props: acks.put(("sub", mid))
    c.on_publish = lambda cl, ud, mid, rc, props: acks.put(("pub", mid))
    c.on_connect = lambda cl, ud, flags, rc, props: connected.put(rc)
    c.connect("localhost", port, keepalive=30)
    c.loop_start()
    try:
        rc = connected.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{client_id}: no CONNACK")
    if rc.is_failure:
        fail(f"{client_id}: connect refused: {rc}")
    return c, got, acks


def wait_ack(acks, kind, mid):
    try:
        while True:
            k, m = acks.get(timeout=TIMEOUT)
            if k == kind and m == mid:
                return
    except queue.Empty:
        fail(f"no {kind} ack for mid {mid}")


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        fail(__doc__)
    prefix = "paho/" + uuid.uuid4().hex[:8]
    sub, got, sub_acks = make_client(args, "paho-sub-" + uuid.uuid4().hex[:6])
    pub, _, pub_acks = make_client(args, "paho-pub-" + uuid.uuid4().hex[:6])
    _, mid = sub.subscribe(prefix + "/#", qos=2)
    wait_ack(sub_acks, "sub", mid)
    for qos in (0, 1, 2):
        topic = f"{prefix}/q{qos}"
        payload = f"over {args[1]} at QoS {qos}".encode()
        info = pub.publish(topic, payload, qos=qos)
        if qos > 0:
            wait_ack(pub_acks, "pub", info.mid)
        try:
            msg = got.get(timeout=TIMEOUT)
        except queue.Empty:
            fail(f"QoS {qos}: message not delivered")
        if msg.topic != topic or msg.payload != payload or msg.qos != qos:
            fail(f"QoS {qos}: got {msg.topic} {msg.payload!r} qos {msg.qos}")
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
    print("OK")


if __name__ == "__main__":
    main()
