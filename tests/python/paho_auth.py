"""paho-mqtt 2.x against a hub that takes HS256 JWTs as passwords.

Usage: paho_auth.py PORT VERSION GOOD_TOKEN BAD_TOKEN SHORT_TOKEN
Checks: the good token connects; the bad one is refused with 0x86
(paho maps v3 return code 4 to the same reason); v5 only: a session whose
token expires is closed by the hub with DISCONNECT 0xA0. Prints OK.
"""
import sys
import threading

import paho.mqtt.client as mqtt

port, version, good, bad, short = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
proto = mqtt.MQTTv5 if version == "v5" else mqtt.MQTTv311


def attempt(token, client_id, wait_disconnect=False):
    done = threading.Event()
    gone = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["connect"] = reason_code.value
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        result["disconnect"] = reason_code.value
        gone.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto)
    c.username_pw_set("dev1", token)
    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    if not done.wait(10):
        sys.exit("no CONNACK")
    if wait_disconnect and not gone.wait(10):
        sys.exit("hub did not close the expired session")
    c.loop_stop()
    c.disconnect()
    return result


r = attempt(good, "paho-good")
assert r["connect"] == 0, r
r = attempt(bad, "paho-bad")
assert r["connect"] == 134, r
if version == "v5":
    r = attempt(short, "paho-short", wait_disconnect=True)
    assert r["connect"] == 0 and r["disconnect"] == 160, r
print("OK")
