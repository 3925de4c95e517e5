"""qvc_host_waves / qvc_running_instances: disruptive host steps (Docker restart, driver reboot) in
waves within the fleet-wide capacity budget (playbooks/tasks/host-waves.yml)."""
import pytest

from qvc import InstanceSpecError, qvc_host_waves, qvc_running_instances


def _cost(waves, counts):
    return [sum(counts[h] for h in wave) for wave in waves]


def test_waves_stay_within_the_budget():
    counts = {"a": 2, "b": 1, "c": 1, "d": 2, "e": 1}
    got = qvc_host_waves([{"host": h, "instances": n} for h, n in counts.items()], 3)
    assert got["refused"] == {}
    assert sorted(h for w in got["waves"] for h in w) == sorted(counts)
    assert all(c <= 3 for c in _cost(got["waves"], counts))
    # first fit in inventory order: a+b, c+d, e
    assert got["waves"] == [["a", "b"], ["c", "d"], ["e"]]


def test_budget_one_runs_one_host_at_a_time():
    got = qvc_host_waves({"w1": 1, "w2": 1, "w3": 1}, 1)
    assert got["waves"] == [["w1"], ["w2"], ["w3"]]


def test_hosts_without_instances_cost_nothing_and_go_first():
    got = qvc_host_waves([{"host": "a", "instances": 1}, {"host": "idle", "instances": 0},
                          {"host": "b", "instances": 1}, {"host": "new"}], 1)
    assert got["waves"] == [["idle", "new", "a"], ["b"]]
    assert qvc_host_waves({"x": 0, "y": 0}, 1)["waves"] == [["x", "y"]]
    assert qvc_host_waves([], 1)["waves"] == []


def test_a_host_beyond_the_budget_is_refused_by_name_and_variable():
    got = qvc_host_waves([{"host": "qvc-cl-w1", "instances": 2}, {"host": "qvc-cl-w2", "instances": 1}], 1,
                         step="restart docker")
    assert got["waves"] == [["qvc-cl-w2"]]
    msg = got["refused"]["qvc-cl-w1"]
    for part in ("qvc-cl-w1 runs 2 instance(s)", "restart docker", "budget of 1 instance(s)",
                 "webui_max_unavailable=1", "Nothing was changed on qvc-cl-w1", "webui_host_steps_beyond_budget: true"):
        assert part in msg


def test_a_host_beyond_the_budget_runs_alone_when_allowed():
    got = qvc_host_waves([{"host": "big", "instances": 4}, {"host": "s1", "instances": 1},
                          {"host": "s2", "instances": 1}, {"host": "idle", "instances": 0}], 2, allow_beyond=True)
    assert got["refused"] == {}
    assert got["waves"] == [["idle", "big"], ["s1", "s2"]]
    # nothing else joins the wave of a host beyond the budget
    assert all(len(w) == 1 for w in got["waves"] if "big" in w and "idle" not in w)


def test_drained_instances_count_against_the_budget():
    # budget 2, one instance already drained somewhere: 1 left per wave
    got = qvc_host_waves({"a": 1, "b": 1}, 2, out=1)
    assert got["waves"] == [["a"], ["b"]]
    # the drained ones use up the budget: every host with instances is refused, idle hosts still run
    got = qvc_host_waves({"a": 1, "idle": 0}, 1, out=1)
    assert got["waves"] == [["idle"]]
    assert "budget of 0 instance(s)" in got["refused"]["a"] and "1 already drained in the fleet" in got["refused"]["a"]


def test_negative_counts_are_refused():
    with pytest.raises(InstanceSpecError, match="^a:"):
        qvc_host_waves({"a": -1}, 1)


def _container(name, instance, ip="172.29.77.11", port=8001, state="running", role="webui"):
    return {"Names": [f"/{name}"], "State": state,
            "Labels": {"io.qvc.role": role, "io.qvc.instance": instance},
            "Ports": [{"IP": ip, "PrivatePort": 8080, "PublicPort": port, "Type": "tcp"}]}


def test_running_instances_from_the_containers():
    containers = [
        _container("qvc-webui-1", "w1-1", port=8002),
        _container("qvc-webui-0", "w1-0"),
        _container("qvc-webui-2", "w1-2", port=8003, state="exited"),
        _container("prometheus", "", role="monitoring"),
        {"Names": ["/other"], "Labels": {}, "Ports": []},
    ]
    got = qvc_running_instances(containers, "w1", {"qvc-webui-1": "hold"})
    assert [(i["id"], i["name"], i["address"], i["port"], i["drained"], i["held"]) for i in got] == [
        ("w1-0", "qvc-webui-0", "172.29.77.11", 8001, False, False),
        ("w1-1", "qvc-webui-1", "172.29.77.11", 8002, True, True),
    ]
    assert {i["host"] for i in got} == {"w1"}


def test_running_instances_published_on_every_address_use_loopback():
    got = qvc_running_instances([_container("qvc-webui-0", "w-0", ip="0.0.0.0")], "w")
    assert got[0]["address"] == "127.0.0.1"
    assert qvc_running_instances(None, "w") == []
