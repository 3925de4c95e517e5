from qvc_health import (qvc_health_probes, qvc_health_rows, qvc_health_table, qvc_metric_in_flight,
                        qvc_unhealthy, qvc_upstream_state, qvc_upstream_states)

METRICS = """# HELP qvc_webui_requests_in_flight Requests admitted and not finished
# TYPE qvc_webui_requests_in_flight gauge
qvc_webui_requests_in_flight 3.0
qvc_webui_requests_in_flight_other 9.0
"""

CONF = """
upstream qvc_webui_api {
    zone qvc_webui_api 256k;
    least_conn;
    server 10.0.0.1:8001 max_fails=2 fail_timeout=10s;  # w1-0 (cpu)
    server 10.0.0.1:8002 max_fails=2 fail_timeout=10s down;  # w1-1 (cpu)
    server 10.0.0.10:8001 max_fails=2 fail_timeout=10s;  # w10-0
}
upstream qvc_webui_ui {
    server 10.0.0.1:8001;
    server 10.0.0.1:8002 down;
}
"""


def test_in_flight_is_read_exactly():
    assert qvc_metric_in_flight(METRICS) == 3
    assert qvc_metric_in_flight('qvc_webui_requests_in_flight{instance="a"} 0\n') == 0
    assert qvc_metric_in_flight("") is None
    assert qvc_metric_in_flight(None) is None


def test_upstream_state():
    assert qvc_upstream_state(CONF, "10.0.0.1", 8001) == "yes"
    assert qvc_upstream_state(CONF, "10.0.0.1", 8002) == "down"
    assert qvc_upstream_state(CONF, "10.0.0.1", 8003) == "no"
    # 10.0.0.1 must not match 10.0.0.10
    assert qvc_upstream_state(CONF, "10.0.0.10", 8002) == "no"


def test_table_marks_unhealthy_rows_and_counts_them():
    rows = [
        {"instance": "w1-0", "host": "w1", "gpu": None, "endpoint": "10.0.0.1:8001", "image": "qvc/webui:1",
         "model": "m", "health": "ok", "in_flight": 0, "routed": "yes"},
        {"instance": "w1-1", "host": "w1", "gpu": "GPU-1", "endpoint": "10.0.0.1:8002", "image": "qvc/webui:1",
         "model": "m", "health": "loading", "in_flight": 2, "routed": "yes"},
        {"instance": "w2-0", "host": "w2", "gpu": None, "endpoint": "10.0.0.2:8001", "image": "qvc/webui:1",
         "model": "m", "health": "ok", "in_flight": 0, "routed": "down"},
    ]
    lines = qvc_health_table(rows)
    assert lines[0].split() == ["INSTANCE", "HOST", "GPU", "ENDPOINT", "IMAGE", "MODEL", "HEALTH", "IN-FLIGHT",
                                "LB", "ROUTES", "DRAIN"]
    assert lines[1].startswith("  w1-0")
    assert lines[2].startswith("! w1-1") and "GPU-1" in lines[2]
    assert lines[3].startswith("! w2-0")
    assert lines[-1] == "3 instance(s), 2 unhealthy or not routed"
    assert [r["instance"] for r in qvc_unhealthy(rows)] == ["w1-1", "w2-0"]
    assert len({len(line) for line in lines[:-1]}) == 1  # aligned columns


def test_upstream_states_in_one_pass():
    states = qvc_upstream_states(CONF)
    assert states == {"10.0.0.1:8001": "yes", "10.0.0.1:8002": "down", "10.0.0.10:8001": "yes"}
    assert qvc_upstream_states("") == {} and qvc_upstream_states(None) == {}


def test_rows_from_probes_config_and_drains():
    insts = [
        {"id": "w1-0", "host": "w1", "gpu": None, "address": "10.0.0.1", "port": 8001},
        {"id": "w1-1", "host": "w1", "gpu": "GPU-1", "address": "10.0.0.1", "port": 8002, "drained": True,
         "held": True},
        {"id": "w9-0", "host": "w9", "gpu": None, "address": "10.0.0.9", "port": 8001},
    ]
    probes = qvc_health_probes(
        insts[:2],
        [{"container": {"Config": {"Image": "qvc/webui:2"}}}, {"container": None}],
        [{"status": 200, "json": {"status": "ok", "model": "m"}}, {"status": -1, "msg": "refused"}],
        [{"status": 200, "content": METRICS}, {"status": -1}],
    )
    assert probes["w1-0"] == {"image": "qvc/webui:2", "health": "ok", "model": "m", "in_flight": 3}
    assert probes["w1-1"]["health"] == "unreachable" and probes["w1-1"]["image"] == "absent"
    rows = qvc_health_rows(insts, {"w1": {"_health_probes": probes}, "w9": {}}, CONF)
    assert [(r["routed"], r["drain"], r["health"]) for r in rows] == [
        ("yes", "-", "ok"), ("down", "hold", "unreachable"), ("no", "-", "not probed")]
    assert [r["instance"] for r in qvc_unhealthy(rows)] == ["w1-1", "w9-0"]
