"""Every role documents every default in meta/argument_specs.yml, and nothing more."""
from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_specs_and_defaults_agree(role):
    spec_file = role / "meta" / "argument_specs.yml"
    assert spec_file.is_file(), f"{role.name}: meta/argument_specs.yml is missing"
    options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"].get("options") or {}
    defaults_file = role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.is_file() else {}
    public = {k for k in defaults if not k.startswith("_")}
    assert sorted(public - set(options)) == [], f"{role.name}: defaults missing from the spec"
    undocumented = sorted(k for k in set(options) - public if not options[k].get("required"))
    assert undocumented == [], f"{role.name}: spec options without a default (mark them required)"
    for name, spec in options.items():
        assert name.startswith(role.name.split("_")[0]) or name.startswith("nvidia_"), \
            f"{role.name}: {name} is not role-prefixed"
        assert spec.get("description"), f"{role.name}: {name} has no description"
