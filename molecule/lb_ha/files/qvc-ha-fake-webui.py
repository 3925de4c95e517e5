#!/usr/bin/env python3
"""TEST DOUBLE of a QVC WebUI instance (molecule lb_ha): GET /healthz -> 200, POST
/v1/chat/completions -> a tiny JSON reply naming the LB address the request came through."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path == "/healthz":
            self._reply(200, "ok\n", "text/plain")
        else:
            self._reply(200, json.dumps({"fake": True, "path": self.path}))

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path != "/v1/chat/completions":
            self._reply(404, json.dumps({"error": "not found"}))
            return
        self._reply(200, json.dumps({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": "fake-qwen3-vl",
            "via": self.client_address[0],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
        }))

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
