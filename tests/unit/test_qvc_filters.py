import pytest

from qvc import (DiscoveryError, InstanceSpecError, host_instances, qvc_discovery_error,
                 qvc_duplicate_endpoints, qvc_host_address, qvc_host_address_source, qvc_instances,
                 qvc_is_ipv4, qvc_max_unavailable, qvc_drain_markers, qvc_replacement_waves)


def test_gpu_override_wins_over_discovery():
    hv = {"webui_gpu_ids": [1, 3], "nvidia_gpus": [{"uuid": "GPU-a"}, {"uuid": "GPU-b"}], "ansible_host": "10.0.0.5"}
    insts = host_instances("w1", hv)
    assert [(i["name"], i["port"], i["device"], i["gpu"]) for i in insts] == [
        ("qvc-webui-0", 8001, "cuda", "1"),
        ("qvc-webui-1", 8002, "cuda", "3"),
    ]
    assert {i["address"] for i in insts} == {"10.0.0.5"}


def test_discovered_gpus_by_uuid_and_cluster_address():
    hv = {"nvidia_gpu_status": "ok", "nvidia_gpus": [{"uuid": "GPU-a"}, {"uuid": "GPU-b"}, {"uuid": "GPU-c"}],
          "ansible_host": "198.51.100.9", "qvc_cluster_address": "10.1.0.9", "webui_base_port": 9000}
    insts = host_instances("w2", hv)
    assert [i["gpu"] for i in insts] == ["GPU-a", "GPU-b", "GPU-c"]
    assert [i["port"] for i in insts] == [9000, 9001, 9002]
    assert insts[2]["id"] == "w2-2"
    assert {i["address"] for i in insts} == {"10.1.0.9"}


def test_cpu_instances_when_no_gpu():
    insts = host_instances("w3", {"webui_cpu_instances": 2})
    assert [(i["device"], i["gpu"], i["address"]) for i in insts] == [("cpu", None, "w3")] * 2


def test_no_gpu_no_cpu_means_no_instances():
    assert host_instances("w4", {}) == []


@pytest.mark.parametrize("hv, var", [
    ({"webui_gpu_ids": "0,1"}, "webui_gpu_ids"),
    ({"webui_cpu_instances": "many"}, "webui_cpu_instances"),
    ({"webui_cpu_instances": -1}, "webui_cpu_instances"),
    ({"webui_base_port": "http"}, "webui_base_port"),
])
def test_bad_values_name_host_and_variable(hv, var):
    with pytest.raises(InstanceSpecError, match=rf"^w5: {var}"):
        host_instances("w5", hv)


def test_fleet_order_and_duplicates():
    hostvars = {
        "a": {"webui_cpu_instances": 2, "ansible_host": "10.0.0.1"},
        "b": {"webui_gpu_ids": ["GPU-x"], "ansible_host": "10.0.0.1"},
    }
    insts = qvc_instances(hostvars, ["a", "b"])
    assert [i["id"] for i in insts] == ["a-0", "a-1", "b-0"]
    assert qvc_duplicate_endpoints(insts) == ["10.0.0.1:8001"]
    assert qvc_duplicate_endpoints(qvc_instances(hostvars, ["a"])) == []


def test_host_address_precedence():
    hostvars = {"a": {"qvc_cluster_address": "10.1.0.1", "ansible_host": "198.51.100.1"},
                "b": {"ansible_host": "198.51.100.2"}, "c": {}}
    assert [qvc_host_address(hostvars, h) for h in "abc"] == ["10.1.0.1", "198.51.100.2", "c"]
    assert qvc_host_address(hostvars, ["c", "a"]) == ["c", "10.1.0.1"]
    assert qvc_host_address(hostvars, []) == []
    assert [qvc_host_address_source(hostvars, h) for h in "abc"] == [
        "qvc_cluster_address", "ansible_host", "the inventory host name"]


@pytest.mark.parametrize("value, ok", [("10.0.0.1", True), ("255.255.255.255", True), ("10.0.0.256", False),
                                       ("gpu1.example.com", False), ("fd00::1", False), ("", False), (None, False),
                                       ("10.0.0", False)])
def test_is_ipv4(value, ok):
    assert qvc_is_ipv4(value) is ok


_MISMATCH = "Failed to initialize NVML: Driver/library version mismatch"


def test_failed_discovery_never_reads_as_no_gpus():
    # nvidia_gpu_facts returns nvidia_gpus: [] on an error; that must not become "0 instances"
    hv = {"nvidia_gpu_status": "error", "nvidia_gpu_message": _MISMATCH, "nvidia_gpus": [],
          "webui_cpu_instances": 2}
    with pytest.raises(DiscoveryError, match=r"^w1: GPU discovery failed .*version mismatch"):
        host_instances("w1", hv)
    assert "version mismatch" in qvc_discovery_error({"w1": hv}, "w1")
    with pytest.raises(DiscoveryError):
        qvc_instances({"w1": hv, "w2": {"webui_cpu_instances": 1}}, ["w2", "w1"])


def test_explicit_gpu_ids_survive_a_failed_discovery():
    hv = {"nvidia_gpu_status": "error", "nvidia_gpu_message": _MISMATCH, "webui_gpu_ids": [0, 1]}
    assert [i["gpu"] for i in host_instances("w1", hv)] == ["0", "1"]
    assert qvc_discovery_error({"w1": hv}, "w1") == ""


@pytest.mark.parametrize("status", ["no_driver", "no_gpu"])
def test_hosts_without_gpus_fall_back_to_cpu_instances(status):
    hv = {"nvidia_gpu_status": status, "nvidia_gpus": [], "webui_cpu_instances": 2}
    assert [i["device"] for i in host_instances("w1", hv)] == ["cpu", "cpu"]


def test_strict_needs_facts_or_an_explicit_setting():
    # a host outside --limit without facts: lenient callers get nothing, strict ones an error
    assert host_instances("w9", {}) == []
    with pytest.raises(DiscoveryError, match=r"^w9: its GPUs are unknown"):
        qvc_instances({"w9": {}}, ["w9"], strict=True)
    assert len(qvc_instances({"w9": {"webui_cpu_instances": 1}}, ["w9"], strict=True)) == 1
    assert qvc_instances({"w9": {"nvidia_gpu_status": "no_driver"}}, ["w9"], strict=True) == []


def test_drain_markers_show_on_the_instances():
    hv = {"webui_cpu_instances": 3, "qvc_instance_drains": {"qvc-webui-1": "drain", "qvc-webui-2": "hold"}}
    insts = host_instances("w1", hv)
    assert [(i["drained"], i["held"]) for i in insts] == [(False, False), (True, False), (True, True)]


@pytest.mark.parametrize("spec, total, want", [
    (1, 6, 1), ("2", 12, 2), ("25%", 800, 200), ("10%", 800, 80), ("10%", 6, 1), ("1%", 3, 1), (1, 1, 1),
])
def test_max_unavailable(spec, total, want):
    assert qvc_max_unavailable(spec, total) == want


@pytest.mark.parametrize("spec, total", [(0, 6), ("-1", 6), ("x", 6), ("0%", 6), ("26%", 800), (3, 6), (201, 800)])
def test_max_unavailable_refuses_bad_or_too_large(spec, total):
    with pytest.raises(InstanceSpecError, match="webui_max_unavailable"):
        qvc_max_unavailable(spec, total)


def _fleet(hosts=("a", "b", "c"), per_host=2):
    return [{"id": f"{h}-{i}", "host": h, "index": i} for i in range(per_host) for h in hosts]


def test_waves_respect_the_budget_and_spread_over_hosts():
    pending = _fleet()
    for budget in (1, 2, 3):
        waves = qvc_replacement_waves(pending, budget)
        assert sorted(x for w in waves for x in w) == sorted(i["id"] for i in pending)
        assert all(len(w) <= budget for w in waves)
        assert len(waves) == -(-6 // budget)
    assert qvc_replacement_waves(pending, 3)[0] == ["a-0", "b-0", "c-0"]


def test_drained_instances_go_first_and_cost_nothing():
    pending = _fleet()
    # c-1 was left drained by a failed rollout: it is replaced first, beside one in-service instance?
    # no: it already uses the whole budget of 1, so the first wave is c-1 alone
    waves = qvc_replacement_waves(pending, 1, out=["c-1"])
    assert waves[0] == ["c-1"] and all(len(w) == 1 for w in waves) and len(waves) == 6
    waves = qvc_replacement_waves(pending, 2, out=["c-1"])
    assert waves[0] == ["c-1", "a-0"]
    # an instance held out by the operator keeps using one unit of the budget
    waves = qvc_replacement_waves(pending, 2, out=["c-1"], held=["c-1"])
    assert waves[0] == ["c-1", "a-0"] and all(len(w) == 1 for w in waves[1:])


def test_budget_used_up_by_held_instances_is_refused():
    with pytest.raises(InstanceSpecError, match="used up by drained instances"):
        qvc_replacement_waves(_fleet(), 1, out=["c-1"], held=["c-1"])
    with pytest.raises(InstanceSpecError, match="used up"):
        # drained but not pending: stays out for the whole run
        qvc_replacement_waves([i for i in _fleet() if i["id"] != "c-1"], 1, out=["c-1"])
    # only drained ones pending: nothing in service is taken out
    assert qvc_replacement_waves([{"id": "c-1", "host": "c", "index": 1}], 1, out=["c-1", "b-1"]) == [["c-1"]]


def test_skip_unknown_leaves_failed_hosts_out():
    hostvars = {"ok": {"webui_cpu_instances": 2},
                "bad": {"nvidia_gpu_status": "error", "nvidia_gpu_message": _MISMATCH}}
    assert [i["id"] for i in qvc_instances(hostvars, ["ok", "bad"], skip_unknown=True)] == ["ok-0", "ok-1"]


def test_drain_markers_from_find_results():
    files = [{"path": "/var/lib/qvc-webui/qvc-webui-0/drain"}, {"path": "/var/lib/qvc-webui/qvc-webui-2/hold"},
             {"path": "/var/lib/qvc-webui/qvc-webui-2/drain"}, "/var/lib/qvc-webui/qvc-webui-3/drain",
             {"path": "/var/lib/qvc-webui/qvc-webui-4/other"}]
    assert qvc_drain_markers(files) == {"qvc-webui-0": "drain", "qvc-webui-2": "hold", "qvc-webui-3": "drain"}
    assert qvc_drain_markers([]) == {}


def test_setting_reads_the_inventory_value_else_the_owning_roles_default():
    from qvc import role_defaults, setting
    assert setting({"webui_base_port": 9000}, "webui_base_port") == 9000
    assert setting({}, "webui_base_port") == role_defaults("webui")["webui_base_port"]
    assert setting({}, "qvc_storage_backend") == role_defaults("qvc")["qvc_storage_backend"]
    # the longest role name wins: nginx_lb_* belongs to nginx_lb, not to a role called "nginx"
    assert setting({}, "nginx_lb_http_port") == role_defaults("nginx_lb")["nginx_lb_http_port"]


def test_setting_refuses_templated_defaults_and_unknown_names():
    from qvc import setting
    with pytest.raises(ValueError, match="nginx_lb_site_conf is a template"):
        setting({}, "nginx_lb_site_conf")
    with pytest.raises(KeyError):
        setting({}, "frobnicate_level")
