#!/usr/bin/env bash
# Capture nvidia-smi outputs on a GPU host as a unit-test fixture for nvidia_gpu_facts.
#
#   tests/unit/record_nvidia_smi.sh <case-name> [output-dir]
#
# Writes <output-dir>/<case-name>/{query.stdout,query.stderr,query.rc,list.stdout,list.rc,topo.stdout,fabric.stdout}
# (default output-dir: tests/unit/fixtures/nvidia_smi next to this script). Copy the directory
# back into the repository; the unit tests parse every fixture directory they find.
# Read-only: runs only query commands, changes nothing on the host.
set -uo pipefail

name="${1:?usage: $0 <case-name> [output-dir]}"
here="$(cd "$(dirname "$0")" && pwd)"
out="${2:-$here/fixtures/nvidia_smi}/$name"
smi="${NVIDIA_SMI:-nvidia-smi}"
mkdir -p "$out"

export LC_ALL=C
"$smi" --query-gpu=index,uuid,name,memory.total,driver_version --format=csv,noheader,nounits \
  >"$out/query.stdout" 2>"$out/query.stderr"
rc=$?
echo "$rc" >"$out/query.rc"
if [ "$rc" -eq 0 ]; then
  "$smi" -L >"$out/list.stdout" 2>/dev/null
  echo "$?" >"$out/list.rc"
  # NVSwitch / fabric manager decision (filter_plugins/qvc_nvidia.py): the GPU matrix and the
  # Fabric sections only (the full -q has serial numbers the fixture does not need).
  "$smi" topo -m >"$out/topo.stdout" 2>/dev/null
  "$smi" -q | grep -E '^GPU |^    Product Name|^    Fabric|^        (State|Status) ' >"$out/fabric.stdout" 2>/dev/null
fi
# Context for the reviewer, not read by the tests.
{ "$smi" --version 2>&1 || true; uname -r; } >"$out/host-info.txt"
echo "recorded $out (query rc=$rc)"
ls -l "$out"
