"""A throw-away local cluster for benchmarks and the load-test check: sim-engine WebUI
instances (``webui/.venv/bin/python -m qvc_webui``) behind the controller's nginx run in the
foreground from a temp prefix, all on 127.0.0.1 and stopped (by pid) on exit.

The nginx config mirrors the API upstream of roles/nginx_lb/templates/qvc-lb.conf.j2
(zone, keepalive, proxy_buffering off, HTTP/1.1 with an empty Connection header,
next-upstream on error/timeout/502/503 non_idempotent); only the balancing policy differs
between ``least_conn`` (the role's API upstream), ``round_robin`` and ``hash`` (the role's UI
upstream: ``hash $qvc_affinity consistent`` on the LB's affinity cookie).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
WEBUI_PYTHON = Path(os.environ.get("QVC_WEBUI_PYTHON", ROOT / "webui/.venv/bin/python"))
NGINX = os.environ.get("QVC_NGINX", shutil.which("nginx") or "/usr/sbin/nginx")
POLICIES = ("least_conn", "round_robin", "hash")

# Calibrated sim profile: Qwen3-VL-4B-Instruct (bf16, vLLM) on one 24 GB L4 / RTX 4090-class
# GPU. Decode is memory-bound: ~8.5 GB of weights per step over ~300 GB/s (L4) gives ~30 ms per
# output token per sequence while the batch stays moderate (<= 8 running sequences here); a
# request's prefill with an image of ~1 Mpx (~1000 visual tokens) lands at ~250 ms TTFT
# (150 ms text-only .. 400 ms several images). The sim engine has one TTFT per instance, so
# the mid value is used; heterogeneity comes from the output lengths (stats.DEFAULT_LENGTH_MIX).
GPU_PROFILE = {"SIM_TTFT_MS": "250", "SIM_TPOT_MS": "30", "SIM_BATCH_CAPACITY": "8"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except Exception:
        return 0


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float, poll: float, what: str,
                  exit_detail: Callable[[], str]) -> None:
    """Poll url + /healthz until 200; fail early (with exit_detail()) if the process exits."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _get(url + "/healthz") == 200:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{exit_detail()}")
        time.sleep(poll)
    raise RuntimeError(f"{what} not ready after {timeout}s")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class SimInstance:
    """One ``python -m qvc_webui`` process with the sim engine on 127.0.0.1:<port>."""

    def __init__(self, index: int, workdir: Path, profile: dict[str, str], port: int | None = None) -> None:
        self.index = index
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir = workdir / f"inst{index}"
        log_dir.mkdir(parents=True, exist_ok=True)
        pypath = os.pathsep.join(filter(None, [str(ROOT / "webui/src"), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=pypath, QVC_WEBUI_CONFIG="/nonexistent", QVC_WEBUI_ENGINE="sim",
                   QVC_WEBUI_HOST="127.0.0.1", QVC_WEBUI_PORT=str(self.port), QVC_WEBUI_UI_ENABLED="false",
                   QVC_WEBUI_LOG_DIR=str(log_dir), QVC_WEBUI_LOG_LEVEL="WARNING",
                   QVC_WEBUI_INSTANCE_ID=f"bench-{index}", QVC_WEBUI_WARMUP="false",
                   **{f"QVC_WEBUI_{k}": str(v) for k, v in profile.items()})
        self.proc = subprocess.Popen([str(WEBUI_PYTHON), "-m", "qvc_webui"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(log_dir / "stderr.log", "wb"))

    def wait_ready(self, timeout: float = 120.0) -> None:
        _wait_healthy(self.url, self.proc, timeout, 0.2, f"sim instance {self.index}",
                      lambda: (self.log_dir / "stderr.log").read_text(errors="replace")[-2000:])

    def stop(self) -> None:
        _stop(self.proc)


def nginx_conf(prefix: Path, port: int, backends: list[str], policy: str = "least_conn",
               workers: str = "auto") -> str:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}")
    balance = {"least_conn": "least_conn;", "round_robin": "# round robin (nginx default)",
               "hash": "hash $qvc_affinity consistent;"}[policy]
    servers = "\n".join(f"        server {b} max_fails=2 fail_timeout=10s;" for b in backends)
    return f"""# generated by bench/cluster.py (mirrors the API upstream of qvc-lb.conf.j2)
worker_processes {workers};
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    map $cookie_qvc_affinity $qvc_affinity {{
        "~^[0-9a-f]{{32}}$" $cookie_qvc_affinity;
        default           $request_id;
    }}
    upstream qvc_webui_api {{
        zone qvc_webui_api 256k;
        {balance}
{servers}
        keepalive 32;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        client_body_buffer_size 1m;
        location = /healthz {{ default_type text/plain; return 200 "ok\\n"; }}
        location /v1/ {{
            proxy_pass http://qvc_webui_api;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
            proxy_connect_timeout 3s;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
            proxy_buffering off;
            proxy_cache off;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 30s;
            add_header X-QVC-Upstream $upstream_addr always;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground (``daemon off``) from a temp prefix, listening on 127.0.0.1."""

    def __init__(self, workdir: Path, backends: list[str], policy: str = "least_conn",
                 port: int | None = None, workers: str = "auto") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = workdir / f"nginx-{policy}-{self.port}"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.prefix / "tmp" / sub, 0o777)  # workers may run as nobody
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_conf(self.prefix, self.port, backends, policy, workers))
        self.proc = subprocess.Popen([NGINX, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 15.0) -> None:
        _wait_healthy(self.url, self.proc, timeout, 0.1, "nginx",
                      lambda: self.proc.stderr.read().decode(errors="replace"))

    def stop(self) -> None:
        _stop(self.proc, signal.SIGQUIT)  # graceful: workers finish, then the master exits


class LocalCluster(ExitStack):
    """``with LocalCluster(3, profile) as c: c.lb(policy).url ...`` - everything is stopped on exit."""

    def __init__(self, n: int, profile: dict[str, str] | None = None, keep_dir: bool = False) -> None:
        super().__init__()
        self.n = n
        self.profile = dict(GPU_PROFILE if profile is None else profile)
        self.keep_dir = keep_dir

    def __enter__(self) -> "LocalCluster":
        super().__enter__()
        self.workdir = Path(tempfile.mkdtemp(prefix="qvc-bench-"))
        os.chmod(self.workdir, 0o755)
        if not self.keep_dir:
            self.callback(shutil.rmtree, self.workdir, True)
        self.instances = []
        try:  # __exit__ does not run when __enter__ fails: stop what was started here
            for i in range(self.n):
                self.instances.append(SimInstance(i, self.workdir, self.profile))
                self.callback(self.instances[-1].stop)
            for inst in self.instances:
                inst.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def backends(self) -> list[str]:
        return [f"127.0.0.1:{i.port}" for i in self.instances]

    def lb(self, policy: str = "least_conn", backends: list[str] | None = None, workers: str = "auto") -> Nginx:
        """Start an nginx in front of (some of) the instances; stopped with the cluster."""
        ng = Nginx(self.workdir, backends or self.backends, policy, workers=workers)
        self.callback(ng.stop)
        ng.wait_ready()
        return ng
