#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the qvc project contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: discover NVIDIA GPUs (and MIG devices) through nvidia-smi."""

from __future__ import absolute_import, annotations, division, print_function

import os
import re

from ansible.module_utils.basic import AnsibleModule

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: Discover NVIDIA GPUs, MIG devices and the driver version via nvidia-smi
description:
  - Runs C(nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version --format=csv,noheader,nounits)
    and, when GPUs were found, C(nvidia-smi -L) to discover MIG devices.
  - Never fails because of the host state. A host without nvidia-smi, without a loaded driver, with a
    driver/library version mismatch or without GPUs gets O(ansible_facts.nvidia_gpu_status) set to
    V(no_driver), V(no_gpu) or V(error) and a human readable O(ansible_facts.nvidia_gpu_message), so
    that the calling role decides whether that is fatal.
  - The module is read-only and supports check mode.
version_added: "1.0.0"
author:
  - qvc project
options:
  nvidia_smi_path:
    description:
      - Path to the nvidia-smi binary. When unset the binary is looked up in E(PATH) and the usual
        sbin/bin directories.
    type: path
  query_mig:
    description:
      - Also run C(nvidia-smi -L) to list MIG devices of each GPU.
    type: bool
    default: true
  timeout:
    description:
      - Seconds after which an nvidia-smi call is considered hung (reported as V(error)).
      - A GPU that fell off the bus can make nvidia-smi block for minutes.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
notes:
  - The parsing lives in pure functions (C(parse_gpu_csv), C(parse_mig_listing), C(classify_failure),
    C(build_facts)) that the unit tests under tests/unit exercise against recorded nvidia-smi outputs.
"""

EXAMPLES = r"""
- name: Discover GPUs
  nvidia_gpu_facts:

- name: Fail unless discovery worked
  ansible.builtin.assert:
    that: ansible_facts.nvidia_gpu_status == 'ok'
    fail_msg: "{{ ansible_facts.nvidia_gpu_message }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts about the NVIDIA GPUs of the host.
  returned: always
  type: dict
  contains:
    nvidia_gpu_status:
      description: V(ok), V(no_driver) (nvidia-smi missing or cannot talk to the kernel driver),
        V(no_gpu) (driver answers but no device) or V(error) (anything else, e.g. NVML version mismatch).
      type: str
      sample: ok
    nvidia_gpu_message:
      description: Human readable explanation of the status (first line of nvidia-smi's error).
      type: str
      sample: "Failed to initialize NVML: Driver/library version mismatch"
    nvidia_gpus:
      description: One entry per physical GPU, sorted by index.
      type: list
      elements: dict
      sample:
        - index: 0
          uuid: GPU-5e3a1f02-7c4b-9d1e-a2f3-0b8c6d4e1f27
          name: NVIDIA H100 80GB HBM3
          memory_mib: 81559
          driver_version: "550.54.15"
          mig_devices: []
    nvidia_gpu_count:
      description: Number of physical GPUs.
      type: int
      sample: 1
    nvidia_gpu_uuids:
      description: Sorted list of the GPU UUIDs (a stable fingerprint of the GPU set).
      type: list
      elements: str
    nvidia_mig_uuids:
      description: Sorted list of all MIG device UUIDs on the host (empty without MIG).
      type: list
      elements: str
    nvidia_mig_enabled:
      description: Whether at least one GPU exposes MIG devices.
      type: bool
    nvidia_driver_version:
      description: Driver version reported by nvidia-smi, empty when unknown.
      type: str
      sample: "550.54.15"
    nvidia_smi_path:
      description: The nvidia-smi binary that was used, empty when none was found.
      type: str
"""

GPU_QUERY_FIELDS = ("index", "uuid", "name", "memory.total", "driver_version")
GPU_QUERY_ARGS = [
    "--query-gpu=" + ",".join(GPU_QUERY_FIELDS),
    "--format=csv,noheader,nounits",
]

STATUS_OK = "ok"
STATUS_NO_DRIVER = "no_driver"
STATUS_NO_GPU = "no_gpu"
STATUS_ERROR = "error"

# Exit codes documented in nvidia-smi(1).
_RC_NO_DEVICE = 6
_RC_NO_DRIVER = 9
_RC_TIMEOUT = 124  # timeout(1) convention, also used for our own timeout
_RC_NOT_FOUND = 127

_NA_VALUES = ("[N/A]", "N/A", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]", "")

# nvidia-smi -L, current drivers:
#   GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
#     MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
# R450/R460 drivers printed MIG UUIDs as MIG-GPU-<gpu uuid>/<gi>/<ci>.
_GPU_LINE = re.compile(r"^GPU\s+(?P<index>\d+):\s+(?P<name>.+?)\s+\(UUID:\s*(?P<uuid>GPU-[0-9A-Fa-f-]+)\)\s*$")
_MIG_LINE = re.compile(
    r"^\s+MIG\s+(?P<profile>\S+)\s+Device\s+(?P<index>\d+):\s+\(UUID:\s*(?P<uuid>MIG-[0-9A-Za-z/-]+)\)\s*$"
)


class NvidiaSmiParseError(ValueError):
    """Raised when nvidia-smi output does not have the expected shape."""


def _int_or_none(value):
    value = value.strip()
    if value in _NA_VALUES:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise NvidiaSmiParseError("not a number: %r" % value)


def parse_gpu_csv(text):
    """Parse the output of the --query-gpu call (csv,noheader,nounits).

    Returns a list of dicts sorted by index. Raises NvidiaSmiParseError on malformed lines.
    GPU names may not contain commas (NVIDIA product names never do), every other field is
    stripped of the space nvidia-smi puts after each comma.
    """
    gpus = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(GPU_QUERY_FIELDS):
            raise NvidiaSmiParseError(
                "line %d: expected %d comma separated fields (%s), got %d: %r"
                % (lineno, len(GPU_QUERY_FIELDS), ",".join(GPU_QUERY_FIELDS), len(fields), line)
            )
        index, uuid, name, memory, driver = fields
        if not index.isdigit():
            raise NvidiaSmiParseError("line %d: GPU index is not a number: %r" % (lineno, line))
        if not uuid.startswith("GPU-"):
            raise NvidiaSmiParseError("line %d: GPU UUID does not start with 'GPU-': %r" % (lineno, line))
        gpus.append(
            {
                "index": int(index),
                "uuid": uuid,
                "name": name,
                "memory_mib": _int_or_none(memory),
                "driver_version": "" if driver in _NA_VALUES else driver,
                "mig_devices": [],
            }
        )
    gpus.sort(key=lambda gpu: gpu["index"])
    seen = set()
    for gpu in gpus:
        if gpu["index"] in seen:
            raise NvidiaSmiParseError("duplicate GPU index %d" % gpu["index"])
        seen.add(gpu["index"])
    return gpus


def parse_mig_listing(text):
    """Parse `nvidia-smi -L` into {gpu_uuid: [mig_device, ...]}.

    Only GPUs that have at least one MIG device appear in the result. Lines that are neither
    GPU nor MIG lines (blank lines, warnings) are ignored.
    """
    result = {}
    current = None
    for raw in text.splitlines():
        gpu = _GPU_LINE.match(raw)
        if gpu:
            current = gpu.group("uuid")
            continue
        mig = _MIG_LINE.match(raw)
        if mig and current is not None:
            result.setdefault(current, []).append(
                {
                    "index": int(mig.group("index")),
                    "profile": mig.group("profile"),
                    "uuid": mig.group("uuid"),
                }
            )
    return result


def _first_meaningful_line(*texts):
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def classify_failure(rc, stdout, stderr):
    """Map a failed (or empty) nvidia-smi --query-gpu run onto (status, message)."""
    combined = "%s\n%s" % (stdout or "", stderr or "")
    lowered = combined.lower()
    first = _first_meaningful_line(stderr, stdout)
    if rc == _RC_NOT_FOUND:
        return STATUS_NO_DRIVER, "nvidia-smi not found: the NVIDIA driver utilities are not installed"
    if rc == _RC_TIMEOUT:
        return STATUS_ERROR, "nvidia-smi did not answer in time (hung GPU or driver?)"
    if "driver/library version mismatch" in lowered:
        return STATUS_ERROR, (
            "%s (the loaded kernel module and the user space driver differ, usually after a driver "
            "upgrade without reboot)" % (first or "Failed to initialize NVML: Driver/library version mismatch")
        )
    if "no devices were found" in lowered or rc == _RC_NO_DEVICE:
        return STATUS_NO_GPU, first or "No devices were found"
    if "couldn't communicate with the nvidia driver" in lowered or rc == _RC_NO_DRIVER:
        return STATUS_NO_DRIVER, first or "nvidia-smi could not communicate with the NVIDIA driver"
    if rc == 0 and not combined.strip():
        return STATUS_NO_GPU, "nvidia-smi returned no GPUs (empty output)"
    return STATUS_ERROR, first or ("nvidia-smi failed with exit code %s and no output" % rc)


def empty_facts(status, message, smi_path=""):
    return {
        "nvidia_gpu_status": status,
        "nvidia_gpu_message": message,
        "nvidia_gpus": [],
        "nvidia_gpu_count": 0,
        "nvidia_gpu_uuids": [],
        "nvidia_mig_uuids": [],
        "nvidia_mig_enabled": False,
        "nvidia_driver_version": "",
        "nvidia_smi_path": smi_path or "",
    }


def build_facts(query_result, listing_result=None, smi_path=""):
    """Turn raw nvidia-smi results into the ansible_facts dict.

    query_result and listing_result are (rc, stdout, stderr) tuples; listing_result is the
    `nvidia-smi -L` call (None when MIG discovery is disabled). Pure function: no I/O.
    """
    rc, stdout, stderr = query_result
    if rc != 0:
        return empty_facts(*classify_failure(rc, stdout, stderr), smi_path=smi_path)
    try:
        gpus = parse_gpu_csv(stdout or "")
    except NvidiaSmiParseError as exc:
        # nvidia-smi exits 0 with an error text in some failure modes (e.g. some NVML errors).
        status, message = classify_failure(-1, stdout, stderr)
        if status == STATUS_ERROR:
            message = "unexpected nvidia-smi output: %s" % exc
        return empty_facts(status, message, smi_path=smi_path)
    if not gpus:
        return empty_facts(*classify_failure(0, stdout, stderr), smi_path=smi_path)

    message = "%d NVIDIA GPU(s) found" % len(gpus)
    if listing_result is not None:
        list_rc, list_out, list_err = listing_result
        if list_rc == 0:
            migs = parse_mig_listing(list_out or "")
            for gpu in gpus:
                gpu["mig_devices"] = migs.get(gpu["uuid"], [])
        else:
            message += "; MIG discovery failed: %s" % (
                _first_meaningful_line(list_err, list_out) or "nvidia-smi -L exit code %s" % list_rc
            )

    mig_uuids = sorted(mig["uuid"] for gpu in gpus for mig in gpu["mig_devices"])
    if mig_uuids:
        message += ", %d MIG device(s)" % len(mig_uuids)
    drivers = sorted({gpu["driver_version"] for gpu in gpus if gpu["driver_version"]})
    return {
        "nvidia_gpu_status": STATUS_OK,
        "nvidia_gpu_message": message,
        "nvidia_gpus": gpus,
        "nvidia_gpu_count": len(gpus),
        "nvidia_gpu_uuids": sorted(gpu["uuid"] for gpu in gpus),
        "nvidia_mig_uuids": mig_uuids,
        "nvidia_mig_enabled": bool(mig_uuids),
        "nvidia_driver_version": drivers[0] if drivers else "",
        "nvidia_smi_path": smi_path or "",
    }


def _run(module, argv, timeout):
    """Run argv; a hang is reported as rc 124 instead of blocking the play forever."""
    timeout_bin = module.get_bin_path("timeout")
    if timeout_bin and timeout > 0:
        argv = [timeout_bin, "--kill-after=5", str(timeout)] + argv
    rc, out, err = module.run_command(argv, check_rc=False, environ_update={"LC_ALL": "C"})
    return rc, out, err


def main():
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi_path": {"type": "path"},
            "query_mig": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    smi = module.params["nvidia_smi_path"]
    if smi:
        if not os.access(smi, os.X_OK):
            module.exit_json(changed=False, ansible_facts=empty_facts(
                STATUS_NO_DRIVER, "nvidia-smi not found or not executable at %s" % smi))
    else:
        smi = module.get_bin_path("nvidia-smi", opt_dirs=["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"])
        if not smi:
            module.exit_json(changed=False, ansible_facts=empty_facts(
                STATUS_NO_DRIVER, "nvidia-smi not found: the NVIDIA driver utilities are not installed"))

    timeout = module.params["timeout"]
    query = _run(module, [smi] + GPU_QUERY_ARGS, timeout)
    listing = None
    if query[0] == 0 and module.params["query_mig"]:
        listing = _run(module, [smi, "-L"], timeout)
    facts = build_facts(query, listing, smi_path=smi)
    module.exit_json(changed=False, ansible_facts=facts)


if __name__ == "__main__":
    main()
