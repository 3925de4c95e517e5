#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the qvc project contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: drain WebUI instances of this host (marker files) and wait until idle, or put them back."""

from __future__ import absolute_import, annotations, division, print_function

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: qvc_instance_drain
short_description: Drain WebUI instances through their control directory and wait until idle, or put them back
description:
  - The recorded drain of an instance is a marker file, I(state_dir)/<name>/drain (plus C(hold) for an
    operator's drain, which outlives replacements). The directory is mounted read-only into the
    instance at C(/run/qvc-control); with C(drain) present the instance answers new work 503 before
    starting it (nginx passes the request to another instance) and finishes what it has.
  - C(state=down) creates the directories and markers of every instance, then (with I(wait)) polls
    every instance's C(/metrics) at once until its C(qvc_webui_requests_in_flight) gauge reads 0 (an
    instance that does not answer has nothing in flight).
  - C(state=up) removes the C(drain) marker of every instance that is not held; a held instance stays
    drained unless I(hold) is true, which lifts the hold too.
  - One call handles all of the host's instances (one round trip, the waits overlap), so a wave's cost
    does not grow with the number of instances it replaces on a host.
  - Supports check mode (reports what it would change, writes nothing, does not wait).
version_added: "1.1.0"
author:
  - qvc project
options:
  state_dir:
    description: Directory that holds one control directory per instance.
    type: path
    required: true
  instances:
    description: The instances, as the qvc_host_instances filter returns them (name, id, address, port).
    type: list
    elements: dict
    required: true
  state:
    description: V(down) drains, V(up) puts back.
    type: str
    choices: [down, up]
    required: true
  hold:
    description: With V(down), also record an operator's hold; with V(up), lift holds too.
    type: bool
    default: false
  wait:
    description: With V(down), wait until no request is in flight on any of the instances.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for in-flight 0.
    type: float
    default: 300
  poll:
    description: Seconds between two looks at the in-flight gauges.
    type: float
    default: 2
  must_finish:
    description: Fail when an instance still has requests in flight after I(timeout) (it stays drained).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Drain two instances and wait until they are idle
  qvc_instance_drain:
    state_dir: /var/lib/qvc-webui
    instances: "{{ _webui_instances }}"
    state: down
"""

RETURN = r"""
drained:
  description: Ids whose drain marker this call created.
  type: list
  returned: always
lifted:
  description: Ids whose drain marker this call removed (state=up).
  type: list
  returned: always
held:
  description: Ids left drained because of an operator's hold (state=up without hold).
  type: list
  returned: always
in_flight:
  description: Last in-flight reading per id (null when the instance did not answer or has no gauge).
  type: dict
  returned: when state=down and wait
waited_s:
  description: Seconds spent waiting for in-flight 0.
  type: float
  returned: when state=down and wait
"""

_IN_FLIGHT = re.compile(r"^qvc_webui_requests_in_flight(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


def in_flight(address, port, timeout=5.0):
    """The instance's in-flight gauge; None when it does not answer 200 or has no gauge."""
    host = "[%s]" % address if ":" in str(address) else address
    try:
        resp = open_url("http://%s:%d/metrics" % (host, int(port)), timeout=timeout, validate_certs=False)
        if resp.getcode() != 200:
            return None
        m = _IN_FLIGHT.search(resp.read().decode("utf-8", "replace"))
    except Exception:  # pylint: disable=broad-except  # not answering = nothing in flight
        return None
    return int(float(m.group(1))) if m else None


def wait_idle(instances, timeout, poll, probe=in_flight, clock=time.monotonic, sleep=time.sleep):
    """Poll every instance at once until each reads 0/None or the timeout passes: ({id: last}, seconds)."""
    start = clock()
    last = {}
    pending = list(instances)
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(pending)))) as pool:
        while pending:
            readings = list(pool.map(lambda i: probe(i["address"], i["port"]), pending))
            for inst, n in zip(pending, readings):
                last[inst["id"]] = n
            pending = [i for i, n in zip(pending, readings) if n not in (0, None)]
            if not pending or clock() - start >= timeout:
                break
            sleep(max(0.0, min(poll, timeout - (clock() - start))))
    return last, round(clock() - start, 2)


def plan(state_dir, instances, state, hold):
    """Which marker files to create / remove: (create, remove, drained ids, lifted ids, held ids)."""
    create, remove, drained, lifted, held = [], [], [], [], []
    for inst in instances:
        d = os.path.join(state_dir, inst["name"])
        drain, holdf = os.path.join(d, "drain"), os.path.join(d, "hold")
        if state == "down":
            wanted = [drain, holdf] if hold else [drain]
            missing = [p for p in wanted if not os.path.exists(p)]
            create += missing
            if drain in missing:
                drained.append(inst["id"])
        elif os.path.exists(holdf) and not hold:
            held.append(inst["id"])
        else:
            gone = [p for p in (holdf, drain) if os.path.exists(p)]
            remove += gone
            if drain in gone:
                lifted.append(inst["id"])
    return create, remove, drained, lifted, held


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state_dir=dict(type="path", required=True),
            instances=dict(type="list", elements="dict", required=True),
            state=dict(type="str", choices=["down", "up"], required=True),
            hold=dict(type="bool", default=False),
            wait=dict(type="bool", default=True),
            timeout=dict(type="float", default=300),
            poll=dict(type="float", default=2),
            must_finish=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for inst in p["instances"]:
        missing = [k for k in ("name", "id", "address", "port") if k not in inst]
        if missing or "/" in str(inst.get("name", "")):
            module.fail_json(msg="qvc_instance_drain: each instance needs name (no '/'), id, address and port; got %r"
                             % (inst,))
    create, remove, drained, lifted, held = plan(p["state_dir"], p["instances"], p["state"], p["hold"])
    result = dict(changed=bool(create or remove), drained=drained, lifted=lifted, held=held)
    if module.check_mode:
        module.exit_json(**result)
    for path in create:
        d = os.path.dirname(path)
        if not os.path.isdir(d):
            os.makedirs(d, 0o755)
            os.chmod(d, 0o755)
        with open(path, "w"):
            pass
        os.chmod(path, 0o644)
    for path in remove:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    if p["state"] == "down" and p["wait"]:
        last, waited = wait_idle(p["instances"], p["timeout"], p["poll"])
        result.update(in_flight=last, waited_s=waited)
        busy = {k: v for k, v in last.items() if v not in (0, None)}
        if busy and p["must_finish"]:
            module.fail_json(msg="qvc_instance_drain: still in flight after %ss (they stay drained): %s"
                             % (p["timeout"], ", ".join("%s=%s" % kv for kv in sorted(busy.items()))), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
