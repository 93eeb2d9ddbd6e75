#!/usr/bin/env python3
"""Runs the generator every few seconds on the local emulator and prints each change.

Why this exists: EventBridge's finest schedule is rate(1 minute), on AWS and on
MiniStack alike (MiniStack's PutRule only accepts minute/hour/day rates, and its
scheduler ignores anything else: ministack/services/eventbridge.py, _RATE_RE and
_parse_rate_seconds; a stack deployed with rate(5 seconds) never fired). The
template's schedule still runs the generator every minute; this ticker adds the
faster local cadence by invoking the same function with a scheduled-event payload.
"""

import argparse
import datetime
import json
import os
import sys
import time
import uuid

import boto3


def scheduled_event(rule_arn):
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "resources": [rule_arn],
        "detail": {},
    }


def money(cents):
    return f"{cents / 100:.2f}"


def describe(change):
    before, after = change["previous"], change["current"]
    parts = []
    if before["priceCents"] != after["priceCents"]:
        parts.append(f"price {money(before['priceCents'])} -> {money(after['priceCents'])}")
    if before["stock"] != after["stock"]:
        parts.append(f"stock {before['stock']} -> {after['stock']}")
    return f"{change['productId']} v{change['version']}: {', '.join(parts)}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--function", required=True, help="generator function name")
    p.add_argument("--every", type=float, default=5.0, help="seconds between runs")
    args = p.parse_args()
    lam = boto3.client("lambda", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    rule_arn = "arn:aws:events:us-east-1:000000000000:rule/local-ticker"
    print(f"generator runs every {args.every:g} s; Ctrl-C stops the stack", flush=True)
    while True:
        started = time.monotonic()
        try:
            out = lam.invoke(FunctionName=args.function, Payload=json.dumps(scheduled_event(rule_arn)).encode())
            payload = out["Payload"].read().decode()
            if out.get("FunctionError"):
                print(f"generator failed: {payload}", file=sys.stderr, flush=True)
            else:
                for change in json.loads(payload).get("published", []):
                    stamp = datetime.datetime.now().strftime("%H:%M:%S")
                    print(f"{stamp}  {describe(change)}", flush=True)
        except Exception as e:  # the stack may be restarting; keep ticking
            print(f"invoke failed: {e}", file=sys.stderr, flush=True)
        time.sleep(max(0.0, args.every - (time.monotonic() - started)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
