"""The shell's own Prometheus metrics (``qvc_webui_*``, ``qvc_draining``), beside vLLM's ``vllm:*``.

HTTP-level series the monitoring role's rules and the dashboard read (tests/unit/
test_monitoring_dashboard.py parses this file for the names): requests by route / method / status,
end-to-end duration, time to the first streamed byte, in-flight, queue depth (vLLM's waiting
requests), readiness, draining, build info.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 5, 10, 30)
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz", "/livez", "/metrics")


def route_of(path: str, ui: bool) -> str:
    """A bounded label set: known routes, ``/v1/other``, ``ui`` (the page) or ``other``."""
    if path in ROUTES:
        return path
    if path.startswith("/v1/"):
        return "/v1/other"
    return "ui" if ui and path in ("/", "/index.html") else "other"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("qvc_webui_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("qvc_webui_request_duration_seconds",
                                 "End-to-end HTTP request latency (until the last byte)", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("qvc_webui_time_to_first_token_seconds",
                              "Arrival to the first body byte of a streamed 200 chat completion", ["source"],
                              buckets=TTFT_BUCKETS, registry=r)
        self.in_flight = Gauge("qvc_webui_requests_in_flight",
                               "HTTP requests to /v1 being answered (API + UI; covers vLLM's running + "
                               "waiting plus preprocessing and streaming); a drain waits for 0", registry=r)
        self.queue_depth = Gauge("qvc_webui_queue_depth", "Requests waiting in the engine (vllm:num_requests_waiting)",
                                 registry=r)
        self.ready = Gauge("qvc_webui_ready", "1 when /healthz answers 200", registry=r)
        self.draining = Gauge("qvc_draining", "1 while the instance drains (control file 'drain' present)",
                              registry=r)
        self.model_load = Gauge("qvc_webui_model_load_seconds", "Seconds from start to ready (load + warm-up)",
                                registry=r)
        self.info = Info("qvc_webui", "Build and model information", registry=r)
