"""library/qvc_instance_drain.py and qvc_instance_health.py, and the role task files that use them.

The pure parts (which markers to write, the concurrent waits) are tested with fakes; then
roles/webui/tasks/drain.yml and health-wait.yml run for real with ansible-playbook on localhost
against two local HTTP "instances" (a /metrics in-flight gauge that drops to 0 after a few looks,
a /healthz that turns 200 after a few probes, one that stays 503), with a local "LB" host whose
nginx drain tasks must run only for instances that were drained before the run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "library"))

import qvc_instance_drain as drain  # noqa: E402  pylint: disable=wrong-import-position
import qvc_instance_health as health  # noqa: E402  pylint: disable=wrong-import-position

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def inst(i: int, port: int = 1, drained: bool = False) -> dict:
    return {"id": f"h-{i}", "name": f"qvc-webui-{i}", "address": "127.0.0.1", "port": port, "drained": drained}


# ---------------------------------------------------------------- pure parts
def test_plan_down_writes_missing_markers_only(tmp_path):
    create, remove, drained, lifted, held = drain.plan(str(tmp_path), [inst(0), inst(1)], "down", hold=False)
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in create) == ["qvc-webui-0/drain", "qvc-webui-1/drain"]
    assert (remove, drained, lifted, held) == ([], ["h-0", "h-1"], [], [])
    (tmp_path / "qvc-webui-0").mkdir()
    (tmp_path / "qvc-webui-0" / "drain").touch()
    create, _, drained, _, _ = drain.plan(str(tmp_path), [inst(0), inst(1)], "down", hold=True)
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in create) == [
        "qvc-webui-0/hold", "qvc-webui-1/drain", "qvc-webui-1/hold"]
    assert drained == ["h-1"]  # h-0 was drained already


def test_plan_up_keeps_held_instances_unless_hold_is_lifted(tmp_path):
    for name, files in (("qvc-webui-0", ["drain"]), ("qvc-webui-1", ["drain", "hold"])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).touch()
    _, remove, _, lifted, held = drain.plan(str(tmp_path), [inst(0), inst(1), inst(2)], "up", hold=False)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in remove] == ["qvc-webui-0/drain"]
    assert (lifted, held) == (["h-0"], ["h-1"])
    _, remove, _, lifted, held = drain.plan(str(tmp_path), [inst(1)], "up", hold=True)
    assert sorted(Path(p).name for p in remove) == ["drain", "hold"]
    assert (lifted, held) == (["h-1"], [])


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_wait_idle_polls_all_instances_together_until_each_is_idle():
    readings = {"h-0": [2, 1, 0], "h-1": [0], "h-2": [None]}
    calls = []

    def probe(address, port):
        calls.append(port)
        return readings[f"h-{port}"].pop(0)

    clock = FakeClock()
    last, waited = drain.wait_idle([inst(0, 0), inst(1, 1), inst(2, 2)], timeout=60, poll=2,
                                   probe=probe, clock=clock, sleep=clock.sleep)
    assert last == {"h-0": 0, "h-1": 0, "h-2": None}
    assert waited == 4.0  # two polls of 2 s, not one wait per instance
    assert sorted(calls) == [0, 0, 0, 1, 2]


def test_wait_idle_stops_at_the_timeout_with_the_last_reading():
    clock = FakeClock()
    last, waited = drain.wait_idle([inst(0)], timeout=5, poll=2, probe=lambda a, p: 3, clock=clock, sleep=clock.sleep)
    assert last == {"h-0": 3} and waited == 5.0


def test_wait_healthy_waits_for_the_slowest_and_names_the_rest():
    answers = {"h-0": [(503, "loading"), (200, "ok")], "h-1": [(200, "ok")], "h-2": [(503, "draining")] * 10}
    clock = FakeClock()
    last, waited = health.wait_healthy([inst(0, 0), inst(1, 1), inst(2, 2)], timeout=4, poll=1,
                                       check=lambda a, p, t: answers[f"h-{p}"].pop(0) if len(answers[f"h-{p}"]) > 1
                                       else answers[f"h-{p}"][0], clock=clock, sleep=clock.sleep)
    assert last["h-0"] == (200, "ok") and last["h-1"] == (200, "ok") and last["h-2"] == (503, "draining")
    assert waited == 4.0


# ---------------------------------------------------------------- the task files, for real
class Instance:
    """A local HTTP 'instance': /metrics with an in-flight gauge that drops by one per look,
    /healthz 503 'loading' for the first `loading` probes, then 200 (or 503 forever)."""

    def __init__(self, in_flight: int, loading: int, never_healthy: bool = False):
        self.in_flight, self.loading, self.never = in_flight, loading, never_healthy
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path == "/metrics":
                    body = f"qvc_webui_requests_in_flight {outer.in_flight}\n".encode()
                    outer.in_flight = max(0, outer.in_flight - 1)
                    code = 200
                else:
                    ready = not outer.never and outer.loading <= 0
                    outer.loading -= 1
                    code = 200 if ready else 503
                    body = json.dumps({"status": "ok" if ready else "loading"}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def instances():
    made = []

    def make(*a, **kw):
        made.append(Instance(*a, **kw))
        return made[-1]
    yield make
    for i in made:
        i.server.shutdown()


def run_tasks(tmp_path, tasks: list[dict], extra: dict) -> subprocess.CompletedProcess:
    inv = {"all": {"children": {"gpu_nodes": {"hosts": {"gpu1": LOCAL}}, "lb": {"hosts": {"lb1": LOCAL}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "gpu1", "gather_facts": False, "tasks": tasks}]))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                           "-e", f"@{tmp_path / 'extra.json'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def drain_task(state: str) -> dict:
    return {"ansible.builtin.include_role": {"name": "webui", "tasks_from": "drain"},
            "vars": {"webui_drain_state": state}}


def test_drain_waits_for_every_instance_at_once_then_put_back_skips_the_lbs(tmp_path, instances):
    a, b = instances(in_flight=3, loading=0), instances(in_flight=1, loading=0)
    extra = {"webui_state_dir": str(tmp_path / "state"), "webui_drain_poll": 1, "webui_drain_timeout": 30,
             "webui_drain_instances": [inst(0, a.port), inst(1, b.port)],
             "nginx_lb_site_conf": str(tmp_path / "lb.conf")}
    t0 = time.monotonic()
    res = run_tasks(tmp_path, [drain_task("down")], extra)
    assert res.returncode == 0, res.stdout[-3000:]
    assert a.in_flight == 0 and b.in_flight == 0
    assert (tmp_path / "state/qvc-webui-0/drain").exists() and (tmp_path / "state/qvc-webui-1/drain").exists()
    assert time.monotonic() - t0 < 60
    # freshly drained instances were never rendered down by a full LB render: no LB is looked at
    res = run_tasks(tmp_path, [drain_task("up")], extra)
    assert res.returncode == 0, res.stdout[-3000:]
    assert not (tmp_path / "state/qvc-webui-0/drain").exists()
    assert "Look for the rendered configuration" not in res.stdout
    # an instance drained before the run (discovery says drained) is checked on the LBs
    res = run_tasks(tmp_path, [drain_task("down")], extra)
    assert res.returncode == 0, res.stdout[-3000:]
    extra["webui_drain_instances"][0]["drained"] = True
    res = run_tasks(tmp_path, [drain_task("up")], extra)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Look for the rendered configuration" in res.stdout


def test_drain_fails_when_requests_stay_in_flight_and_keeps_the_drain(tmp_path, instances):
    busy = instances(in_flight=10 ** 6, loading=0)
    extra = {"webui_state_dir": str(tmp_path / "state"), "webui_drain_poll": 1, "webui_drain_timeout": 2,
             "webui_drain_instances": [inst(0, busy.port)]}
    res = run_tasks(tmp_path, [drain_task("down")], extra)
    assert res.returncode != 0
    assert "still in flight after 2" in res.stdout and "h-0=" in res.stdout
    assert (tmp_path / "state/qvc-webui-0/drain").exists()


def test_health_wait_passes_once_all_are_healthy_and_names_the_one_that_is_not(tmp_path, instances):
    slow, never = instances(in_flight=0, loading=3), instances(in_flight=0, loading=0, never_healthy=True)
    task = {"ansible.builtin.include_role": {"name": "webui", "tasks_from": "health-wait"}}
    ok = run_tasks(tmp_path, [task], {"_webui_targets": [inst(0, slow.port)], "webui_health_retries": 20,
                                     "webui_health_delay": 1})
    assert ok.returncode == 0, ok.stdout[-3000:]
    bad = run_tasks(tmp_path, [task], {"_webui_targets": [inst(0, slow.port), inst(1, never.port)],
                                      "webui_health_retries": 3, "webui_health_delay": 1})
    assert bad.returncode != 0
    assert "h-1 (503 loading)" in bad.stdout and "h-0 (" not in bad.stdout
