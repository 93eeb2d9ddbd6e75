#!/usr/bin/env python3
"""Writes the soak's figures into BENCHMARKS.md (its "Soak" section, replaced on each run).
Environment: SOAK (the soak binary's JSON report), STORM_LOG (the storm test's output),
STORM_STATUS (its exit status)."""

import datetime
import json
import os
import re

SOAK_START, SOAK_END = "<!-- soak: written by scripts/soak -->", "<!-- /soak -->"

soak = json.load(open(os.environ["SOAK"]))
storm_lines = [l.strip() for l in open(os.environ.get("STORM_LOG", "/dev/null")) if l.startswith("storm:")]
storm_status = int(os.environ.get("STORM_STATUS", "0"))


def ms(v):
    return "n/a" if v is None else f"{v:,.0f} ms"


c, sse, mem = soak["clients"], soak["sse"], soak["memory"]
lat = c["latency_ms"]
checks = "\n".join(f"| {'PASS' if k['passed'] else 'FAIL'} | {k['name']} | {k['detail']} |" for k in soak["checks"])
faults = "\n".join(f"- {f}" for f in soak["faults"]) or "- none"
recovery = "\n".join(
    f"| {kind} | {r['faults']} | {r['changes_held']} | {ms(r['p50_ms'])} | {ms(r['p99_ms'])} | {ms(r['max_ms'])} |"
    for kind, r in soak.get("recovery", {}).items()) or "| none | | | | | |"
if storm_lines:
    storm = ("The storm test (`tests/e2e/tests/storm.rs`) after the soak, on the same stack, "
             f"{'passed' if storm_status == 0 else 'FAILED'}:\n\n" + "\n".join(f"    {l}" for l in storm_lines))
else:
    storm = "The connection storm did not run in this soak (`STORM_CLIENTS=0`)."

section = f"""{SOAK_START}
## Soak with faults

`scripts/soak` on {datetime.date.today().isoformat()}: {soak['minutes']:.1f} minutes on a fresh local stack
(the dev profile, the fault-injection consumer behind the fault proxy, MiniStack with persistence).
{soak['changes']:,} changes published by the generator ({soak['changes_per_second']:.1f}/s;
{soak['generator_runs_refused']} generator runs refused while the emulator restarted), {c['sessions']} WebSocket sessions
(stayers and visitors that leave with and without a close frame; {sum(soak['handshake_refusals'].values())} handshakes
refused and retried: {soak['handshake_refusals'] or 'none'}), {sse['readers']} SSE readers over {sse['sessions']} sessions,
{soak['uploads']} photo uploads, {soak['poison']} poison messages, and these faults:

{faults}

| check | what | detail |
|---|---|---|
{checks}

Change → client over the whole soak, faults included ({lat['receipts']:,} receipts): p50 {ms(lat['p50'])},
p95 {ms(lat['p95'])}, p99 {ms(lat['p99'])}, max {ms(lat['max'])}. Deliveries due {c['expected_deliveries']:,}:
{c['delivered']:,} received, {c['superseded']} superseded by a newer version of the same product (a push that failed in
an outage is not repeated once a newer version was applied), {c['lost']} lost, {c['regressions']} versions going backwards.
Recovery: for each fault, from its end until every change it held (published from 2 s before it
began until it ended, and received after it ended) reached the last client that got it:

| fault | faults | changes held | p50 | p99 | max |
|---|---|---|---|---|---|
{recovery}

Memory: the emulator's peak {mem['emulator_peak_mb']:.0f} MB (first quarter {mem['emulator_first_quarter_peak_mb']:.0f} MB,
last quarter {mem['emulator_last_quarter_peak_mb']:.0f} MB); the functions' peak {mem['functions_peak_mb']:.0f} MB in at
most {mem['most_function_processes']} processes.

{storm}
{SOAK_END}"""

text = open("BENCHMARKS.md").read()
if SOAK_START in text:
    text = re.sub(re.escape(SOAK_START) + ".*?" + re.escape(SOAK_END), lambda _: section, text, flags=re.S)
else:
    text = text.replace("## History", section + "\n\n## History", 1)
open("BENCHMARKS.md", "w").write(text)
print(section)
