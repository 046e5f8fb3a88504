#!/usr/bin/env python3
"""Parses a Prometheus text exposition (stdin) with the reference client library's parser and
checks what a scraper relies on: every family has HELP and a TYPE, every sample belongs to a
declared family, names are unique, and values are numbers. Prints one JSON line:
{"families": N, "samples": M, "types": {name: type}}; exits non-zero with the reason otherwise."""

import json
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
declared = {}
helps = set()
for line in text.splitlines():
    m = re.match(r"# (HELP|TYPE) (\S+)(?: (.*))?$", line)
    if m and m.group(1) == "TYPE":
        if m.group(2) in declared:
            sys.exit(f"TYPE declared twice for {m.group(2)}")
        declared[m.group(2)] = m.group(3)
    elif m:
        helps.add(m.group(2))
missing_help = sorted(set(declared) - helps)
if missing_help:
    sys.exit(f"families without HELP: {missing_help}")
families = list(text_string_to_metric_families(text))
samples = 0
for family in families:
    if family.name not in declared and family.name + "_total" not in declared:
        sys.exit(f"samples of an undeclared family: {family.name}")
    for s in family.samples:
        samples += 1
        if not isinstance(s.value, (int, float)) or math.isnan(s.value):
            sys.exit(f"{s.name}: value {s.value!r}")
print(json.dumps({"families": len(families), "samples": samples, "types": declared}))
