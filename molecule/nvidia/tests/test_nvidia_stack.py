"""Verifies molecule/nvidia after converge + idempotence (testinfra, run by `molecule verify`).

Everything NVIDIA-specific in the instance is a TEST DOUBLE (see fixtures/README.md); these
tests check what the roles did with it: repository + keyring, pin + hold, daemon.json
rendered by the docker role, docker's runtimes, CDI generation count, persistence mode.
"""

import json

import pytest

PACKAGES = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
]
PINNED = "1.17.7-1"
NEWEST = "1.17.8-1"
GPU_UUIDS = [
    "GPU-5e3a1f02-8b7c-4d1e-9f60-2a4b6c8d0e13",
    "GPU-a41c9e77-03d5-4b2f-8e19-6f7a0b3c5d24",
]
STATE = "/var/lib/qvc-fake-nvidia"


def test_docker_lists_nvidia_runtime_and_keeps_runc_default(host):
    out = host.check_output("docker info --format '{{json .Runtimes}}|{{.DefaultRuntime}}'")
    runtimes, default = out.rsplit("|", 1)
    runtimes = json.loads(runtimes)
    assert runtimes["nvidia"]["path"] == "/usr/bin/nvidia-container-runtime"
    assert default.strip() == "runc"


def test_daemon_json_merges_docker_role_settings_and_fragment(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert cfg["runtimes"] == {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}}
    assert "max-size" in cfg["log-opts"] and "max-file" in cfg["log-opts"]  # the docker role's own settings
    assert "default-runtime" not in cfg


def test_runtime_configure_never_called(host):
    assert not host.file(STATE + "/nvidia-ctk-runtime-configure.log").exists


@pytest.mark.parametrize("name", PACKAGES)
def test_package_pinned_and_held(host, name):
    pkg = host.package(name)
    assert pkg.is_installed
    assert pkg.version == PINNED


def test_all_packages_on_hold(host):
    held = set(host.check_output("apt-mark showhold").split())
    assert set(PACKAGES) <= held


def test_newer_version_available_but_not_installed(host):
    # The pin is what keeps 1.17.7-1: the test-double repository also carries 1.17.8-1.
    policy = host.check_output("apt-cache policy nvidia-container-toolkit")
    assert "Candidate: " + NEWEST in policy
    assert "Installed: " + PINNED in policy


def test_repository_uses_dearmored_signed_by_keyring(host):
    sources = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources")
    assert sources.exists
    text = sources.content_string
    assert "URIs: http://127.0.0.1:8765/stable/deb/amd64\n" in text
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.gpg" in text
    assert "Suites: /" in text
    keyring = host.file("/etc/apt/keyrings/nvidia-container-toolkit.gpg")
    assert keyring.exists and keyring.mode == 0o644
    assert not keyring.content.startswith(b"-----BEGIN")  # binary (dearmored) keyring
    assert not host.file("/etc/apt/trusted.gpg").exists  # no apt-key
    # apt really verified the signature with that keyring: the InRelease list file is there.
    lists = host.check_output("ls /var/lib/apt/lists/")
    assert "127.0.0.1:8765_stable_deb_amd64_InRelease" in lists


def test_cdi_spec_generated_exactly_once(host):
    spec = host.file("/etc/cdi/nvidia.yaml")
    assert spec.exists
    for uuid in GPU_UUIDS:
        assert uuid in spec.content_string
    count = host.file(STATE + "/nvidia-ctk-cdi-generate.count").content_string.splitlines()
    assert len(count) == 1, count  # converge + idempotence ran; only the first generated
    assert count[0].endswith(
        "cdi generate --output=/etc/cdi/nvidia.yaml --device-name-strategy=index --device-name-strategy=uuid")


def test_cdi_fingerprint(host):
    text = host.file("/etc/cdi/.qvc-nvidia-fingerprint").content_string
    assert "driver_version=550.54.15\n" in text
    assert "gpu_uuids=" + ",".join(sorted(GPU_UUIDS)) + "\n" in text
    assert "toolkit_version=" + PINNED + "\n" in text


def test_persistence_mode_enabled_on_every_gpu(host):
    out = host.check_output("nvidia-smi --query-gpu=index,persistence_mode --format=csv,noheader")
    assert out.splitlines() == ["0, Enabled", "1, Enabled"]


def test_persistence_mode_comes_back_after_a_reboot(host):
    # No nvidia-persistenced unit on this (fake) driver: the role's boot-time unit sets the mode.
    unit = host.file("/etc/systemd/system/qvc-nvidia-persistence.service").content_string
    assert "ExecStart=/usr/bin/nvidia-smi -pm 1" in unit
    assert host.service("qvc-nvidia-persistence.service").is_enabled


def test_fabric_manager_decision_read_topology_and_skipped_it(host):
    # PCIe-only stand-in GPUs: the role read topo -m and -q, decided "no NVSwitch", installed nothing.
    calls = host.file(STATE + "/nvidia-smi.log").content_string.splitlines()
    assert "topo -m" in calls and "-q" in calls
    assert not host.package("nvidia-fabricmanager-550").is_installed


def test_nvidia_runtime_runs_a_container(host):
    """dockerd starts a container through the nvidia runtime (the stand-in exec's runc).

    No registry is reachable, so the image is assembled from the instance's own echo binary
    and its libraries (docker import), inside the instance's nested dockerd only.
    """
    files = ["usr/bin/echo"] + [
        word.lstrip("/") for word in host.check_output("ldd /usr/bin/echo").split() if word.startswith("/")
    ]
    host.check_output("tar -C / -ch %s | docker import - qvc-nv-echo:1" % " ".join(files))
    before = host.run("wc -l < %s/nvidia-container-runtime.log" % STATE).stdout.strip() or "0"
    out = host.check_output("docker run --rm --runtime nvidia qvc-nv-echo:1 /usr/bin/echo qvc-nv-ok")
    assert out.strip() == "qvc-nv-ok"
    after = host.check_output("wc -l < %s/nvidia-container-runtime.log" % STATE).strip()
    assert int(after) > int(before)  # the call really went through the nvidia runtime
