"""Filters shared by the roles: one definition of "the WebUI instances of the fleet".

Every consumer (preflight, the webui role, the nginx_lb upstream, monitoring targets,
the health report, the rolling update) derives instances from the same inventory facts
through `qvc_instances`, so they can never disagree about names, ports or GPUs.
"""
from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

ROLES_DIR = Path(__file__).resolve().parents[1] / "roles"
INSTANCE_PREFIX = "qvc-webui"


@functools.lru_cache(maxsize=None)
def role_defaults(role: str) -> dict[str, Any]:
    """A role's defaults/main.yml: the one home of its defaults, also for hosts whose role defaults are
    out of scope (hostvars of other hosts carry inventory values and facts, never role defaults)."""
    return yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text()) or {}


@functools.lru_cache(maxsize=None)
def _owning_role(name: str) -> str:
    """The role a variable belongs to: the longest role name that prefixes it (nginx_lb_* -> nginx_lb)."""
    roles = sorted((p.name for p in ROLES_DIR.iterdir() if (p / "defaults" / "main.yml").is_file()), key=len,
                   reverse=True)
    for role in roles:
        if name.startswith(role + "_"):
            return role
    raise KeyError(f"no role of this collection owns {name}")


def setting(hv: Mapping[str, Any], name: str) -> Any:
    """A host's value of a cross-role setting: its inventory value, else the owning role's default
    (qvc_* -> roles/qvc, webui_* -> roles/webui, nginx_lb_* -> roles/nginx_lb, ...)."""
    if name in hv:
        return hv[name]
    return role_defaults(_owning_role(name))[name]


DEFAULT_BASE_PORT = role_defaults("webui")["webui_base_port"]


class InstanceSpecError(ValueError):
    """An inventory value that cannot describe a set of instances."""


def _address_source(host: str, hv: Mapping[str, Any]) -> tuple[str, str]:
    """(address, where it came from): qvc_cluster_address, else ansible_host, else the host name."""
    for var in ("qvc_cluster_address", "ansible_host"):
        if hv.get(var):
            return str(hv[var]), var
    return host, "the inventory host name"


def _host_address(host: str, hv: Mapping[str, Any]) -> str:
    return _address_source(host, hv)[0]


def qvc_host_address(hostvars: Mapping[str, Any], host: str | list[str]) -> str | list[str]:
    """The address other cluster hosts use for `host`: qvc_cluster_address, else ansible_host, else its name.

    Given a list of hosts, the list of their addresses (same order)."""
    if isinstance(host, (list, tuple)):
        return [_host_address(h, hostvars[h]) for h in host]
    return _host_address(host, hostvars[host])


def qvc_host_address_source(hostvars: Mapping[str, Any], host: str) -> str:
    """Which inventory value gave `host` its cluster address (for error messages)."""
    return _address_source(host, hostvars[host])[1]


def qvc_is_ipv4(value: Any) -> bool:
    """True for a dotted-quad IPv4 address (what docker publishes on and iptables filters)."""
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def _gpu_list(host: str, hv: Mapping[str, Any]) -> list[str]:
    """GPUs a host serves: the explicit override, else the discovered GPUs (UUIDs; MIG UUIDs on MIG GPUs)."""
    override = hv.get("webui_gpu_ids")
    if override not in (None, "", []):
        if not isinstance(override, (list, tuple)):
            raise InstanceSpecError(f"{host}: webui_gpu_ids must be a list of GPU indices or UUIDs, got {override!r}")
        return [str(g) for g in override]
    # A MIG-enabled GPU serves one instance per MIG device (its MIG UUID), not one for the parent:
    # the parent UUID gives a container every MIG device, or none usable, depending on the runtime.
    out: list[str] = []
    for gpu in hv.get("nvidia_gpus") or []:
        if not isinstance(gpu, Mapping) or not gpu.get("uuid"):
            continue
        migs = [str(m["uuid"]) for m in gpu.get("mig_devices") or [] if isinstance(m, Mapping) and m.get("uuid")]
        out.extend(migs or [str(gpu["uuid"])])
    return out


def host_instances(host: str, hv: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The WebUI instances of one host, in index order."""
    base_port = setting(hv, "webui_base_port")
    try:
        base_port = int(base_port)
    except (TypeError, ValueError):
        raise InstanceSpecError(f"{host}: webui_base_port must be an integer, got {base_port!r}") from None
    gpus = _gpu_list(host, hv)
    if gpus:
        devices = [("cuda", g) for g in gpus]
    else:
        count = setting(hv, "webui_cpu_instances")
        try:
            count = int(count)
        except (TypeError, ValueError):
            raise InstanceSpecError(f"{host}: webui_cpu_instances must be an integer, got {count!r}") from None
        if count < 0:
            raise InstanceSpecError(f"{host}: webui_cpu_instances must be >= 0, got {count}")
        devices = [("cpu", None)] * count
    address = _host_address(host, hv)
    return [
        {
            "host": host,
            "name": f"{INSTANCE_PREFIX}-{i}",
            "id": f"{host}-{i}",
            "index": i,
            "address": address,
            "port": base_port + i,
            "device": device,
            "gpu": gpu,
        }
        for i, (device, gpu) in enumerate(devices)
    ]


def qvc_instances(hostvars: Mapping[str, Any], hosts: Iterable[str]) -> list[dict[str, Any]]:
    """All instances of `hosts` (e.g. groups['gpu_nodes']), host by host."""
    out: list[dict[str, Any]] = []
    for host in hosts or []:
        out.extend(host_instances(host, hostvars[host]))
    return out


def qvc_duplicate_endpoints(instances: Iterable[Mapping[str, Any]]) -> list[str]:
    """address:port pairs claimed by more than one instance."""
    seen: dict[str, int] = {}
    for inst in instances:
        key = f"{inst['address']}:{inst['port']}"
        seen[key] = seen.get(key, 0) + 1
    return sorted(k for k, n in seen.items() if n > 1)


class FilterModule:
    def filters(self):
        return {
            "qvc_instances": qvc_instances,
            "qvc_host_instances": lambda hv, host: host_instances(host, hv),
            "qvc_duplicate_endpoints": qvc_duplicate_endpoints,
            "qvc_host_address": qvc_host_address,
            "qvc_host_address_source": qvc_host_address_source,
            "qvc_is_ipv4": qvc_is_ipv4,
            "qvc_setting": lambda hv, name: setting(hv, name),
        }
