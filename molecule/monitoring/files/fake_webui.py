#!/usr/bin/env python3
"""TEST DOUBLE of a qvc WebUI instance for molecule/monitoring: not the real service.

Serves the Prometheus text format at /metrics with a few qvc_webui_* series (the names
webui/src/qvc_webui/metrics.py defines) and counts every other request it receives in
qvc_webui_requests_total{route,method,status}, so the verifier can make traffic and then
find it in Prometheus.
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS: dict[tuple[str, str, str], int] = {}
BUCKETS = (0.1, 0.5, 1.0, 5.0)


def render() -> bytes:
    lines = [
        "# HELP qvc_webui_requests_total HTTP requests by route, method and status",
        "# TYPE qvc_webui_requests_total counter",
    ]
    with LOCK:
        for (route, method, status), n in sorted(REQUESTS.items()):
            lines.append(f'qvc_webui_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}')
        total = sum(n for (route, _, _), n in REQUESTS.items() if route != "/metrics")
    lines += [
        "# HELP qvc_webui_request_duration_seconds End-to-end HTTP request latency",
        "# TYPE qvc_webui_request_duration_seconds histogram",
    ]
    for le in BUCKETS:  # every fake request "took" 0.3 s
        lines.append(f'qvc_webui_request_duration_seconds_bucket{{route="/v1/chat/completions",le="{le}"}} '
                     f'{total if le >= 0.3 else 0}')
    lines += [
        f'qvc_webui_request_duration_seconds_bucket{{route="/v1/chat/completions",le="+Inf"}} {total}',
        f'qvc_webui_request_duration_seconds_sum{{route="/v1/chat/completions"}} {0.3 * total}',
        f'qvc_webui_request_duration_seconds_count{{route="/v1/chat/completions"}} {total}',
        "# HELP qvc_webui_requests_in_flight Generation requests admitted and not yet finished",
        "# TYPE qvc_webui_requests_in_flight gauge",
        "qvc_webui_requests_in_flight 0",
        "# HELP qvc_webui_queue_depth Requests waiting for a generation slot",
        "# TYPE qvc_webui_queue_depth gauge",
        "qvc_webui_queue_depth 0",
    ]
    return ("\n".join(lines) + "\n").encode()


class Handler(BaseHTTPRequestHandler):
    def _count(self, route: str, status: int) -> None:
        with LOCK:
            key = (route, self.command, str(status))
            REQUESTS[key] = REQUESTS.get(key, 0) + 1

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path == "/metrics":
            body, ctype = render(), "text/plain; version=0.0.4"
            self._count("/metrics", 200)
        else:
            body, ctype = b'{"fake": true}\n', "application/json"
            self._count("/v1/chat/completions", 200)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    ThreadingHTTPServer((host, port), Handler).serve_forever()
