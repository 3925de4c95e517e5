#!/usr/bin/env python3
"""Benchmark 7: site.yml no-change re-run on a small vs a 4x larger fleet (issue 15: <= 2x for 4x the hosts).

    .venv/bin/python -m bench.rerun [--hosts 3,12] [--runs 2] [--keep]

Builds its own fleet of cheap hosts on this machine: one load balancer and N serving hosts, each a
systemd container (molecule's Debian 12 base image; the LB also runs Prometheus, as in the demo)
running its own Docker engine with one CPU
instance of the GPU timing emulator (the sim image, `webui/build-image.sh sim`, ~100 MiB: the CPU
image's 2 GiB does not fit a dozen Docker-in-Docker hosts). Shared storage is one host directory
bind-mounted on every serving host (qvc_storage_backend: local), as in the cluster scenario.

For each fleet size (ascending; the larger fleet adds hosts to the smaller one): converge with
site.yml, then --runs no-change re-runs of site.yml. Prints each run's wall time, changed/failed
counts (a re-run must change nothing) and the 5 slowest tasks, then the ratio of the median
re-run at the largest size to the one at the smallest. Hosts reach the controller through the
Docker connection plugin with pipelining (as molecule), forks from ansible.cfg (20). Everything
runs on the same cores: the controller, every host's module runs and every Docker engine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .provision import run_once

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench-rerun"
NET, SUBNET, GW = "qvc-rr-net", "172.29.88.0/24", "172.29.88.1"
BASE_IMAGE = os.environ.get("QVC_MOLECULE_IMAGE", "qvc/debian12-systemd:latest")
# Docker in Docker without --privileged (it fails in this sandbox): every capability but SYS_RESOURCE.
DIND = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
        "--security-opt", "apparmor=unconfined", "--tmpfs", "/var/lib/docker:exec"]
SYSTEMD = ["--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
           "--tmpfs", "/tmp"]


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def host_name(i: int) -> str:
    return f"qvc-rr-w{i:02d}"


def ensure_images() -> str:
    """The Debian 12 systemd base and the sim image archive (both cached by recipe hash)."""
    if sh("docker", "image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        subprocess.run([str(ROOT / "molecule/_platform/build-base-image.sh")], check=True)
    out = sh(str(ROOT / "webui/build-image.sh"), "sim").stdout
    tag = next(line.split()[1] for line in out.splitlines() if line.startswith("build-image: qvc/webui:"))
    image_tag = tag.split(":", 1)[1]
    BUILD.mkdir(parents=True, exist_ok=True)
    archive = BUILD / f"qvc-webui-{image_tag}.tar"
    if not archive.exists():
        sh("docker", "save", "-o", str(archive), tag)
    stub = BUILD / "model-stub"  # the sim reads no model; the role ships what webui_model_src names
    stub.mkdir(exist_ok=True)
    (stub / "config.json").write_text('{"model_type": "sim"}\n')
    (BUILD / "shared").mkdir(exist_ok=True)
    return image_tag


def ensure_hosts(n: int) -> None:
    if sh("docker", "network", "inspect", NET, check=False).returncode != 0:
        sh("docker", "network", "create", "--subnet", SUBNET, "--gateway", GW, NET)
    # the LB runs Docker too (Prometheus and the exporters run as containers)
    wanted = [("qvc-rr-lb", "172.29.88.10", DIND)] + [
        (host_name(i), f"172.29.88.{10 + i}", DIND + ["-v", f"{BUILD / 'shared'}:/srv/qvc:rw"])
        for i in range(1, n + 1)]
    for name, ip, extra in wanted:
        if sh("docker", "container", "inspect", name, check=False).returncode == 0:
            continue
        sh("docker", "run", "-d", "--name", name, "--hostname", name, "--network", NET, "--ip", ip,
           *SYSTEMD, "--cap-add", "SYS_ADMIN", *extra, BASE_IMAGE, "/lib/systemd/systemd")


def remove_hosts() -> None:
    names = sh("docker", "ps", "-aq", "--filter", "name=^qvc-rr-").stdout.split()
    if names:
        sh("docker", "rm", "-f", *names)
    sh("docker", "network", "rm", NET, check=False)
    # files the instances wrote as their uid
    subprocess.run(["rm", "-rf", str(BUILD / "shared")], check=False)


def inventory(n: int, image_tag: str, path: Path) -> None:
    inv = {"all": {
        "children": {
            "lb": {"hosts": {"qvc-rr-lb": {"qvc_cluster_address": "172.29.88.10"}}},
            "monitoring": {"hosts": {"qvc-rr-lb": {}}},
            "gpu_nodes": {"hosts": {host_name(i): {"qvc_cluster_address": f"172.29.88.{10 + i}"}
                                    for i in range(1, n + 1)}},
        },
        "vars": {
            "ansible_connection": "community.docker.docker",
            "ansible_python_interpreter": "/usr/bin/python3",
            "qvc_storage_backend": "local",
            "qvc_shared_root": "/srv/qvc",
            "qvc_cpu_only": True,
            "docker_install_source": "distro",
            "webui_cpu_instances": 1,
            "webui_engine": "sim",
            "webui_image_source": "archive",
            "webui_image_tag": image_tag,
            "webui_image_archive": str(BUILD / f"qvc-webui-{image_tag}.tar"),
            "webui_model_src": str(BUILD / "model-stub"),
            "docker_image_archive_cleanup": True,
        },
    }}
    path.write_text(json.dumps(inv, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="3,12", help="serving-host counts, ascending (plus one LB each)")
    ap.add_argument("--runs", type=int, default=2, help="no-change re-runs per fleet size")
    ap.add_argument("--keep", action="store_true", help="leave the hosts running at the end")
    args = ap.parse_args(argv)
    sizes = sorted(int(x) for x in args.hosts.split(","))
    if sizes[-1] > 60:
        ap.error("--hosts: at most 60 serving hosts (addresses 172.29.88.11-70)")
    os.environ["ANSIBLE_PIPELINING"] = "True"  # as molecule (.config/molecule/config.yml)
    image_tag = ensure_images()
    medians: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="qvc-bench-rerun-") as tmp:
            # a fact cache of this run only (gathering = smart: the re-runs use it, as an operator's would)
            os.environ["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(Path(tmp) / "facts")
            for n in sizes:
                ensure_hosts(n)
                inv = Path(tmp) / f"hosts-{n}.json"
                inventory(n, image_tag, inv)
                t0 = time.perf_counter()
                first = run_once(f"{n} serving hosts + 1 LB: converge", "site.yml", str(inv), [])
                if first["status"] != "successful":
                    print(f"converge of {n} hosts failed after {time.perf_counter() - t0:.0f} s")
                    return 1
                walls = []
                for k in range(args.runs):
                    r = run_once(f"{n} serving hosts + 1 LB: no-change re-run {k + 1}", "site.yml", str(inv), [])
                    if r["status"] != "successful" or r["changed"]:
                        print(f"re-run on {n} hosts: status {r['status']}, changed {r['changed']}: not a no-change run")
                        return 1
                    walls.append(r["wall_s"])
                medians[n] = statistics.median(walls)
    finally:
        if not args.keep:
            remove_hosts()
    lo, hi = sizes[0], sizes[-1]
    ratio = medians[hi] / medians[lo]
    print("\nno-change re-run of site.yml (median): " + ", ".join(f"{n} hosts {medians[n]:.1f} s" for n in sizes))
    print(f"{hi} vs {lo} serving hosts ({hi / lo:.0f}x the hosts): {ratio:.2f}x the time "
          f"(target <= 2x: {'MET' if ratio <= 2 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
