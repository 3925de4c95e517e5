"""NVIDIA host decisions (filter_plugins/qvc_nvidia.py, MIG instances in qvc.py) over nvidia-smi fixtures."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nvidia_smi"
sys.path.insert(0, str(ROOT / "filter_plugins"))
sys.path.insert(0, str(ROOT / "library"))

import nvidia_gpu_facts as facts_mod  # noqa: E402
import qvc  # noqa: E402
import qvc_nvidia as nv  # noqa: E402


def read(case, name):
    path = FIXTURES / case / name
    return path.read_text() if path.exists() else ""


def gpu_facts(case):
    base = FIXTURES / case
    query = (int(read(case, "query.rc")), read(case, "query.stdout"), read(case, "query.stderr"))
    listing = (int(read(case, "list.rc")), read(case, "list.stdout"), "") if (base / "list.stdout").exists() else None
    return facts_mod.build_facts(query, listing, smi_path="/usr/bin/nvidia-smi")


# ----------------------------------------------------------------------------- topology / NVSwitch

def test_topology_matrix_parsed():
    topo = nv.qvc_nvidia_topology(read("h100_x8", "topo.stdout"))
    assert topo["gpus"] == [f"GPU{i}" for i in range(8)]
    assert topo["links"]["GPU0"]["GPU7"] == "NV18"
    assert "GPU0" not in topo["links"]["GPU0"]
    assert nv.qvc_nvidia_topology(read("l4_x1", "topo.stdout"))["gpus"] == ["GPU0"]
    assert nv.qvc_nvidia_topology("")["gpus"] == []


def test_fabric_sections_parsed():
    fabric = nv.qvc_nvidia_fabric(read("h100_x8", "fabric.stdout"))
    assert len(fabric) == 8
    assert fabric[0] == {"gpu": "00000000:18:00.0", "state": "Completed", "status": "Success"}
    assert {f["state"] for f in nv.qvc_nvidia_fabric(read("h100_x8_no_fabricmanager", "fabric.stdout"))} == {"In Progress"}
    assert [f["state"] for f in nv.qvc_nvidia_fabric(read("l4_x1", "fabric.stdout"))] == ["N/A"]


@pytest.mark.parametrize("case, expected", [
    ("h100_x8", True),                   # HGX H100: NV18 to 7 peers, fabric state reported
    ("h100_x8_no_fabricmanager", True),  # same, fabric manager not running yet
    ("a100_sxm4_x8_nvswitch", True),     # HGX/DGX A100: NV12 to 7 peers, no Fabric section (Ampere)
    ("a100_sxm4_x4_hgx", False),         # HGX A100 4-GPU: direct NV4 links, no NVSwitch
    ("a100_mig", False),                 # NVLink pair
    ("l4_x1", False),
    ("rtx4090_x2", False),               # PCIe only
])
def test_nvswitch_decision(case, expected):
    assert nv.qvc_nvidia_nvswitch(read(case, "topo.stdout"), read(case, "fabric.stdout")) is expected


def test_nvswitch_from_fabric_state_alone():
    # Hopper reports its fabric even when topo -m was not captured.
    assert nv.qvc_nvidia_nvswitch("", read("h100_x8_no_fabricmanager", "fabric.stdout")) is True
    # Ampere with NVSwitch is found from the matrix alone.
    assert nv.qvc_nvidia_nvswitch(read("a100_sxm4_x8_nvswitch", "topo.stdout"), "") is True


def test_nvlink_bridged_pcie_pairs_are_not_nvswitch():
    topo = read("rtx4090_x2", "topo.stdout").replace("NODE", "NV12")
    assert nv.qvc_nvidia_nvswitch(topo) is False  # H100 NVL pairs: NV12 to one peer
    four = read("h100_x8", "topo.stdout")
    # a partially connected matrix (one pair over PCIe) is not switched
    assert nv.qvc_nvidia_nvswitch(four.replace("NV18", "SYS", 1)) is False


def test_fabric_ready_only_when_completed():
    assert nv.qvc_nvidia_fabric_ready(read("h100_x8", "fabric.stdout")) is True
    assert nv.qvc_nvidia_fabric_ready(read("h100_x8_no_fabricmanager", "fabric.stdout")) is False
    assert nv.qvc_nvidia_fabric_ready(read("l4_x1", "fabric.stdout")) is False  # no fabric at all


@pytest.mark.parametrize("driver, package, ok", [
    ("570.133.20", "570.133.20-1", True),
    ("570.133.20", "570.133.20-0ubuntu0.22.04.1", True),
    ("570.133.20", "1:570.133.20-1", True),
    ("570.133.20", "570.124.06-1", False),
    ("570.133.20", "570.133.2-1", False),
    ("", "570.133.20-1", False),
])
def test_fabricmanager_must_match_driver_exactly(driver, package, ok):
    assert nv.qvc_nvidia_fabricmanager_version_ok(driver, package) is ok


# ----------------------------------------------------------------------------- driver branch vs CUDA

@pytest.mark.parametrize("cuda, floor", [("12.8", "570.26"), ("12.8.1", "570.26"), ("12.4", "550.54.14"),
                                         ("12.2", "535.54.03"), ("13.0", "580.65.06")])
def test_min_driver_for_cuda(cuda, floor):
    assert nv.qvc_nvidia_min_driver(cuda) == floor


def test_unknown_cuda_is_a_clear_error():
    with pytest.raises(nv.NvidiaPolicyError, match="12.7"):
        nv.qvc_nvidia_min_driver("12.7")


def test_branch_for_cuda_picks_lowest_sufficient_server_branch():
    branches = ["535", "550", "570", "580"]
    assert nv.qvc_nvidia_driver_branch("12.8.1", branches) == "570"
    assert nv.qvc_nvidia_driver_branch("12.4", branches) == "550"
    assert nv.qvc_nvidia_driver_branch("12.2", branches) == "535"
    with pytest.raises(nv.NvidiaPolicyError):
        nv.qvc_nvidia_driver_branch("13.0", ["535", "550", "570"])


@pytest.mark.parametrize("case, cuda, ok", [
    ("h100_x8_no_fabricmanager", "12.8", True),   # 570.133.20
    ("a100_sxm4_x4_hgx", "12.8", False),         # 550.127.08: the old floor accepted it
    ("l4_x1", "12.8", False),                    # 535.183.01
    ("l4_x1", "12.2", True),
    ("rtx4090_x2", "12.8", True),                # 570.133.07
])
def test_recorded_drivers_against_the_image_cuda(case, cuda, ok):
    driver = gpu_facts(case)["nvidia_driver_version"]
    have = tuple(int(p) for p in driver.split("."))
    need = tuple(int(p) for p in nv.qvc_nvidia_min_driver(cuda).split("."))
    assert (have >= need) is ok


# ----------------------------------------------------------------------------- packages

@pytest.mark.parametrize("kernel, distro, flavour", [
    ("5.15.0-125-generic", "22.04", "generic"),
    ("6.8.0-45-generic", "22.04", "generic-hwe-22.04"),
    ("5.15.0-1071-aws", "22.04", "aws"),
    ("6.8.0-45-generic", "24.04", "generic"),
])
def test_kernel_flavour(kernel, distro, flavour):
    assert nv.qvc_nvidia_kernel_flavour(kernel, distro) == flavour


def test_not_an_ubuntu_kernel_has_no_flavour():
    # Defaults are templated on every host (Debian, test hosts): no error there; install.yml asserts.
    assert nv.qvc_nvidia_kernel_flavour("6.1.0-28-amd64+x", "12") == ""
    assert nv.qvc_nvidia_kernel_flavour("6.18.44-fc-v1045", "12") == ""
    assert "linux-modules-nvidia-570-server-" not in " ".join(nv.qvc_nvidia_driver_packages("570", ""))


def test_precompiled_signed_modules_package_set():
    flavour = nv.qvc_nvidia_kernel_flavour("5.15.0-125-generic", "22.04")
    assert nv.qvc_nvidia_driver_packages("570", flavour) == [
        "linux-modules-nvidia-570-server-generic",
        "nvidia-headless-no-dkms-570-server",
        "nvidia-utils-570-server",
    ]


def test_dkms_package_set_brings_headers():
    pkgs = nv.qvc_nvidia_driver_packages("570", nv.qvc_nvidia_kernel_flavour("6.8.0-45-generic", "22.04"), "dkms")
    assert pkgs[0] == "linux-headers-generic-hwe-22.04"
    assert "nvidia-dkms-570-server" in pkgs and "nvidia-utils-570-server" in pkgs
    with pytest.raises(nv.NvidiaPolicyError):
        nv.qvc_nvidia_driver_packages("570", "generic", "runfile")
    with pytest.raises(nv.NvidiaPolicyError):
        nv.qvc_nvidia_driver_packages("570", "Generic; rm -rf /")


# What `dpkg -l` shows on a 22.04 host with the precompiled 570 server driver and fabric manager
# (package names as Ubuntu's archive ships them), plus packages that must not be held.
INSTALLED_570 = {name: [{"version": "570.133.20-0ubuntu0.22.04.1"}] for name in [
    "libnvidia-cfg1-570-server", "libnvidia-compute-570-server", "libnvidia-decode-570-server",
    "libnvidia-encode-570-server", "libnvidia-extra-570-server", "libnvidia-fbc1-570-server",
    "libnvidia-gl-570-server", "linux-modules-nvidia-570-server-generic",
    "linux-modules-nvidia-570-server-5.15.0-125-generic", "linux-objects-nvidia-570-server-5.15.0-125-generic",
    "linux-signatures-nvidia-5.15.0-125-generic", "nvidia-compute-utils-570-server",
    "nvidia-firmware-570-server-570.133.20", "nvidia-headless-no-dkms-570-server", "nvidia-kernel-common-570-server",
    "nvidia-kernel-source-570-server", "nvidia-utils-570-server", "nvidia-fabricmanager-570", "libnvidia-nscq-570",
    # not the branch, or not the driver:
    "nvidia-container-toolkit", "libnvidia-container1", "nvidia-utils-550-server", "linux-modules-5.15.0-125-generic",
    "nvidia-modprobe", "libnvidia-compute-5700-server",
]}


def test_hold_list_covers_every_installed_package_of_the_branch():
    held = nv.qvc_nvidia_hold_list(INSTALLED_570, "570")
    assert "libnvidia-compute-570-server" in held
    assert "linux-modules-nvidia-570-server-5.15.0-125-generic" in held
    assert "linux-objects-nvidia-570-server-5.15.0-125-generic" in held
    assert "nvidia-firmware-570-server-570.133.20" in held
    assert "nvidia-fabricmanager-570" in held and "libnvidia-nscq-570" in held
    for other in ("nvidia-container-toolkit", "libnvidia-container1", "nvidia-utils-550-server",
                  "linux-modules-5.15.0-125-generic", "nvidia-modprobe", "libnvidia-compute-5700-server"):
        assert other not in held
    assert held == sorted(held)
    assert len(held) == 18  # every branch package above; linux-signatures-nvidia-<kernel> names no branch


def test_hold_list_empty_without_packages():
    assert nv.qvc_nvidia_hold_list({}, "570") == []


# ----------------------------------------------------------------------------- MIG -> instances

def test_mig_gpu_gets_one_instance_per_mig_device():
    facts = gpu_facts("a100_mig")
    hv = {"nvidia_gpus": facts["nvidia_gpus"], "qvc_cluster_address": "10.0.0.5"}
    instances = qvc.host_instances("gpu1", hv)
    assert [i["gpu"] for i in instances] == [
        "MIG-d379883f-8a01-26b4-ac9e-9abd3a5fd2a9",
        "MIG-96b5dc20-fefc-cd12-f3e8-843ccd218b2a",
        "GPU-023870db-a5a1-3c34-c6bc-2519a620a047",  # GPU 1 has MIG off: the whole GPU
    ]
    assert [i["port"] for i in instances] == [8001, 8002, 8003]
    assert all(i["device"] == "cuda" for i in instances)


def test_explicit_override_still_wins_over_mig_discovery():
    facts = gpu_facts("a100_mig")
    hv = {"nvidia_gpus": facts["nvidia_gpus"], "webui_gpu_ids": ["GPU-023870db-a5a1-3c34-c6bc-2519a620a047"]}
    assert [i["gpu"] for i in qvc.host_instances("gpu1", hv)] == ["GPU-023870db-a5a1-3c34-c6bc-2519a620a047"]


def test_non_mig_hosts_unchanged():
    facts = gpu_facts("h100_x8")
    instances = qvc.host_instances("gpu1", {"nvidia_gpus": facts["nvidia_gpus"]})
    assert [i["gpu"] for i in instances] == [g["uuid"] for g in facts["nvidia_gpus"]]


# ----------------------------------------------------------------------------- GPU injection (webui containers.yml)

def _device_requests(item, injection):
    import jinja2
    import jinja2.nativetypes
    import yaml

    tasks = yaml.safe_load((ROOT / "roles/webui/tasks/containers.yml").read_text())
    task = next(t for t in tasks if "community.docker.docker_container" in t)
    expr = task["community.docker.docker_container"]["device_requests"]
    env = jinja2.nativetypes.NativeEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(expr.strip()).render(item=item, webui_gpu_injection=injection)


@pytest.mark.parametrize("gpu", ["GPU-023870db-a5a1-3c34-c6bc-2519a620a047", "MIG-d379883f-8a01-26b4-ac9e-9abd3a5fd2a9", "0"])
def test_instances_get_their_gpu_as_a_cdi_device(gpu):
    assert _device_requests({"device": "cuda", "gpu": gpu}, "cdi") == [
        {"driver": "cdi", "device_ids": [f"nvidia.com/gpu={gpu}"]}]


def test_legacy_runtime_injection_and_cpu_instances():
    assert _device_requests({"device": "cuda", "gpu": "GPU-1"}, "runtime") == [
        {"driver": "nvidia", "device_ids": ["GPU-1"], "capabilities": [["gpu"]]}]
    assert _device_requests({"device": "cpu", "gpu": None}, "cdi") == []
