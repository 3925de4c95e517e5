"""The cluster through its load balancer, checked from the controller.

Requests go from the controller to the LB's address on the scenario network; per-host
checks run with `docker exec`. The LB adds X-QVC-Upstream (nginx_lb_debug_headers) so each
answer names the instance that served it.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import subprocess
import threading
import time

import pytest
import requests

LB = "http://172.29.77.10"
INSTANCES = {  # upstream address -> instance id
    "172.29.77.11:8001": "qvc-cl-w1-0",
    "172.29.77.11:8002": "qvc-cl-w1-1",
    "172.29.77.12:8001": "qvc-cl-w2-0",
}
SPREAD: dict = {}


def sh(container: str, *cmd: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True, timeout=timeout)


def curl_code(container: str, url: str) -> str:
    res = sh(container, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", url)
    return res.stdout.strip() or "000"


@pytest.fixture(scope="module")
def model() -> str:
    r = requests.get(f"{LB}/v1/models", timeout=10)
    r.raise_for_status()
    return r.json()["data"][0]["id"]


def chat(model: str, session: requests.Session | None = None, max_tokens: int = 8) -> requests.Response:
    body = {"model": model, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Describe a cat in one word."}]}
    return (session or requests).post(f"{LB}/v1/chat/completions", json=body, timeout=120)


def test_lb_health_and_stub_status():
    r = requests.get(f"{LB}/healthz", timeout=5)
    assert r.status_code == 200 and r.text == "ok\n"
    assert "Server" not in r.headers or r.headers["Server"] == "nginx"  # server_tokens off: no version
    out = sh("qvc-cl-lb", "curl", "-s", "http://127.0.0.1:8090/stub_status").stdout
    assert "Active connections" in out
    # the status port is local only
    assert curl_code("qvc-cl-outsider", "http://172.29.77.10:8090/stub_status") == "000"


def test_api_answers_through_the_lb(model):
    r = chat(model)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert r.headers["X-QVC-Upstream"] in INSTANCES


def test_api_streams_through_the_lb(model):
    body = {"model": model, "max_tokens": 8, "stream": True,
            "messages": [{"role": "user", "content": "Count to three."}]}
    with requests.post(f"{LB}/v1/chat/completions", json=body, timeout=120, stream=True) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines(decode_unicode=True) if ln]
    assert lines[-1] == "data: [DONE]"


def test_ui_answers_through_the_lb():
    r = requests.get(f"{LB}/", timeout=30)
    assert r.status_code == 200
    assert "<html" in r.text.lower()
    assert r.cookies.get("qvc_affinity")


def test_requests_spread_over_all_instances(model):
    def one(_):
        return chat(model).headers.get("X-QVC-Upstream", "?")

    with cf.ThreadPoolExecutor(max_workers=6) as pool:
        counts = collections.Counter(pool.map(one, range(30)))
    SPREAD["api"] = {INSTANCES.get(k, k): v for k, v in counts.items()}
    print("API spread over instances:", json.dumps(SPREAD["api"]))
    assert set(counts) == set(INSTANCES), counts
    assert min(counts.values()) >= 3, counts


def test_instance_metrics_count_the_requests():
    """Each instance's own /metrics (read from the LB, the only host allowed in) saw requests."""
    for addr, iid in INSTANCES.items():
        out = sh("qvc-cl-lb", "curl", "-s", "--max-time", "5", f"http://{addr}/metrics").stdout
        assert "qvc_webui_requests_in_flight" in out, (iid, out[:300])


def test_ui_session_sticks_to_one_instance():
    s = requests.Session()
    first = s.get(f"{LB}/", timeout=30)
    cookie = s.cookies.get("qvc_affinity")
    assert cookie and len(cookie) == 32
    backends = {first.headers["X-QVC-Upstream"]}
    for _ in range(10):
        r = s.get(f"{LB}/", timeout=30)
        assert "Set-Cookie" not in r.headers  # only set when absent
        backends.add(r.headers["X-QVC-Upstream"])
    assert len(backends) == 1, backends
    # many users behind one address (no cookie yet) still spread out
    fresh = collections.Counter(requests.get(f"{LB}/", timeout=30).headers["X-QVC-Upstream"] for _ in range(24))
    SPREAD["ui_new_sessions"] = {INSTANCES.get(k, k): v for k, v in fresh.items()}
    print("UI new-session spread:", json.dumps(SPREAD["ui_new_sessions"]))
    assert len(fresh) >= 2, fresh


@pytest.mark.parametrize("addr", list(INSTANCES))
def test_backend_ports_only_reachable_from_the_lb(addr):
    assert curl_code("qvc-cl-lb", f"http://{addr}/healthz") == "200"
    assert curl_code("qvc-cl-outsider", f"http://{addr}/healthz") == "000"


def test_firewall_rules_in_docker_user():
    for worker in ("qvc-cl-w1", "qvc-cl-w2"):
        rules = sh(worker, "iptables", "-S", "QVC-WEBUI").stdout
        assert "-s 172.29.77.10/32" in rules and "-j DROP" in rules
        assert sh(worker, "iptables", "-S", "DOCKER-USER").stdout.splitlines()[1] == "-A DOCKER-USER -j QVC-WEBUI"


def test_instances_run_from_the_shared_cache_offline():
    for worker, names in (("qvc-cl-w1", ["qvc-webui-0", "qvc-webui-1"]), ("qvc-cl-w2", ["qvc-webui-0"])):
        for name in names:
            info = json.loads(sh(worker, "docker", "inspect", name).stdout)[0]
            env = dict(e.split("=", 1) for e in info["Config"]["Env"])
            assert env["HF_HUB_OFFLINE"] == "1"
            assert env["QVC_WEBUI_DEVICE"] == "cpu"
            mounts = {m["Destination"]: m for m in info["Mounts"]}
            assert mounts["/models"]["RW"] is False and mounts["/etc/qvc-webui"]["RW"] is False
            assert mounts["/var/log/qvc-webui"]["RW"] is True
            assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
            assert info["Config"]["Labels"]["io.qvc.role"] == "webui"
    # the model was copied once, into the one shared directory both workers mount
    assert sh("qvc-cl-w2", "test", "-f", "/srv/qvc/models/local/tiny-qwen3-vl-hd64/config.json").returncode == 0


def test_killing_an_instance_causes_no_client_errors(model):
    errors, served = [], collections.Counter()
    stop = threading.Event()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = chat(model, s, max_tokens=4)
                    if r.status_code != 200:
                        errors.append(r.status_code)
                    else:
                        served[r.headers.get("X-QVC-Upstream")] += 1
                except requests.RequestException as exc:  # pragma: no cover - reported
                    errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        killed = sh("qvc-cl-w1", "docker", "kill", "qvc-webui-0")
        assert killed.returncode == 0, killed.stderr
        time.sleep(8)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=130)
        sh("qvc-cl-w1", "docker", "start", "qvc-webui-0")
    SPREAD["during_kill"] = {INSTANCES.get(k, k): v for k, v in served.items()}
    print("served while killing qvc-cl-w1-0:", json.dumps(SPREAD["during_kill"]), "errors:", errors)
    assert sum(served.values()) > 10
    assert errors == []
    # the instance comes back (restart: docker start; the LB takes it back after fail_timeout)
    deadline = time.time() + 180
    while time.time() < deadline and curl_code("qvc-cl-lb", "http://172.29.77.11:8001/healthz") != "200":
        time.sleep(2)
    assert curl_code("qvc-cl-lb", "http://172.29.77.11:8001/healthz") == "200"
