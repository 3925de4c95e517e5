"""Filters of the cluster health report (playbooks/health.yml)."""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

COLUMNS = [
    ("instance", "INSTANCE"), ("host", "HOST"), ("gpu", "GPU"), ("endpoint", "ENDPOINT"),
    ("image", "IMAGE"), ("model", "MODEL"), ("health", "HEALTH"), ("in_flight", "IN-FLIGHT"),
    ("routed", "LB ROUTES"), ("drain", "DRAIN"),
]

_IN_FLIGHT = re.compile(r"^qvc_webui_requests_in_flight(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


def qvc_metric_in_flight(metrics_text: str | None) -> int | None:
    """The exact in-flight gauge from a /metrics body, or None when absent."""
    m = _IN_FLIGHT.search(metrics_text or "")
    return int(float(m.group(1))) if m else None


def qvc_upstream_state(conf_text: str | None, address: str, port: int) -> str:
    """How the LB config lists address:port: 'yes' (routed), 'down' (drained) or 'no' (absent)."""
    pattern = re.compile(rf"^\s*server\s+\[?{re.escape(str(address))}\]?:{int(port)}\b([^;]*);", re.M)
    states = {"down" if re.search(r"\bdown\b", m.group(1)) else "yes" for m in pattern.finditer(conf_text or "")}
    if not states:
        return "no"
    return "down" if "down" in states else "yes"


_SERVER = re.compile(r"^\s*server\s+\[?([^\s\]]+?)\]?:(\d+)\b([^;]*);", re.M)


def qvc_upstream_states(conf_text: str | None) -> dict[str, str]:
    """Every server of the LB config at once: {"address:port": "yes" | "down"} (one pass, so the
    report stays linear in the number of instances; "down" wins when any upstream has it down)."""
    out: dict[str, str] = {}
    for m in _SERVER.finditer(conf_text or ""):
        key = f"{m.group(1)}:{m.group(2)}"
        if re.search(r"\bdown\b", m.group(3)):
            out[key] = "down"
        else:
            out.setdefault(key, "yes")
    return out


def qvc_health_probes(instances: Iterable[Mapping[str, Any]], containers: Iterable[Mapping[str, Any]],
                      health: Iterable[Mapping[str, Any]], metrics: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """One host's probe results (three registered loops over `instances`, same order) as
    {instance id: {image, health, model, in_flight}}."""
    out: dict[str, dict] = {}
    for inst, c, h, m in zip(instances, containers, health, metrics):
        container = c.get("container") or {}
        body = h.get("json") if isinstance(h.get("json"), Mapping) else {}
        out[inst["id"]] = {
            "image": (container.get("Config") or {}).get("Image", "absent") if container else "absent",
            "health": body.get("status") or ("unreachable" if not h.get("status") or h.get("status", -1) < 0
                                             else f"http {h.get('status')}"),
            "model": body.get("model", "-"),
            "in_flight": qvc_metric_in_flight(m.get("content")),
        }
    return out


def qvc_health_rows(instances: Iterable[Mapping[str, Any]], hostvars: Mapping[str, Any],
                    conf_text: str | None, probes_var: str = "_health_probes") -> list[dict]:
    """The report's rows: every instance of the fleet with its host's probe results (hostvars[host]
    [probes_var], from qvc_health_probes), how the LB config routes it and its recorded drain.
    Linear in the number of instances."""
    states = qvc_upstream_states(conf_text)
    rows = []
    for inst in instances:
        probe = (hostvars.get(inst["host"]) or {}).get(probes_var) or {}
        p = probe.get(inst["id"]) or {}
        addr = str(inst["address"])
        rows.append({
            "instance": inst["id"],
            "host": inst["host"],
            "gpu": inst["gpu"] if inst.get("gpu") is not None else "cpu",
            "endpoint": f"{addr}:{inst['port']}",
            "image": p.get("image", "?"),
            "model": p.get("model", "-"),
            "health": p.get("health", "not probed"),
            "in_flight": p.get("in_flight"),
            "routed": states.get(f"{addr}:{int(inst['port'])}", "no"),
            "drain": "hold" if inst.get("held") else ("drain" if inst.get("drained") else "-"),
        })
    return rows


def qvc_row_healthy(row: Mapping[str, Any]) -> bool:
    return row.get("health") == "ok" and row.get("routed") == "yes"


def qvc_unhealthy(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if not qvc_row_healthy(r)]


def qvc_health_table(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Rows as aligned text lines (header first); unhealthy rows are marked with '!'."""
    rows = list(rows)
    cells = [[str(r.get(key, "") if r.get(key) is not None else "-") for key, _ in COLUMNS] for r in rows]
    widths = [max([len(title)] + [len(c[i]) for c in cells]) for i, (_, title) in enumerate(COLUMNS)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = ["  " + fmt.format(*[t for _, t in COLUMNS])]
    for row, c in zip(rows, cells):
        lines.append(("  " if qvc_row_healthy(row) else "! ") + fmt.format(*c))
    bad = len(qvc_unhealthy(rows))
    lines.append(f"{len(rows)} instance(s), {bad} unhealthy or not routed")
    return lines


class FilterModule:
    def filters(self):
        return {
            "qvc_metric_in_flight": qvc_metric_in_flight,
            "qvc_upstream_state": qvc_upstream_state,
            "qvc_upstream_states": qvc_upstream_states,
            "qvc_health_probes": qvc_health_probes,
            "qvc_health_rows": qvc_health_rows,
            "qvc_unhealthy": qvc_unhealthy,
            "qvc_health_table": qvc_health_table,
        }
