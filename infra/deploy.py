#!/usr/bin/env python3
"""Packages and deploys template.yaml to any CloudFormation endpoint (the local
emulator, LocalStack or AWS), the way `sam package` + `aws cloudformation deploy` do:

1. every AWS::Serverless::Function's built `bootstrap` (named by its
   Metadata.BuildProperties.Binary) is zipped and uploaded to an artifacts bucket,
   and its CodeUri is pointed at that object;
2. the stack is created or updated with the SAM transform and awaited;
3. post-deploy checks and emulator workarounds run (see below);
4. the stack outputs are written as JSON to --outputs.

Nothing else about the template changes: what is in the repo is what is deployed.

Workarounds, each harmless on AWS:
- MiniStack ignores TimeToLiveSpecification, so TTL is enabled with UpdateTimeToLive
  when DescribeTimeToLive says it is off.
- MiniStack silently creates a function whose code object is missing and answers
  "Mock response"; every function is checked for CodeSize > 0.
- MiniStack's CloudFormation does not apply a function's ReservedConcurrentExecutions,
  though its Lambda enforces PutFunctionConcurrency; the template's value is put there.
"""

import argparse
import hashlib
import io
import json
import os
import pathlib
import sys
import time
import zipfile

import boto3
from botocore.exceptions import ClientError
from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def log(msg):
    print(f"[deploy] {msg}", file=sys.stderr, flush=True)


def client(service):
    return boto3.client(service, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def zip_bootstrap(binary_path: pathlib.Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary_path.read_bytes())
    return buf.getvalue()


def ensure_bucket(s3, name):
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        s3.create_bucket(Bucket=name)


def load_template(path):
    return cfn_yaml.load(str(path))


def functions(template):
    """(logical id, resource, binary) of every function; the binary is the crate's bootstrap."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            sys.exit(f"{logical_id} has no Metadata.BuildProperties.Binary; cannot tell which bootstrap it runs")
        yield logical_id, resource, binary


def package(template, bin_dir: pathlib.Path, bucket, s3):
    for logical_id, resource, binary in functions(template):
        path = bin_dir / binary
        if not path.is_file():
            sys.exit(f"{path} is missing: build the functions first (scripts/build)")
        body = zip_bootstrap(path)
        key = f"functions/{binary}/{hashlib.sha256(body).hexdigest()[:16]}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        resource.setdefault("Properties", {})["CodeUri"] = {"Bucket": bucket, "Key": key}
        log(f"{logical_id}: {path.stat().st_size / 1e6:.1f} MB bootstrap -> s3://{bucket}/{key} ({len(body) / 1e6:.1f} MB zip)")
    return template


def wait_for_stack(cfn, stack):
    while True:
        s = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not s["StackStatus"].endswith("_IN_PROGRESS"):
            return s
        time.sleep(1)


def deploy(cfn, stack, body, params):
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    try:
        cfn.describe_stacks(StackName=stack)
        exists = True
    except ClientError:
        exists = False
    started = time.time()
    if exists:
        try:
            cfn.update_stack(StackName=stack, TemplateBody=body, Parameters=parameters, Capabilities=caps)
            log(f"updating stack {stack}")
        except ClientError as e:
            if "No updates are to be performed" in str(e):
                log("stack is up to date")
                return cfn.describe_stacks(StackName=stack)["Stacks"][0]
            raise
    else:
        cfn.create_stack(StackName=stack, TemplateBody=body, Parameters=parameters, Capabilities=caps)
        log(f"creating stack {stack}")
    s = wait_for_stack(cfn, stack)
    if s["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]:
            if "FAILED" in e["ResourceStatus"]:
                log(f"  {e['LogicalResourceId']}: {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}")
        sys.exit(f"stack {stack} ended in {s['StackStatus']}: {s.get('StackStatusReason', '')}")
    log(f"{s['StackStatus']} in {time.time() - started:.1f}s")
    return s


def resolve(value, template, params):
    """The value of a template expression built from Ref (to a parameter) and Fn::If over
    conditions made of Fn::Equals, Fn::Not, Fn::And and Fn::Or: enough for the properties
    post_deploy reads. AWS::NoValue resolves to None."""
    def condition(name):
        return resolve(template.get("Conditions", {})[name], template, params)
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return None
            declared = template.get("Parameters", {}).get(arg, {})
            return params.get(arg, str(declared.get("Default", "")))
        if fn == "Fn::If":
            return resolve(arg[1] if condition(arg[0]) else arg[2], template, params)
        if fn == "Fn::Equals":
            a, b = (str(resolve(x, template, params)) for x in arg)
            return a == b
        if fn == "Fn::Not":
            return not resolve(arg[0], template, params)
        if fn == "Fn::And":
            return all(resolve(x, template, params) for x in arg)
        if fn == "Fn::Or":
            return any(resolve(x, template, params) for x in arg)
        if fn == "Condition":
            return condition(arg)
    return value


def post_deploy(template, stack, cfn, params):
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    ddb, lam = client("dynamodb"), client("lambda")
    for logical_id, resource in template["Resources"].items():
        ttl = resource.get("Properties", {}).get("TimeToLiveSpecification")
        if resource.get("Type") == "AWS::DynamoDB::Table" and ttl and ttl.get("Enabled"):
            table = resources[logical_id]
            status = ddb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
            if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": True})
                log(f"{logical_id}: TTL on {ttl['AttributeName']} was not applied by the stack; enabled it")
        if resource.get("Type") == "AWS::Serverless::Function":
            name = resources[logical_id]
            size = lam.get_function(FunctionName=name)["Configuration"].get("CodeSize", 0)
            if not size:
                sys.exit(f"{logical_id} ({name}) was created without code (CodeSize 0)")
            reserved = resolve(resource["Properties"].get("ReservedConcurrentExecutions"), template, params)
            if reserved is not None and lam.get_function_concurrency(FunctionName=name).get(
                    "ReservedConcurrentExecutions") != int(reserved):
                lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(reserved))
                log(f"{logical_id}: reserved concurrency {reserved} was not applied by the stack; put it")


def upload_website(outputs):
    """The live page into the website bucket, with a config.json that names this stack's
    REST API and SSE stream (in AWS; locally local/server serves web/ itself)."""
    bucket = outputs.get("WebsiteBucketName")
    if not bucket:
        return
    s3 = client("s3")
    types = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for path in sorted((ROOT / "web").iterdir()):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=path.name, Body=path.read_bytes(),
                          ContentType=types.get(path.suffix, "application/octet-stream"))
    # In AWS the metrics are the CloudWatch dashboard; locally the local server's metrics page.
    config = {"restUrl": outputs.get("RestApiUrl", ""), "sseUrl": outputs.get("SseUrl", ""),
              "metricsUrl": outputs.get("DashboardUrl", "")}
    s3.put_object(Bucket=bucket, Key="config.json", Body=json.dumps(config).encode(), ContentType="application/json")
    log(f"live page uploaded to s3://{bucket} ({outputs.get('WebsiteUrl', '')})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", default="live-catalogue")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument("--bin-dir", required=True, help="folder holding the built function binaries")
    p.add_argument("--artifacts-bucket", help="default: <stack>-artifacts-<account>")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--outputs", required=True, help="write the stack outputs here as JSON")
    args = p.parse_args()

    params = dict(kv.split("=", 1) for kv in args.param)
    template = cfn_yaml.load(args.template)
    s3, cfn = client("s3"), client("cloudformation")
    account = client("sts").get_caller_identity()["Account"]
    bucket = args.artifacts_bucket or f"{args.stack}-artifacts-{account}"
    ensure_bucket(s3, bucket)
    package(template, pathlib.Path(args.bin_dir), bucket, s3)
    stack = deploy(cfn, args.stack, json.dumps(template), params)
    post_deploy(template, args.stack, cfn, params)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    upload_website(outputs)
    pathlib.Path(args.outputs).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.outputs).write_text(json.dumps(outputs, indent=2) + "\n")
    log(f"outputs written to {args.outputs}")


if __name__ == "__main__":
    main()
