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
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
install -m 0644 "$here/shim/qvc_torchvision_cpu.py" "$site/"
echo "import qvc_torchvision_cpu" > "$site/qvc_torchvision_cpu.pth"
"${pip[@]}" install -q -r "$here/requirements-dev.txt"
# Last, after every install that resolves vLLM's requirements again (they would bring these back):
# unused on CPU, and PyPI's CUDA builds of torchaudio/torchcodec do not load beside the CPU torch.
"${pip[@]}" uninstall -q -y torchaudio torchcodec triton 2>/dev/null || true
"$venv/bin/python" -c "import torchvision.transforms.v2.functional, vllm; from vllm.model_executor.models import qwen3_vl; print('webui venv ok', vllm.__version__)"
touch "$venv/.installed"  # what scripts/bootstrap.sh looks at (only once the check above passed)
