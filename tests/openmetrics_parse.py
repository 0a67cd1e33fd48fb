"""Fetches an OpenMetrics exposition and parses it with prometheus_client's
OpenMetrics parser (which rejects anything the format does not allow:
a missing `# EOF`, bad escaping, non-cumulative buckets, a count that is
not the +Inf bucket, exemplars where none may be). Prints JSON:
{"content_type": ..., "families": [{"name", "type", "unit", "samples":
[{"name", "labels", "value", "exemplar": {"labels", "value", "timestamp"}
| null}]}]}.

Usage: openmetrics_parse.py URL
"""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

with urllib.request.urlopen(sys.argv[1]) as r:
    content_type = r.headers.get("Content-Type")
    text = r.read().decode("utf-8")

families = []
for f in text_string_to_metric_families(text):
    samples = []
    for s in f.samples:
        e = s.exemplar
        samples.append({
            "name": s.name,
            "labels": dict(s.labels),
            "value": s.value,
            "exemplar": None if e is None else {
                "labels": dict(e.labels), "value": e.value,
                "timestamp": None if e.timestamp is None else float(e.timestamp)},
        })
    families.append({"name": f.name, "type": f.type, "unit": f.unit, "samples": samples})

print(json.dumps({"content_type": content_type, "families": families}))
