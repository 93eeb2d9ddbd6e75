#!/usr/bin/env python3
"""Writes each deployed function's environment, exactly as the template set it on the running
local stack, to .local/lambda-env/<function>.env, plus what a process outside the emulator needs
to reach it (AWS_ENDPOINT_URL, credentials, region); and all of them in one file, all.env, for
`cargo lambda watch --env-file` serving every function (no two functions give a name two values).

    lambda_env.py --stack live-catalogue --out .local/lambda-env
"""

import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "infra"))
from deploy import ROOT, client, functions, load_template  # noqa: E402
from update_code import physical_name  # noqa: E402

OUTSIDE = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", default="live-catalogue")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)  # the files hold the local token secret
    template = load_template(args.template)
    cfn, lam = client("cloudformation"), client("lambda")
    merged = {}
    for _, _, binary in functions(template):
        name = physical_name(cfn, args.stack, template, binary)
        env = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        env = {**env, **{k: os.environ[k] for k in OUTSIDE if k in os.environ}}
        path = out / f"{binary}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        os.chmod(path, 0o600)
        for key, value in env.items():
            if merged.setdefault(key, value) != value:
                raise SystemExit(f"{key} differs between functions; all.env cannot hold both")
    path = out / "all.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in sorted(merged.items())))
    os.chmod(path, 0o600)
    print(path)


if __name__ == "__main__":
    main()
