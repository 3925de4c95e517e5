"""Preflight's cross-field and cross-host rules (filter_plugins/qvc_preflight.py), one inventory per rule.

Each bad inventory must produce a problem naming the host(s) and the variable(s); each good but odd
topology must produce none. The playbook-level runs are in test_preflight.py.
"""
import pytest

import qvc_preflight as qp


def fleet(gpu_hosts, lb=("lb1",), nfs=("nfs1",), monitoring=("lb1",), **extra_hosts):
    """hostvars and groups for a fleet; gpu_hosts maps host -> vars."""
    hostvars = {h: {"ansible_host": f"10.0.1.{i + 1}"} for i, h in enumerate([*lb, *nfs, *monitoring])}
    for hosts in (gpu_hosts, extra_hosts):
        for host, hv in hosts.items():
            hostvars.setdefault(host, {}).update(hv)
    groups = {"lb": list(lb), "nfs_server": list(nfs), "monitoring": list(monitoring), "gpu_nodes": list(gpu_hosts)}
    return hostvars, groups


def problems(hostvars, groups):
    return qp.qvc_preflight_problems(hostvars, groups)


GOOD = {
    "lb + nfs + monitoring on one host": fleet({"gpu1": {"ansible_host": "10.0.0.5"}}, lb=("infra",), nfs=("infra",),
                                              monitoring=("infra",)),
    "one host in every group": fleet({"box": {"ansible_host": "10.0.0.5", "webui_gpu_ids": [0, 1]}}, lb=("box",),
                                     nfs=("box",), monitoring=("box",)),
    "uneven GPU counts": fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_gpu_ids": [0]},
                                "gpu2": {"ansible_host": "10.0.0.6", "webui_gpu_ids": list(range(8))},
                                "gpu3": {"ansible_host": "10.0.0.7"}}),
    "DNS names with qvc_cluster_address": fleet({"gpu1.dc.example": {"ansible_host": "gpu1.dc.example",
                                                                      "qvc_cluster_address": "10.0.0.5"}}),
    "two LBs with a VIP": fleet({"gpu1": {"ansible_host": "10.0.0.5"}}, lb=("lb1", "lb2"),
                                lb1={"lb_ha_vip": "10.0.1.100"}, lb2={"lb_ha_vip": "10.0.1.100"}),
    "local storage needs no nfs_server": fleet({"gpu1": {"ansible_host": "10.0.0.5", "qvc_storage_backend": "local"}},
                                               nfs=()),
    "CPU instances beside the LB on a custom port": fleet(
        {"lb1": {"ansible_host": "10.0.1.1", "qvc_cpu_only": True, "webui_cpu_instances": 2}},
        lb1={"nginx_lb_http_port": 8080}),
    "50 hosts x 8 GPUs": fleet({f"gpu{i}": {"ansible_host": f"10.2.{i // 200}.{i % 200 + 1}",
                                            "webui_gpu_ids": list(range(8))} for i in range(50)}),
}


@pytest.mark.parametrize("name", GOOD)
def test_good_topologies_pass(name):
    assert problems(*GOOD[name]) == []


def one(hostvars_groups):
    found = problems(*hostvars_groups)
    assert len(found) == 1, found
    return found[0]


def test_the_same_gpu_twice():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_gpu_ids": [0, 0]}}))
    assert msg.startswith("gpu1: webui_gpu_ids lists GPU 0 more than once")


def test_instance_port_on_the_lb_port_of_the_same_host():
    msg = one(fleet({"lb1": {"ansible_host": "10.0.1.1", "qvc_cpu_only": True, "webui_cpu_instances": 2,
                             "webui_base_port": 8079}}, lb1={"nginx_lb_http_port": 8080}))
    assert "lb1: webui_base_port=8079 gives instance ports 8079, 8080" in msg
    assert "8080 = the load balancer (nginx_lb_http_port)" in msg


def test_reserved_ports_come_from_the_configuration():
    # the node exporter moved: its old port is free, its new one is taken
    hv, groups = fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_gpu_ids": [0, 1], "webui_base_port": 9099,
                                 "monitoring_node_exporter_port": 9200}})
    assert problems(hv, groups) == []
    hv["gpu1"]["webui_base_port"] = 9199
    assert "9200 = the node exporter (monitoring_node_exporter_port)" in one((hv, groups))


def test_the_dcgm_exporter_port_is_reserved_on_gpu_hosts_only():
    gpu = fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_gpu_ids": [0], "webui_base_port": 9400}})
    assert "9400 = the DCGM exporter (monitoring_dcgm_exporter_port)" in one(gpu)
    cpu = fleet({"gpu1": {"ansible_host": "10.0.0.5", "qvc_cpu_only": True, "webui_cpu_instances": 1,
                          "webui_base_port": 9400}})
    assert problems(*cpu) == []


def test_ports_past_65535():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_gpu_ids": list(range(4)), "webui_base_port": 65534}}))
    assert msg == "gpu1: webui_base_port=65534 with 4 instances needs ports up to 65537, past 65535; lower webui_base_port"


def test_base_port_below_1024():
    assert "gpu1: webui_base_port=80 must be between 1024 and 65535" in one(
        fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_base_port": 80}}))


def test_duplicate_endpoint_names_the_hosts():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.7", "webui_gpu_ids": [0]},
                     "gpu2": {"ansible_host": "10.0.0.7", "webui_gpu_ids": [0]}}))
    assert msg.startswith("several instances would listen on 10.0.0.7:8001: gpu1 (qvc-webui-0), gpu2 (qvc-webui-0)")


def test_missing_nfs_server_says_why():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.5"}}, nfs=()))
    assert msg.startswith("inventory group 'nfs_server' is missing or empty; it is required because "
                          "qvc_storage_backend is 'nfs' (the default) on gpu1")
    explicit = one(fleet({"gpu1": {"ansible_host": "10.0.0.5", "qvc_storage_backend": "nfs"}}, nfs=()))
    assert "(set in the inventory)" in explicit


def test_lb_ha_vip_with_one_lb():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.5"}}, lb1={"lb_ha_vip": "10.0.1.100"}))
    assert msg.startswith("lb1: lb_ha_vip is set (10.0.1.100) but group 'lb' has 1 host (lb1)")


def test_non_ipv4_cluster_address_names_its_source():
    msg = one(fleet({"gpu1": {"ansible_host": "gpu1.example.com"}}))
    assert "gpu1: the cluster address must be an IPv4 address" in msg and "from ansible_host" in msg


def test_cpu_only_host_without_instances():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.5", "qvc_cpu_only": True}}))
    assert "gpu1 is in gpu_nodes and marked qvc_cpu_only with webui_cpu_instances=0" in msg


def test_placeholder_image_is_named_once_for_all_hosts():
    hv, groups = fleet({f"gpu{i}": {"ansible_host": f"10.0.0.{i + 5}",
                                    "webui_image_name": "registry.example.internal/qvc/webui-cuda"} for i in range(7)})
    msg = one((hv, groups))
    assert msg.startswith("gpu0, gpu1, gpu2, gpu3, gpu4 and 2 more: webui_image_name "
                          "'registry.example.internal/qvc/webui-cuda' is the example's placeholder")
    hv = {h: {**v, "webui_image_name": "registry.corp.lan/qvc/webui-cuda"} for h, v in hv.items()}
    assert problems(hv, groups) == []


def test_bad_types_are_reported_not_raised():
    msg = one(fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_cpu_instances": "two", "qvc_cpu_only": True}}))
    assert "gpu1: webui_cpu_instances must be an integer" in msg


def test_every_problem_is_reported_at_once():
    found = problems(*fleet({"gpu1": {"ansible_host": "10.0.0.5", "webui_gpu_ids": [1, 1]},
                             "gpu2": {"ansible_host": "gpu2.lan", "webui_base_port": 70000}}, nfs=()))
    assert len(found) == 4, found


def test_typo_gets_a_suggestion():
    found = qp.qvc_unknown_variables({"webui_gpu_id": [1], "webui_gpu_ids": [1], "ansible_host": "x",
                                      "nvidia_gpus": [], "webui_frobnicate": 1, "_demo_build": "x"})
    assert found == [{"var": "webui_frobnicate", "suggestion": None},
                     {"var": "webui_gpu_id", "suggestion": "webui_gpu_ids"}]


def test_known_variables_cover_every_role_and_the_module_facts():
    known = qp.known_variables()
    for name in ("webui_gpu_ids", "nginx_lb_http_port", "qvc_storage_backend", "docker_nvidia_runtime",
                 "nvidia_gpu_status", "nvidia_gpus"):
        assert name in known


def test_rules_scale_to_a_large_fleet():
    hv, groups = fleet({f"gpu{i}": {"ansible_host": f"10.3.{i // 200}.{i % 200 + 1}",
                                    "webui_gpu_ids": list(range(8))} for i in range(1000)})
    assert problems(hv, groups) == []
