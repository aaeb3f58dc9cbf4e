//! kcat (librdkafka 2.0 from Debian) against the in-process server:
//! metadata, produce with every compression codec, consume from the
//! beginning, offset lookup by timestamp, and the balanced consumer (-G)
//! committing and resuming.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

fn kcat(args: &[&str], stdin: &[u8]) -> String {
    let out = run(Command::new("kcat").args(args), stdin, T);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kcat_produce_consume_every_codec_and_query_by_time() {
    require_command("kcat", &["-V"]);
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let b = srv.bootstrap();
    let mut expected = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("{codec}-key-{i}:{codec} value {i}"))
            .collect();
        let input = lines.join("\n") + "\n";
        // -K: key delimiter; acks=all; the topic is auto-created by metadata.
        kcat(
            &[
                "-b",
                &b,
                "-P",
                "-t",
                "kc",
                "-p",
                "0",
                "-K",
                ":",
                "-z",
                codec,
                "-X",
                "acks=all",
                "-X",
                "linger.ms=5",
            ],
            input.as_bytes(),
        );
        expected.extend(lines);
    }
    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "kc",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %k:%s\n",
        ],
        b"",
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len(), "kcat consumed:\n{out}");
    for (i, (line, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(*line, format!("{i} {want}"));
    }
    // The server stored the producers' compressed batches as they were sent.
    let m = srv
        .broker
        .read_message("kc", 0, 120)
        .expect("read")
        .expect("present");
    assert_eq!(m.key.as_deref(), Some(&b"snappy-key-20"[..]));

    // Metadata listing shows the topic and this broker's advertised address.
    let meta = kcat(&["-b", &b, "-L", "-t", "kc"], b"");
    assert!(meta.contains("topic \"kc\" with 1 partitions"), "{meta}");
    assert!(meta.contains(&b), "{meta}");

    // Offsets by timestamp (kcat -Q): the first message at or after a time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let offs = kcat(
        &["-b", &b, "-Q", "-t", &format!("kc:0:{}", now_ms + 60_000)],
        b"",
    );
    assert!(
        offs.contains("offset -1"),
        "nothing after the future timestamp: {offs}"
    );
    let offs = kcat(&["-b", &b, "-Q", "-t", "kc:0:1"], b"");
    assert!(
        offs.contains("offset 0"),
        "first message is after t=1: {offs}"
    );
    srv.stop();
}

#[test]
fn kcat_balanced_consumer_commits_and_resumes() {
    require_command("kcat", &["-V"]);
    let dir = tempdir();
    let srv = InProc::start(config(dir.path()));
    let b = srv.bootstrap();
    let produce = |lines: &str| {
        kcat(
            &["-b", &b, "-P", "-t", "kg", "-X", "acks=all"],
            lines.as_bytes(),
        )
    };
    // -G: librdkafka's balanced consumer (JoinGroup/SyncGroup/Heartbeat, auto commit on exit).
    let consume = || {
        kcat(
            &[
                "-b",
                &b,
                "-G",
                "kgroup",
                "kg",
                "-e",
                "-f",
                "%o %s\n",
                "-X",
                "auto.offset.reset=earliest",
            ],
            b"",
        )
    };
    produce("a\nb\nc\n");
    assert_eq!(consume(), "0 a\n1 b\n2 c\n");
    assert_eq!(consume(), "", "resumes at the committed offset");
    produce("d\ne\n");
    assert_eq!(consume(), "3 d\n4 e\n");
    let lag = srv.broker.group_lag("kgroup").unwrap();
    assert_eq!(lag.iter().map(|l| l.lag).sum::<i64>(), 0);
    srv.stop();
}
