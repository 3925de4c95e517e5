"""Behaviour of the docker role on a converged test host."""
import json


def test_daemon_running_and_enabled(host):
    svc = host.service("docker")
    assert svc.is_running
    assert svc.is_enabled


def test_daemon_json_holds_merged_settings(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    # role defaults
    assert cfg["log-driver"] == "json-file"
    assert cfg["live-restore"] is True
    # operator override merged *into* the role's log-opts, not replacing them
    assert cfg["log-opts"] == {"max-size": "50m", "max-file": "5", "labels": "qvc"}
    # hook fragment from "another role"
    assert cfg["max-concurrent-downloads"] == 4
    assert cfg["features"] == {"buildkit": True}
    assert cfg["registry-mirrors"] == ["http://mirror.invalid:5000"]


def test_daemon_applied_the_file(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    assert "http://mirror.invalid:5000/" in info["RegistryConfig"]["Mirrors"]


def test_container_runs_and_publishes_a_port(host):
    out = host.check_output("python3 -c \"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:18080/').read().decode())\"")
    assert out.strip() == "hello from qvc-web"


def test_log_rotation_in_effect_for_containers(host):
    cfg = json.loads(host.check_output("docker inspect --format '{{json .HostConfig.LogConfig}}' qvc-web"))
    assert cfg["Type"] == "json-file"
    assert cfg["Config"]["max-size"] == "50m"
    assert cfg["Config"]["max-file"] == "5"


def test_archive_removed_after_load(host):
    assert not host.file("/var/lib/qvc/images/busybox-test.tar").exists
    assert host.check_output("docker image inspect --format '{{.Id}}' qvc/busybox-test:1").startswith("sha256:")


# --- The upstream path against the test-double repository (prepare.yml) ---------------------

def test_python3_debian_installed_by_the_role(host):
    # The base image lacks it; deb822_repository fails with missing_required_lib without it.
    assert host.package("python3-debian").is_installed


def test_conflicting_install_guide_source_removed(host):
    assert not host.file("/etc/apt/sources.list.d/docker.list").exists
    sources = host.file("/etc/apt/sources.list.d/docker.sources").content_string
    assert "URIs: http://127.0.0.1:8766/linux/debian" in sources
    assert "Signed-By: /etc/apt/keyrings/docker.asc" in sources
    # apt reads the sources again (it fails on conflicting Signed-By values) and the candidate
    # comes from the signed test-double repository.
    cmd = host.run("apt-cache policy docker-ce")
    assert cmd.rc == 0 and "Conflicting" not in cmd.stderr, cmd.stderr
    assert "http://127.0.0.1:8766/linux/debian bookworm/stable amd64 Packages" in cmd.stdout


def test_key_download_went_through_the_proxy(host):
    log = host.file("/var/log/qvc-docker-fixture-proxy.log").content_string
    assert "GET http://127.0.0.1:8766/linux/debian/gpg 200" in log


def test_pinned_upstream_packages_installed_and_held(host):
    for name in ("docker-ce", "docker-ce-cli"):
        assert host.package(name).version == "5:27.3.0-1~debian.12~bookworm"  # the pin, not the newest
    assert host.package("docker-ce").is_installed
    held = host.check_output("apt-mark showhold").split()
    assert {"docker-ce", "docker-ce-cli", "containerd.io"} <= set(held)
