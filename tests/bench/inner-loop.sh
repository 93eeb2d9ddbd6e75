#!/usr/bin/env bash
# Edit → new code serving, on the running local stack (scripts/dev): changes the text of one
# REST API error message, runs scripts/redeploy rest-api, and polls the HTTP API until the new
# text is served. Puts the file back as it was afterwards. Prints one JSON line per run.
#   tests/bench/inner-loop.sh [runs=3]
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
require_stack
file=functions/rest-api/src/lib.rs
rest="$(local_rest_url)"
original="$(mktemp)"
cp "$file" "$original"
trap 'cp "$original" "$file"; rm -f "$original"' EXIT
build_functions >/dev/null
for run in $(seq 1 "${1:-3}"); do
  mark="edit-$run-$RANDOM"
  started=$(date +%s.%N)
  sed -i "s/limit must be a whole number from 1 to/limit ($mark) must be a whole number from 1 to/" "$file"
  redeploy_started=$(date +%s.%N)
  scripts/redeploy rest-api 2>&1 | grep -v '^\[1m' >&2
  until curl -s "$rest/products?limit=0" | grep -q "$mark"; do sleep 0.05; done
  served=$(date +%s.%N)
  cp "$original" "$file"
  python3 -c 'import json,sys; s,r,e=map(float,sys.argv[1:]); print(json.dumps({"edit_to_serving_s": round(e-s,2), "redeploy_to_serving_s": round(e-r,2)}))' \
    "$started" "$redeploy_started" "$served"
done
