#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the qvc project contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: wait until every given WebUI instance answers /healthz with 200 (all at once, bounded)."""

from __future__ import absolute_import, annotations, division, print_function

import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: qvc_instance_health
short_description: Wait until WebUI instances answer /healthz with 200, all of them at once
description:
  - Probes C(http://<address>:<port>/healthz) of every instance every I(poll) seconds, all instances
    at once, until each answered 200 or I(timeout) passed. One call per host: the wait for 8 new
    instances costs what the wait for the slowest one costs, with no round trip per probe.
  - Fails naming every instance that is not healthy, with its last status and answer (a draining
    instance answers 503 C(draining), a loading one 503 C(loading), a stopped one does not answer).
  - Read-only; in check mode it does not wait.
version_added: "1.1.0"
author:
  - qvc project
options:
  instances:
    description: The instances, as the qvc_host_instances filter returns them (id, address, port).
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds to wait in all.
    type: float
    default: 600
  poll:
    description: Seconds between two probes of an instance that is not healthy yet.
    type: float
    default: 1
  probe_timeout:
    description: Seconds one probe may take.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Wait for the new instances
  qvc_instance_health:
    instances: "{{ _webui_targets }}"
    timeout: 600
"""

RETURN = r"""
health:
  description: Per instance id, the last probe - status (HTTP status, or null when it did not answer) and detail.
  type: dict
  returned: always
waited_s:
  description: Seconds until every instance was healthy (or the timeout).
  type: float
  returned: always
"""


def probe(address, port, timeout):
    """(status, detail) of one /healthz probe; status None when the instance did not answer."""
    host = "[%s]" % address if ":" in str(address) else address
    try:
        resp = open_url("http://%s:%d/healthz" % (host, int(port)), timeout=timeout, validate_certs=False)
        return resp.getcode(), _detail(resp.read())
    except HTTPError as e:
        return e.code, _detail(e.read())
    except Exception as e:  # pylint: disable=broad-except  # refused, reset, timeout: not answering
        return None, str(e)[:200]


def _detail(body):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            return str(doc.get("status", "")) + ("" if not doc.get("detail") else ": %s" % doc["detail"])
    except ValueError:
        pass
    return text[:200]


def wait_healthy(instances, timeout, poll, probe_timeout=5.0, check=probe, clock=time.monotonic, sleep=time.sleep):
    """Probe all instances at once until each answered 200 or the timeout: ({id: (status, detail)}, seconds)."""
    start = clock()
    last = {}
    pending = list(instances)
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(pending)))) as pool:
        while pending:
            answers = list(pool.map(lambda i: check(i["address"], i["port"], probe_timeout), pending))
            for inst, ans in zip(pending, answers):
                last[inst["id"]] = ans
            pending = [i for i, ans in zip(pending, answers) if ans[0] != 200]
            if not pending or clock() - start >= timeout:
                break
            sleep(max(0.0, min(poll, timeout - (clock() - start))))
    return last, round(clock() - start, 2)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            instances=dict(type="list", elements="dict", required=True),
            timeout=dict(type="float", default=600),
            poll=dict(type="float", default=1),
            probe_timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for inst in p["instances"]:
        if any(k not in inst for k in ("id", "address", "port")):
            module.fail_json(msg="qvc_instance_health: each instance needs id, address and port; got %r" % (inst,))
    if module.check_mode or not p["instances"]:
        module.exit_json(changed=False, health={}, waited_s=0.0)
    last, waited = wait_healthy(p["instances"], p["timeout"], p["poll"], p["probe_timeout"])
    health = {k: {"status": v[0], "detail": v[1]} for k, v in last.items()}
    bad = sorted(k for k, v in last.items() if v[0] != 200)
    if bad:
        module.fail_json(msg="not healthy after %ss: %s" % (p["timeout"], ", ".join(
            "%s (%s %s)" % (k, last[k][0] if last[k][0] is not None else "no answer", last[k][1]) for k in bad)),
            health=health, waited_s=waited, unhealthy=bad)
    module.exit_json(changed=False, health=health, waited_s=waited)


if __name__ == "__main__":
    main()
