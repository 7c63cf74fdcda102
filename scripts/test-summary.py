#!/usr/bin/env python3
"""Print one closing line 'N passed, M failed' for a meson test run.

Counts individual test cases: each cmocka program reports its cases as TAP
lines ('ok N - name' / 'not ok N - name'); a program that printed no TAP
(crashed, timed out) counts as one failed case. Exit status is non-zero if
anything failed.
"""
import json
import re
import sys

log = sys.argv[1]
passed = failed = skipped = 0
bad = []
with open(log) as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout") or ""
        oks = nots = skips = 0
        for l in out.splitlines():
            if re.match(r"^ok \d+", l):
                if "# SKIP" in l:
                    skips += 1
                else:
                    oks += 1
            elif re.match(r"^not ok \d+", l):
                nots += 1
        res = t.get("result")
        if res not in ("OK", "EXPECTEDFAIL", "SKIP") and nots == 0:
            nots = 1  # the program itself failed (crash, sanitizer, timeout)
        if res == "SKIP" and oks + nots == 0:
            skips += 1
        passed += oks
        failed += nots
        skipped += skips
        if nots:
            bad.append(t.get("name"))
for name in bad:
    print("FAILED: %s" % name)
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(1 if failed or passed == 0 else 0)
