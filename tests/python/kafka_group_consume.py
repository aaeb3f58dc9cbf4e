"""Consumes COUNT messages of TOPIC as a member of GROUP with confluent-kafka
(librdkafka), commits synchronously and prints OK: a real Kafka backend
consumer for the message-trace test."""
import sys
import time

from confluent_kafka import Consumer

bootstrap, group, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 6000,
})
c.subscribe([topic])
got = 0
deadline = time.time() + 30
while got < count and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    got += 1
    c.commit(message=m, asynchronous=False)
c.close()
if got < count:
    print(f"only {got} of {count} messages", file=sys.stderr)
    sys.exit(1)
print("OK")
