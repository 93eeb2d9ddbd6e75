# Shared by the scripts in this folder: paths, the local emulator's lifecycle, build and deploy.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE="$ROOT/.local"
mkdir -p "$STATE"

EMULATOR_PORT="${EMULATOR_PORT:-4566}"
# EMULATOR=ministack (default) starts the embedded emulator; EMULATOR=external uses whatever
# already answers at AWS_ENDPOINT_URL (for example LocalStack from localstack/docker-compose.yml).
EMULATOR="${EMULATOR:-ministack}"
# The most Lambda invocations the local emulator runs at once (each is a process); see emulator_launch.
export LAMBDA_ACCOUNT_CONCURRENCY="${LAMBDA_ACCOUNT_CONCURRENCY:-64}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:$EMULATOR_PORT}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
STACK="${STACK:-live-catalogue}"
OUTPUTS="$STATE/outputs.json"
BIN_DIR="$ROOT/target/debug"

# Everything started in the background registers how to stop it; it all stops when the script exits.
CLEANUP=()
on_exit() {
  if [[ ${#CLEANUP[@]} -eq 0 ]]; then
    trap run_cleanup EXIT
    trap 'exit 130' INT TERM
  fi
  CLEANUP+=("$1")
}
run_cleanup() {
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
  CLEANUP=()
}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_setup() {
  [[ -x "$VENV/bin/ministack" && -d "$ROOT/node_modules/ws" ]] || die "run scripts/setup first"
}

# For the commands that act on the running local stack (scripts/dev started it).
require_stack() {
  emulator_healthy && [[ -s "$OUTPUTS" ]] || die "no local stack is running: start it with scripts/dev (in another terminal)"
}

emulator_healthy() {
  curl -fsS -o /dev/null --max-time 2 "$AWS_ENDPOINT_URL/_localstack/health" 2>/dev/null
}

# Starts MiniStack in its own process group (it spawns one process per warm Lambda),
# waits until it answers, and stops the whole group when the calling script exits.
# EMULATOR_PERSIST=1 keeps its state in .local/emulator-state across restarts (fresh at start).
emulator_start() {
  if [[ "$EMULATOR" == external ]]; then
    emulator_healthy || die "EMULATOR=external but nothing healthy answers at $AWS_ENDPOINT_URL"
    say "using the emulator at $AWS_ENDPOINT_URL"
    return
  fi
  if emulator_healthy; then
    die "something already answers at $AWS_ENDPOINT_URL; stop it, or set EMULATOR_PORT, or EMULATOR=external to use it"
  fi
  rm -rf "$STATE/emulator-state"
  emulator_launch
  on_exit emulator_stop
}

MINISTACK_LAUNCHER='import http.server
http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = True
from ministack.app import main
main()'

emulator_launch() {
  local log="$STATE/emulator.log"
  say "starting MiniStack on 127.0.0.1:$EMULATOR_PORT (log: ${log#"$ROOT"/})"
  local persist=()
  if [[ "${EMULATOR_PERSIST:-0}" == 1 ]]; then
    mkdir -p "$STATE/emulator-state/s3"
    persist=(PERSIST_STATE=1 "STATE_DIR=$STATE/emulator-state" S3_PERSIST=1 "S3_DATA_DIR=$STATE/emulator-state/s3")
  fi
  # AWS_ENDPOINT_URL on the server is what lets the Lambdas it spawns call back into it.
  # LAMBDA_ACCOUNT_CONCURRENCY bounds the processes a burst can start (MiniStack's default is
  # sized to the machine's memory: 585 here); past it an invocation is throttled at once, as
  # AWS does, instead of every caller waiting on hundreds of cold starts.
  # The launcher turns Nagle off for http.server before MiniStack starts: its Lambda Runtime
  # API writes a reply's headers and body in two sends, and without TCP_NODELAY the body waits
  # for the bootstrap's delayed ACK, about 40 ms on every invocation (CPython issue 108736).
  env "${persist[@]}" BIND_HOST=127.0.0.1 GATEWAY_PORT="$EMULATOR_PORT" LOG_LEVEL="${EMULATOR_LOG_LEVEL:-INFO}" \
    LAMBDA_ACCOUNT_CONCURRENCY="$LAMBDA_ACCOUNT_CONCURRENCY" \
    setsid "$VENV/bin/python" -c "$MINISTACK_LAUNCHER" >>"$log" 2>&1 < /dev/null &
  EMULATOR_PID=$!
  echo "$EMULATOR_PID" > "$STATE/emulator.pid"
  for _ in $(seq 1 60); do
    emulator_healthy && { say "MiniStack is up (pid $EMULATOR_PID)"; return; }
    kill -0 "$EMULATOR_PID" 2>/dev/null || { tail -20 "$log" >&2; die "MiniStack exited while starting"; }
    sleep 0.5
  done
  die "MiniStack did not answer within 30 s (see $log)"
}

# Stops the emulator this script started, or the one that replaced it (scripts/emulator restart
# rewrites the pid file). SIGTERM first: that is when MiniStack saves persisted state.
emulator_stop() {
  [[ -f "$STATE/emulator.pid" ]] && EMULATOR_PID="$(cat "$STATE/emulator.pid")"
  [[ -n "${EMULATOR_PID:-}" ]] || return 0
  if kill -0 "$EMULATOR_PID" 2>/dev/null; then
    say "stopping MiniStack"
    kill -TERM -- "-$EMULATOR_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$EMULATOR_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$EMULATOR_PID" 2>/dev/null || true
  fi
  rm -f "$STATE/emulator.pid"
  EMULATOR_PID=""
}

# Host binaries in the dev profile: the emulator runs bootstraps as local processes and
# ignores the declared architecture. Every cargo command in these scripts selects the whole
# workspace with its test targets, so dependencies are resolved with the same features each
# time and compile once: selecting fewer targets (`--bins`, `-p crate`) resolves other
# features and rebuilds the SDK, which at opt-level 2 costs minutes.
CARGO_SELECTION=(--workspace --all-targets)
build_functions() {
  say "building the functions (cargo build ${CARGO_SELECTION[*]} $*)"
  (cd "$ROOT" && cargo build "${CARGO_SELECTION[@]}" --quiet "$@")
}

# The local stack's token-signing key: generated once into .local/auth-secret (never committed).
auth_secret() {
  local file="$STATE/auth-secret"
  if [[ ! -s "$file" ]]; then
    (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))' > "$file")
  fi
  cat "$file"
}

# A token for the local stack, valid for `$1` seconds (default 12 h).
local_token() {
  AUTH_TOKEN_SECRET="$(auth_secret)" "$BIN_DIR/catalog-token" --subject "${USER:-dev}" --ttl "${1:-43200}"
}

# Deploys template.yaml; extra arguments are template parameters as KEY=VALUE.
deploy_stack() {
  # The address Lambdas use to reach the management API; differs from ours when they run in containers (LocalStack).
  # WebSocketConcurrency bounds the WebSocket function's processes on the emulator: past it a
  # $connect is refused at once (the handshake gets a status) instead of hundreds starting.
  local params=(--param "ManagementEndpointBase=${MANAGEMENT_ENDPOINT_BASE:-$AWS_ENDPOINT_URL}"
    --param "AuthTokenSecret=$(auth_secret)" --param "WebSocketConcurrency=${WS_CONCURRENCY:-16}")
  for kv in "$@"; do params+=(--param "$kv"); done
  say "deploying template.yaml as stack $STACK"
  "$VENV/bin/python" "$ROOT/infra/deploy.py" --stack "$STACK" --bin-dir "$BIN_DIR" --outputs "$OUTPUTS" "${params[@]}"
}

output() {
  "$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$OUTPUTS" "$1"
}

# The local form of the WebSocket URL (the LocalStack-compatible path; both emulators serve it).
local_ws_url() {
  echo "${AWS_ENDPOINT_URL/http/ws}/_aws/execute-api/$(output WebSocketApiId)/$(output WebSocketStageName)"
}

# The fault suite's proxy in front of the management API (tests/tools/fault_proxy.py).
FAULT_PROXY_PORT="${FAULT_PROXY_PORT:-4599}"
fault_proxy_start() {
  "$VENV/bin/python" "$ROOT/tests/tools/fault_proxy.py" --port "$FAULT_PROXY_PORT" --upstream "$AWS_ENDPOINT_URL" \
    >"$STATE/fault-proxy.log" 2>&1 &
  local pid=$!
  on_exit "kill $pid 2>/dev/null"
  for _ in $(seq 1 40); do
    curl -fsS -o /dev/null "http://127.0.0.1:$FAULT_PROXY_PORT/__fault" 2>/dev/null && return
    sleep 0.25
  done
  die "the fault proxy did not start (see $STATE/fault-proxy.log)"
}

# The REST API's local base URL (the LocalStack-compatible path; both emulators serve it).
local_rest_url() {
  echo "$AWS_ENDPOINT_URL/_aws/execute-api/$(output RestApiId)/$(output RestApiStageName)"
}

# The SSE stream and the live page (local/server), on 127.0.0.1:$LOCAL_SERVER_PORT.
LOCAL_SERVER_PORT="${LOCAL_SERVER_PORT:-4600}"
local_server_start() {
  CHANGE_LOG_TABLE="$(output ChangeLogTableName)" PRODUCTS_TABLE="$(output ProductsTableName)" \
    PHOTOS_BUCKET="$(output PhotosBucketName)" PHOTO_JOBS_QUEUE_URL="$(output PhotoJobsQueueUrl)" \
    AUTH_TOKEN_SECRET="$(auth_secret)" PORT="$LOCAL_SERVER_PORT" \
    CONSUMER_FUNCTION_NAME="$(output ConsumerFunctionName)" REST_API_FUNCTION_NAME="$(output RestApiFunctionName)" \
    CHANGES_QUEUE_URL="$(output ChangesQueueUrl)" CHANGES_DEAD_LETTER_QUEUE_URL="$(output ChangesDeadLetterQueueUrl)" \
    PHOTO_JOBS_DEAD_LETTER_QUEUE_URL="$(output PhotoJobsDeadLetterQueueUrl)" \
    SSE_SESSION_SECONDS="${SSE_SESSION_SECONDS:-300}" RUST_LOG=warn "$BIN_DIR/local-server" >"$STATE/local-server.log" 2>&1 &
  local pid=$!
  on_exit "kill $pid 2>/dev/null"
  for _ in $(seq 1 40); do
    curl -fsS -o /dev/null "http://127.0.0.1:$LOCAL_SERVER_PORT/config.json" 2>/dev/null && return
    kill -0 "$pid" 2>/dev/null || { cat "$STATE/local-server.log" >&2; die "the local server exited"; }
    sleep 0.25
  done
  die "the local server did not start (see $STATE/local-server.log)"
}

# What the end-to-end tests and benchmarks read to find the deployed stack.
export_stack_env() {
  export STACK_OUTPUTS="$OUTPUTS" WS_URL="$(local_ws_url)" REST_URL="$(local_rest_url)" \
    AUTH_TOKEN_SECRET="$(auth_secret)" SSE_URL="http://127.0.0.1:$LOCAL_SERVER_PORT/events"
}

# The stack the fault suite and the soak run against: the consumer carries the fault hook
# (consumer/fault-injection), the management API is reached through the fault proxy, the
# emulator persists its state so it can be restarted; seeded, with the local server up and
# the tests' environment exported. Arguments are template parameters as KEY=VALUE.
fault_stack_up() {
  build_functions --features consumer/fault-injection
  export EMULATOR_PERSIST=1
  emulator_start
  fault_proxy_start
  MANAGEMENT_ENDPOINT_BASE="http://127.0.0.1:$FAULT_PROXY_PORT" deploy_stack "$@"
  seed_catalogue
  local_server_start
  export_stack_env
  export FAULT_PROXY="127.0.0.1:$FAULT_PROXY_PORT" EMULATOR_RESTART="$ROOT/scripts/emulator restart"
}

seed_catalogue() {
  say "seeding the catalogue"
  PRODUCTS_TABLE="$(output ProductsTableName)" PHOTOS_BUCKET="$(output PhotosBucketName)" \
    PHOTO_JOBS_QUEUE_URL="$(output PhotoJobsQueueUrl)" \
    RUST_LOG=warn "$BIN_DIR/catalog-seed"
}
