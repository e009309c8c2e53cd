#!/usr/bin/env python3
"""Reads Prometheus text exposition (a file, or stdin) and prints its samples as JSON:
[[name, {label: value}, number], ...]. Parsing is done by prometheus_client,
the Prometheus project's own Python client, so a malformed exposition fails
here, not in a hand-written reader."""
import json, sys
from prometheus_client.parser import text_string_to_metric_families

samples = []
types = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
json.dump({"samples": samples, "types": types}, sys.stdout)
