#!/usr/bin/env python3
"""paho-mqtt 2.x interop check against the hub.

Usage: paho_interop.py PORT {v311,v5}

Covers connect, subscribe, publish at QoS 0/1/2, a retained message, and a
will published when a client's socket is dropped. Exits non-zero with a
message naming the failed step; prints "OK" on success.
"""
import queue
import socket
import sys
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 5.0


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def make_client(port, proto, client_id, will=None):
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=proto,
    )
    got = queue.Queue()
    acks = queue.Queue()
    connected = queue.Queue()
    c.on_message = lambda cl, ud, msg: got.put(msg)
    c.on_subscribe = lambda cl, ud, mid, rcs, props: acks.put(("sub", mid, rcs))
    c.on_publish = lambda cl, ud, mid, rc, props: acks.put(("pub", mid, rc))
    c.on_connect = lambda cl, ud, flags, rc, props: connected.put(rc)
    if will:
        c.will_set(will[0], will[1], qos=1, retain=False)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        rc = connected.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{client_id}: no CONNACK")
    if rc.is_failure:
        fail(f"{client_id}: connect refused: {rc}")
    return c, got, acks


def wait_ack(acks, kind, mid):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        try:
            k, m, rc = acks.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            break
        if k == kind and m == mid:
            return rc
    fail(f"no {kind} ack for mid {mid}")


def subscribe(c, acks, topic, qos):
    rc, mid = c.subscribe(topic, qos)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        fail(f"subscribe {topic}: {rc}")
    rcs = wait_ack(acks, "sub", mid)
    if any(r.is_failure for r in rcs):
        fail(f"SUBACK refused {topic}: {rcs}")


def expect(got, topic, payload, qos=None, retain=None):
    try:
        m = got.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"no message on {topic}")
    if m.topic != topic or m.payload != payload:
        fail(f"expected {topic}={payload!r}, got {m.topic}={m.payload!r}")
    if qos is not None and m.qos != qos:
        fail(f"{topic}: expected QoS {qos}, got {m.qos}")
    if retain is not None and bool(m.retain) != retain:
        fail(f"{topic}: expected retain={retain}, got {m.retain}")


def main():
    port = int(sys.argv[1])
    proto = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}[sys.argv[2]]
    tag = sys.argv[2] + "-" + uuid.uuid4().hex[:6]
    base = f"paho/{tag}"

    sub, got, sub_acks = make_client(port, proto, f"sub-{tag}")
    subscribe(sub, sub_acks, f"{base}/#", 2)
    pub, _, pub_acks = make_client(port, proto, f"pub-{tag}")

    for qos in (0, 1, 2):
        info = pub.publish(f"{base}/q{qos}", f"qos{qos}".encode(), qos=qos)
        if qos > 0:
            wait_ack(pub_acks, "pub", info.mid)
        expect(got, f"{base}/q{qos}", f"qos{qos}".encode(), qos=qos, retain=False)

    # Retained: set, then a new subscriber gets it with the retain flag.
    info = pub.publish(f"{base}/retained", b"kept", qos=1, retain=True)
    wait_ack(pub_acks, "pub", info.mid)
    expect(got, f"{base}/retained", b"kept", retain=False)
    late, late_got, late_acks = make_client(port, proto, f"late-{tag}")
    subscribe(late, late_acks, f"{base}/retained", 1)
    expect(late_got, f"{base}/retained", b"kept", retain=True)
    # Delete it.
    info = pub.publish(f"{base}/retained", b"", qos=1, retain=True)
    wait_ack(pub_acks, "pub", info.mid)
    expect(got, f"{base}/retained", b"")

    # Will: a client whose socket is dropped without DISCONNECT.
    doomed, _, _ = make_client(port, proto, f"doomed-{tag}", will=(f"{base}/will", b"gone"))
    doomed.loop_stop()
    doomed.socket().shutdown(socket.SHUT_RDWR)
    doomed.socket().close()
    expect(got, f"{base}/will", b"gone", qos=1)

    for c in (sub, pub, late):
        c.disconnect()
        c.loop_stop()
    print("OK")


if __name__ == "__main__":
    main()
