"""Parses Prometheus text exposition from stdin with the reference parser
(prometheus_client, PyPI) and prints every sample as JSON:
{"name{label=value,...}": value}. Any parse error fails the run."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = {}
types = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
print(json.dumps({"samples": out, "types": types}))
