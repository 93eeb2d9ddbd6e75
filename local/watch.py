#!/usr/bin/env python3
"""Watches functions/ and, on save, redeploys what changed to the running local stack
(scripts/redeploy: rebuild, then UpdateFunctionCode of just those functions). An edit to
catalog-core redeploys every function. Polls file times twice a second: no extra packages.

    watch.py --redeploy scripts/redeploy
"""

import argparse
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
SHARED = "catalog-core"


def snapshot():
    return {
        path: path.stat().st_mtime_ns
        for path in FUNCTIONS.rglob("*")
        if path.is_file() and path.suffix in {".rs", ".toml"}
    }


def crates_of(paths):
    deployed = sorted(p.name for p in FUNCTIONS.iterdir() if p.is_dir() and p.name != SHARED)
    touched = {path.relative_to(FUNCTIONS).parts[0] for path in paths}
    return deployed if SHARED in touched else sorted(touched & set(deployed))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redeploy", default=str(ROOT / "scripts/redeploy"))
    p.add_argument("--every", type=float, default=0.5)
    args = p.parse_args()
    print("[watch] watching functions/; save a file to redeploy its function", file=sys.stderr, flush=True)
    seen = snapshot()
    while True:
        time.sleep(args.every)
        now = snapshot()
        changed = [path for path, mtime in now.items() if seen.get(path) != mtime]
        changed += [path for path in seen if path not in now]
        if not changed:
            continue
        time.sleep(0.3)  # editors write in bursts
        seen = snapshot()
        crates = crates_of(changed)
        if not crates:
            continue
        started = time.monotonic()
        print(f"[watch] {', '.join(crates)} changed; redeploying", file=sys.stderr, flush=True)
        done = subprocess.run([args.redeploy, *crates])
        verdict = "live" if done.returncode == 0 else "FAILED (the running code is unchanged)"
        print(f"[watch] {verdict} after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
