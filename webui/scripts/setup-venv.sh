#!/usr/bin/env bash
# Create webui/.venv: vLLM CPU + the torchvision shim + test dependencies (what `make test` uses).
#   webui/scripts/setup-venv.sh [VENV]     (default webui/.venv; about 3.5 GB)
# The same steps as the CPU image (webui/Dockerfile); torch's CPU wheel comes from pip's
# find-links (/opt/wheels on the dev machines) or --extra-index-url https://download.pytorch.org/whl/cpu.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$here/.venv}"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q -r "$here/requirements.txt"
"${pip[@]}" install -q --no-deps -r "$here/requirements-torchvision.txt"
"${pip[@]}" uninstall -q -y torchaudio torchcodec triton 2>/dev/null || true  # unused on CPU (see Dockerfile)
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
install -m 0644 "$here/shim/qvc_torchvision_cpu.py" "$site/"
echo "import qvc_torchvision_cpu" > "$site/qvc_torchvision_cpu.pth"
"${pip[@]}" install -q -r "$here/requirements-dev.txt"
touch "$venv/.installed"  # what scripts/bootstrap.sh looks at
"$venv/bin/python" -c "import torchvision.transforms.v2.functional, vllm; print('webui venv ok', vllm.__version__)"
