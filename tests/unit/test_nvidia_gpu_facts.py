"""Unit tests for library/nvidia_gpu_facts.py.

Run from the repository root:  .venv/bin/pytest tests/unit/test_nvidia_gpu_facts.py
The fixtures under fixtures/nvidia_smi/ use the layout of tests/unit/record_nvidia_smi.sh.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nvidia_smi"
MODULE_PATH = ROOT / "library" / "nvidia_gpu_facts.py"
sys.path.insert(0, str(ROOT / "library"))

import nvidia_gpu_facts as mod  # noqa: E402  pylint: disable=wrong-import-position

UUID_RE = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def load(case):
    """Return (query_result, listing_result) tuples for a recorded case."""
    base = FIXTURES / case
    query = (
        int((base / "query.rc").read_text().strip()),
        (base / "query.stdout").read_text(),
        (base / "query.stderr").read_text() if (base / "query.stderr").exists() else "",
    )
    listing = None
    if (base / "list.stdout").exists():
        listing = (int((base / "list.rc").read_text().strip()), (base / "list.stdout").read_text(), "")
    return query, listing


def facts_for(case):
    query, listing = load(case)
    return mod.build_facts(query, listing, smi_path="/usr/bin/nvidia-smi")


# --------------------------------------------------------------------------- GPUs present


def test_single_gpu_l4():
    facts = facts_for("l4_x1")
    assert facts["nvidia_gpu_status"] == "ok"
    assert facts["nvidia_gpu_count"] == 1
    assert facts["nvidia_driver_version"] == "535.183.01"
    assert facts["nvidia_gpus"] == [
        {
            "index": 0,
            "uuid": "GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1",
            "name": "NVIDIA L4",
            "memory_mib": 23034,
            "driver_version": "535.183.01",
            "mig_devices": [],
        }
    ]
    assert facts["nvidia_gpu_uuids"] == ["GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1"]
    assert facts["nvidia_mig_enabled"] is False
    assert facts["nvidia_mig_uuids"] == []
    assert facts["nvidia_gpu_message"] == "1 NVIDIA GPU(s) found"
    assert facts["nvidia_smi_path"] == "/usr/bin/nvidia-smi"


def test_three_gpus_rtx_a6000():
    facts = facts_for("rtx_a6000_x3")
    assert facts["nvidia_gpu_status"] == "ok"
    assert facts["nvidia_gpu_count"] == 3
    assert [g["index"] for g in facts["nvidia_gpus"]] == [0, 1, 2]
    assert [g["uuid"] for g in facts["nvidia_gpus"]] == [
        "GPU-963b4cc7-478d-dd57-19f0-aacc8aa7a9d2",
        "GPU-972c78b9-c279-1ac3-aae2-ef183fa3a408",
        "GPU-d703615e-2c4a-ab76-fe33-e2bdb17ecfdb",
    ]
    assert {g["name"] for g in facts["nvidia_gpus"]} == {"NVIDIA RTX A6000"}
    assert {g["memory_mib"] for g in facts["nvidia_gpus"]} == {49140}
    assert facts["nvidia_driver_version"] == "550.127.05"


def test_eight_gpus_h100():
    facts = facts_for("h100_x8")
    assert facts["nvidia_gpu_status"] == "ok"
    assert facts["nvidia_gpu_count"] == 8
    assert [g["index"] for g in facts["nvidia_gpus"]] == list(range(8))
    gpu0 = facts["nvidia_gpus"][0]
    assert gpu0 == {
        "index": 0,
        "uuid": "GPU-c818f548-3634-309f-23c6-5a5d6de7b865",
        "name": "NVIDIA H100 80GB HBM3",
        "memory_mib": 81559,
        "driver_version": "550.54.15",
        "mig_devices": [],
    }
    assert facts["nvidia_gpus"][7]["uuid"] == "GPU-922e3b4b-95a4-2451-7c38-9681ed7e3bd3"
    assert facts["nvidia_driver_version"] == "550.54.15"
    assert facts["nvidia_gpu_uuids"] == sorted(g["uuid"] for g in facts["nvidia_gpus"])
    assert facts["nvidia_gpu_uuids"][0] == "GPU-13bc2f1d-1785-076d-2cae-195dc5f9e788"


def test_unsorted_output_is_sorted_by_index():
    text = (FIXTURES / "rtx_a6000_x3" / "query.stdout").read_text().splitlines()
    gpus = mod.parse_gpu_csv("\n".join(reversed(text)) + "\n")
    assert [g["index"] for g in gpus] == [0, 1, 2]


# --------------------------------------------------------------------------- MIG


def test_mig_a100_two_instances_on_gpu0_only():
    facts = facts_for("a100_mig")
    assert facts["nvidia_gpu_status"] == "ok"
    assert facts["nvidia_gpu_count"] == 2
    gpu0, gpu1 = facts["nvidia_gpus"]
    assert gpu0["mig_devices"] == [
        {"index": 0, "profile": "3g.20gb", "uuid": "MIG-d379883f-8a01-26b4-ac9e-9abd3a5fd2a9"},
        {"index": 1, "profile": "3g.20gb", "uuid": "MIG-96b5dc20-fefc-cd12-f3e8-843ccd218b2a"},
    ]
    assert gpu1["mig_devices"] == []
    assert facts["nvidia_mig_enabled"] is True
    assert facts["nvidia_mig_uuids"] == [
        "MIG-96b5dc20-fefc-cd12-f3e8-843ccd218b2a",
        "MIG-d379883f-8a01-26b4-ac9e-9abd3a5fd2a9",
    ]
    assert facts["nvidia_gpu_message"] == "2 NVIDIA GPU(s) found, 2 MIG device(s)"


def test_mig_h100_seven_slices():
    facts = facts_for("h100_mig_1g10gb")
    migs = facts["nvidia_gpus"][0]["mig_devices"]
    assert len(migs) == 7
    assert [m["index"] for m in migs] == list(range(7))
    assert {m["profile"] for m in migs} == {"1g.10gb"}
    assert facts["nvidia_driver_version"] == "550.90.07"


def test_mig_legacy_r450_uuid_format():
    facts = facts_for("a100_mig_r450_legacy")
    gpu = facts["nvidia_gpus"][0]
    assert gpu["name"] == "A100-SXM4-40GB"
    assert gpu["memory_mib"] == 40537
    assert [m["uuid"] for m in gpu["mig_devices"]] == [
        "MIG-GPU-76fd74a6-087f-475f-f8ba-35b681da795f/7/0",
        "MIG-GPU-76fd74a6-087f-475f-f8ba-35b681da795f/8/0",
    ]
    assert [m["profile"] for m in gpu["mig_devices"]] == ["1g.5gb", "1g.5gb"]


def test_mig_listing_failure_keeps_gpus_and_reports_it():
    query, _ = load("a100_mig")
    facts = mod.build_facts(query, (1, "", "Insufficient Permissions\n"))
    assert facts["nvidia_gpu_status"] == "ok"
    assert facts["nvidia_gpu_count"] == 2
    assert facts["nvidia_mig_enabled"] is False
    assert facts["nvidia_gpu_message"] == "2 NVIDIA GPU(s) found; MIG discovery failed: Insufficient Permissions"


def test_mig_disabled_query_gives_empty_mig_lists():
    query, _ = load("a100_mig")
    facts = mod.build_facts(query, None)
    assert all(g["mig_devices"] == [] for g in facts["nvidia_gpus"])


# --------------------------------------------------------------------------- failures


def test_driver_library_mismatch_is_error_with_hint():
    facts = facts_for("driver_mismatch")
    assert facts["nvidia_gpu_status"] == "error"
    assert facts["nvidia_gpu_message"].startswith("Failed to initialize NVML: Driver/library version mismatch")
    assert "without reboot" in facts["nvidia_gpu_message"]
    assert facts["nvidia_gpus"] == []
    assert facts["nvidia_gpu_count"] == 0
    assert facts["nvidia_driver_version"] == ""


def test_no_devices_found_is_no_gpu():
    facts = facts_for("no_devices")
    assert facts["nvidia_gpu_status"] == "no_gpu"
    assert facts["nvidia_gpu_message"] == "No devices were found"
    assert facts["nvidia_gpu_count"] == 0


def test_no_driver_is_no_driver():
    facts = facts_for("no_driver")
    assert facts["nvidia_gpu_status"] == "no_driver"
    assert facts["nvidia_gpu_message"].startswith("NVIDIA-SMI has failed because it couldn't communicate")


def test_empty_output_is_no_gpu():
    facts = facts_for("empty_output")
    assert facts["nvidia_gpu_status"] == "no_gpu"
    assert facts["nvidia_gpu_message"] == "nvidia-smi returned no GPUs (empty output)"
    assert facts["nvidia_gpus"] == []


def test_nvml_unknown_error_is_error():
    facts = facts_for("nvml_unknown_error")
    assert facts["nvidia_gpu_status"] == "error"
    assert facts["nvidia_gpu_message"] == "Failed to initialize NVML: Unknown Error"


@pytest.mark.parametrize(
    "rc,out,status",
    [
        (127, "", "no_driver"),
        (124, "", "error"),
        (9, "", "no_driver"),
        (6, "", "no_gpu"),
        (3, "", "error"),
    ],
)
def test_classify_failure_exit_codes(rc, out, status):
    assert mod.classify_failure(rc, out, "")[0] == status


def test_garbage_with_rc0_is_error_not_crash():
    facts = mod.build_facts((0, "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n", ""))
    assert facts["nvidia_gpu_status"] == "error"
    assert facts["nvidia_gpu_message"].startswith("unexpected nvidia-smi output: line 1: expected 5")


def test_na_memory_becomes_none():
    gpus = mod.parse_gpu_csv("0, GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1, NVIDIA L4, [N/A], 535.183.01\n")
    assert gpus[0]["memory_mib"] is None


@pytest.mark.parametrize(
    "line",
    [
        "0, GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1, NVIDIA L4, 23034",  # missing field
        "x, GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1, NVIDIA L4, 23034, 535.183.01",  # bad index
        "0, 83c3f908-64e6-e9ec-a814-85181cd1e9b1, NVIDIA L4, 23034, 535.183.01",  # bad uuid
        "0, GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1, NVIDIA L4, lots, 535.183.01",  # bad memory
    ],
)
def test_malformed_lines_raise(line):
    with pytest.raises(mod.NvidiaSmiParseError):
        mod.parse_gpu_csv(line + "\n")


def test_duplicate_index_raises():
    line = "0, GPU-83c3f908-64e6-e9ec-a814-85181cd1e9b1, NVIDIA L4, 23034, 535.183.01\n"
    with pytest.raises(mod.NvidiaSmiParseError):
        mod.parse_gpu_csv(line + line.replace("83c3", "93c3"))


# --------------------------------------------------------------------------- every fixture


@pytest.mark.parametrize("case", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_recorded_fixtures_parse(case):
    """Invariants for every fixture directory, including ones recorded later on real hosts."""
    query, listing = load(case)
    facts = mod.build_facts(query, listing)
    assert facts["nvidia_gpu_status"] in {"ok", "no_driver", "no_gpu", "error"}
    assert facts["nvidia_gpu_message"]
    if query[0] == 0 and query[1].strip():
        assert facts["nvidia_gpu_status"] == "ok", facts["nvidia_gpu_message"]
        assert facts["nvidia_gpu_count"] == len([ln for ln in query[1].splitlines() if ln.strip()])
        assert all(UUID_RE.match(g["uuid"]) for g in facts["nvidia_gpus"])
        assert facts["nvidia_driver_version"]
    else:
        assert facts["nvidia_gpu_status"] != "ok"
        assert facts["nvidia_gpu_count"] == 0


# --------------------------------------------------------------------------- module entry point


def _fake_smi(tmp_path, case):
    """An executable that replays a fixture like nvidia-smi would."""
    fixture = FIXTURES / case
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-L" ]; then cat "%(f)s/list.stdout"; exit $(cat "%(f)s/list.rc"); fi\n'
        'cat "%(f)s/query.stdout"; exit $(cat "%(f)s/query.rc")\n' % {"f": fixture}
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _run_module(tmp_path, args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, str(MODULE_PATH), str(args_file)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_module_runs_fake_nvidia_smi(tmp_path):
    smi = _fake_smi(tmp_path, "a100_mig")
    result = _run_module(tmp_path, {"nvidia_smi_path": str(smi)})
    facts = result["ansible_facts"]
    assert result["changed"] is False
    assert facts["nvidia_gpu_status"] == "ok"
    assert facts["nvidia_gpu_count"] == 2
    assert facts["nvidia_mig_uuids"] == [
        "MIG-96b5dc20-fefc-cd12-f3e8-843ccd218b2a",
        "MIG-d379883f-8a01-26b4-ac9e-9abd3a5fd2a9",
    ]
    assert facts["nvidia_smi_path"] == str(smi)


def test_module_reports_failure_without_failing(tmp_path):
    smi = _fake_smi(tmp_path, "driver_mismatch")
    result = _run_module(tmp_path, {"nvidia_smi_path": str(smi)})
    assert result.get("failed") is not True
    assert result["ansible_facts"]["nvidia_gpu_status"] == "error"


def test_module_missing_binary_is_no_driver(tmp_path):
    result = _run_module(tmp_path, {"nvidia_smi_path": str(tmp_path / "does-not-exist")})
    assert result.get("failed") is not True
    assert result["ansible_facts"]["nvidia_gpu_status"] == "no_driver"
    assert "not found" in result["ansible_facts"]["nvidia_gpu_message"]


def test_module_hung_nvidia_smi_times_out(tmp_path):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    result = _run_module(tmp_path, {"nvidia_smi_path": str(script), "timeout": 1})
    assert result["ansible_facts"]["nvidia_gpu_status"] == "error"
    assert "did not answer in time" in result["ansible_facts"]["nvidia_gpu_message"]
