//! kafka-python (PyPI) against the in-process server: the idempotent
//! producer with acks=all, a consumer group that commits, a server restart,
//! and resuming from the committed offset; then the library's lag and
//! reset-to-timestamp calls on the same group.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(120);

const PRODUCE_AND_CONSUME_HALF: &str = r#"
import os, json
from kafka import KafkaProducer, KafkaConsumer
b = os.environ["BOOTSTRAP"]
p = KafkaProducer(bootstrap_servers=b, acks="all", enable_idempotence=True, linger_ms=5)
futs = [p.send("kp", key=b"k%d" % i, value=b"v%d" % i, partition=0, timestamp_ms=1_700_000_000_000 + i * 1000)
        for i in range(100)]
offsets = [f.get(timeout=30).offset for f in futs]
p.close()
c = KafkaConsumer("kp", bootstrap_servers=b, group_id="kpg", enable_auto_commit=False,
                  auto_offset_reset="earliest", consumer_timeout_ms=20000)
got = []
for m in c:
    got.append(m.offset)
    if len(got) == 50:
        break
c.commit()
c.close()
print(json.dumps({"produced": offsets, "consumed": got}))
"#;

const RESUME: &str = r#"
import os, json
from kafka import KafkaConsumer
b = os.environ["BOOTSTRAP"]
c = KafkaConsumer("kp", bootstrap_servers=b, group_id="kpg", enable_auto_commit=False,
                  auto_offset_reset="earliest", consumer_timeout_ms=20000)
m = next(iter(c))
print(json.dumps({"first": m.offset, "value": m.value.decode()}))
c.close()
"#;

fn json(out: &str) -> serde_json::Value {
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}\n{out}"))
}

#[test]
fn kafka_python_idempotent_produce_commit_restart_resume() {
    require_python_module("kafka");
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let r = json(&python(
        PRODUCE_AND_CONSUME_HALF,
        &[("BOOTSTRAP", srv.bootstrap())],
        T,
    ));
    assert_eq!(
        r["produced"],
        serde_json::json!((0..100).collect::<Vec<_>>())
    );
    assert_eq!(
        r["consumed"],
        serde_json::json!((0..50).collect::<Vec<_>>())
    );
    // The producer really was idempotent: its batches carry a producer id and sequences.
    let raw = srv.broker.fetch_raw("kp", 0, 0, 1 << 20).unwrap();
    let h = queue::log::batch::parse_header(&raw.data).unwrap();
    assert!(h.producer_id >= 0 && h.base_sequence == 0, "{h:?}");
    srv.stop();

    // Restart on the same data directory (a new port: clients rediscover it).
    let srv = InProc::start(config(dir.path()));
    let lag = srv.broker.group_lag("kpg").unwrap();
    assert_eq!(lag.len(), 1);
    assert_eq!(
        (lag[0].committed, lag[0].high_watermark, lag[0].lag),
        (Some(50), 100, 50)
    );
    let r = json(&python(RESUME, &[("BOOTSTRAP", srv.bootstrap())], T));
    assert_eq!(r["first"], 50, "resumed from the committed offset");
    assert_eq!(r["value"], "v50");

    // Backtracking: reset the (now empty) group to a timestamp, then resume there.
    let reset = srv
        .broker
        .reset_group_offsets_to_timestamp("kpg", "kp", 1_700_000_000_000 + 20_500)
        .unwrap();
    assert_eq!(reset, vec![(0, 21)]);
    let r = json(&python(RESUME, &[("BOOTSTRAP", srv.bootstrap())], T));
    assert_eq!(r["first"], 21);
    // Lookups by offset and by key within a time range.
    let m = srv.broker.read_message("kp", 0, 42).unwrap().unwrap();
    assert_eq!(m.value.as_deref(), Some(&b"v42"[..]));
    let found = srv
        .broker
        .find_by_key(
            "kp",
            b"k7",
            1_700_000_000_000,
            1_700_000_000_000 + 10_000,
            10,
        )
        .unwrap();
    assert_eq!(found.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![7]);
    srv.stop();
}
