#!/usr/bin/env python3
"""Cold start of each function's bootstrap: from process start to its first
invocation handled (the response POSTed to the Runtime API).

Each bootstrap is started as Lambda would start it, against a minimal Lambda
Runtime API served here, with the environment the deployed function has (read
back from the stack), so its first invocation does its real work against the
emulator. Prints one JSON object: per function, the median and spread over runs.
"""

import argparse
import http.server
import json
import os
import pathlib
import statistics
import subprocess
import threading
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = {
    "GeneratorFunctionName": ("generator", ROOT / "events/generator/scheduled.json"),
    "ConsumerFunctionName": ("consumer", ROOT / "events/consumer/mixed-batch.json"),
    "WebSocketFunctionName": ("ws-handler", ROOT / "events/ws-handler/connect-without-token.json"),
    "RestApiFunctionName": ("rest-api", ROOT / "events/rest-api/list-products.json"),
    "ThumbnailerFunctionName": ("thumbnailer", ROOT / "events/thumbnailer/photo-job.json"),
}


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Hands out one event, then records when its response (or error) arrives."""

    event = b"{}"
    handed_out = threading.Event()
    done = threading.Event()
    outcome = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/invocation/next"):
            self.send_error(404)
            return
        if RuntimeApi.handed_out.is_set():
            RuntimeApi.done.wait(30)  # the bench ends the process after the first invocation
            try:
                self.send_error(503)
            except BrokenPipeError:
                pass  # the process is gone already, as intended
            return
        RuntimeApi.handed_out.set()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-0001")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(RuntimeApi.event)))
        self.end_headers()
        self.wfile.write(RuntimeApi.event)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        RuntimeApi.outcome = {"at": time.perf_counter(), "path": self.path, "body": body[:300].decode(errors="replace")}
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        RuntimeApi.done.set()


def one_cold_start(binary, env, event):
    RuntimeApi.event = event
    RuntimeApi.handed_out.clear()
    RuntimeApi.done.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    started = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not RuntimeApi.done.wait(30):
            raise SystemExit(f"{binary.name} handled nothing within 30 s")
        outcome = RuntimeApi.outcome
        if not outcome["path"].endswith("/response"):
            raise SystemExit(f"{binary.name} failed its first invocation: {outcome['path']} {outcome['body']}")
        return (outcome["at"] - started) * 1000
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--outputs", required=True)
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    outputs = json.loads(pathlib.Path(args.outputs).read_text())
    lam = boto3.client("lambda", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    results = {}
    for output_key, (binary_name, fixture) in FIXTURES.items():
        config = lam.get_function_configuration(FunctionName=outputs[output_key])
        env = {
            "PATH": os.environ["PATH"],
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": os.environ["AWS_REGION"],
            "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config['FunctionName']}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            **config.get("Environment", {}).get("Variables", {}),
        }
        binary = pathlib.Path(args.bin_dir) / binary_name
        event = fixture.read_bytes()
        runs = [one_cold_start(binary, env, event) for _ in range(args.runs)]
        results[binary_name] = {
            "bootstrap_bytes": binary.stat().st_size,
            "cold_start_ms_median": round(statistics.median(runs), 1),
            "cold_start_ms_min": round(min(runs), 1),
            "cold_start_ms_max": round(max(runs), 1),
            "runs": len(runs),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
