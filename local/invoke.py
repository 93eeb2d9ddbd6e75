#!/usr/bin/env python3
"""Invokes one function of the running local stack with an event fixture and prints its
response and its log lines for that request (what `cargo lambda invoke` shows, without
cargo-lambda):

    invoke.py --stack live-catalogue --token TOKEN rest-api events/rest-api/get-product.json

FUNCTION is the crate (its Metadata.BuildProperties.Binary in template.yaml). A fixture's
REPLACE_WITH_scripts/token becomes TOKEN.
"""

import argparse
import base64
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "infra"))
from deploy import ROOT, client, load_template  # noqa: E402
from update_code import physical_name  # noqa: E402

TOKEN_PLACEHOLDER = "REPLACE_WITH_scripts/token"


def show_payload(payload: bytes):
    text = payload.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        print(text)
        return
    # An HTTP answer (REST API, function URL): its body is JSON text of its own.
    if isinstance(value, dict) and isinstance(value.get("body"), str) and "statusCode" in value:
        body = value["body"]
        if value.get("isBase64Encoded"):
            body = f"<{len(base64.b64decode(body))} bytes>"
        else:
            try:
                body = json.loads(body)
            except json.JSONDecodeError:
                pass
        value = {**value, "body": body}
    print(json.dumps(value, indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("function", help="the crate, e.g. rest-api")
    p.add_argument("event", help="an event file, e.g. events/rest-api/get-product.json")
    p.add_argument("--stack", default="live-catalogue")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument("--token", default="")
    args = p.parse_args()

    event_path = pathlib.Path(args.event)
    if not event_path.is_file():
        sys.exit(f"{event_path}: no such event file (the fixtures are in events/<function>/)")
    event = event_path.read_text().replace(TOKEN_PLACEHOLDER, args.token)
    json.loads(event)  # a clear error for a broken file, before anything is sent
    name = physical_name(client("cloudformation"), args.stack, load_template(args.template), args.function)
    answer = client("lambda").invoke(FunctionName=name, Payload=event.encode(), LogType="Tail")
    status = answer["StatusCode"]
    error = answer.get("FunctionError")
    print(f"== {args.function} ({name}): {status}{' ' + error if error else ''}", file=sys.stderr)
    show_payload(answer["Payload"].read())
    logs = base64.b64decode(answer.get("LogResult", "")).decode("utf-8", errors="replace")
    print("== log lines of this invocation (the last 4 KB)", file=sys.stderr)
    print(logs.rstrip() or "(none)", file=sys.stderr)
    sys.exit(1 if error else 0)


if __name__ == "__main__":
    main()
