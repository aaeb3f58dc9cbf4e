"""Joins consumer group GROUP on TOPIC with confluent-kafka (librdkafka),
prints READY once partitions are assigned, and stays a member until a line
arrives on stdin: a live member for the admin API's group view."""
import sys
import time

from confluent_kafka import Consumer

bootstrap, group, topic = sys.argv[1], sys.argv[2], sys.argv[3]
assigned = []
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "client.id": "api-probe",
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
})
c.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
deadline = time.time() + 30
while not assigned and time.time() < deadline:
    c.poll(0.2)
if not assigned:
    print("no assignment", file=sys.stderr)
    sys.exit(1)
print("READY", flush=True)
sys.stdin.readline()
c.close()
