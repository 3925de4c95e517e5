"""Preflight's cross-host rules and its look-alike variable check, as filters.

Each rule returns problems as plain sentences that name the host(s) and the variable(s) to fix
(and, for rules that depend on another setting, the setting that made them apply). The preflight
role prints them all at once and stops before anything changes. Values a host does not set come
from the owning role's defaults (qvc.setting), never from a copy of them here.
"""
from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml


def _load_sibling(name: str):
    """Import a sibling plugin file: Ansible loads filter plugins by path, not from sys.path."""
    spec = importlib.util.spec_from_file_location(f"_qvc_plugin_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_qvc = _load_sibling("qvc")
ROLES_DIR, InstanceSpecError, DiscoveryError, host_instances = (
    _qvc.ROLES_DIR, _qvc.InstanceSpecError, _qvc.DiscoveryError, _qvc.host_instances)
qvc_host_address, qvc_host_address_source, qvc_is_ipv4, setting = (
    _qvc.qvc_host_address, _qvc.qvc_host_address_source, _qvc.qvc_is_ipv4, _qvc.setting)

MAX_PORT = 65535
MIN_INSTANCE_PORT = 1024
# Documentation domains (RFC 2606/6761 and ".internal" in the shipped example): an image name on one of
# them is the example's placeholder, not a registry of the operator's.
_PLACEHOLDER_REGISTRY = re.compile(r"^[^/]*\bexample\.(com|net|org|internal)(:\d+)?/")
# Variable prefixes this collection owns: an inventory variable with one of them that no role declares
# is a typo or a leftover.
_OWNED_PREFIXES = ("qvc_", "webui_", "nginx_lb_", "lb_ha_", "docker_", "nvidia_", "nfs_", "monitoring_",
                   "common_", "preflight_")


def _groups(groups: Mapping[str, Iterable[str]], name: str) -> list[str]:
    return list(groups.get(name) or [])


def _port(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _listen_port(value: Any) -> int | None:
    """Port of a listen address such as '0.0.0.0:9090', '127.0.0.1:8090' or a bare port."""
    return _port(str(value).rsplit(":", 1)[-1])


def reserved_ports(hostvars: Mapping[str, Any], host: str, groups: Mapping[str, Iterable[str]]) -> dict[int, str]:
    """Ports another service of the cluster listens on at `host`, taken from the configuration
    (role defaults unless the inventory sets them): port -> what and which variable."""
    hv = hostvars[host]
    out: dict[int, str] = {}

    def add(port: Any, why: str) -> None:
        p = _port(port)
        if p is not None:
            out.setdefault(p, why)

    add(hv.get("ansible_port", 22), "ssh (ansible_port)")
    add(setting(hv, "monitoring_node_exporter_port"), "the node exporter (monitoring_node_exporter_port)")
    if host in _groups(groups, "nfs_server"):
        add(2049, "the NFS server")
        add(111, "rpcbind (NFS server)")
    if host in _groups(groups, "lb"):
        add(setting(hv, "nginx_lb_http_port"), "the load balancer (nginx_lb_http_port)")
        add(setting(hv, "nginx_lb_https_port"), "the load balancer (nginx_lb_https_port)")
        add(_listen_port(setting(hv, "nginx_lb_status_listen")), "nginx's status page (nginx_lb_status_listen)")
        add(setting(hv, "monitoring_nginx_exporter_port"), "the nginx exporter (monitoring_nginx_exporter_port)")
    if host in _groups(groups, "monitoring"):
        add(_listen_port(setting(hv, "monitoring_prometheus_listen_address")),
            "Prometheus (monitoring_prometheus_listen_address)")
    if host in _groups(groups, "gpu_nodes") and not _truthy(setting(hv, "qvc_cpu_only")):
        add(setting(hv, "monitoring_dcgm_exporter_port"), "the DCGM exporter (monitoring_dcgm_exporter_port)")
    for p in setting(hv, "preflight_reserved_ports") or []:
        add(p, "preflight_reserved_ports")
    return out


def _hosts_phrase(hosts: list[str], shown: int = 5) -> str:
    more = len(hosts) - shown
    return ", ".join(hosts[:shown]) + (f" and {more} more" if more > 0 else "")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _instance_problems(hostvars, host, groups) -> tuple[list[str], list[dict[str, Any]]]:
    hv = hostvars[host]
    problems: list[str] = []
    gpu_ids = hv.get("webui_gpu_ids")
    if isinstance(gpu_ids, (list, tuple)):
        seen: set[str] = set()
        for gid in gpu_ids:
            if str(gid) in seen:
                problems.append(f"{host}: webui_gpu_ids lists GPU {gid} more than once ({list(gpu_ids)}); "
                                "each GPU runs one instance")
            seen.add(str(gid))
    try:
        instances = host_instances(host, hv)
    except DiscoveryError:
        # a failed discovery in the fact cache: the GPU stage discovers again and fails that host itself
        instances = []
    except InstanceSpecError as exc:
        return problems + [str(exc)], []
    address = qvc_host_address(hostvars, host)
    if not qvc_is_ipv4(address):
        source = qvc_host_address_source(hostvars, host)
        problems.append(
            f"{host}: the cluster address must be an IPv4 address, because the instance ports are published on it "
            f"(docker) and firewalled with iptables; got '{address}' from {source}. Set qvc_cluster_address to the "
            "host's IPv4 address on the cluster network.")
    base = setting(hv, "webui_base_port")
    ports = [i["port"] for i in instances]
    if not MIN_INSTANCE_PORT <= int(base) <= MAX_PORT:
        problems.append(f"{host}: webui_base_port={base} must be between {MIN_INSTANCE_PORT} and {MAX_PORT}")
    elif ports and ports[-1] > MAX_PORT:
        problems.append(f"{host}: webui_base_port={base} with {len(ports)} instances needs ports up to {ports[-1]}, "
                        f"past {MAX_PORT}; lower webui_base_port")
    reserved = reserved_ports(hostvars, host, groups)
    clashes = [f"{p} = {reserved[p]}" for p in ports if p in reserved]
    if clashes:
        problems.append(f"{host}: webui_base_port={base} gives instance ports {', '.join(map(str, ports))}, which "
                        f"collide with ports this host already uses: {'; '.join(clashes)}")
    if (_truthy(setting(hv, "qvc_cpu_only")) and not gpu_ids and int(setting(hv, "webui_cpu_instances")) == 0
            and _truthy(setting(hv, "preflight_require_instances"))):
        problems.append(f"{host} is in gpu_nodes and marked qvc_cpu_only with webui_cpu_instances=0 and no "
                        "webui_gpu_ids: it would serve nothing (set webui_cpu_instances)")
    return problems, instances


def qvc_preflight_problems(hostvars: Mapping[str, Any], groups: Mapping[str, Iterable[str]],
                           instance_group: str = "gpu_nodes", nfs_group: str = "nfs_server",
                           lb_group: str = "lb") -> list[str]:
    """Every cross-field and cross-host problem of the inventory, as sentences naming host and variable."""
    problems: list[str] = []
    gpu_hosts = _groups(groups, instance_group)

    nfs_users = [h for h in gpu_hosts if setting(hostvars[h], "qvc_storage_backend") == "nfs"]
    if nfs_users and not _groups(groups, nfs_group):
        origin = "set in the inventory" if any("qvc_storage_backend" in hostvars[h] for h in nfs_users) else "the default"
        problems.append(f"inventory group '{nfs_group}' is missing or empty; it is required because "
                        f"qvc_storage_backend is 'nfs' ({origin}) on {_hosts_phrase(nfs_users)}; add the NFS "
                        f"server host to '{nfs_group}' or set qvc_storage_backend: local")

    claimed: dict[str, list[str]] = {}
    for host in gpu_hosts:
        host_problems, instances = _instance_problems(hostvars, host, groups)
        problems.extend(host_problems)
        for inst in instances:
            claimed.setdefault(f"{inst['address']}:{inst['port']}", []).append(f"{host} ({inst['name']})")
    for endpoint, owners in sorted(claimed.items()):
        if len(owners) > 1:
            problems.append(f"several instances would listen on {endpoint}: {', '.join(owners)}; give each host its "
                            "own qvc_cluster_address/ansible_host or distinct webui_base_port values")

    placeholder = [h for h in gpu_hosts if _PLACEHOLDER_REGISTRY.match(str(setting(hostvars[h], "webui_image_name")))]
    if placeholder:
        image = setting(hostvars[placeholder[0]], "webui_image_name")
        problems.append(f"{_hosts_phrase(placeholder)}: webui_image_name '{image}' is the example's placeholder "
                        "registry; push the image (webui/build-image.sh) to your registry and set webui_image_name "
                        "to it, or use webui_image_source: archive")

    lbs = _groups(groups, lb_group)
    vip_hosts = [h for h in lbs if str(hostvars[h].get("lb_ha_vip") or "")]
    if vip_hosts and len(lbs) < 2:
        problems.append(f"{vip_hosts[0]}: lb_ha_vip is set ({hostvars[vip_hosts[0]]['lb_ha_vip']}) but group "
                        f"'{lb_group}' has {len(lbs)} host ({', '.join(lbs)}); keepalived needs two or more load "
                        "balancers: add one or leave lb_ha_vip empty")
    return problems


def _module_facts(path: Path) -> set[str]:
    """Fact names a module of library/ documents under RETURN: ansible_facts.contains."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RETURN" for t in node.targets):
            doc = yaml.safe_load(ast.literal_eval(node.value)) or {}
            return set(((doc.get("ansible_facts") or {}).get("contains") or {}))
    return set()


@functools.lru_cache(maxsize=None)
def known_variables() -> frozenset[str]:
    """Every variable a role of this collection declares (all argument-spec entry points), plus the facts
    its modules set (they sit beside inventory variables in hostvars)."""
    names: set[str] = set()
    for spec_file in ROLES_DIR.glob("*/meta/argument_specs.yml"):
        specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs") or {}
        for entry in specs.values():
            names.update((entry or {}).get("options") or {})
    for module in (ROLES_DIR.parent / "library").glob("*.py"):
        names.update(_module_facts(module))
    return frozenset(names)


def qvc_unknown_variables(host_vars: Mapping[str, Any], extra_known: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Variables of a host that carry one of this collection's prefixes but that no role declares, each with
    the closest declared name (None when nothing is close): typos such as webui_gpu_id, or leftovers."""
    known = known_variables() | set(extra_known)
    out = []
    for name in sorted(host_vars):
        if name.startswith("_") or not name.startswith(_OWNED_PREFIXES) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        out.append({"var": name, "suggestion": close[0] if close else None})
    return out


class FilterModule:
    def filters(self):
        return {
            "qvc_preflight_problems": qvc_preflight_problems,
            "qvc_unknown_variables": qvc_unknown_variables,
            "qvc_reserved_ports": lambda hostvars, host, groups: reserved_ports(hostvars, host, groups),
        }
