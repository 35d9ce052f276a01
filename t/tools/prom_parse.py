#!/usr/bin/python3
"""Parses a Prometheus text exposition (stdin) with the reference parser
(Debian's python3-prometheus-client) and prints its families as JSON:
[{"name", "type", "documentation", "samples": [{"name", "labels", "value"}]}].
Exits non-zero when the parser refuses the text (t/44_metrics.t)."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": fam.name,
        "type": fam.type,
        "documentation": fam.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value}
                    for s in fam.samples],
    })
json.dump(families, sys.stdout)
