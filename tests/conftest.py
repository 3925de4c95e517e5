import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Plugins and modules are plain Python files in the playbook tree; make them importable.
for sub in ("filter_plugins", "library"):
    sys.path.insert(0, str(ROOT / sub))
