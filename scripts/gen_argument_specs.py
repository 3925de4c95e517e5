#!/usr/bin/env python3
"""Draft meta/argument_specs.yml for a role from its defaults/main.yml.

    scripts/gen_argument_specs.py roles/<role> ["short description"]

Types come from the default values (templated values become `raw`), descriptions from the
comment block above each variable. Review the output: it is a starting point, and
tests/unit/test_argument_specs.py keeps specs and defaults in agreement afterwards.
"""
import sys
from pathlib import Path

import yaml


class _Dumper(yaml.SafeDumper):
    """Indented block sequences (yamllint's default style), no anchors."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data):
        return True


def _type(value):
    if isinstance(value, str) and "{{" in value:
        return {"type": "raw"}
    if isinstance(value, bool):
        return {"type": "bool"}
    if isinstance(value, int):
        return {"type": "int"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, list):
        spec = {"type": "list"}
        if value and all(isinstance(v, str) for v in value):
            spec["elements"] = "str"
        elif value and all(isinstance(v, dict) for v in value):
            spec["elements"] = "dict"
        return spec
    if isinstance(value, dict):
        return {"type": "dict"}
    return {"type": "str"}


def descriptions(text):
    out, block = {}, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if body and not body.startswith(("---", "===")):
                block.append(body.strip("- ").strip())
            continue
        if line and not line[0].isspace() and ":" in line and not line.startswith("---"):
            out[line.split(":", 1)[0]] = " ".join(b for b in block if b)
        if not stripped or (line and not line[0].isspace()):
            block = []
    return out


def main(role_dir, short=None):
    role = Path(role_dir)
    text = (role / "defaults/main.yml").read_text()
    defaults = yaml.safe_load(text) or {}
    desc = descriptions(text)
    options = {}
    for name, value in defaults.items():
        spec = _type(value)
        spec["description"] = desc.get(name) or name.replace("_", " ")
        options[name] = spec
    doc = {"argument_specs": {"main": {"short_description": short or f"The {role.name} role", "options": options}}}
    sys.stdout.write("---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=110))


if __name__ == "__main__":
    main(*sys.argv[1:])
