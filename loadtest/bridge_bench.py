#!/usr/bin/env python3
"""Bridge benchmark (issue 6): the hub's plain QoS 1 fan-in beside the same
load with an uplink rule to the embedded queue, plus a Kafka consumer
(confluent-kafka) reading the bridged topic for device-to-consumer
throughput and end-to-end latency.

    cargo build --release -p hub -p loadtest
    python3 loadtest/bridge_bench.py [--duration 10] [--publishers 10] [--size 100]

Each case starts a fresh release hub (generated config, temp data folder) and
runs `loadtest qos1` (publishers -> 1 subscriber on bench/#, QoS 1, inflight
64 per publisher). Latency is measured from the send time the loadtest
writes into every payload (bytes 20..28, ns since the epoch) to receipt.

The subscriber (`lt-s-0`) is in `limits.block_when_full` in both cases, so
the plain hub cannot acknowledge more than it delivers (by default it would
drop the oldest queued messages of a subscriber that falls behind): both
rates are lossless fan-in rates. The hub's CPU time (utime + stime from
/proc) over the run gives its cost per message, which is what the bridge
adds to the hub, independent of the load generator and the Python consumer
sharing the machine's cores. The CPU seconds of the hub, the load generator
and the consumer (this process) during each run are printed too: on a small
machine a slower bridged rate with the consumer running is partly the
consumer's CPU, not the hub's.
"""

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def config(data, mqtt, kafka, bridged):
    text = f"""data_dir = "{data}"
[mqtt]
listen = "127.0.0.1:{mqtt}"
[admin]
enabled = false
[queue]
listen = "127.0.0.1:{kafka}"
[bridge.delayed]
enabled = false
[limits]
block_when_full = ["lt-s-0"]
"""
    if bridged:
        text += """[[bridge.uplink]]
filter = "bench/#"
topic = "bench-up"
"""
    return text


class Collector(threading.Thread):
    """Reads bench-up and records per-message latency."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "bench",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        })
        self.c.subscribe(["bench-up"])
        self.lat_ms = []
        self.first = None
        self.last = None
        self.stop = False

    def run(self):
        while not self.stop:
            for m in self.c.consume(num_messages=10000, timeout=0.2):
                if m.error():
                    continue
                now = time.time_ns()
                v = m.value()
                if v is None or len(v) < 28 or v[:4] != b"LTB1":
                    continue
                sent = struct.unpack(">Q", v[20:28])[0]
                self.lat_ms.append((now - sent) / 1e6)
                self.first = self.first or now
                self.last = now
        self.c.close()


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def cpu_secs(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(args, bridged):
    with tempfile.TemporaryDirectory() as d:
        mqtt, kafka = free_port(), free_port()
        path = os.path.join(d, "hub.toml")
        with open(path, "w") as f:
            f.write(config(os.path.join(d, "data"), mqtt, kafka, bridged))
        hub = subprocess.Popen([args.hub, "--config", path, "--log", "warn"])
        try:
            wait_port(mqtt)
            collector = None
            if bridged and not args.no_consumer:
                wait_port(kafka)
                collector = Collector(f"127.0.0.1:{kafka}")
                collector.start()
            out = os.path.join(d, "r.json")
            cpu0 = cpu_secs(hub.pid)
            lt0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            me0 = resource.getrusage(resource.RUSAGE_SELF)
            subprocess.run(
                [args.loadtest, "qos1", "-p", str(mqtt), "--publishers", str(args.publishers),
                 "-s", str(args.size), "-d", str(args.duration), "--json", out, "--quiet"],
                check=True, stdout=subprocess.DEVNULL)
            hub_cpu = cpu_secs(hub.pid) - cpu0
            lt1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            me1 = resource.getrusage(resource.RUSAGE_SELF)
            # This process is the consumer (its thread and librdkafka's).
            cpu = lambda a, b: (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)
            with open(out) as f:
                r = json.load(f)
            result = {"mqtt": r["derived"], "hub_cpu_secs": hub_cpu,
                      "loadtest_cpu_secs": cpu(lt0, lt1), "consumer_cpu_secs": cpu(me0, me1),
                      "counters": r["counters"]}
            if collector:
                published = r.get("counters", {}).get("acked") or r["derived"]["ack_rate"] * r["derived"]["publish_secs"]
                deadline = time.time() + 30
                while len(collector.lat_ms) < published and time.time() < deadline:
                    time.sleep(0.2)
                collector.stop = True
                collector.join()
                n = len(collector.lat_ms)
                span = max((collector.last - collector.first) / 1e9, 1e-9) if n > 1 else float("nan")
                result["consumer"] = {
                    "received": n,
                    "acked": published,
                    "rate": n / span,
                    "p50_ms": pct(collector.lat_ms, 0.50),
                    "p99_ms": pct(collector.lat_ms, 0.99),
                }
            return result
        finally:
            hub.terminate()
            hub.wait(timeout=30)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hub", default=os.path.join(ROOT, "target/release/hub"))
    p.add_argument("--loadtest", default=os.path.join(ROOT, "target/release/loadtest"))
    p.add_argument("--duration", default="10")
    p.add_argument("--publishers", type=int, default=10)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--no-consumer", action="store_true",
                   help="bridged case without the Kafka consumer (its CPU shares the machine)")
    args = p.parse_args()
    plain = run_case(args, False)
    bridged = run_case(args, True)
    m0, m1 = plain["mqtt"], bridged["mqtt"]
    c = bridged.get("consumer", {"rate": float("nan"), "p50_ms": float("nan"),
                                 "p99_ms": float("nan"), "received": 0, "acked": 0})
    print(f"QoS 1 fan-in, {args.publishers} publishers, {args.size} B, {args.duration} s")
    print(f"{'case':<26}{'acked/s':>10}{'recv/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'hub us/msg':>12}")

    def us_per_msg(case):
        acked = case["acked"]
        return case["hub_cpu_secs"] * 1e6 / acked if acked else float("nan")

    for case, r in (("plain", plain), ("bridged", bridged)):
        r["acked"] = r["counters"]["acked"]
    print(f"{'plain (MQTT subscriber)':<26}{m0['ack_rate']:>10.0f}{m0['receive_rate']:>10.0f}"
          f"{m0['latency']['p50']:>9.2f}{m0['latency']['p99']:>9.2f}{us_per_msg(plain):>12.2f}")
    print(f"{'bridged (MQTT subscriber)':<26}{m1['ack_rate']:>10.0f}{m1['receive_rate']:>10.0f}"
          f"{m1['latency']['p50']:>9.2f}{m1['latency']['p99']:>9.2f}{us_per_msg(bridged):>12.2f}")
    print(f"{'bridged (Kafka consumer)':<26}{'':>10}{c['rate']:>10.0f}{c['p50_ms']:>9.2f}{c['p99_ms']:>9.2f}"
          f"   ({c['received']:.0f} of {c['acked']:.0f} acked)")
    for case, r in (("plain", plain), ("bridged", bridged)):
        print(f"CPU seconds during the {case} run: hub {r['hub_cpu_secs']:.1f}, load generator "
              f"{r['loadtest_cpu_secs']:.1f}, consumer {r['consumer_cpu_secs']:.1f} "
              f"(the machine has {os.cpu_count()} cores)")
    cost = 1 - m1["ack_rate"] / m0["ack_rate"]
    print(f"bridge cost on the QoS 1 fan-in rate: {cost * 100:.1f}% (target <= 30%)")
    cpu_cost = 1 - us_per_msg(plain) / us_per_msg(bridged)
    print(f"bridge cost on the hub's fan-in rate per CPU second: {cpu_cost * 100:.1f}% (target <= 30%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
