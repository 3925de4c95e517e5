"""Prometheus metrics (``qvc_webui_*``) on a per-app registry."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 5, 10, 30)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("qvc_webui_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("qvc_webui_request_duration_seconds",
                                 "End-to-end HTTP request latency (until the last byte)", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("qvc_webui_time_to_first_token_seconds",
                              "Time from request arrival to the first generated token", ["source"],
                              buckets=TTFT_BUCKETS, registry=r)
        self.overhead = Histogram("qvc_webui_service_overhead_seconds",
                                  "Time a generation request spent outside the engine", ["source"],
                                  buckets=OVERHEAD_BUCKETS, registry=r)
        self.prompt_tokens = Counter("qvc_webui_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("qvc_webui_generated_tokens", "Tokens generated", registry=r)
        self.in_flight = Gauge("qvc_webui_requests_in_flight",
                               "Generation requests admitted and not yet finished (API + UI); "
                               "a rolling update drains an instance by this gauge", registry=r)
        self.queue_depth = Gauge("qvc_webui_queue_depth", "Requests waiting for a generation slot", registry=r)
        self.rejected = Counter("qvc_webui_rejected_requests", "Generation requests refused", ["reason"],
                                registry=r)
        self.generations = Counter("qvc_webui_generations", "Finished generations by finish reason",
                                   ["finish_reason"], registry=r)
        self.model_load = Gauge("qvc_webui_model_load_seconds", "Seconds the model took to load", registry=r)
        self.ready = Gauge("qvc_webui_ready", "1 when /healthz answers 200", registry=r)
        self.draining = Gauge("qvc_draining", "1 while the instance drains (control file 'drain' present)",
                              registry=r)
        self.log_dropped = Counter("qvc_webui_log_lines_dropped", "Log lines dropped (sink queue full)",
                                   ["sink"], registry=r)
        self.info = Info("qvc_webui", "Build and model information", registry=r)
