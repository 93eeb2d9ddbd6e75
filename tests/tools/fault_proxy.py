#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the fault suite (tests only).

scripts/test deploys the stack with ManagementEndpointBase pointing here, so the
functions reach the API Gateway management API (PostToConnection) through this
proxy, which forwards everything to the emulator unchanged until told otherwise:

    POST /__fault  {"status": 500}   answer every @connections call with 500
    POST /__fault  {"status": null}  forward again
    GET  /__fault                    {"status": ..., "forwarded": n, "injected": n}

Production code has no idea this exists; it only sees a management endpoint that
fails for a while, as a real one can.
"""

import argparse
import http.client
import http.server
import json
import threading
import urllib.parse

STATE = {"status": None, "forwarded": 0, "injected": 0}
LOCK = threading.Lock()


def make_handler(upstream):
    target = urllib.parse.urlparse(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

        def control(self):
            if self.command == "POST":
                with LOCK:
                    STATE["status"] = json.loads(self.body() or b"{}").get("status")
            with LOCK:
                self.reply(200, json.dumps(STATE).encode())

        def forward(self):
            body = self.body()
            with LOCK:
                status = STATE["status"]
                if status and "/@connections" in self.path:
                    STATE["injected"] += 1
                else:
                    STATE["forwarded"] += 1
                    status = None
            if status:
                message = json.dumps({"message": "injected fault"}).encode()
                self.reply(int(status), message)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                conn.close()

        def handle_any(self):
            if self.path.startswith("/__fault"):
                self.control()
            else:
                self.forward()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=4599)
    p.add_argument("--upstream", required=True)
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream))
    print(f"fault proxy on 127.0.0.1:{args.port} -> {args.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
