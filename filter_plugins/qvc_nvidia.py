"""NVIDIA host decisions as pure, unit-tested filters (tests/unit/test_qvc_nvidia.py).

Inputs are what the roles read from the host: `nvidia-smi topo -m`, `nvidia-smi -q`, the
GPU facts of library/nvidia_gpu_facts.py, `ansible_facts.packages`, the kernel release.

- qvc_nvidia_topology(topo_text)            -> {"gpus": [...], "links": {"GPU0": {"GPU1": "NV18", ...}}}
- qvc_nvidia_fabric(query_text)             -> [{"gpu": bus id, "state": ..., "status": ...}] (Hopper+)
- qvc_nvidia_nvswitch(topo_text, query_text)-> True on NVSwitch systems (HGX/DGX 8x SXM):
                                               the fabric manager is needed there
- qvc_nvidia_fabric_ready(query_text)       -> True when every GPU's fabric state is Completed/Success
- qvc_nvidia_min_driver(cuda_version)       -> oldest driver of that CUDA toolkit (Linux, no forward compat)
- qvc_nvidia_driver_branch(cuda_version, branches) -> the lowest server branch that satisfies it
- qvc_nvidia_kernel_flavour(kernel_release, distribution_version) -> "generic", "generic-hwe-22.04", ...
- qvc_nvidia_driver_packages(branch, flavour, method)
                                            -> Ubuntu package names for the branch
- qvc_nvidia_hold_list(packages, branch)    -> every installed package of the branch (to dpkg-hold)
- qvc_nvidia_fabricmanager_version_ok(driver_version, package_version) -> exact upstream match
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

# CUDA toolkit -> oldest Linux x86_64 driver (NVIDIA's CUDA release notes, "CUDA Toolkit and
# Corresponding Driver Versions", GA releases). A CUDA 12.x image runs on an older 12.x driver
# only within "minor version compatibility" limits (no newer PTX JIT, some APIs missing) or with
# the forward-compatibility package on datacenter GPUs and datacenter branches: the policy here
# is the full toolkit requirement.
CUDA_MIN_DRIVER = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}
# The most NVLinks one GPU has (H100: 18). A pair bond wider than a GPU could give every peer
# directly means the links go through NVSwitches.
MAX_NVLINKS_PER_GPU = 18
_NO_FABRIC = {"", "n/a", "not supported", "notsupported"}


class NvidiaPolicyError(ValueError):
    """An input the policy cannot decide on."""


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(version)))


def qvc_nvidia_topology(topo_text: str) -> dict[str, Any]:
    """Parse the GPU x GPU matrix of `nvidia-smi topo -m` (tab separated, legend ignored)."""
    lines = [line.rstrip("\n") for line in (topo_text or "").splitlines()]
    header = next((line for line in lines if re.search(r"\tGPU\d+", line) and not line.startswith("GPU")), None)
    if header is None:
        return {"gpus": [], "links": {}}
    columns = [c.strip() for c in header.split("\t")]
    gpu_cols = [(i, c) for i, c in enumerate(columns) if re.fullmatch(r"GPU\d+", c)]
    links: dict[str, dict[str, str]] = {}
    for line in lines:
        cells = line.split("\t")
        name = cells[0].strip()
        if not re.fullmatch(r"GPU\d+", name):
            continue
        links[name] = {col: cells[i].strip() for i, col in gpu_cols if i < len(cells) and col != name}
    return {"gpus": sorted(links, key=lambda g: int(g[3:])), "links": links}


def qvc_nvidia_fabric(query_text: str) -> list[dict[str, str]]:
    """Fabric State/Status of each GPU from `nvidia-smi -q` (Hopper and later print a Fabric section)."""
    out: list[dict[str, str]] = []
    gpu = None
    in_fabric = False
    fabric_indent = 0
    for raw in (query_text or "").splitlines():
        line = raw.rstrip()
        match = re.match(r"^GPU ([0-9A-Fa-f:.]+)\s*$", line)
        if match:
            gpu, in_fabric = match.group(1), False
            continue
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped == "Fabric":
            in_fabric, fabric_indent = True, indent
            out.append({"gpu": gpu or "?", "state": "", "status": ""})
            continue
        if in_fabric:
            if stripped and indent <= fabric_indent:
                in_fabric = False
                continue
            key, _, value = stripped.partition(":")
            key = key.strip().lower()
            if key in ("state", "status") and indent == fabric_indent + 4 and not out[-1][key]:
                out[-1][key] = value.strip()
    return out


def qvc_nvidia_nvswitch(topo_text: str, query_text: str = "") -> bool:
    """True on an NVSwitch system, where nvidia-fabricmanager must run (else CUDA init fails, error 802).

    Evidence, either: a GPU reports an NVLink fabric state (Hopper and later, `nvidia-smi -q`), or
    every GPU pair is NVLink-bonded (`topo -m`) with more links than a GPU could give each peer
    directly (A100 8x SXM: NV12 to 7 peers = 84 > 18). A 4-GPU HGX board (direct NVLink, NV4 /
    NV6 to 3 peers), NVLink-bridged PCIe pairs, and PCIe-only hosts are not NVSwitch systems."""
    if any(f["state"].strip().lower() not in _NO_FABRIC for f in qvc_nvidia_fabric(query_text)):
        return True
    topo = qvc_nvidia_topology(topo_text)
    gpus = topo["gpus"]
    if len(gpus) < 2:
        return False
    widths = []
    for a in gpus:
        for b in gpus:
            if a == b:
                continue
            match = re.fullmatch(r"NV(\d+)", topo["links"][a].get(b, ""))
            if not match:
                return False
            widths.append(int(match.group(1)))
    return min(widths) * (len(gpus) - 1) > MAX_NVLINKS_PER_GPU


def qvc_nvidia_fabric_ready(query_text: str) -> bool:
    """True when every GPU with a fabric section reports State Completed and Status Success."""
    fabric = [f for f in qvc_nvidia_fabric(query_text) if f["state"].strip().lower() not in _NO_FABRIC]
    return bool(fabric) and all(f["state"] == "Completed" and f["status"] == "Success" for f in fabric)


def qvc_nvidia_min_driver(cuda_version: Any) -> str:
    """Oldest driver for a CUDA toolkit version ("12.8" or "12.8.1": the minor decides)."""
    parts = str(cuda_version).strip().split(".")
    key = ".".join(parts[:2])
    if key not in CUDA_MIN_DRIVER:
        raise NvidiaPolicyError(
            f"CUDA {cuda_version!r} is not in the driver table (known: {', '.join(CUDA_MIN_DRIVER)}); "
            "set nvidia_driver_min_version and nvidia_driver_branch explicitly")
    return CUDA_MIN_DRIVER[key]


def qvc_nvidia_driver_branch(cuda_version: Any, branches: Iterable[Any]) -> str:
    """The lowest available server branch whose drivers satisfy the CUDA version."""
    floor = _version_tuple(qvc_nvidia_min_driver(cuda_version))[0]
    fit = sorted(int(b) for b in branches if int(b) >= floor)
    if not fit:
        raise NvidiaPolicyError(
            f"no driver branch in {list(branches)} reaches {qvc_nvidia_min_driver(cuda_version)} (CUDA {cuda_version})")
    return str(fit[0])


def qvc_nvidia_kernel_flavour(kernel_release: str, distribution_version: str = "") -> str:
    """Ubuntu kernel flavour of a release for linux-modules-nvidia-<br>-server-<flavour>.

    "5.15.0-125-generic" -> "generic"; on 22.04 a newer kernel series is the HWE kernel:
    "6.8.0-45-generic" -> "generic-hwe-22.04". Not an Ubuntu release (Debian, a test host): "" (the
    role's defaults are templated on every host; the install path asserts a flavour before using it)."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.\d+-\d+-([a-z0-9-]+)", str(kernel_release).strip())
    if not match:
        return ""
    major, minor, flavour = int(match.group(1)), int(match.group(2)), match.group(3)
    ga = {"22.04": (5, 15), "24.04": (6, 8), "20.04": (5, 4)}.get(str(distribution_version))
    if ga and (major, minor) > ga and flavour == "generic":
        return f"{flavour}-hwe-{distribution_version}"
    return flavour


def qvc_nvidia_driver_packages(branch: Any, flavour: str, method: str = "precompiled") -> list[str]:
    """Ubuntu packages of a server driver branch.

    precompiled: Canonical's signed kernel modules (load under Secure Boot, no compiler, no DKMS)
      linux-modules-nvidia-<br>-server-<flavour>, nvidia-headless-no-dkms-<br>-server, nvidia-utils-<br>-server
    dkms: modules built on the host, so the headers of the running kernel come with them
      linux-headers-<flavour>, nvidia-dkms-<br>-server, nvidia-headless-<br>-server, nvidia-utils-<br>-server"""
    branch = str(branch)
    if flavour == "":  # not an Ubuntu kernel: nothing flavour-bound can be named (install.yml refuses)
        return [f"nvidia-headless-no-dkms-{branch}-server" if method == "precompiled" else f"nvidia-headless-{branch}-server",
                f"nvidia-utils-{branch}-server"]
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", str(flavour)):
        raise NvidiaPolicyError(f"not an Ubuntu kernel flavour: {flavour!r}")
    if method == "precompiled":
        return [f"linux-modules-nvidia-{branch}-server-{flavour}",
                f"nvidia-headless-no-dkms-{branch}-server", f"nvidia-utils-{branch}-server"]
    if method == "dkms":
        return [f"linux-headers-{flavour}", f"nvidia-dkms-{branch}-server",
                f"nvidia-headless-{branch}-server", f"nvidia-utils-{branch}-server"]
    raise NvidiaPolicyError(f"unknown driver install method {method!r} (precompiled | dkms)")


def qvc_nvidia_hold_list(packages: Mapping[str, Any], branch: Any) -> list[str]:
    """Every installed package of the driver branch, for dpkg hold.

    Holding only the metapackages lets `apt upgrade` move the libraries and modules they
    depend on (and Ubuntu turns retired branches into transitional packages that pull the
    next branch): every nvidia/libnvidia/linux-*-nvidia package of the branch is held."""
    branch = re.escape(str(branch))
    pattern = re.compile(
        rf"^(?:(?:lib)?nvidia-[a-z0-9.-]*?-{branch}(?:-server)?(?:-[a-z0-9.+-]+)?"
        rf"|linux-(?:modules|objects|signatures)-nvidia-{branch}-server-[a-z0-9.+-]+"
        rf"|nvidia-fabricmanager-{branch}|libnvidia-nscq-{branch})$")
    return sorted(name for name in (packages or {}) if pattern.match(name))


def qvc_nvidia_fabricmanager_version_ok(driver_version: str, package_version: str) -> bool:
    """The fabric manager must be exactly the driver's version ("570.133.20" vs "570.133.20-1")."""
    upstream = re.sub(r"^\d+:", "", str(package_version)).split("-")[0]
    return bool(driver_version) and upstream == str(driver_version).strip()


class FilterModule:
    def filters(self):
        return {
            "qvc_nvidia_topology": qvc_nvidia_topology,
            "qvc_nvidia_fabric": qvc_nvidia_fabric,
            "qvc_nvidia_nvswitch": qvc_nvidia_nvswitch,
            "qvc_nvidia_fabric_ready": qvc_nvidia_fabric_ready,
            "qvc_nvidia_min_driver": qvc_nvidia_min_driver,
            "qvc_nvidia_driver_branch": qvc_nvidia_driver_branch,
            "qvc_nvidia_kernel_flavour": qvc_nvidia_kernel_flavour,
            "qvc_nvidia_driver_packages": qvc_nvidia_driver_packages,
            "qvc_nvidia_hold_list": qvc_nvidia_hold_list,
            "qvc_nvidia_fabricmanager_version_ok": qvc_nvidia_fabricmanager_version_ok,
        }
