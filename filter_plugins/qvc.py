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
    value = role_defaults(_owning_role(name))[name]
    if isinstance(value, str) and "{{" in value:
        # a filter's result is not templated again: a templated default must be read where its role is in scope
        raise ValueError(f"qvc_setting: the default of {name} is a template ({value}); it cannot be read from here")
    return value


DEFAULT_BASE_PORT = role_defaults("webui")["webui_base_port"]


class InstanceSpecError(ValueError):
    """An inventory value that cannot describe a set of instances."""


class DiscoveryError(InstanceSpecError):
    """A host's GPUs are unknown (discovery failed or never ran): its instances cannot be computed."""


# nvidia_gpu_facts statuses (library/nvidia_gpu_facts.py) that mean "this host has no usable GPU",
# as opposed to "we could not find out" (error).
_NO_GPU_STATUSES = ("no_driver", "no_gpu")


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


def _gpu_list(host: str, hv: Mapping[str, Any], strict: bool = False) -> list[str]:
    """GPUs a host serves: the explicit override, else the GPUs of a *successful* discovery.

    A failed discovery (nvidia_gpu_status == error, e.g. "Driver/library version mismatch") never
    reads as "no GPUs": it raises DiscoveryError naming the host and nvidia-smi's message, so no
    caller can compute an empty instance list from it and remove running instances. With
    strict=True, a host with neither an explicit setting (webui_gpu_ids, webui_cpu_instances) nor
    discovery facts raises too (a host outside --limit whose facts were not loaded)."""
    override = hv.get("webui_gpu_ids")
    if override not in (None, "", []):
        if not isinstance(override, (list, tuple)):
            raise InstanceSpecError(f"{host}: webui_gpu_ids must be a list of GPU indices or UUIDs, got {override!r}")
        return [str(g) for g in override]
    status = hv.get("nvidia_gpu_status")
    gpus = hv.get("nvidia_gpus") or []
    if status is None and gpus:
        status = "ok"  # GPU facts without a status (older fact caches): a GPU list is a success
    if status is None:
        if strict and hv.get("webui_cpu_instances") is None:
            raise DiscoveryError(
                f"{host}: its GPUs are unknown (no nvidia_gpu_facts result: the host was not discovered in this "
                f"run, e.g. outside --limit); set webui_gpu_ids / webui_cpu_instances or run the discovery on it")
        return []
    if status in _NO_GPU_STATUSES:
        return []
    if status != "ok":
        raise DiscoveryError(
            f"{host}: GPU discovery failed (nvidia_gpu_status={status}): "
            f"{hv.get('nvidia_gpu_message') or 'no message'}; its instances are left as they are "
            f"(fix the driver, or pin webui_gpu_ids)")
    # A MIG-enabled GPU serves one instance per MIG device (its MIG UUID), not one for the parent:
    # the parent UUID gives a container every MIG device, or none usable, depending on the runtime.
    out: list[str] = []
    for gpu in gpus:
        if not isinstance(gpu, Mapping) or not gpu.get("uuid"):
            continue
        migs = [str(m["uuid"]) for m in gpu.get("mig_devices") or [] if isinstance(m, Mapping) and m.get("uuid")]
        out.extend(migs or [str(gpu["uuid"])])
    return out


def qvc_discovery_error(hostvars: Mapping[str, Any], host: str, strict: bool = True) -> str:
    """'' when `host`'s instances can be computed, else the reason (host, status, nvidia-smi's message)."""
    try:
        _gpu_list(host, hostvars[host], strict=strict)
    except DiscoveryError as exc:
        return str(exc)
    return ""


def host_instances(host: str, hv: Mapping[str, Any], strict: bool = False) -> list[dict[str, Any]]:
    """The WebUI instances of one host, in index order.

    drained/held come from the host's recorded drain markers (fact qvc_instance_drains:
    {instance name: "drain" | "hold"}, read by playbooks/tasks/discover.yml)."""
    base_port = setting(hv, "webui_base_port")
    try:
        base_port = int(base_port)
    except (TypeError, ValueError):
        raise InstanceSpecError(f"{host}: webui_base_port must be an integer, got {base_port!r}") from None
    gpus = _gpu_list(host, hv, strict=strict)
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
    drains = hv.get("qvc_instance_drains") or {}
    if not isinstance(drains, Mapping):
        drains = {}
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
            "drained": f"{INSTANCE_PREFIX}-{i}" in drains,
            "held": drains.get(f"{INSTANCE_PREFIX}-{i}") == "hold",
        }
        for i, (device, gpu) in enumerate(devices)
    ]


def qvc_instances(hostvars: Mapping[str, Any], hosts: Iterable[str], strict: bool = False,
                  skip_unknown: bool = False) -> list[dict[str, Any]]:
    """All instances of `hosts` (e.g. groups['gpu_nodes']), host by host.

    strict=True (load balancer upstreams, the health report): every host must have an explicit
    setting or discovery facts; consumers that must cover the whole fleet use it. skip_unknown=True
    leaves out hosts whose GPUs are unknown instead of raising (the size of the fleet for the
    capacity budget, where a failed host simply does not take part)."""
    out: list[dict[str, Any]] = []
    for host in hosts or []:
        try:
            out.extend(host_instances(host, hostvars[host], strict=strict or skip_unknown))
        except DiscoveryError:
            if not skip_unknown:
                raise
    return out


def qvc_max_unavailable(spec: Any, total: int, cap_percent: int = 25) -> int:
    """The fleet-wide capacity budget: how many of `total` instances may be out at once.

    spec: a count (2) or a percentage ("10%") of the fleet's instances (rounded down, at least 1).
    More than cap_percent % of the fleet (at least 1 instance) is refused with a clear error."""
    total = int(total)
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            value = max(1, int(total * pct // 100))
        else:
            value = int(text)
            if value < 1:
                raise ValueError
    except ValueError:
        raise InstanceSpecError(
            f"webui_max_unavailable must be a count >= 1 or a percentage like '10%', got {spec!r}") from None
    cap = max(1, int(total * cap_percent // 100))
    if value > cap:
        raise InstanceSpecError(
            f"webui_max_unavailable={spec!r} allows {value} of {total} instances out at once; at most "
            f"{cap_percent}% ({cap}) is allowed")
    return value


def qvc_replacement_waves(pending: Iterable[Mapping[str, Any]], budget: int,
                          out: Iterable[str] = (), held: Iterable[str] = ()) -> list[list[str]]:
    """Split the instances to replace into waves that keep at most `budget` instances out at once.

    pending: the instances (dicts with id, host, index) whose container must be replaced.
    out: ids already out of service (drained); replacing one of them costs no capacity, so they all
    go in the first wave. held: ids drained by the operator; they stay out after their replacement
    and keep using capacity. In-service instances are interleaved across hosts (index 0 of every
    host first) so every wave spreads over as many hosts as possible. Returns lists of ids.
    Raises when in-service instances are pending and the drained ones use up the whole budget."""
    pending = list(pending)
    out = set(out)
    held = set(held) & out
    budget = int(budget)
    hosts_order: dict[str, int] = {}
    for inst in pending:
        hosts_order.setdefault(inst["host"], len(hosts_order))
    free = [i["id"] for i in pending if i["id"] in out]
    busy = sorted((i for i in pending if i["id"] not in out),
                  key=lambda i: (int(i.get("index", 0)), hosts_order[i["host"]]))
    busy_ids = [i["id"] for i in busy]
    pending_ids = {i["id"] for i in pending}
    first_cap = budget - len(out)
    # after the first wave, the replaced drained instances are back (unless held)
    later_cap = budget - len(held | (out - pending_ids))
    if busy_ids and max(first_cap, later_cap) <= 0:
        raise InstanceSpecError(
            f"the capacity budget (webui_max_unavailable={budget}) is used up by drained instances "
            f"({', '.join(sorted(out))}): lift their drain or raise the budget to replace "
            f"{len(busy_ids)} more instance(s)")
    waves: list[list[str]] = []
    first = free + busy_ids[:max(first_cap, 0)]
    rest = busy_ids[max(first_cap, 0):]
    if first:
        waves.append(first)
    step = max(later_cap, 1) if rest else 1
    for start in range(0, len(rest), step):
        waves.append(rest[start:start + step])
    return waves


def qvc_running_instances(containers: Iterable[Mapping[str, Any]], host: str,
                          drains: Mapping[str, str] | None = None,
                          label: str = "io.qvc.role", label_value: str = "webui") -> list[dict[str, Any]]:
    """The WebUI instances a host runs now, from its running containers (docker_host_info with
    verbose_output: the API's container summaries): those labelled `label`=`label_value`, with id
    (label io.qvc.instance), container name, the published address:port, and drained/held from the
    host's drain markers (qvc_drain_markers). Needs no GPU discovery (the base stage runs before it)."""
    drains = drains if isinstance(drains, Mapping) else {}
    out: list[dict[str, Any]] = []
    for c in containers or []:
        labels = c.get("Labels") or {}
        if labels.get(label) != label_value:
            continue
        state = c.get("State")
        if state is not None and state != "running":
            continue
        names = [str(n).lstrip("/") for n in c.get("Names") or [] if n]
        name = names[0] if names else str(c.get("Id", ""))[:12]
        ports = sorted((p for p in c.get("Ports") or [] if p.get("PublicPort") and p.get("Type", "tcp") == "tcp"),
                       key=lambda p: (":" in str(p.get("IP", "")), int(p["PublicPort"])))
        port = ports[0] if ports else {}
        address = str(port.get("IP") or "")
        if address in ("", "0.0.0.0", "::"):
            address = "127.0.0.1"  # published on every address: the host reaches it on loopback
        out.append({
            "host": host,
            "name": name,
            "id": labels.get("io.qvc.instance") or f"{host}:{name}",
            "address": address,
            "port": int(port["PublicPort"]) if port else None,
            "drained": name in drains,
            "held": drains.get(name) == "hold",
        })
    return sorted(out, key=lambda i: i["name"])


def qvc_host_waves(hosts: Iterable[Any] | Mapping[str, int], budget: int, out: int = 0,
                   allow_beyond: bool = False, step: str = "this step",
                   var: str = "webui_host_steps_beyond_budget") -> dict[str, Any]:
    """Group the hosts that need a disruptive host step (a Docker restart, a driver reboot) into waves
    that keep at most `budget` instances out of service at once, fleet-wide.

    hosts: [{host, instances}] (or {host: instances}) in inventory order; `instances` is how many
    in-service instances the step takes out on that host (its running instances that are not drained
    already). out: instances of the fleet already drained: they count against the budget for the whole
    run (the step does not put them back). Hosts with no instance cost nothing and go in the first wave.
    A host that alone needs more than the budget left is refused (named in `refused`, with the message
    its play fails with, before anything changes on it) unless allow_beyond: it then runs alone in a
    wave of its own. Returns {waves: [[host, ...], ...], refused: {host: message}, budget, out}."""
    if isinstance(hosts, Mapping):
        items = [{"host": h, "instances": n} for h, n in hosts.items()]
    else:
        items = [dict(h) for h in hosts or []]
    budget = int(budget)
    out = max(int(out), 0)
    cap = budget - out
    refused: dict[str, str] = {}
    waves: list[list[str]] = []
    load: list[int] = []
    solo: list[bool] = []
    free: list[str] = []
    for item in items:
        host, cost = str(item["host"]), int(item.get("instances") or 0)
        if cost < 0:
            raise InstanceSpecError(f"{host}: a host cannot run {cost} instances")
        if cost == 0:
            free.append(host)
            continue
        if cost > cap:
            if not allow_beyond:
                drained = f", {out} already drained in the fleet" if out else ""
                refused[host] = (
                    f"{host} runs {cost} instance(s); {step} would take them all out at once, more than the capacity "
                    f"budget of {max(cap, 0)} instance(s) (webui_max_unavailable={budget}{drained}). Nothing was "
                    f"changed on {host}. Set {var}: true to run it anyway (alone in its wave), or raise "
                    f"webui_max_unavailable")
                continue
            waves.append([host])
            load.append(cost)
            solo.append(True)
            continue
        for k, used in enumerate(load):
            if not solo[k] and used + cost <= cap:
                waves[k].append(host)
                load[k] += cost
                break
        else:
            waves.append([host])
            load.append(cost)
            solo.append(False)
    if free:
        if waves:
            waves[0] = free + waves[0]
        else:
            waves.append(free)
    return {"waves": waves, "refused": refused, "budget": budget, "out": out}


def qvc_duplicate_endpoints(instances: Iterable[Mapping[str, Any]]) -> list[str]:
    """address:port pairs claimed by more than one instance."""
    seen: dict[str, int] = {}
    for inst in instances:
        key = f"{inst['address']}:{inst['port']}"
        seen[key] = seen.get(key, 0) + 1
    return sorted(k for k, n in seen.items() if n > 1)


def qvc_drain_markers(files: Iterable[Any]) -> dict[str, str]:
    """{instance name: "drain" | "hold"} from the marker files <state_dir>/<name>/{drain,hold}
    (find results, or plain paths). "hold" (an operator's drain) wins over "drain"."""
    out: dict[str, str] = {}
    for f in files or []:
        path = str(f.get("path", "") if isinstance(f, Mapping) else f).rstrip("/")
        parts = path.split("/")
        if len(parts) < 2 or parts[-1] not in ("drain", "hold") or not parts[-2]:
            continue
        name, kind = parts[-2], parts[-1]
        if out.get(name) != "hold":
            out[name] = kind
    return out


class FilterModule:
    def filters(self):
        return {
            "qvc_instances": qvc_instances,
            "qvc_host_instances": lambda hv, host, strict=False: host_instances(host, hv, strict=strict),
            "qvc_discovery_error": qvc_discovery_error,
            "qvc_drain_markers": qvc_drain_markers,
            # host | qvc_discovery_error_of(hostvars): the same, for map() over host names
            "qvc_discovery_error_of": lambda host, hv, strict=True: qvc_discovery_error(hv, host, strict=strict),
            "qvc_max_unavailable": qvc_max_unavailable,
            "qvc_replacement_waves": qvc_replacement_waves,
            "qvc_host_waves": qvc_host_waves,
            "qvc_running_instances": qvc_running_instances,
            "qvc_duplicate_endpoints": qvc_duplicate_endpoints,
            "qvc_host_address": qvc_host_address,
            "qvc_host_address_source": qvc_host_address_source,
            "qvc_is_ipv4": qvc_is_ipv4,
            "qvc_setting": lambda hv, name: setting(hv, name),
        }
