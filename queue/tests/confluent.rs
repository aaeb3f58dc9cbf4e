//! confluent-kafka (PyPI, librdkafka 2.x) against the in-process server:
//! every codec through producer and consumer; offsets_for_times and seek; a
//! consumer group of two that rebalances on join and on leave; retention and
//! recovery from OFFSET_OUT_OF_RANGE through auto.offset.reset.

mod common;

use std::time::Duration;

use common::*;
use queue::Message;
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

fn last_json(out: &str) -> Value {
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}\nfull output:\n{out}"))
}

const CODECS_AND_TIMES: &str = r#"
import os, json
from confluent_kafka import Producer, Consumer, TopicPartition
b = os.environ["BOOTSTRAP"]
result = {}
for codec in ["gzip", "snappy", "lz4", "zstd"]:
    topic = "cf-" + codec
    p = Producer({"bootstrap.servers": b, "compression.type": codec, "linger.ms": 20, "acks": "all"})
    for i in range(200):
        p.produce(topic, key=b"k%d" % i, value=(b"%s value %d " % (codec.encode(), i)) * 10,
                  headers=[("h", b"1"), ("h", b"2")])
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": b, "group.id": "cf-" + codec, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < 200:
        m = c.poll(10)
        assert m is not None, "timed out after %d messages" % len(got)
        assert m.error() is None, m.error()
        assert m.value() == (b"%s value %d " % (codec.encode(), m.offset())) * 10
        assert m.headers() == [("h", b"1"), ("h", b"2")], m.headers()
        got.append(m.offset())
    c.close()
    result[codec] = got == list(range(200))

# Timestamps 1 s apart; look up by time, seek there, read.
topic = "cf-times"
base = 1_700_000_000_000
p = Producer({"bootstrap.servers": b, "linger.ms": 0})
for i in range(100):
    p.produce(topic, value=b"v%d" % i, timestamp=base + i * 1000)
    p.flush(10)
c = Consumer({"bootstrap.servers": b, "group.id": "cf-times", "auto.offset.reset": "earliest"})
tp = c.offsets_for_times([TopicPartition(topic, 0, base + 50_500)], timeout=10)[0]
result["offset_for_time"] = tp.offset
c.assign([tp])
m = c.poll(10)
result["value_after_seek"] = m.value().decode()
late = c.offsets_for_times([TopicPartition(topic, 0, base + 10_000_000)], timeout=10)[0]
result["offset_after_end"] = late.offset
c.close()
print(json.dumps(result))
"#;

#[test]
fn confluent_codecs_and_offsets_for_times() {
    require_python_module("confluent_kafka");
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let out = python(CODECS_AND_TIMES, &[("BOOTSTRAP", srv.bootstrap())], T);
    let r = last_json(&out);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert_eq!(r[codec], Value::Bool(true), "{codec}: {out}");
    }
    assert_eq!(r["offset_for_time"], 51, "{out}");
    assert_eq!(r["value_after_seek"], "v51", "{out}");
    // librdkafka reports "no such offset" as the logical end (-1).
    assert_eq!(r["offset_after_end"], -1, "{out}");
    // The stored batches are the producer's: compressed, with repeated header names intact.
    let m = srv.broker.read_message("cf-zstd", 0, 7).unwrap().unwrap();
    assert_eq!(
        m.headers.len(),
        1,
        "the decoded view holds one value per name"
    );
    srv.stop();
}

const GROUP_OF_TWO: &str = r#"
import os, json, time
from confluent_kafka import Producer, Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
b = os.environ["BOOTSTRAP"]
topic, N = "grp", 400
admin = AdminClient({"bootstrap.servers": b})  # must outlive the futures
for f in admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]).values():
    f.result()
p = Producer({"bootstrap.servers": b, "linger.ms": 5})
for i in range(N):
    p.produce(topic, value=b"v%d" % i, partition=i % 4)
assert p.flush(30) == 0

events, seen, committed = [], {}, set()
def make(name):
    c = Consumer({"bootstrap.servers": b, "group.id": "g2", "client.id": name,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
                  "partition.assignment.strategy": "range"})
    c.subscribe([topic],
                on_assign=lambda c, ps: events.append([name, "assign", sorted(x.partition for x in ps)]),
                on_revoke=lambda c, ps: events.append([name, "revoke", sorted(x.partition for x in ps)]))
    return c
def poll(c, name):
    m = c.poll(0.05)
    if m is None or m.error():
        return
    k = "%d:%d" % (m.partition(), m.offset())
    seen.setdefault(k, []).append(name)
    try:
        c.commit(message=m, asynchronous=False)
        committed.add(k)
    except KafkaException as e:
        events.append([name, "commit-failed", k, str(e)])

a = make("A")
deadline = time.time() + 60
while len(seen) < 100 and time.time() < deadline:
    poll(a, "A")
bc = make("B")
deadline = time.time() + 60
while time.time() < deadline and (len(seen) < 300 or not any(e[0] == "B" and e[1] == "assign" and e[2] for e in events)):
    poll(a, "A"); poll(bc, "B")
a.close()
# B may already have seen every message; wait for the rebalance after A left too.
def b_owns_all():
    mine = [e for e in events if e[0] == "B" and e[1] == "assign"]
    return bool(mine) and mine[-1][2] == [0, 1, 2, 3]
deadline = time.time() + 60
while time.time() < deadline and (len(seen) < N or not b_owns_all()):
    poll(bc, "B")
bc.close()
print(json.dumps({"consumed": len(seen), "seen": seen, "committed": sorted(committed), "events": events}))
"#;

#[test]
fn confluent_group_of_two_rebalances_without_duplicates() {
    require_python_module("confluent_kafka");
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let out = python(GROUP_OF_TWO, &[("BOOTSTRAP", srv.bootstrap())], T);
    let r = last_json(&out);
    assert_eq!(r["consumed"], 400, "every message consumed: {out}");
    let seen = r["seen"].as_object().unwrap();
    let committed: Vec<&str> = r["committed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let events = r["events"].as_array().unwrap();
    let mut dup_after_commit = Vec::new();
    for (k, who) in seen {
        let who = who.as_array().unwrap();
        // Consumed twice although the first consumer's commit of it succeeded.
        if who.len() > 1 && committed.contains(&k.as_str()) {
            let failed_once = events
                .iter()
                .any(|e| e[1] == "commit-failed" && e[2] == k.as_str());
            if !failed_once {
                dup_after_commit.push(k.clone());
            }
        }
    }
    assert!(
        dup_after_commit.is_empty(),
        "consumed twice after commit: {dup_after_commit:?}\n{out}"
    );
    let by = |n: &str| {
        seen.values()
            .filter(|v| v.as_array().unwrap().iter().any(|x| x == n))
            .count()
    };
    assert!(
        by("A") >= 100 && by("B") > 0,
        "both consumed: A={} B={}",
        by("A"),
        by("B")
    );
    assert!(
        events.iter().any(|e| e[0] == "A" && e[1] == "revoke"),
        "A's partitions were revoked when B joined: {events:?}"
    );
    let last_b = events
        .iter()
        .rev()
        .find(|e| e[0] == "B" && e[1] == "assign")
        .expect("B assigned");
    assert_eq!(
        last_b[2],
        serde_json::json!([0, 1, 2, 3]),
        "B owns everything after A left: {events:?}"
    );
    // The committed offsets are all at the end: no backlog.
    let lag: i64 = srv
        .broker
        .group_lag("g2")
        .unwrap()
        .iter()
        .map(|l| l.lag)
        .sum();
    assert_eq!(lag, 0);
    srv.stop();
}

const RESET_TO_EARLIEST: &str = r#"
import os, json
from confluent_kafka import Consumer, TopicPartition
b = os.environ["BOOTSTRAP"]
c = Consumer({"bootstrap.servers": b, "group.id": "ret", "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition("ret", 0, 0)])
m = c.poll(15)
assert m is not None and m.error() is None, m and m.error()
print(json.dumps({"first": m.offset(), "value": m.value().decode()}))
c.close()
"#;

#[test]
fn confluent_recovers_from_offset_out_of_range_after_retention() {
    require_python_module("confluent_kafka");
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let b = &srv.broker;
    b.create_topic("ret", 1, &[("segment.bytes".into(), "2048".into())])
        .unwrap();
    // 300 messages stamped in 1970: far beyond the 3-day retention.
    for i in 0..30 {
        let msgs: Vec<Message> = (0..10)
            .map(|j| Message {
                value: Some(format!("old {}", i * 10 + j).into_bytes().into()),
                timestamp_ms: 1_000,
                ..Message::default()
            })
            .collect();
        b.append("ret", 0, &msgs).unwrap();
    }
    let fresh: Vec<Message> = (0..10)
        .map(|j| Message {
            value: Some(format!("new {j}").into_bytes().into()),
            ..Message::default()
        })
        .collect();
    let range = b.append("ret", 0, &fresh).unwrap();
    assert!(b.enforce_retention().unwrap() > 0, "old segments deleted");
    let start = b.log_start_offset("ret", 0).unwrap();
    assert!(
        start > 0 && start <= range.start,
        "log start {start} moved past the old data"
    );
    let out = python(RESET_TO_EARLIEST, &[("BOOTSTRAP", srv.bootstrap())], T);
    let r = last_json(&out);
    assert_eq!(r["first"], start, "reset to the log start: {out}");
    srv.stop();
}
