import pytest

from qvc import (InstanceSpecError, host_instances, qvc_duplicate_endpoints, qvc_host_address,
                 qvc_host_address_source, qvc_instances, qvc_is_ipv4)


def test_gpu_override_wins_over_discovery():
    hv = {"webui_gpu_ids": [1, 3], "nvidia_gpus": [{"uuid": "GPU-a"}, {"uuid": "GPU-b"}], "ansible_host": "10.0.0.5"}
    insts = host_instances("w1", hv)
    assert [(i["name"], i["port"], i["device"], i["gpu"]) for i in insts] == [
        ("qvc-webui-0", 8001, "cuda", "1"),
        ("qvc-webui-1", 8002, "cuda", "3"),
    ]
    assert {i["address"] for i in insts} == {"10.0.0.5"}


def test_discovered_gpus_by_uuid_and_cluster_address():
    hv = {"nvidia_gpus": [{"uuid": "GPU-a"}, {"uuid": "GPU-b"}, {"uuid": "GPU-c"}],
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
