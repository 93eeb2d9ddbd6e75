#!/usr/bin/env python3
"""Replaces one deployed function's code with a freshly built bootstrap (UpdateFunctionCode),
leaving the rest of the stack alone: the fast path for an edit to one handler.

    update_code.py --stack live-catalogue --bin-dir target/debug rest-api

FUNCTION is the crate (its Metadata.BuildProperties.Binary in template.yaml). Waits until
the function reports LastUpdateStatus=Successful and prints how long the update took.
"""

import argparse
import pathlib
import sys
import time

from deploy import ROOT, client, functions, load_template, log, zip_bootstrap


def physical_name(cfn, stack, template, binary):
    for logical_id, _, name in functions(template):
        if name == binary:
            resource = cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
            return resource["StackResourceDetail"]["PhysicalResourceId"]
    known = ", ".join(sorted(name for _, _, name in functions(template)))
    sys.exit(f"no function {binary!r} in the template; the functions are: {known}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("function", help="the crate, e.g. rest-api")
    p.add_argument("--stack", default="live-catalogue")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument("--bin-dir", required=True)
    args = p.parse_args()

    template = load_template(args.template)
    name = physical_name(client("cloudformation"), args.stack, template, args.function)
    path = pathlib.Path(args.bin_dir) / args.function
    if not path.is_file():
        sys.exit(f"{path} is missing: build it first")
    started = time.monotonic()
    lam = client("lambda")
    lam.update_function_code(FunctionName=name, ZipFile=zip_bootstrap(path))
    while True:
        config = lam.get_function_configuration(FunctionName=name)
        status = config.get("LastUpdateStatus", "Successful")
        if status == "Successful":
            break
        if status == "Failed":
            sys.exit(f"{name}: update failed: {config.get('LastUpdateStatusReason')}")
        time.sleep(0.1)
    log(f"{args.function} ({name}): new code live in {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
